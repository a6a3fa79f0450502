% w, h = thumb_size(p)
<a class="tile-link" href="/photo/{{p.id}}">
  <img src="{{thumb_url(p)}}" alt="{{file_name(p)}}" width="{{w}}" height="{{h}}" loading="lazy" decoding="async">
  <span class="name">{{file_name(p)}}</span>
</a>
