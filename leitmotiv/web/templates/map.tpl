% rebase('layout', title=title, nav=nav, current_nav=current_nav)
<h1>Map <span class="count">{{n_points}} photo{{'' if n_points == 1 else 's'}}</span></h1>
% if not n_points:
%   if not n_photos:
<p class="empty">The library has no photos yet: add some with <code>leitmotiv add</code>, then run <code>leitmotiv build-index</code>.</p>
%   else:
<p class="empty">The map is made by <code>leitmotiv build-index</code>: run it to place the library's {{n_photos}} photo{{'' if n_photos == 1 else 's'}}.</p>
%   end
% else:
<p class="lead">Similar photos lie close together; colours are clusters. Drag to pan, use the wheel or the buttons to zoom (on the map: <kbd>+</kbd> <kbd>−</kbd>, arrow keys, <kbd>0</kbd> to see everything); photos appear as you zoom in; click one to open it. <a href="/api/map">JSON</a></p>
<div class="map" id="map" data-api="/api/map">
  <canvas id="map-canvas" tabindex="0" role="img" aria-label="Map of {{n_points}} photos placed by similarity"></canvas>
  <div class="map-controls">
    <button type="button" id="map-zoom-in" aria-label="Zoom in">+</button>
    <button type="button" id="map-zoom-out" aria-label="Zoom out">−</button>
    <button type="button" id="map-reset" aria-label="Show the whole map">⤢</button>
  </div>
  <p class="map-status" id="map-status" aria-live="polite"></p>
</div>
<script src="{{script_url}}" defer></script>
% end
