% rebase('layout', title=title, nav=nav, current_nav=current_nav)
<h1>Clusters <span class="count">{{page.total}}</span></h1>
<p class="lead">Photos grouped by similarity. Each cluster shows its exemplar (the most typical member), its average image and its first members.</p>
% if not clusters:
<p class="empty">No clusters yet: they are made by <code>leitmotiv build-index</code>.</p>
% end
<ol class="clusters">
% for c in clusters:
  <li class="cluster">
    <h2><a href="/clusters/{{c.id}}">Cluster {{c.id}}</a> <span class="count">{{len(c.members)}} photo{{'' if len(c.members) == 1 else 's'}}</span></h2>
    <div class="cluster-body{{'' if averages else ' no-average'}}">
      <figure class="exemplar">
        <a href="/photo/{{c.exemplar.id}}"><img src="/photo/{{c.exemplar.id}}/thumb.jpg" alt="Exemplar: {{file_name(c.exemplar)}}" loading="lazy"></a>
        <figcaption>Exemplar</figcaption>
      </figure>
%   if averages:
      <figure class="average">
        <img src="/clusters/{{c.id}}/average.png" alt="Average image of cluster {{c.id}}" loading="lazy">
        <figcaption>Average</figcaption>
      </figure>
%   end
      <ul class="strip" aria-label="Members of cluster {{c.id}}">
%   for m in c.members[:strip]:
        <li><a href="/photo/{{m.id}}"><img src="/photo/{{m.id}}/thumb.jpg" alt="{{file_name(m)}}" loading="lazy"></a></li>
%   end
%   if len(c.members) > strip:
        <li class="more"><a href="/clusters/{{c.id}}">+{{len(c.members) - strip}} more</a></li>
%   end
      </ul>
    </div>
  </li>
% end
</ol>
% include('pager', page=page, label='Cluster')
