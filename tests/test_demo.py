"""`leitmotiv demo` on the bundled sample photos, and the near-duplicate label."""

import datetime as dt
import json
import re
import subprocess
import sys

import pytest
from PIL import Image

from leitmotiv.samples import sample_photos

_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "leitmotiv", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=600,
    )


def scene(name: str) -> str:
    """``coffee`` of ``coffee_20170312-081500.jpg`` (a sample is named scene_date)."""
    return name.rsplit("/", 1)[-1].rsplit("_", 1)[0]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo") / "library"
    result = run("--library", folder, "demo", "--no-serve")
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


def test_samples_are_shipped_dated_with_credits():
    photos = sample_photos()
    assert len(photos) == 25
    assert max(max(Image.open(p).size) for p in photos) <= 640
    credits = (photos[0].parent / "CREDITS.md").read_text()
    assert "invented" in credits  # the capture dates are ours, and it says so
    for photo in photos:
        assert scene(photo.name) in credits
        with Image.open(photo) as im:
            taken = im.getexif().get_ifd(_EXIF_IFD).get(_DATETIME_ORIGINAL)
        # The name carries the EXIF date: coffee_20170312-081500 is 2017:03:12 08:15:00.
        stamp = photo.stem.rsplit("_", 1)[1]
        assert dt.datetime.strptime(taken, "%Y:%m:%d %H:%M:%S") == dt.datetime.strptime(
            stamp, "%Y%m%d-%H%M%S"
        )


def test_demo_builds_in_the_library_folder_and_clusters_each_scene(demo):
    folder, out = demo
    assert (folder / "leitmotiv.db").is_file()
    assert f"Building the demo library in {folder} ..." in out
    assert "25 photos (25 new)" in out
    clusters = re.findall(r"cluster \d+: (.*)", out)
    assert len(clusters) == 6
    for line in clusters:
        assert len({scene(name) for name in line.split(", ")}) == 1, line
    # It says how to query the library it built.
    assert f"leitmotiv --library {folder} photos" in out
    photos = json.loads(run("--library", folder, "photos", "--json").stdout)
    assert len(photos) == 25 and {p["taken_source"] for p in photos} == {"exif"}


def test_demo_motifs_recur_over_years(demo):
    folder, _ = demo
    result = run("--library", folder, "motifs", "--json")
    assert result.returncode == 0, result.stderr
    motifs = {scene(m["exemplar"]["path"]): m for m in json.loads(result.stdout)}
    assert set(motifs) == {
        "coffee", "chelsea_cat", "dandelion_field", "rocket", "hubble_deep_field", "astronaut"
    }  # fmt: skip
    coffee, cat, rocket = motifs["coffee"], motifs["chelsea_cat"], motifs["rocket"]
    assert coffee["recurring"] and coffee["resolution"] == "year"
    assert [p["label"] for p in coffee["periods"]] == [
        "2017", "2018", "2019", "2020", "2021", "2022", "2024"
    ]  # fmt: skip
    # The cat's three photos of one afternoon are one burst: one occurrence.
    assert cat["recurring"] and [p["occurrences"] for p in cat["periods"]] == [1, 1, 1, 1]
    assert [len(p["photos"]) for p in cat["periods"]] == [1, 1, 3, 1]
    assert motifs["dandelion_field"]["recurring"]
    # The launch is four frames within minutes: photographed once.
    assert not rocket["recurring"] and rocket["occurrences"] == 1
    assert len(rocket["periods"][0]["photos"]) == 4
    ranked = [scene(m["exemplar"]["path"]) for m in json.loads(result.stdout)]
    assert ranked[0] == "coffee" and set(ranked[3:]) == {"rocket", "hubble_deep_field", "astronaut"}


def test_demo_rerun_reuses_the_library(demo):
    folder, _ = demo
    again = run("demo", "--folder", folder, "--no-serve")
    assert again.returncode == 0 and "25 photos (0 new), 0 new distances" in again.stdout


def test_similar_labels_near_duplicates(demo):
    folder, _ = demo
    query = next(p for p in sample_photos() if scene(p.name) == "coffee")
    result = run("--library", folder, "similar", query, "--top", "8", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    # The six other coffee photos first, the nearest a near-duplicate; then other scenes,
    # which are never near-duplicates (similar or unrelated, by the distance).
    assert {scene(r["path"]) for r in rows[:6]} == {scene(query.name)}
    assert rows[0]["relation"] == "near-duplicate"
    assert "coffee" not in {scene(r["path"]) for r in rows[6:]}
    assert {r["relation"] for r in rows[6:]} <= {"similar", "unrelated"}
