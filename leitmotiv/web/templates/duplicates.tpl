% rebase('layout', title=title, nav=nav, current_nav=current_nav)
<h1>Near-duplicates <span class="count">{{page.total}} group{{'' if page.total == 1 else 's'}}</span></h1>
<p class="lead">Photos closer than the calibrated near-duplicate distance, grouped around a suggested keeper (most pixels, then sharpest, then captured first). Every other member is that close to the keeper itself. Nothing here deletes or moves a file; <a href="/api/duplicates">JSON</a> and <code>leitmotiv duplicates --csv</code> give scripts what they need to act.</p>
% if not groups:
<p class="empty">{{empty}}</p>
% end
<ol class="duplicate-groups" start="{{page.offset + 1}}">
% for group in groups:
  <li class="duplicate-group">
    <h2>{{group.size}} photos <span class="count">keep {{file_name(group.keeper)}}: {{group.reason}}</span></h2>
    <ul class="side-by-side">
%   for p, distance in [(group.keeper, None)] + group.members:
      <li class="{{'keeper' if distance is None else 'member'}}">
        <a class="frame" href="/photo/{{p.id}}"><img src="/photo/{{p.id}}/thumb.jpg" alt="{{file_name(p)}}" loading="lazy" decoding="async"></a>
        <p class="role">{{'Keeper' if distance is None else 'd = %.3f' % distance}}</p>
        <dl class="facts">
          <dt>File</dt><dd class="path">{{file_name(p)}}</dd>
          <dt>Pixels</dt><dd>{{p.width}} × {{p.height}}</dd>
          <dt>File size</dt><dd>{{file_size_label(p.size)}}</dd>
          <dt>Captured</dt><dd>{{date_label(p)}}</dd>
          <dt>Sharpness</dt><dd>{{'%.0f' % p.sharpness if p.sharpness is not None else 'not measured'}}</dd>
        </dl>
      </li>
%   end
    </ul>
  </li>
% end
</ol>
% include('pager', page=page, label='Group')
