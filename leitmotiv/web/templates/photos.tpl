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
%   include('date', p=p)
  </li>
% end
</ul>
% include('pager', page=page, label='Photo', keyset=keyset)
