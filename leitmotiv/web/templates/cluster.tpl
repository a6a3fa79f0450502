% rebase('layout', title=title, nav=nav, current_nav=current_nav)
<h1>Cluster {{cluster.id}} <span class="count">{{len(cluster.members)}} photo{{'' if len(cluster.members) == 1 else 's'}}</span></h1>
<div class="cluster-body{{'' if averages else ' no-average'}}">
  <figure class="exemplar">
    <a href="/photo/{{cluster.exemplar.id}}"><img src="/photo/{{cluster.exemplar.id}}/thumb.jpg" alt="Exemplar: {{file_name(cluster.exemplar)}}"></a>
    <figcaption>Exemplar: {{file_name(cluster.exemplar)}}</figcaption>
  </figure>
% if averages:
  <figure class="average">
    <img src="/clusters/{{cluster.id}}/average.png" alt="Average image of cluster {{cluster.id}}">
    <figcaption>Average of the members' models</figcaption>
  </figure>
% end
</div>
<h2>Members</h2>
<ul class="grid">
% for p in members:
  <li class="tile">
%   include('tile', p=p)
%   include('date', p=p)
  </li>
% end
</ul>
% include('pager', page=page, label='Member')
<p class="actions"><a href="/clusters">All clusters</a> <a href="/api/clusters/{{cluster.id}}">JSON</a></p>
