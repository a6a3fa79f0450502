% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<div class="photo-layout">
  <section class="selected" aria-labelledby="selected-title">
    <figure>
% if displayable:
      <a href="/photo/{{photo.id}}/file"><img src="/photo/{{photo.id}}/file" alt="{{file_name(photo)}}"></a>
% else:
      <a href="/photo/{{photo.id}}/file"><img src="{{thumb_url(photo)}}" alt="{{file_name(photo)}} (thumbnail; the original opens as a download)"></a>
% end
      <figcaption>
        <h1 id="selected-title">{{file_name(photo)}}</h1>
        <dl class="facts">
          <dt>Path</dt><dd class="path">{{photo.path}}</dd>
          <dt>Captured</dt><dd>{{date_label(photo)}}
% if photo.taken_source:
            <span class="source">{{date_source_label(photo)}}</span>
% end
          </dd>
          <dt>Size</dt><dd>{{photo.width}} × {{photo.height}} px</dd>
          <dt>Model</dt><dd>{{photo.components if photo.components is not None else 'not fitted'}}{{' components' if photo.components is not None else ''}}</dd>
        </dl>
        <p class="actions"><a href="/photo/{{photo.id}}/model">See its model</a> <a href="/photo/{{photo.id}}/file">Original file</a> <a href="/api/photos/{{photo.id}}/similar?top={{page.size}}{{'&offset=%d' % page.offset if page.offset else ''}}">JSON</a></p>
      </figcaption>
    </figure>
  </section>
  <section class="ranking" aria-labelledby="ranking-title">
    <h2 id="ranking-title">Most similar first <span class="count">{{page.total}}</span></h2>
% if not ranking:
    <p class="empty">Nothing to compare with yet: the index is built by <code>leitmotiv build-index</code>.</p>
% end
    <ol class="grid" start="{{page.offset + 1}}">
% for rank, (p, distance, relation) in enumerate(ranking, start=page.offset + 1):
      <li class="tile">
%   include('tile', p=p)
        <p class="meta"><span class="rank">#{{rank}}</span> <span class="relation relation-{{relation}}">{{relation}}</span> <span class="distance" title="√Jensen–Shannon distance">d = {{'%.3f' % distance}}</span></p>
      </li>
% end
    </ol>
% include('pager', page=page, label='Ranking')
  </section>
</div>
