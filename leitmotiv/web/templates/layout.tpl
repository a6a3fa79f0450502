<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{title}} · leitmotiv</title>
<link rel="stylesheet" href="{{get('style_url', '/static/style.css')}}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site">
  <a class="brand" href="/">leitmotiv</a>
  <nav aria-label="Main">
    <ul>
% for label, href in nav:
%   if href == current_nav:
      <li><a href="{{href}}" aria-current="page">{{label}}</a></li>
%   else:
      <li><a href="{{href}}">{{label}}</a></li>
%   end
% end
    </ul>
  </nav>
</header>
<main id="main" tabindex="-1">
{{!base}}
</main>
</body>
</html>
