"""The web view: a Bottle application built by :func:`make_app` from a library.

Routes, grouped by what they serve (each HTML page has a JSON twin under ``/api/``):

========================================  ==========================================
HTML                                      JSON
========================================  ==========================================
``/`` photos by date captured (``?page``,  ``/api/photos?offset=&limit=``, or
``&after=``/``&before=`` a photo id)      ``?after=&limit=`` (keyset)
``/photo/<id>`` ranking (``?page``)        ``/api/photos/<id>``,
                                          ``/api/photos/<id>/similar?top=&offset=``
``/photo/<id>/model`` the mixture          ``/api/photos/<id>/model``
``/clusters`` (``?page``)                  ``/api/clusters?offset=&limit=``
``/clusters/<id>`` members (``?page``)     ``/api/clusters/<id>``
``/motifs`` timelines (``?page``)          ``/api/motifs?since=&until=&offset=&limit=``
``/motifs/<id>/<period>`` its photos
``/duplicates`` groups (``?page``)          ``/api/duplicates?offset=&limit=``
``/search`` the form; POST: the ranking
``/map`` the library's map                 ``/api/map?bbox=x0,y0,x1,y1&limit=``
========================================  ==========================================

Images: ``/photo/<id>/thumb.jpg``, ``/photo/<id>/file`` (the original),
``/photo/<id>/render.png`` and ``/clusters/<id>/average.png``.  Styles:
``/static/<name>`` from a fixed whitelist.

At 100,000 photos a page still reads only what it shows: listings read one page of
rows through indexes (the photo grid from a cursor photo's place in its index, however
deep), the clusters and motifs pages read the summaries stored with the clustering
(:mod:`leitmotiv.summaries`) instead of the clustering itself, and ``/api/clusters``
and ``/api/motifs`` join the JSON texts stored there for each cluster.

Caching: the pages link images and styles by URLs that name their content
(``?v=`` the photo's content hash, the render's or average's key, the stylesheet's
hash); such a request, when ``v`` is the current one, is answered with
``Cache-Control: immutable`` for a year, so a second visit loads no image again.  Any
other image request gets an ``ETag`` (and for thumbnails a ``Last-Modified``) and
``no-cache``, and revalidation (``If-None-Match``, ``If-Modified-Since``) is a 304
decided before the image is read or rendered.  :func:`make_wsgi` adds gzip for HTML
and JSON (Paste's ``gzipper`` middleware), which is what ``leitmotiv serve`` runs.

Safety choices: ids come only through Bottle's ``int`` route filter and are looked up
in the library, so a file is served by id and never by a path taken from the request;
an unknown, malformed or out-of-range id is a 404, never a 500.  Templates escape every
value (``{{ }}``); ``{{! }}`` appears only where the layout inserts the page it wraps.
Every response forbids MIME sniffing and carries a Content-Security-Policy without
inline scripts, so even a mistake in escaping could not run a script.  No route changes
the library: the app only ever reads it.

Plugins extend the app through the ``leitmotiv_web_routes(app, library)`` hook, called
once the built-in routes exist.  To appear in the top navigation they append
``(label, href)`` to ``app.config["leitmotiv.nav"]``; to reuse the layout they call
``app.config["leitmotiv.render"](template_name, title=..., **values)`` after adding
their template folder with ``app.config["leitmotiv.templates"].add_folder(path)``.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import hmac
import json
import math
import os
import re
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import bottle
from bottle import HTTPError, HTTPResponse, request, response

from leitmotiv import paths, store, summaries

# The JSON shapes, importable from here too, where the CLI and plugins find them.
from leitmotiv.json_shapes import (
    cluster_json,
    duplicate_group_json,
    duplicate_photo_json,  # noqa: F401 (re-exported)
    motif_json,
    photo_json,
    photo_ref,  # noqa: F401 (re-exported)
)

PACKAGE_DIR = Path(__file__).resolve().parent
TEMPLATE_DIR = PACKAGE_DIR / "templates"
STATIC_DIR = PACKAGE_DIR / "static"

#: Static files the app serves, by name: the only names ``/static/<name>`` accepts.
STATIC_FILES = {
    "style.css": "text/css; charset=utf-8",
    "map.js": "text/javascript; charset=utf-8",
}

PHOTOS_PER_PAGE = 60
CLUSTERS_PER_PAGE = 30
MOTIFS_PER_PAGE = 30
DUPLICATE_GROUPS_PER_PAGE = 20
#: Largest request the search form accepts, in bytes; a larger one is a 413.
UPLOAD_LIMIT = 50 * 1024 * 1024
#: The cookie holding the token a search form must send back (see ``/search``).
FORM_COOKIE = "leitmotiv_form"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")
STRIP_LENGTH = 8  # members shown beside each cluster on /clusters
API_DEFAULT_LIMIT = 100
API_MAX_LIMIT = 1000
API_DEFAULT_TOP = 10
#: Photos /api/map returns by default and at most per viewport.
MAP_DEFAULT_LIMIT = 400
MAP_MAX_LIMIT = 2000

_COUNT_RE = re.compile(r"[0-9]{1,9}")  # page numbers, offsets, limits: ASCII digits only
# The route of original photo files, which make_wsgi does not compress.
_ORIGINAL_RE = re.compile(r"/photo/[^/]+/file")
# Period labels of leitmotiv.motifs: a year, a month or a day.
_PERIOD_RE = re.compile(r"[0-9]{4}(?:-[0-9]{2}){0,2}")

# A URL whose ``v`` names the current content never changes meaning: kept a year and
# never revalidated.  Originals change only when their file does, so they may be reused
# for an hour.  Anything else is revalidated with its ETag each time (cheap: a 304 is
# decided before the image is read or rendered).
_CACHE_IMMUTABLE = "private, max-age=31536000, immutable"
_CACHE_STABLE = "private, max-age=3600"
_CACHE_REVALIDATE = "private, no-cache"

_SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; img-src 'self'; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    # HTML and JSON are gzip-compressed for clients that accept it (make_wsgi).
    "Vary": "Accept-Encoding",
}

# The extensions a browser can display in an <img>; other originals (HEIC, TIFF...)
# are shown through their thumbnail and offered as a download link.
_BROWSER_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".jpe", ".png", ".gif", ".webp", ".bmp"}


class Templates:
    """Bottle SimpleTemplates from a list of folders, each compiled once.

    Parameters
    ----------
    folders : list of Path
        Searched in order for ``<name>.tpl``.
    """

    def __init__(self, folders: list[Path]) -> None:
        self._lookup = [str(folder) for folder in folders]
        self._cache: dict[str, bottle.SimpleTemplate] = {}
        self._lock = threading.Lock()

    def add_folder(self, folder: str | Path) -> None:
        """Search ``folder`` too, after the built-in templates."""
        with self._lock:
            self._lookup.append(str(folder))
            self._cache.clear()

    def render(self, name: str, **values: Any) -> str:
        """Render template ``name`` (without ``.tpl``) with ``values``."""
        with self._lock:
            template = self._cache.get(name)
            if template is None:
                template = bottle.SimpleTemplate(name=name, lookup=list(self._lookup))
                self._cache[name] = template
        return template.render(**values)


@dataclass(frozen=True)
class Page:
    """One page of a paginated listing (pages count from 1).

    Attributes
    ----------
    number, count : int
        This page and the number of pages (at least 1, even for an empty listing).
    size : int
        Items per page.
    total : int
        Items in the whole listing.
    """

    number: int
    count: int
    size: int
    total: int

    @property
    def offset(self) -> int:
        """Index of this page's first item in the whole listing."""
        return (self.number - 1) * self.size

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.count


def _page(total: int, size: int) -> Page:
    """The page asked for by ``?page=N``; a malformed or missing page is a 404."""
    raw = request.query.get("page", "1")
    if not _COUNT_RE.fullmatch(raw):
        raise HTTPError(404, "No such page.")
    count = max(1, math.ceil(total / size))
    number = int(raw)
    if not 1 <= number <= count:
        raise HTTPError(404, "No such page.")
    return Page(number=number, count=count, size=size, total=total)


def _query_text(name: str) -> str | None:
    """A query parameter as the client wrote it, or None when absent.

    WSGI hands the query string over as Latin-1 text; clients send UTF-8, so a value
    echoed in an error message would otherwise show garbled.  Bytes that are not UTF-8
    show as U+FFFD.
    """
    raw = request.query.get(name)
    return None if raw is None else raw.encode("latin-1").decode("utf-8", "replace")


def _query_count(name: str, default: int, minimum: int, maximum: int) -> int:
    """A non-negative integer query parameter of the JSON API; 400 naming the value
    when malformed."""
    raw = _query_text(name)
    if raw is None or raw == "":
        return default
    if not _COUNT_RE.fullmatch(raw) or not minimum <= int(raw) <= maximum:
        raise HTTPError(
            400, f"{name} must be an integer from {minimum} to {maximum}, got {raw!r}."
        )
    return int(raw)


def _map_box(raw: str | None) -> tuple[float, float, float, float] | None:
    """The ``bbox`` of /api/map as (x0, y0, x1, y1); None when absent (the whole map).

    Raises
    ------
    HTTPError
        400 naming the value when it is not four finite numbers with x0 <= x1 and
        y0 <= y1.
    """
    if raw is None or raw == "":
        return None
    parts = raw.split(",")
    try:
        values = [float(part) for part in parts] if len(parts) == 4 else []
    except ValueError:
        values = []
    if len(values) != 4 or not all(math.isfinite(v) for v in values):
        raise HTTPError(400, f"bbox must be four numbers x0,y0,x1,y1, got {raw!r}.")
    x0, y0, x1, y1 = values
    if x0 > x1 or y0 > y1:
        raise HTTPError(400, f"bbox must have x0 <= x1 and y0 <= y1, got {raw!r}.")
    return x0, y0, x1, y1


def _json_listing(head: dict[str, Any], key: str, entries: list[str]) -> bytes:
    """A JSON listing made of ``head``'s fields and ``key``: the ``entries``, JSON texts
    stored ready to serve (UTF-8, names shown), joined without being parsed again.

    The text is what ``json.dumps`` gives for the same data (same separators), so a
    stored listing reads exactly like one computed per request.
    """
    response.content_type = "application/json"
    text = json.dumps(head, ensure_ascii=False)[:-1] + f', "{key}": [' + ", ".join(entries)
    return (text + "]}").encode("utf-8", paths.SHOWN_ERRORS)


def _cursor(name: str, status: int) -> int | None:
    """A photo id naming a keyset page (``after``, ``before``), or None when absent;
    malformed, it is an HTTP ``status`` (404 for a page, 400 for the JSON API)."""
    raw = _query_text(name)
    if raw is None or raw == "":
        return None
    if not _COUNT_RE.fullmatch(raw) or int(raw) < 1:
        raise HTTPError(status, f"{name} must be a photo id, got {raw!r}.")
    return int(raw)


def motifs_with_photos(library, **bounds: Any) -> tuple[list, dict[int, Any]]:
    """The library's motifs and its clustered photos by id, reading the clusters once."""
    clusters = library.clusters()
    photos = {photo.id: photo for cluster in clusters for photo in cluster.members}
    return library.motifs(clusters=clusters, **bounds), photos


# ----------------------------------------------------------------- timelines


def next_period(start: dt.datetime, resolution: str) -> dt.datetime:
    """The start of the period after the one starting at ``start``.

    The last period a ``datetime`` can hold (the year 9999, its December, its last
    day) ends at ``datetime.max`` instead: a capture date that far out is a camera's
    error, but it must not break the timeline.
    """
    try:
        if resolution == "year":
            return start.replace(year=start.year + 1)
        if resolution == "month":
            return (start.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        return start + dt.timedelta(days=1)
    except (OverflowError, ValueError):
        return dt.datetime.max


@dataclass(frozen=True)
class Tick:
    """A tick of a timeline's axis: where (percent of the width) and its label."""

    x: float
    label: str


@dataclass(frozen=True)
class Mark:
    """One period of a motif on its timeline.

    Attributes
    ----------
    x : float
        Centre, in percent of the strip's width.
    r : float
        Radius in pixels; the area grows with the number of photos.
    label : str
        The period's label, also the last part of its URL.
    n_photos, n_occurrences : int
    """

    x: float
    r: float
    label: str
    n_photos: int
    n_occurrences: int


@dataclass(frozen=True)
class Timeline:
    """The time axis shared by every motif row, so rows can be compared by eye."""

    start: dt.datetime
    end: dt.datetime
    ticks: list[Tick]

    # Marks keep clear of the strip's ends, where a circle would be cut in half.
    MARGIN = 3.0

    def x(self, moment: dt.datetime) -> float:
        """Position of ``moment`` in percent of the strip's width."""
        fraction = (moment - self.start) / (self.end - self.start)
        return self.MARGIN + (100.0 - 2 * self.MARGIN) * min(max(fraction, 0.0), 1.0)

    def marks(self, periods: Sequence[summaries.PeriodSummary], resolution: str) -> list[Mark]:
        """One mark per period of a motif, at the middle of the period."""
        out = []
        for period in periods:
            end = next_period(period.start, resolution)
            out.append(
                Mark(
                    x=self.x(period.start + (end - period.start) / 2),
                    r=min(4.0 + 3.0 * math.sqrt(period.n_photos), 18.0),
                    label=period.label,
                    n_photos=period.n_photos,
                    n_occurrences=period.n_occurrences,
                )
            )
        return out


#: At most this many labelled ticks on an axis; more would collide on a narrow screen.
MAX_TICK_LABELS = 12


def make_timeline(motifs: Sequence[Any]) -> Timeline | None:
    """The axis spanning every dated period of ``motifs``; None if none is dated."""
    periods = [(p.start, m.resolution) for m in motifs for p in m.periods]
    if not periods:
        return None
    return timeline_between(min(s for s, _ in periods), max(next_period(s, r) for s, r in periods))


def timeline_between(start: dt.datetime, end: dt.datetime) -> Timeline:
    """The axis from ``start`` to ``end``.

    Ticks mark years when the span covers two years or more (a ten-year library
    gets one per year, a longer one every few years), else months, else days.
    """
    if end - start >= dt.timedelta(days=2 * 365):
        unit = "year"
    elif end - start >= dt.timedelta(days=60):
        unit = "month"
    else:
        unit = "day"
    boundaries = []
    moment = _floor(start, unit)
    while moment < end:
        if moment >= start:
            boundaries.append(moment)
        moment = next_period(moment, unit)
    step = max(1, math.ceil(len(boundaries) / MAX_TICK_LABELS))
    timeline = Timeline(start, end, [])
    timeline.ticks.extend(Tick(timeline.x(b), _tick_label(b, unit)) for b in boundaries[::step])
    return timeline


def _tick_label(moment: dt.datetime, unit: str) -> str:
    """``2015``, ``Mar 2015`` or ``01 Mar``, the year always in four digits."""
    year = moment.date().isoformat()[:4]
    if unit == "year":
        return year
    if unit == "month":
        return f"{moment:%b} {year}"
    return f"{moment:%d %b}"


def _floor(moment: dt.datetime, unit: str) -> dt.datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if unit == "year":
        return day.replace(month=1, day=1)
    if unit == "month":
        return day.replace(day=1)
    return day


def file_name(photo) -> str:
    """The last component of a photo's path, as shown under thumbnails."""
    return os.path.basename(photo.path)  # a stored path is absolute and names a file


def file_size_label(n_bytes: int) -> str:
    """A file size in the unit that reads best: ``"812 B"``, ``"45.3 kB"``, ``"2.1 MB"``."""
    for unit in ("B", "kB", "MB"):
        if n_bytes < 1000 or unit == "MB":
            break
        n_bytes /= 1000
    return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"


def date_label(photo) -> str:
    """``YYYY-MM-DD HH:MM`` of the date captured, or ``no date``."""
    if photo.taken is None:
        return "no date"
    return photo.taken.isoformat(sep=" ", timespec="minutes")[:16]  # 4-digit year


def date_source_label(photo) -> str:
    """Where the date comes from, in words: EXIF, file time or nothing."""
    return {
        "exif": "EXIF",
        "mtime": "file time",
        "mtime-bad-exif": "file time (the EXIF date is implausible)",
    }.get(photo.taken_source or "", "")


def _show_undecodable_names(callback: Callable[..., Any]) -> Callable[..., Any]:
    """Bottle plugin: a route's result (a page, or data for JSON) with every string
    passed through :func:`leitmotiv.paths.shown`.

    Data (a dict) is encoded to JSON here, once, as UTF-8 whose encoder writes U+FFFD
    for each undecodable byte of a name: :func:`~leitmotiv.paths.shown` maps characters
    one by one, so this equals applying it to every string of the data, without
    walking a listing's tens of thousands of strings in Python first.
    """

    def shown_result(*args: Any, **kwargs: Any) -> Any:
        result = callback(*args, **kwargs)
        if isinstance(result, dict):
            response.content_type = "application/json"
            return json.dumps(result, ensure_ascii=False).encode("utf-8", paths.SHOWN_ERRORS)
        return paths.shown_data(result)

    return shown_result


def _file_etag(path: Path) -> str | None:
    """None, so that bottle makes the ETag of an original file, unless its name is not
    valid UTF-8: bottle hashes the name as UTF-8 and fails, so such a file gets an ETag
    made the same way from the name's stored form (see :mod:`leitmotiv.paths`)."""
    if paths.shown(str(path)) == str(path):
        return None
    try:
        st = path.stat()
    except OSError:
        return None  # gone: bottle answers 404 before it needs an ETag
    key = f"{st.st_dev}:{st.st_ino}:{st.st_mtime}:{st.st_size}:{paths.to_stored(str(path))}"
    return hashlib.sha1(key.encode()).hexdigest()


def thumb_size(photo, long_side: int = 256) -> tuple[int, int]:
    """Width and height of the photo's thumbnail, to reserve its space in the layout."""
    w, h = photo.width or long_side, photo.height or long_side
    scale = long_side / max(w, h, 1)
    return max(1, round(w * scale)), max(1, round(h * scale))


def current_nav(nav: list[tuple[str, str]], path: str) -> str | None:
    """The nav link the page at ``path`` belongs to (marked ``aria-current``).

    ``/`` owns the photo pages too, since they are reached from the photo grid.
    """
    for _label, href in nav:
        if href == "/" and (path == "/" or path.startswith("/photo/")):
            return href
        if href != "/" and (path == href or path.startswith(href.rstrip("/") + "/")):
            return href
    return None


def drawable(mixture) -> bool:
    """Whether a model can be drawn over its photo and rendered back to an image.

    That needs the 5-D ``(x, y, c1, c2, c3)`` space and the transform back to pixels;
    plugin featurizers may model colour only (no transform), and then the views show
    the model's size but no picture.
    """
    return mixture is not None and mixture.transform is not None and mixture.dim == 5


def content_key(*parts: str) -> str:
    """A short name for content made from ``parts`` (the ``v`` of a versioned URL)."""
    return hashlib.blake2b("\0".join(parts).encode(), digest_size=8).hexdigest()


def map_point_json(point) -> str:
    """A point of ``/api/map`` (:class:`leitmotiv.layout.MapPoint`) as JSON text, as
    ``json.dumps`` gives it."""
    return (
        f'{{"id": {point.id:d}, "x": {point.x!r}, "y": {point.y!r}, '
        f'"cluster": {point.cluster:d}, "thumb": "{thumb_url(point)}"}}'
    )


def thumb_url(photo) -> str:
    """The thumbnail's URL, naming its content: the photo file's hash."""
    return f"/photo/{photo.id}/thumb.jpg?v={photo.sha256[:16]}"


def _not_modified(etag: str, modified: dt.datetime | None) -> bool:
    """Whether the request's validators say the client holds this version.

    ``If-None-Match`` decides when present (RFC 9110 13.2.2); ``If-Modified-Since`` only
    without it.
    """
    wanted = request.get_header("If-None-Match")
    if wanted is not None:
        return wanted.strip() == "*" or etag in (tag.strip() for tag in wanted.split(","))
    since = request.get_header("If-Modified-Since")
    if since is None or modified is None:
        return False
    try:
        stamp = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False  # a malformed date is ignored, as the RFC says
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return modified.replace(microsecond=0) <= stamp


def _image_response(
    version: str,
    content_type: str,
    read: Callable[[], bytes | None],
    modified: dt.datetime | None = None,
) -> HTTPResponse:
    """An image (or style sheet) named by ``version``: 304 if the client has it, else
    ``read()``'s bytes.

    Immutable when the request's ``v`` is ``version`` (the URL names the content), else
    revalidated with the ETag.  ``read()`` runs only when a body is sent; None, or a
    ValueError (a model that cannot be rendered, e.g. a colour-only featurizer's), is a
    404.
    """
    etag = f'"{version}"'
    current = request.query.get("v") == version
    cache_control = _CACHE_IMMUTABLE if current else _CACHE_REVALIDATE
    headers = {"ETag": etag, "Cache-Control": cache_control, **_SECURITY_HEADERS}
    if modified is not None:
        headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
    if _not_modified(etag, modified):
        return HTTPResponse(status=304, headers=headers)
    try:
        data = read()
    except ValueError:
        data = None
    if data is None:
        raise HTTPError(404, "No such image.")
    headers["Content-Type"] = content_type
    return HTTPResponse(body=data, status=200, headers=headers)


# ----------------------------------------------------------------- the factory


def make_app(library) -> bottle.Bottle:
    """Build the web view of ``library``.

    Parameters
    ----------
    library : leitmotiv.library.Library
        Read only; shared by all requests (the server's threads call it concurrently).

    Returns
    -------
    bottle.Bottle
        A WSGI application; nothing about it is global, so several can coexist.
        :func:`make_wsgi` wraps it with compression, as served.
    """
    app = bottle.Bottle()
    # Ids in routes (``<id:int>``) are ASCII digits only: bottle's own filter matches
    # any Unicode digit ("١" would serve photo 1).
    app.router.add_filter("int", lambda _: (r"[0-9]+", int, lambda x: str(int(x))))
    # Every page and JSON document shows a file name that is not valid UTF-8 with
    # U+FFFD for its undecodable bytes, rather than failing to encode (see
    # leitmotiv.paths); installed last, this runs before bottle's JSON plugin.
    app.install(_show_undecodable_names)
    templates = Templates([TEMPLATE_DIR])
    nav: list[tuple[str, str]] = [
        ("Photos", "/"),
        ("Clusters", "/clusters"),
        ("Motifs", "/motifs"),
        ("Duplicates", "/duplicates"),
        ("Search", "/search"),
        ("Map", "/map"),
    ]
    static = {name: (STATIC_DIR / name).read_bytes() for name in STATIC_FILES}
    static_versions = {name: content_key(data.hex()) for name, data in static.items()}
    featurizer_key = library.featurizer.key()

    def static_url(name: str) -> str:
        """A static file's URL, naming its content."""
        return f"/static/{name}?v={static_versions[name]}"

    def render_url(photo) -> str:
        """The model render's URL, naming its content: featurizer and file hash."""
        return f"/photo/{photo.id}/render.png?v={content_key(featurizer_key, photo.sha256)}"

    def average_url(summary) -> str:
        """The average image's URL, naming its content (stored with the clustering)."""
        return f"/clusters/{summary.cluster_id}/average.png?v={summary.average_key}"

    def render(name: str, *, title: str, **values: Any) -> str:
        """A page: template ``name`` inside the layout, with the helpers every page uses."""
        return templates.render(
            name,
            title=title,
            nav=nav,
            current_nav=current_nav(nav, request.path),
            style_url=static_url("style.css"),
            date_label=date_label,
            date_source_label=date_source_label,
            file_name=file_name,
            file_size_label=file_size_label,
            thumb_size=thumb_size,
            thumb_url=thumb_url,
            **values,
        )

    app.config["leitmotiv.library"] = library
    app.config["leitmotiv.nav"] = nav
    app.config["leitmotiv.templates"] = templates
    app.config["leitmotiv.render"] = render

    def valid_id(some_id: int) -> bool:
        return 0 < some_id <= store.MAX_ID

    def get_photo(photo_id: int):
        photo = library.photo(photo_id) if valid_id(photo_id) else None
        if photo is None:
            raise HTTPError(404, f"There is no photo {photo_id}.")
        return photo

    def get_cluster(cluster_id: int):
        cluster = library.cluster(cluster_id) if 0 <= cluster_id <= store.MAX_ID else None
        if cluster is None:
            raise HTTPError(404, f"There is no cluster {cluster_id}.")
        return cluster

    def get_summary(cluster_id: int):
        """The stored summary of a cluster of the current clustering; 404 if none."""
        found = library.cluster_summary(cluster_id) if 0 <= cluster_id <= store.MAX_ID else None
        if found is None:
            raise HTTPError(404, f"There is no cluster {cluster_id}.")
        return found

    def can_draw(photo_id: int) -> bool:
        """Whether this library's models render (one model read: all share a featurizer)."""
        return drawable(library.mixture(photo_id))

    # ------------------------------------------------------------ all photos

    def photos_next_to(photo_id: int, limit: int, before: bool = False) -> list:
        """A keyset page of the photo grid; 404 when the cursor names no photo."""
        found = library.photos_next_to(photo_id, limit, before) if valid_id(photo_id) else None
        if found is None:
            raise HTTPError(404, f"There is no photo {photo_id}.")
        return found

    @app.get("/")
    def photos_page():
        page = _page(library.count_photos(), PHOTOS_PER_PAGE)
        # The pager's links name the photo a page starts after (or ends before), so a
        # deep page is read from that photo's place in the index; ``?page`` alone
        # (an offset) still works and labels the page.
        after, before = _cursor("after", 404), _cursor("before", 404)
        if after is not None and before is not None:
            raise HTTPError(404, "No such page.")
        if after is not None or before is not None:
            photos = photos_next_to(after or before, page.size, before=before is not None)
        else:
            photos = library.photos(offset=page.offset, limit=page.size)
        keyset = (photos[0].id, photos[-1].id) if photos else None
        return render("photos", title="Photos", photos=photos, page=page, keyset=keyset)

    @app.get("/api/photos")
    def photos_api():
        offset = _query_count("offset", 0, 0, 10**9)
        limit = _query_count("limit", API_DEFAULT_LIMIT, 1, API_MAX_LIMIT)
        after = _cursor("after", 400)
        if after is not None and _query_text("offset"):
            raise HTTPError(400, "Ask with offset or with after, not both.")
        # One photo more than the page, to tell whether a next page exists.
        if after is None:
            photos = library.photos(offset=offset, limit=limit + 1)
        else:
            photos = photos_next_to(after, limit + 1)
        return {
            "total": library.count_photos(),
            "offset": offset if after is None else None,
            "limit": limit,
            "after": after,
            "next_after": photos[limit - 1].id if len(photos) > limit else None,
            "photos": [photo_json(photo) for photo in photos[:limit]],
        }

    # ---------------------------------------------- one photo and its ranking

    @app.get("/photo/<photo_id:int>")
    def photo_page(photo_id):
        photo = get_photo(photo_id)
        # The photos it has a distance to: all others in a dense index, its
        # neighbourhood in a sparse one.
        page = _page(library.count_similar(photo.id), PHOTOS_PER_PAGE)
        ranking = library.similar(photo.id, top=page.size, offset=page.offset)
        return render(
            "photo",
            title=file_name(photo),
            photo=photo,
            ranking=[(p, d, library.relation(d)) for p, d in ranking],
            page=page,
            displayable=Path(photo.path).suffix.lower() in _BROWSER_IMAGE_SUFFIXES,
        )

    @app.get("/api/photos/<photo_id:int>")
    def photo_api(photo_id):
        return photo_json(get_photo(photo_id))

    @app.get("/api/photos/<photo_id:int>/similar")
    def similar_api(photo_id):
        top = _query_count("top", API_DEFAULT_TOP, 1, API_MAX_LIMIT)
        offset = _query_count("offset", 0, 0, 10**9)
        # The hot API call: one query when the photo exists; only an empty answer
        # needs the second look-up that tells an unknown photo (404) from one that
        # is not indexed yet or an offset past the end (an empty list).
        ranking = library.similar(photo_id, top=top, offset=offset) if valid_id(photo_id) else []
        if not ranking:
            get_photo(photo_id)
        return {
            "id": photo_id,
            "top": top,
            "offset": offset,
            "similar": [
                {
                    "id": other.id,
                    "path": other.path,
                    "distance": float(distance),
                    "relation": library.relation(distance),
                }
                for other, distance in ranking
            ],
        }

    # -------------------------------------------------------- the model view

    @app.get("/photo/<photo_id:int>/model")
    def model_page(photo_id):
        from leitmotiv.web.ellipses import mixture_ellipses

        photo = get_photo(photo_id)
        mixture = library.mixture(photo.id)
        can_draw = drawable(mixture)
        return render(
            "model",
            title=f"Model of {file_name(photo)}",
            photo=photo,
            mixture=mixture,
            drawable=can_draw,
            ellipses=mixture_ellipses(mixture) if can_draw else [],
            frame=(mixture.transform.width, mixture.transform.height) if can_draw else None,
            render_url=render_url(photo),
        )

    @app.get("/api/photos/<photo_id:int>/model")
    def model_api(photo_id):
        from leitmotiv.web.ellipses import mixture_ellipses

        photo = get_photo(photo_id)
        mixture = library.mixture(photo.id)
        if mixture is None:
            raise HTTPError(404, f"Photo {photo.id} has no model yet.")
        out = {
            "id": photo.id,
            "n_components": mixture.n_components,
            "dim": mixture.dim,
            "weights": mixture.weights.tolist(),
            "means": mixture.means.tolist(),
            "covariances": mixture.covariances.tolist(),
            "transform": mixture.transform.to_dict() if mixture.transform else None,
            "raw_means": None,
            "raw_covariances": None,
            "ellipses": [],
        }
        if drawable(mixture):
            means, covariances = mixture.raw_components()
            out["raw_means"] = means.tolist()
            out["raw_covariances"] = covariances.tolist()
            out["ellipses"] = [vars(e) for e in mixture_ellipses(mixture)]
        return out

    # -------------------------------------------------------------- clusters

    def cluster_total() -> int:
        run = library.summary()
        return 0 if run is None else run.n_clusters

    @app.get("/clusters")
    def clusters_page():
        page = _page(cluster_total(), CLUSTERS_PER_PAGE)
        shown = library.cluster_summaries(page.offset, page.size)
        strips = library.member_ids((c.cluster_id for c in shown), 0, STRIP_LENGTH)
        photos = library.photos_by_id(
            {c.exemplar_id for c in shown} | {p for ids in strips.values() for p in ids}
        )
        return render(
            "clusters",
            title="Clusters",
            clusters=shown,
            strips={cid: [photos[p] for p in ids if p in photos] for cid, ids in strips.items()},
            photos=photos,
            page=page,
            averages=bool(shown) and can_draw(shown[0].exemplar_id),
            average_url=average_url,
        )

    @app.get("/api/clusters")
    def clusters_api():
        offset = _query_count("offset", 0, 0, 10**9)
        limit = _query_count("limit", CLUSTERS_PER_PAGE, 1, API_MAX_LIMIT)
        entries = [text for text, _ in library.listings(offset, limit)]
        return _json_listing(
            {"total": cluster_total(), "offset": offset, "limit": limit}, "clusters", entries
        )

    @app.get("/clusters/<cluster_id:int>")
    def cluster_page(cluster_id):
        summary = get_summary(cluster_id)
        page = _page(summary.size, PHOTOS_PER_PAGE)
        ids = library.member_ids([summary.cluster_id], page.offset, page.offset + page.size)
        photos = library.photos_by_id([summary.exemplar_id, *ids[summary.cluster_id]])
        return render(
            "cluster",
            title=f"Cluster {summary.cluster_id}",
            cluster=summary,
            exemplar=photos[summary.exemplar_id],
            members=[photos[p] for p in ids[summary.cluster_id] if p in photos],
            page=page,
            averages=can_draw(summary.exemplar_id),
            average_url=average_url(summary),
        )

    @app.get("/api/clusters/<cluster_id:int>")
    def cluster_api(cluster_id):
        return cluster_json(get_cluster(cluster_id))

    # ------------------------------------------------------- near-duplicates

    def count_duplicates() -> int:
        """Stored groups; none when the divergence has no calibrated threshold."""
        if library.near_duplicate_threshold() is None:
            return 0
        return library.count_duplicates()

    @app.get("/duplicates")
    def duplicates_page():
        page = _page(count_duplicates(), DUPLICATE_GROUPS_PER_PAGE)
        if library.near_duplicate_threshold() is None:
            empty = (
                "The configured divergence has no calibrated near-duplicate distance: "
                "use leitmotiv duplicates --threshold D."
            )
        else:
            empty = "No near-duplicates (groups are made by leitmotiv build-index)."
        groups = library.duplicates(offset=page.offset, limit=page.size) if page.total else []
        return render("duplicates", title="Near-duplicates", groups=groups, page=page, empty=empty)

    @app.get("/api/duplicates")
    def duplicates_api():
        offset = _query_count("offset", 0, 0, 10**9)
        limit = _query_count("limit", API_DEFAULT_LIMIT, 1, API_MAX_LIMIT)
        total = count_duplicates()
        groups = library.duplicates(offset=offset, limit=limit) if total else []
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "threshold": library.near_duplicate_threshold(),
            "groups": [duplicate_group_json(g) for g in groups],
        }

    # ------------------------------------------------------------- the map

    @app.get("/map")
    def map_page():
        return render(
            "map",
            title="Map",
            n_points=library.map_size(),
            n_photos=library.count_photos(),
            script_url=static_url("map.js"),
        )

    # The map's JSON holds numbers and URLs made of ids and hashes, never a file name:
    # walking it for undecodable names took 40 % of a request at 100,000 photos.
    @app.get("/api/map", skip=[_show_undecodable_names])
    def map_api():
        box = _map_box(_query_text("bbox"))
        limit = _query_count("limit", MAP_DEFAULT_LIMIT, 1, MAP_MAX_LIMIT)
        found = library.map_points(box or (-math.inf, -math.inf, math.inf, math.inf), limit)
        if found is None:
            return {"bounds": None, "total": 0, "in_box": 0, "limit": limit, "points": []}
        head = {
            "bounds": list(found.bounds),
            "total": found.n_points,
            "in_box": found.in_box,
            "limit": limit,
        }
        # Each point formatted as json.dumps would (finite floats by repr, a URL of an
        # id and a hex hash): encoding 400 dicts was a third of the request.
        return _json_listing(head, "points", [map_point_json(p) for p in found.points])

    # ------------------------------------------------- search by an outside photo

    def form_token() -> str:
        """This browser's form token: its cookie's, or a new one set in the cookie."""
        token = request.get_cookie(FORM_COOKIE) or ""
        if not _TOKEN_RE.fullmatch(token):
            token = secrets.token_urlsafe(32)
        response.set_cookie(FORM_COOKIE, token, path="/search", httponly=True, samesite="strict")
        return token

    def search_form(**values: Any) -> str:
        values.setdefault("ranking", None)
        return render(
            "search",
            title="Search by a photo",
            token=form_token(),
            limit_mb=UPLOAD_LIMIT // (1024 * 1024),
            **values,
        )

    @app.get("/search")
    def search_page():
        return search_form()

    @app.post("/search")
    def search_upload():
        from leitmotiv.imaging import DecodeError, decode_bytes
        from leitmotiv.ingest import FIT_LONG_SIDE

        fields = read_upload()
        cookie = request.get_cookie(FORM_COOKIE) or ""
        # Compared as bytes: the field is whatever the client sent (compare_digest
        # refuses non-ASCII text), the cookie the token's own alphabet.
        token = fields.get("token", (None, b""))[1]
        if not (_TOKEN_RE.fullmatch(cookie) and hmac.compare_digest(cookie.encode(), token)):
            raise HTTPError(
                403, "The form has expired or came from another site: open Search again."
            )
        name, data = fields.get("photo", (None, b""))
        if not name and not data:
            raise HTTPError(400, "Choose a photo file to search with.")
        # An empty file is refused by the decoder, naming it.
        name = name or "the uploaded file"
        try:
            image = decode_bytes(data, name, target_long_side=FIT_LONG_SIDE)
        except DecodeError as exc:
            raise HTTPError(400, f"Cannot search with this file: {exc}") from None
        ranking = [
            (photo, distance, library.relation(distance))
            for photo, distance in library.similar_to_image(image.rgb, top=PHOTOS_PER_PAGE)
        ]
        return search_form(ranking=ranking, upload_name=name)

    def read_upload() -> dict[str, tuple[str | None, bytes]]:
        """The fields of a multipart form, read into memory only (never spooled to a
        temporary file as a framework would): ``{name: (file name or None, bytes)}``."""
        from email import policy
        from email.parser import BytesParser

        raw_length = request.environ.get("CONTENT_LENGTH") or ""
        if not raw_length.isdigit():
            raise HTTPError(411, "The upload must say its length.")
        if int(raw_length) > UPLOAD_LIMIT:
            raise HTTPError(413, f"The photo is too large: the limit is {UPLOAD_LIMIT} bytes.")
        body = request.environ["wsgi.input"].read(int(raw_length))
        content_type = request.environ.get("CONTENT_TYPE", "")
        if not content_type.startswith("multipart/form-data"):
            raise HTTPError(400, "The search form sends a multipart upload.")
        message = BytesParser(policy=policy.HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
        )
        if not message.is_multipart():
            raise HTTPError(400, "The upload is not a valid multipart form.")
        fields: dict[str, tuple[str | None, bytes]] = {}
        for part in message.iter_parts():
            field = part.get_param("name", header="content-disposition")
            if isinstance(field, str):
                fields[field] = (part.get_filename(), part.get_payload(decode=True) or b"")
        return fields

    # ---------------------------------------------------------------- motifs

    def date_bounds() -> dict[str, dt.datetime | None]:
        """``since``/``until`` of the query string (YYYY, YYYY-MM, YYYY-MM-DD); 400 if bad."""
        from leitmotiv.library import parse_date_bound

        bounds: dict[str, dt.datetime | None] = {}
        for name in ("since", "until"):
            raw = _query_text(name) or None
            try:
                bounds[name] = None if raw is None else parse_date_bound(raw, end=name == "until")
            except ValueError as exc:
                raise HTTPError(400, f"{name}: {exc}") from None
        return bounds

    @app.get("/motifs")
    def motifs_page():
        run = library.summary()
        page = _page(0 if run is None else run.n_clusters, MOTIFS_PER_PAGE)
        shown = library.cluster_summaries(page.offset, page.size, by_motif=True)
        photos = library.photos_by_id(c.exemplar_id for c in shown)
        # One axis for all motifs (not only this page's), so every row reads alike.
        timeline = None
        if run is not None and run.first_period is not None:
            end = next_period(run.last_period, run.resolution)
            timeline = timeline_between(run.first_period, end)
        return render(
            "motifs",
            title="Motifs",
            motifs=shown,
            photos=photos,
            page=page,
            timeline=timeline,
            marks={m.cluster_id: timeline.marks(m.periods, run.resolution) for m in shown}
            if timeline
            else {},
            resolution=run.resolution if run is not None else "year",
            averages=bool(shown) and can_draw(shown[0].exemplar_id),
            average_url=average_url,
        )

    @app.get("/api/motifs")
    def motifs_api():
        offset = _query_count("offset", 0, 0, 10**9)
        limit = _query_count("limit", MOTIFS_PER_PAGE, 1, API_MAX_LIMIT)
        bounds = date_bounds()
        run = library.summary()
        if run is None:
            motifs, photos, total = [], {}, 0
        elif any(bounds.values()):
            # A date range changes every score and the resolution: the whole
            # clustering is read (the one listing that grows with the library).
            motifs, photos = motifs_with_photos(library, **bounds)
            total, motifs = len(motifs), motifs[offset : offset + limit]
        else:
            # Stored ready to serve with the clustering (leitmotiv.summaries).
            entries = [text for _, text in library.listings(offset, limit, by_motif=True)]
            head = {"total": run.n_clusters, "offset": offset, "limit": limit}
            return _json_listing(head, "motifs", entries)
        return {
            "total": total,
            "offset": offset,
            "limit": limit,
            "motifs": [
                motif_json(m, photos, f"/clusters/{m.cluster_id}/average.png") for m in motifs
            ],
        }

    @app.get("/motifs/<cluster_id:int>/<label>")
    def motif_period_page(cluster_id, label):
        found = (
            library.motif(cluster_id)
            if _PERIOD_RE.fullmatch(label) and 0 <= cluster_id <= store.MAX_ID
            else None
        )
        if found is None:
            raise HTTPError(404, f"There is no motif {cluster_id}.")
        period = next((p for p in found.periods if p.label == label), None)
        if period is None:
            raise HTTPError(404, f"Motif {cluster_id} has no photos in {label}.")
        photos = library.photos_by_id(period.photo_ids)
        return render(
            "motif_period",
            title=f"Motif {cluster_id} in {label}",
            motif=found,
            period=period,
            members=[photos[pid] for pid in period.photo_ids if pid in photos],
        )

    # ---------------------------------------------------------------- images

    @app.get("/photo/<photo_id:int>/thumb.jpg")
    def thumbnail(photo_id):
        stamp = library.thumbnail_stamp(photo_id) if valid_id(photo_id) else None
        if stamp is None:
            raise HTTPError(404, f"There is no photo {photo_id}.")
        sha256, mtime = stamp
        modified = dt.datetime.fromtimestamp(mtime, dt.UTC)
        return _image_response(
            sha256[:16], "image/jpeg", lambda: library.thumbnail(photo_id), modified
        )

    @app.get("/photo/<photo_id:int>/render.png")
    def render_png(photo_id):
        photo = get_photo(photo_id)
        version = content_key(featurizer_key, photo.sha256)
        return _image_response(version, "image/png", lambda: library.render(photo.id))

    @app.get("/clusters/<cluster_id:int>/average.png")
    def average_png(cluster_id):
        summary = get_summary(cluster_id)
        return _image_response(
            summary.average_key, "image/png", lambda: library.average(summary.cluster_id)
        )

    @app.get("/photo/<photo_id:int>/file")
    def original(photo_id):
        # The path comes from the store, looked up by id; static_file adds
        # Last-Modified/ETag, answers conditional and range requests, and 404s when the
        # file has gone from disk since it was added.
        path = Path(get_photo(photo_id).path)
        result = bottle.static_file(path.name, root=str(path.parent), etag=_file_etag(path))
        result.set_header("Cache-Control", _CACHE_STABLE)
        for name, value in _SECURITY_HEADERS.items():
            result.set_header(name, value)
        return result

    # ---------------------------------------------------------------- static

    @app.get("/static/<name>")
    def static_file(name):
        if name not in STATIC_FILES:
            raise HTTPError(404, "No such file.")
        return _image_response(static_versions[name], STATIC_FILES[name], lambda: static[name])

    # -------------------------------------------------- headers and errors

    @app.hook("after_request")
    def security_headers():
        for name, value in _SECURITY_HEADERS.items():
            response.set_header(name, value)

    def error_page(error: HTTPError):
        # after_request headers are replaced by the error's own, so set them again.
        for name, value in _SECURITY_HEADERS.items():
            response.set_header(name, value)
        status = error.status_code
        # A 500's body is the exception text: never shown, it may contain paths.
        message = error.body if status < 500 and isinstance(error.body, str) else ""
        message = message or {404: "Not found.", 500: "Something went wrong."}.get(
            status, error.status_line
        )
        if request.path.startswith("/api/"):
            response.content_type = "application/json"
            return bottle.json_dumps({"error": {"status": status, "message": message}})
        response.content_type = "text/html; charset=utf-8"
        return render("error", title=error.status_line, status=status, message=message)

    for status in (400, 403, 404, 405, 411, 413, 500):
        app.error(status)(error_page)

    # ----------------------------------------------------------------- plugins

    from leitmotiv.plugins import get_plugin_manager

    get_plugin_manager().hook.leitmotiv_web_routes(app=app, library=library)
    return app


def make_wsgi(library):
    """The web view as ``leitmotiv serve`` serves it: :func:`make_app` behind gzip.

    Compression is Paste's ``gzipper`` middleware: it compresses ``text/*`` and
    ``application/*`` responses (HTML, JSON, CSS) for clients that send
    ``Accept-Encoding: gzip``, and passes the rest through.  It holds a response in
    memory to compress it, so original photo files (``/photo/<id>/file``, large and
    already compressed) go around it.
    """
    from paste.gzipper import middleware

    app = make_app(library)
    # Level 1: a large listing compresses in a fraction of level 6's time, for a
    # somewhat larger body; the server's CPU is what a busy view lacks.
    compressed = middleware(app, compress_level=1)

    def wsgi(environ, start_response):
        if _ORIGINAL_RE.fullmatch(environ.get("PATH_INFO", "")):
            return app(environ, start_response)
        return compressed(environ, start_response)

    return wsgi
