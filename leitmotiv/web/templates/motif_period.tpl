% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1><a href="/clusters/{{motif.cluster_id}}">Motif {{motif.cluster_id}}</a> in {{period.label}} <span class="count">{{len(members)}} photo{{'' if len(members) == 1 else 's'}} in {{len(period.occurrences)}} occurrence{{'' if len(period.occurrences) == 1 else 's'}}</span></h1>
<p class="lead">Photos taken within 30 minutes of each other form one occurrence.</p>
<ul class="grid">
% for p in members:
  <li class="tile">
%   include('tile', p=p)
    <p class="meta"><time datetime="{{p.taken.isoformat()}}">{{date_label(p)}}</time> <span class="source">{{date_source_label(p)}}</span></p>
  </li>
% end
</ul>
<p class="actions"><a href="/motifs">All motifs</a> <a href="/clusters/{{motif.cluster_id}}">The whole cluster</a></p>
