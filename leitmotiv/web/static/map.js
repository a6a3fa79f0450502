// The /map page: the library's stored layout on a canvas, read by viewport through
// /api/map.  Points coloured by cluster at low zoom, thumbnails once the viewport
// holds few enough photos; drag to pan, wheel / buttons / keys to zoom, click opens a
// photo.  Plain JavaScript, no library.
"use strict";

(function () {
  const root = document.getElementById("map");
  if (!root) return;
  const canvas = document.getElementById("map-canvas");
  const status = document.getElementById("map-status");
  const ctx = canvas.getContext("2d");
  const api = root.dataset.api;

  const LIMIT = 400; // photos asked for per viewport
  const THUMBS_BELOW = 120; // thumbnails once a viewport shows at most this many
  const THUMB = 64; // thumbnail size on screen, CSS pixels
  const DOT = 4; // point radius
  const DEBOUNCE_MS = 120;
  const ZOOM_STEP = 1.6;

  let bounds = null; // [x0, y0, x1, y1] of the whole map
  let view = null; // {cx, cy, scale}: map point at the centre, CSS pixels per unit
  let points = []; // the latest viewport's photos
  let inBox = 0;
  let asked = 0; // sequence number of the latest request
  let shown = 0; // sequence number of the response on screen
  let timer = null;
  const images = new Map(); // thumbnail URL -> Image

  function size() {
    const rect = canvas.getBoundingClientRect();
    return { w: Math.max(rect.width, 1), h: Math.max(rect.height, 1) };
  }

  function fit() {
    const { w, h } = size();
    const bw = Math.max(bounds[2] - bounds[0], 1e-9);
    const bh = Math.max(bounds[3] - bounds[1], 1e-9);
    view = {
      cx: (bounds[0] + bounds[2]) / 2,
      cy: (bounds[1] + bounds[3]) / 2,
      scale: 0.9 * Math.min(w / bw, h / bh),
    };
  }

  function toScreen(x, y) {
    const { w, h } = size();
    return [(x - view.cx) * view.scale + w / 2, (y - view.cy) * view.scale + h / 2];
  }

  function toMap(sx, sy) {
    const { w, h } = size();
    return [(sx - w / 2) / view.scale + view.cx, (sy - h / 2) / view.scale + view.cy];
  }

  function colour(cluster) {
    // Golden-angle hues: neighbouring cluster ids get distant colours.
    return `hsl(${(cluster * 137.508) % 360}, 62%, 48%)`;
  }

  function thumbs() {
    // Thumbnails once the box's photos are all here, few, and mostly apart on screen:
    // the median distance to the nearest other photo at least most of a thumbnail.
    if (points.length > THUMBS_BELOW || inBox > points.length) return false;
    if (points.length < 2) return true;
    const nearest = points.map((p, i) => {
      let best = Infinity;
      points.forEach((q, j) => {
        if (i !== j) best = Math.min(best, Math.hypot(p.x - q.x, p.y - q.y));
      });
      return best * view.scale;
    });
    nearest.sort((a, b) => a - b);
    return nearest[nearest.length >> 1] >= 0.45 * THUMB;
  }

  function draw() {
    const { w, h } = size();
    const ratio = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * ratio) || canvas.height !== Math.round(h * ratio)) {
      canvas.width = Math.round(w * ratio);
      canvas.height = Math.round(h * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    if (!view) return;
    const withThumbs = thumbs();
    let drawnThumbs = 0;
    let sample = ""; // a drawn thumbnail's
    let dotSample = ""; // a drawn point's
    for (const p of points) {
      const [sx, sy] = toScreen(p.x, p.y);
      const inside = sx > 0 && sy > 0 && sx < w && sy < h;
      if (withThumbs) {
        const img = image(p.thumb);
        if (img.complete && img.naturalWidth) {
          const k = THUMB / Math.max(img.naturalWidth, img.naturalHeight);
          const iw = img.naturalWidth * k;
          const ih = img.naturalHeight * k;
          ctx.drawImage(img, sx - iw / 2, sy - ih / 2, iw, ih);
          ctx.strokeStyle = colour(p.cluster);
          ctx.lineWidth = 2;
          ctx.strokeRect(sx - iw / 2, sy - ih / 2, iw, ih);
          drawnThumbs += 1;
          if (!sample && inside) sample = `${p.id} ${sx} ${sy}`;
          continue;
        }
      }
      ctx.beginPath();
      ctx.arc(sx, sy, DOT, 0, 2 * Math.PI);
      ctx.fillStyle = colour(p.cluster);
      ctx.fill();
      if (!dotSample && inside) dotSample = `${p.id} ${sx} ${sy}`;
    }
    canvas.dataset.points = String(points.length);
    canvas.dataset.thumbs = String(drawnThumbs);
    // Whether the view asks for thumbnails (they are drawn as their images arrive).
    canvas.dataset.mode = withThumbs ? "thumbs" : "points";
    // Where one drawn photo is, a thumbnail if any (photo id, x, y in CSS pixels): for
    // scripts and tests.
    canvas.dataset.sample = sample || dotSample;
    canvas.dataset.scale = String(view.scale); // CSS pixels per map unit
    status.textContent =
      inBox > points.length
        ? `${points.length} of ${inBox} photos here shown; zoom in for more`
        : `${inBox} photo${inBox === 1 ? "" : "s"} here`;
  }

  function image(url) {
    let img = images.get(url);
    if (!img) {
      img = new Image();
      img.decoding = "async";
      img.onload = () => requestAnimationFrame(draw);
      img.src = url;
      images.set(url, img);
    }
    return img;
  }

  function settle(seq) {
    // Whether the screen shows the answer for the current view (no request waiting or
    // under way): for scripts and tests, which must not read a view still loading.
    if (seq === asked && timer === null) canvas.dataset.settled = "true";
  }

  function load() {
    timer = null;
    const { w, h } = size();
    let url = `${api}?limit=${LIMIT}`;
    if (view) {
      const [x0, y0] = toMap(0, 0);
      const [x1, y1] = toMap(w, h);
      url += `&bbox=${x0},${y0},${x1},${y1}`;
    }
    const seq = ++asked;
    fetch(url, { headers: { Accept: "application/json" } })
      .then((r) => {
        if (!r.ok) throw new Error(`the map could not be read (${r.status})`);
        return r.json();
      })
      .then((data) => {
        if (seq < shown) return; // a later viewport's answer is already drawn
        shown = seq;
        if (!data.bounds) {
          status.textContent = "The library has no map yet: run leitmotiv build-index.";
          settle(seq);
          return;
        }
        if (!bounds) {
          bounds = data.bounds;
          fit();
          schedule(); // now ask for the viewport itself
        }
        points = data.points;
        inBox = data.in_box;
        draw();
        settle(seq);
      })
      .catch((err) => {
        status.textContent = String(err.message || err);
        settle(seq);
      });
  }

  function schedule() {
    clearTimeout(timer);
    canvas.dataset.settled = "false";
    timer = setTimeout(load, DEBOUNCE_MS);
  }

  function zoom(factor, sx, sy) {
    if (!view) return;
    const { w, h } = size();
    if (sx === undefined) {
      sx = w / 2;
      sy = h / 2;
    }
    const [mx, my] = toMap(sx, sy);
    view.scale *= factor;
    // Keep the map point under (sx, sy) where it was.
    view.cx = mx - (sx - w / 2) / view.scale;
    view.cy = my - (sy - h / 2) / view.scale;
    draw();
    schedule();
  }

  function pan(dx, dy) {
    if (!view) return;
    view.cx -= dx / view.scale;
    view.cy -= dy / view.scale;
    draw();
    schedule();
  }

  function hit(sx, sy) {
    const reach = thumbs() ? THUMB / 2 : DOT + 3;
    let best = null;
    let bestD = Infinity;
    for (const p of points) {
      const [px, py] = toScreen(p.x, p.y);
      const d = Math.max(Math.abs(px - sx), Math.abs(py - sy));
      if (d <= reach && d < bestD) {
        best = p;
        bestD = d;
      }
    }
    return best;
  }

  // Dragging pans; a press released where it started is a click.
  let drag = null;
  canvas.addEventListener("pointerdown", (e) => {
    drag = { x: e.clientX, y: e.clientY, startX: e.clientX, startY: e.clientY };
    canvas.setPointerCapture(e.pointerId);
    canvas.classList.add("dragging");
  });
  canvas.addEventListener("pointermove", (e) => {
    if (!drag) return;
    pan(e.clientX - drag.x, e.clientY - drag.y);
    drag.x = e.clientX;
    drag.y = e.clientY;
  });
  canvas.addEventListener("pointerup", (e) => {
    canvas.classList.remove("dragging");
    if (!drag) return;
    const moved = Math.hypot(e.clientX - drag.startX, e.clientY - drag.startY);
    drag = null;
    if (moved < 4) {
      const rect = canvas.getBoundingClientRect();
      const p = hit(e.clientX - rect.left, e.clientY - rect.top);
      if (p) window.location.href = `/photo/${p.id}`;
    }
  });
  canvas.addEventListener("pointercancel", () => {
    drag = null;
    canvas.classList.remove("dragging");
  });
  canvas.addEventListener(
    "wheel",
    (e) => {
      e.preventDefault();
      const rect = canvas.getBoundingClientRect();
      zoom(Math.exp(-e.deltaY * 0.0015), e.clientX - rect.left, e.clientY - rect.top);
    },
    { passive: false },
  );
  canvas.addEventListener("keydown", (e) => {
    const moves = { ArrowLeft: [60, 0], ArrowRight: [-60, 0], ArrowUp: [0, 60], ArrowDown: [0, -60] };
    if (e.key === "+" || e.key === "=") zoom(ZOOM_STEP);
    else if (e.key === "-" || e.key === "_") zoom(1 / ZOOM_STEP);
    else if (e.key === "0" && bounds) {
      fit();
      draw();
      schedule();
    } else if (moves[e.key]) pan(...moves[e.key]);
    else return;
    e.preventDefault();
  });
  document.getElementById("map-zoom-in").addEventListener("click", () => zoom(ZOOM_STEP));
  document.getElementById("map-zoom-out").addEventListener("click", () => zoom(1 / ZOOM_STEP));
  document.getElementById("map-reset").addEventListener("click", () => {
    if (!bounds) return;
    fit();
    draw();
    schedule();
  });
  window.addEventListener("resize", () => {
    draw();
    schedule();
  });

  load();
})();
