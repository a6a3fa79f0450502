"""End to end in headless Chromium: the CLI builds a library, ``leitmotiv serve`` runs
as a subprocess, and a browser clicks through the photos, the clusters and the motifs.

Screenshots of each page go to ``tests/artifacts/`` (git-ignored) for a human to look at.
Skipped, with the reason, when Chromium or its driver is not installed.
"""

from __future__ import annotations

import contextlib
import gzip
import itertools
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from test_motifs_library import build_dated_library

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
START_TIMEOUT = 60  # seconds for `leitmotiv serve` to answer


def _leitmotiv(*args: str) -> list[str]:
    return [sys.executable, "-m", "leitmotiv", *args]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"leitmotiv serve exited with status {process.returncode}")
        try:
            with urllib.request.urlopen(url + "api/photos?limit=1", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"leitmotiv serve did not answer on {url} in {START_TIMEOUT} s")


def _require_browser() -> None:
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"headless browser tests need {CHROMIUM} and {CHROMEDRIVER}")


@pytest.fixture(scope="module")
def server(tmp_path_factory, photos_dir):
    """URL of ``leitmotiv serve`` on a free port, over a library built by the CLI."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser")
    config = root / "config.toml"
    config.write_text("[params.featurizer.gmm]\nn_samples = 2000\n", encoding="utf-8")
    base = ["-c", str(config), "--library", str(root / "library")]
    subprocess.run(_leitmotiv(*base, "add-directory", str(photos_dir)), check=True)
    subprocess.run(_leitmotiv(*base, "build-index"), check=True)
    with _serving(root, base) as served:
        yield served


@pytest.fixture(scope="module")
def dated_server(tmp_path_factory, photos_dir):
    """Like ``server``, over the library whose capture dates the tests wrote (2015-2025):
    a lake in four separate years, a burst of flowers, an undated scene and two more."""
    _require_browser()
    root = tmp_path_factory.mktemp("browser-dated")
    base, scenes, library = build_dated_library(root, photos_dir)
    library.close()
    with _serving(root, base) as (url, *_):
        yield url, scenes


@contextlib.contextmanager
def _serving(root: Path, base: list[str]):
    """Run ``leitmotiv serve`` for the library of ``base``; yield (url, process, log)."""
    port = _free_port()
    # Output goes to a file, not a pipe nobody drains, which could fill and stall it.
    log = root / "serve.log"
    with open(log, "w", encoding="utf-8") as out:
        process = subprocess.Popen(
            _leitmotiv(*base, "serve", "--port", str(port)), stdout=out, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_up(url, process)
        yield url, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage"):
        options.add_argument(arg)
    options.add_argument("--window-size=1280,1000")
    options.binary_location = str(CHROMIUM)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.implicitly_wait(5)
    yield driver
    driver.quit()


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    # Let lazily loaded thumbnails arrive so the picture shows the page as a user sees it.
    driver.execute_script("window.scrollTo(0, 0)")
    # Averages are rendered on first request (a second or so each), hence the patience.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not driver.execute_script(
        "return [...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".every(i => i.complete)"
    ):
        time.sleep(0.1)
    driver.save_screenshot(str(path))
    return path


def _names(elements) -> list[str]:
    return [e.text.strip() for e in elements]


def test_serve_prints_its_url(server):
    url, process, log = server
    assert process.poll() is None
    first_line = log.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith("Serving ") and first_line.endswith(f" on {url}")


def test_serve_compresses_html_and_json(server):
    url, *_ = server
    for page in ("", "api/photos?limit=5"):
        request = urllib.request.Request(url + page, headers={"Accept-Encoding": "gzip"})
        with urllib.request.urlopen(request, timeout=30) as reply:
            assert reply.headers["Content-Encoding"] == "gzip"
            body = gzip.decompress(reply.read())
        assert body.startswith(b"<!DOCTYPE html>") or len(json.loads(body)["photos"]) == 5


def test_click_a_photo_then_browse_clusters(server, browser, groups):
    from selenium.webdriver.common.by import By

    url, *_ = server
    browser.get(url)
    assert browser.title.startswith("Photos")
    tiles = browser.find_elements(By.CSS_SELECTOR, ".grid .tile-link")
    assert len(tiles) == 60
    _screenshot(browser, "photos")

    # Click a photo that has an EXIF date (it sorts first) and read its ranking.
    first = tiles[0]
    name = first.find_element(By.CSS_SELECTOR, ".name").text.strip()
    assert name in groups
    first.click()
    assert browser.find_element(By.CSS_SELECTOR, ".selected h1").text == name
    ranked = _names(browser.find_elements(By.CSS_SELECTOR, ".ranking .tile-link .name"))
    mates = {n for n, g in groups.items() if g == groups[name] and n != name}
    assert set(ranked[:3]) == mates, ranked[:6]
    assert name not in ranked
    distances = browser.find_elements(By.CSS_SELECTOR, ".ranking .distance")
    assert distances[0].text.startswith("d = 0.")
    _screenshot(browser, "photo")

    browser.find_element(By.LINK_TEXT, "See its model").click()
    ellipses = browser.find_elements(By.CSS_SELECTOR, "svg.ellipses ellipse")
    assert len(ellipses) >= 1
    assert "Gaussian components" in browser.find_element(By.CSS_SELECTOR, ".lead").text
    _screenshot(browser, "model")

    browser.find_element(By.CSS_SELECTOR, "header nav").find_element(
        By.LINK_TEXT, "Clusters"
    ).click()
    assert browser.current_url == url + "clusters"
    assert browser.title.startswith("Clusters")
    _screenshot(browser, "clusters")

    link = browser.find_element(By.CSS_SELECTOR, ".cluster h2 a")
    cluster_title = link.text
    link.click()
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith(cluster_title)
    members = browser.find_elements(By.CSS_SELECTOR, ".grid .tile-link")
    assert members
    _screenshot(browser, "cluster")
    average = browser.find_element(By.CSS_SELECTOR, ".average img")
    assert browser.execute_script("return arguments[0].naturalWidth", average) > 0


_IMAGE_TRANSFERS = """
return performance.getEntriesByType('resource')
    .filter(e => e.initiatorType === 'img' || e.name.includes('/static/'))
    .map(e => [e.name, e.transferSize]);
"""


def _loaded(driver) -> None:
    """Wait until every image of the page has arrived (scrolling to the end first, so
    lazily loaded ones are requested too)."""
    driver.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not driver.execute_script(
        "return [...document.images].every(i => i.complete)"
    ):
        time.sleep(0.1)


def test_a_second_visit_loads_no_image_again(server, browser):
    """Images and styles are named by their content, so the browser keeps them: on a
    second visit nothing is transferred again, not even a revalidation (a 304 still
    transfers its headers)."""
    url, *_ = server
    pages = [url, url + "clusters"]
    browser.execute_cdp_cmd("Network.clearBrowserCache", {})  # earlier tests' visits
    first = {}
    for page in pages:
        browser.get(page)
        _loaded(browser)
        first[page] = browser.execute_script(_IMAGE_TRANSFERS)
    browser.get(url + "motifs")  # elsewhere, then back
    for page in pages:
        browser.get(page)
        _loaded(browser)
        assert browser.execute_script("return document.images.length") > 10
        again = browser.execute_script(_IMAGE_TRANSFERS)
        fetched = [(name, size) for name, size in again if size > 0]
        assert fetched == [], fetched[:5]
    # The measure itself works: the first visit to the photos did transfer images.
    assert sum(size > 0 for _, size in first[url]) > 10


def test_keyboard_reaches_the_nav_and_the_photos(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    url, *_ = server
    browser.get(url)
    focused = []
    for _ in range(9):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        active = browser.switch_to.active_element
        focused.append(active.get_attribute("href") or active.text)
    # skip link, brand, Photos, Clusters, Motifs, Duplicates, Search, Map, then the
    # first photo
    assert focused[2] == url and focused[3] == url + "clusters"
    assert focused[4] == url + "motifs"
    assert focused[5:8] == [url + "duplicates", url + "search", url + "map"]
    assert "/photo/" in focused[8]
    outline = browser.switch_to.active_element.value_of_css_property("outline-style")
    assert outline != "none"  # the focus is visible
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert "/photo/" in browser.current_url


def _wait_for(browser, script: str, seconds: float = 10.0):
    """The value of ``script`` once it is truthy (None if it never is in ``seconds``)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = browser.execute_script(script)
        if value:
            return value
        time.sleep(0.1)
    return None


def test_map_draws_points_then_thumbnails_and_opens_a_photo(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.actions.wheel_input import ScrollOrigin
    from selenium.webdriver.common.by import By

    url, *_ = server
    browser.get(url + "map")
    canvas = browser.find_element(By.ID, "map-canvas")
    data = "return document.getElementById('map-canvas').dataset"

    def settled() -> dict:
        # The view once its own answer is drawn: while a viewport loads, the canvas
        # still shows the previous one's photos (zoomed), which a test must not read.
        assert _wait_for(browser, data + ".settled === 'true'", 20.0)
        return browser.execute_script(
            "const d = document.getElementById('map-canvas').dataset;"
            " return {points: d.points, thumbs: d.thumbs, mode: d.mode, sample: d.sample};"
        )

    assert settled()["points"] == "64"
    # Zoomed out, the whole library is a small cloud: its photos are points.
    for _ in range(4):
        browser.find_element(By.ID, "map-zoom-out").click()
    view = settled()
    assert view["thumbs"] == "0" and view["mode"] == "points"
    assert "64 photos here" in browser.find_element(By.ID, "map-status").text
    _screenshot(browser, "map")
    # Keys on the focused map zoom too ("+" in, "-" out, by the buttons' step).
    scale = float(browser.execute_script(data + ".scale"))
    canvas.send_keys("+")
    assert float(browser.execute_script(data + ".scale")) == pytest.approx(1.6 * scale)
    canvas.send_keys("-")
    assert float(browser.execute_script(data + ".scale")) == pytest.approx(scale)
    # Zooming in with the wheel over a photo on the map (the point under the pointer
    # stays put, so the photo stays in view; the buttons zoom about the centre, which
    # may lie between photos) loads the viewport until it asks for thumbnails, which
    # are drawn as their images arrive.
    size = canvas.size
    for _ in range(16):
        view = settled()
        if view["mode"] == "thumbs" and view["points"] != "0":
            break
        _, x, y = view["sample"].split()
        over = ScrollOrigin.from_element(
            canvas, int(float(x) - size["width"] / 2), int(float(y) - size["height"] / 2)
        )
        ActionChains(browser).scroll_from_origin(over, 0, -300).perform()
    assert view["mode"] == "thumbs" and view["points"] != "0", view
    assert _wait_for(browser, data + ".thumbs > 0", 20.0)
    _screenshot(browser, "map-zoomed")
    shown = int(browser.execute_script(data + ".points"))
    assert 0 < shown <= 64
    photo, x, y = browser.execute_script(data + ".sample").split()
    ActionChains(browser).move_to_element_with_offset(
        canvas, int(float(x) - size["width"] / 2), int(float(y) - size["height"] / 2)
    ).click().perform()
    _wait_for(browser, "return location.pathname.startsWith('/photo/')")
    assert browser.current_url == f"{url}photo/{photo}"


def test_unknown_photo_is_a_404_page(server, browser):
    url, *_ = server
    browser.get(url + "photo/999999")
    assert browser.title.startswith("404")
    assert "There is no photo 999999." in browser.page_source


def test_motifs_timeline_then_a_period(dated_server, browser):
    """The motifs page over a ten-year library, then a click on one period's mark."""
    from selenium.webdriver.common.by import By

    url, scenes = dated_server
    browser.get(url)
    browser.find_element(By.CSS_SELECTOR, "header nav").find_element(By.LINK_TEXT, "Motifs").click()
    assert browser.current_url == url + "motifs"
    assert browser.title.startswith("Motifs")
    rows = browser.find_elements(By.CSS_SELECTOR, ".motifs .motif")
    assert len(rows) == 5
    # The lake seen in four separate years comes first, the afternoon's burst after
    # the scenes seen in several years, the undated scene last and without marks.
    exemplars = [
        scenes[r.find_element(By.CSS_SELECTOR, ".exemplar img").get_attribute("alt").split(": ")[1]]
        for r in rows
    ]
    assert exemplars == ["dusk_lake", "forest_path", "green_hills", "red_marigold", "coffee"]
    assert len(rows[0].find_elements(By.CSS_SELECTOR, "a.mark")) == 4
    assert len(rows[3].find_elements(By.CSS_SELECTOR, "a.mark")) == 1
    assert rows[4].find_elements(By.CSS_SELECTOR, "a.mark") == []
    assert "4 undated" in rows[4].text
    ticks = _names(browser.find_elements(By.CSS_SELECTOR, "svg.timeline .tick-label"))
    assert [str(y) for y in range(2015, 2026)] == ticks[: len(range(2015, 2026))]
    # The marks are laid out left to right in date order, at even steps for 2016-2022.
    lefts = [m.rect["x"] for m in rows[0].find_elements(By.CSS_SELECTOR, "a.mark circle")]
    assert lefts == sorted(lefts)
    steps = [b - a for a, b in itertools.pairwise(lefts)]
    assert max(steps) - min(steps) < 3  # pixels
    _screenshot(browser, "motifs")
    average = rows[0].find_element(By.CSS_SELECTOR, ".average img")
    assert browser.execute_script("return arguments[0].naturalWidth", average) > 0

    mark = rows[0].find_elements(By.CSS_SELECTOR, "a.mark")[1]
    assert mark.get_attribute("aria-label") == "2018: 1 photo"
    mark.click()
    assert browser.current_url.endswith("/2018")
    assert browser.find_element(By.TAG_NAME, "h1").text.startswith("Motif ")
    names = _names(browser.find_elements(By.CSS_SELECTOR, ".grid .tile-link .name"))
    assert names == ["dusk_lake_1.jpg"]
    assert {scenes[n] for n in names} == {"dusk_lake"}
    _screenshot(browser, "motif_period")

    # The burst's single mark lists its four photos.
    browser.back()
    rows = browser.find_elements(By.CSS_SELECTOR, ".motifs .motif")
    rows[3].find_element(By.CSS_SELECTOR, "a.mark").click()
    names = _names(browser.find_elements(By.CSS_SELECTOR, ".grid .tile-link .name"))
    assert sorted(names) == [f"red_marigold_{k}.jpg" for k in range(4)]
