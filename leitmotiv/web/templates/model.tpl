% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<h1>Model of <a href="/photo/{{photo.id}}">{{file_name(photo)}}</a></h1>
% if mixture is None:
<p class="empty">This photo has no model yet: run <code>leitmotiv build-index</code>.</p>
% elif not drawable:
<p class="lead">{{mixture.n_components}} Gaussian components in {{mixture.dim}} dimensions.</p>
<p class="empty">This featurizer models colour only, without positions, so there is nothing to draw over the photo or to render.</p>
<p class="actions"><a href="/api/photos/{{photo.id}}/model">JSON</a></p>
% else:
<p class="lead">{{mixture.n_components}} Gaussian components. Each ellipse is one component at 2σ of its position, filled with its mean colour; the more opaque, the heavier.</p>
<div class="model-layout">
  <figure>
    <svg class="ellipses" viewBox="0 0 {{frame[0]}} {{frame[1]}}" role="img" aria-labelledby="svg-title">
      <title id="svg-title">{{file_name(photo)}} with its {{mixture.n_components}} components drawn as ellipses</title>
      <image href="{{thumb_url(photo)}}" x="0" y="0" width="{{frame[0]}}" height="{{frame[1]}}" preserveAspectRatio="none"/>
%   for e in ellipses:
      <ellipse cx="{{'%.2f' % e.cx}}" cy="{{'%.2f' % e.cy}}" rx="{{'%.2f' % e.rx}}" ry="{{'%.2f' % e.ry}}" transform="rotate({{'%.2f' % e.angle}} {{'%.2f' % e.cx}} {{'%.2f' % e.cy}})" fill="{{e.fill}}" fill-opacity="{{'%.2f' % e.opacity}}" stroke="#ffffff" stroke-opacity="0.45" stroke-width="1" vector-effect="non-scaling-stroke"/>
%   end
    </svg>
    <figcaption>The photo and its mixture</figcaption>
  </figure>
  <figure>
    <img src="{{render_url}}" alt="The model of {{file_name(photo)}} rendered back to an image">
    <figcaption>The model rendered: expected colour at each pixel</figcaption>
  </figure>
</div>
<details class="components">
  <summary>The {{mixture.n_components}} components</summary>
  <table>
    <thead><tr><th scope="col">Colour</th><th scope="col">Weight</th><th scope="col">Centre (x, y) px</th><th scope="col">Semi-axes px</th></tr></thead>
    <tbody>
%   for e in ellipses:
      <tr>
        <td><svg class="swatch" viewBox="0 0 1 1" role="img" aria-label="{{e.fill}}"><rect width="1" height="1" fill="{{e.fill}}"/></svg> <code>{{e.fill}}</code></td>
        <td>{{'%.3f' % e.weight}}</td>
        <td>{{'%.0f' % e.cx}}, {{'%.0f' % e.cy}}</td>
        <td>{{'%.0f' % e.rx}} × {{'%.0f' % e.ry}}</td>
      </tr>
%   end
    </tbody>
  </table>
</details>
<p class="actions"><a href="/api/photos/{{photo.id}}/model">JSON</a></p>
% end
