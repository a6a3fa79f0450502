% rebase('layout', title=title, nav=nav, current_nav=current_nav, style_url=style_url)
<section class="error">
  <h1>{{status}}</h1>
  <p>{{message}}</p>
  <p><a href="/">Back to the photos</a></p>
</section>
