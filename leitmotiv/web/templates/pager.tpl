% if page.count > 1:
<nav class="pager" aria-label="{{label}} pages">
%   if page.has_previous:
  <a href="?page={{page.number - 1}}" rel="prev">← Previous</a>
%   else:
  <span class="disabled" aria-hidden="true">← Previous</span>
%   end
  <span class="where">Page {{page.number}} of {{page.count}}</span>
%   if page.has_next:
  <a href="?page={{page.number + 1}}" rel="next">Next →</a>
%   else:
  <span class="disabled" aria-hidden="true">Next →</span>
%   end
</nav>
% end
