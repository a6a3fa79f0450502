% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1>Motifs <span class="count">{{page.total}}</span></h1>
<p class="lead">Clusters seen through time, the most recurrent first: a scene photographed in many separate {{resolution}}s ranks above a burst of near-duplicates shot in one afternoon, which counts as one occurrence. Each dot is a {{resolution}} with photos of the motif (the bigger, the more photos); click it to see them. Photos dated only by their file time are counted apart as undated.</p>
% if not motifs:
<p class="empty">No motifs yet: they come from the clusters made by <code>leitmotiv build-index</code>.</p>
% elif timeline is None:
<p class="empty">No photo has a capture date (EXIF), so there is no timeline to draw.</p>
% end
<ol class="motifs">
% for m in motifs:
%   exemplar = photos[m.exemplar_id]
%   n_periods = len(m.periods)
%   n_photos = m.size
  <li class="motif">
    <div class="motif-images{{'' if averages else ' no-average'}}">
      <figure class="exemplar">
        <a href="/clusters/{{m.cluster_id}}"><img src="{{thumb_url(exemplar)}}" alt="Exemplar of motif {{m.cluster_id}}: {{file_name(exemplar)}}" loading="lazy"></a>
        <figcaption>Exemplar</figcaption>
      </figure>
%   if averages:
      <figure class="average">
        <a href="/clusters/{{m.cluster_id}}"><img src="{{average_url(m)}}" alt="Average image of motif {{m.cluster_id}}" loading="lazy"></a>
        <figcaption>Average</figcaption>
      </figure>
%   end
    </div>
    <div class="motif-time">
      <h2><a href="/clusters/{{m.cluster_id}}">Motif {{m.cluster_id}}</a>
%   if n_periods:
        <span class="count">score {{'%.2f' % m.score}} · {{m.n_occurrences}} occurrence{{'' if m.n_occurrences == 1 else 's'}} in {{n_periods}} {{resolution}}{{'' if n_periods == 1 else 's'}} · {{n_photos}} photo{{'' if n_photos == 1 else 's'}}</span>
%   else:
        <span class="count">score {{'%.2f' % m.score}} · no capture date · {{n_photos}} photo{{'' if n_photos == 1 else 's'}}</span>
%   end
%   if m.n_undated:
        <span class="undated" title="Dated by file time only, so not placed on the timeline">{{m.n_undated}} undated</span>
%   end
      </h2>
%   if timeline is not None:
      <svg class="timeline" width="100%" height="64" role="group" aria-label="Motif {{m.cluster_id}} over time">
        <line class="axis" x1="0" x2="100%" y1="26" y2="26"/>
%     for t in timeline.ticks:
        <line class="tick" x1="{{'%.3f' % t.x}}%" x2="{{'%.3f' % t.x}}%" y1="4" y2="48"/>
        <text class="tick-label" x="{{'%.3f' % t.x}}%" y="60" dx="3">{{t.label}}</text>
%     end
%     for k in marks[m.cluster_id]:
        <a class="mark" href="/motifs/{{m.cluster_id}}/{{k.label}}" aria-label="{{k.label}}: {{k.n_photos}} photo{{'' if k.n_photos == 1 else 's'}}">
          <title>{{k.label}}: {{k.n_photos}} photo{{'' if k.n_photos == 1 else 's'}} in {{k.n_occurrences}} occurrence{{'' if k.n_occurrences == 1 else 's'}}</title>
          <circle cx="{{'%.3f' % k.x}}%" cy="26" r="{{'%.1f' % k.r}}"/>
%       if k.n_photos > 1:
          <text class="n" x="{{'%.3f' % k.x}}%" y="26" dy="0.35em" text-anchor="middle">{{k.n_photos}}</text>
%       end
        </a>
%     end
      </svg>
%   end
    </div>
  </li>
% end
</ol>
% include('pager', page=page, label='Motif')
<p class="actions"><a href="/api/motifs">JSON</a></p>
