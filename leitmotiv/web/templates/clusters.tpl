% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1>Clusters <span class="count">{{page.total}}</span></h1>
<p class="lead">Photos grouped by similarity. Each cluster shows its exemplar (the most typical member), its average image and its first members.</p>
% if not clusters:
<p class="empty">No clusters yet: they are made by <code>leitmotiv build-index</code>.</p>
% end
<ol class="clusters">
% for c in clusters:
%   exemplar = photos[c.exemplar_id]
%   strip = strips[c.cluster_id]
  <li class="cluster">
    <h2><a href="/clusters/{{c.cluster_id}}">Cluster {{c.cluster_id}}</a> <span class="count">{{c.size}} photo{{'' if c.size == 1 else 's'}}</span></h2>
    <div class="cluster-body{{'' if averages else ' no-average'}}">
      <figure class="exemplar">
        <a href="/photo/{{exemplar.id}}"><img src="{{thumb_url(exemplar)}}" alt="Exemplar: {{file_name(exemplar)}}" loading="lazy"></a>
        <figcaption>Exemplar</figcaption>
      </figure>
%   if averages:
      <figure class="average">
        <img src="{{average_url(c)}}" alt="Average image of cluster {{c.cluster_id}}" loading="lazy">
        <figcaption>Average</figcaption>
      </figure>
%   end
      <ul class="strip" aria-label="Members of cluster {{c.cluster_id}}">
%   for m in strip:
        <li><a href="/photo/{{m.id}}"><img src="{{thumb_url(m)}}" alt="{{file_name(m)}}" loading="lazy"></a></li>
%   end
%   if c.size > len(strip):
        <li class="more"><a href="/clusters/{{c.cluster_id}}">+{{c.size - len(strip)}} more</a></li>
%   end
      </ul>
    </div>
  </li>
% end
</ol>
% include('pager', page=page, label='Cluster')
