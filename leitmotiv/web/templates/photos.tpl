% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1>Photos <span class="count">{{page.total}}</span></h1>
<p class="lead">By date captured, oldest first; photos without a date come last.</p>
% if not photos:
<p class="empty">The library has no photos yet. Add some with <code>leitmotiv add-directory FOLDER</code>.</p>
% end
<ul class="grid">
% for p in photos:
  <li class="tile">
%   include('tile', p=p)
    <p class="meta">
%   if p.taken is not None:
      <time datetime="{{p.taken.isoformat()}}">{{date_label(p)}}</time>
      <span class="source">{{date_source_label(p)}}</span>
%   else:
      <span class="nodate">no date</span>
%   end
    </p>
  </li>
% end
</ul>
% include('pager', page=page, label='Photo')
