    <p class="meta">
% if p.taken is not None:
      <time datetime="{{p.taken.isoformat()}}">{{date_label(p)}}</time>
      <span class="source">{{date_source_label(p)}}</span>
% else:
      <span class="nodate">no date</span>
% end
    </p>
