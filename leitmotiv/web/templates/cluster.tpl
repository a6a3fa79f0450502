% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1>Cluster {{cluster.cluster_id}} <span class="count">{{cluster.size}} photo{{'' if cluster.size == 1 else 's'}}</span></h1>
<div class="cluster-body{{'' if averages else ' no-average'}}">
  <figure class="exemplar">
    <a href="/photo/{{exemplar.id}}"><img src="{{thumb_url(exemplar)}}" alt="Exemplar: {{file_name(exemplar)}}"></a>
    <figcaption>Exemplar: {{file_name(exemplar)}}</figcaption>
  </figure>
% if averages:
  <figure class="average">
    <img src="{{average_url}}" alt="Average image of cluster {{cluster.cluster_id}}">
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
<p class="actions"><a href="/clusters">All clusters</a> <a href="/api/clusters/{{cluster.cluster_id}}">JSON</a></p>
