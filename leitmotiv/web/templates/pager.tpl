% # keyset: (first, last) photo id of a page read by keyset, for links that say where
% # the next and previous pages start (see the photo grid); None: links by number.
% setdefault('keyset', None)
% if page.count > 1:
<nav class="pager" aria-label="{{label}} pages">
%   if page.has_previous:
%     if keyset and page.number > 2:
  <a href="?page={{page.number - 1}}&amp;before={{keyset[0]}}" rel="prev">← Previous</a>
%     else:
  <a href="?page={{page.number - 1}}" rel="prev">← Previous</a>
%     end
%   else:
  <span class="disabled" aria-hidden="true">← Previous</span>
%   end
  <span class="where">Page {{page.number}} of {{page.count}}</span>
%   if page.has_next:
%     if keyset:
  <a href="?page={{page.number + 1}}&amp;after={{keyset[1]}}" rel="next">Next →</a>
%     else:
  <a href="?page={{page.number + 1}}" rel="next">Next →</a>
%     end
%   else:
  <span class="disabled" aria-hidden="true">Next →</span>
%   end
</nav>
% end
