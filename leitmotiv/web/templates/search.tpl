% rebase('layout', title=title, nav=nav, current_nav=current_nav)
<h1>Search by a photo</h1>
<p class="lead">Choose a photo that is not in the library: it is fitted in memory for this search only, never written to disk or to the library, and the library is ranked against it.</p>
<form class="search-form" method="post" action="/search" enctype="multipart/form-data">
  <input type="hidden" name="token" value="{{token}}">
  <label for="photo">Photo (up to {{limit_mb}} MB)</label>
  <input id="photo" name="photo" type="file" accept="image/*" required>
  <button type="submit">Search</button>
</form>
% if ranking is not None:
<section class="ranking" aria-labelledby="ranking-title">
  <h2 id="ranking-title">Most similar to {{upload_name}} <span class="count">{{len(ranking)}}</span></h2>
%   if not ranking:
  <p class="empty">Nothing to compare with yet: the index is built by <code>leitmotiv build-index</code>.</p>
%   end
  <ol class="grid">
%   for rank, (p, distance, relation) in enumerate(ranking, start=1):
    <li class="tile">
%     include('tile', p=p)
      <p class="meta"><span class="rank">#{{rank}}</span> <span class="distance" title="distance">d = {{'%.3f' % distance}}</span> <span class="relation">{{relation}}</span></p>
    </li>
%   end
  </ol>
</section>
% end
