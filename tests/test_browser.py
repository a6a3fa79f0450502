"""End to end in headless Chromium: the CLI builds a library, ``leitmotiv serve`` runs
as a subprocess, and a browser clicks through the photos and the clusters.

Screenshots of each page go to ``tests/artifacts/`` (git-ignored) for a human to look at.
Skipped, with the reason, when Chromium or its driver is not installed.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

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


@pytest.fixture(scope="module")
def server(tmp_path_factory, photos_dir):
    """URL of ``leitmotiv serve`` on a free port, over a library built by the CLI."""
    if not CHROMIUM.exists() or not CHROMEDRIVER.exists():
        pytest.skip(f"headless browser tests need {CHROMIUM} and {CHROMEDRIVER}")
    root = tmp_path_factory.mktemp("browser")
    config = root / "config.toml"
    config.write_text("[params.featurizer.gmm]\nn_samples = 2000\n", encoding="utf-8")
    base = ["-c", str(config), "--library", str(root / "library")]
    subprocess.run(_leitmotiv(*base, "add-directory", str(photos_dir)), check=True)
    subprocess.run(_leitmotiv(*base, "build-index"), check=True)
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


def test_keyboard_reaches_the_nav_and_the_photos(server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.keys import Keys

    url, *_ = server
    browser.get(url)
    focused = []
    for _ in range(5):
        ActionChains(browser).send_keys(Keys.TAB).perform()
        active = browser.switch_to.active_element
        focused.append(active.get_attribute("href") or active.text)
    # skip link, brand, Photos, Clusters, then the first photo
    assert focused[2] == url and focused[3] == url + "clusters"
    assert "/photo/" in focused[4]
    outline = browser.switch_to.active_element.value_of_css_property("outline-style")
    assert outline != "none"  # the focus is visible
    browser.switch_to.active_element.send_keys(Keys.ENTER)
    assert "/photo/" in browser.current_url


def test_unknown_photo_is_a_404_page(server, browser):
    url, *_ = server
    browser.get(url + "photo/999999")
    assert browser.title.startswith("404")
    assert "There is no photo 999999." in browser.page_source
