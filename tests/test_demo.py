"""`leitmotiv demo` on the bundled sample photos, and the near-duplicate label."""

import json
import re
import subprocess
import sys

import pytest

from leitmotiv.samples import sample_photos


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "leitmotiv", *args], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo")
    result = run("demo", "--folder", str(folder), "--no-serve")
    assert result.returncode == 0, result.stderr
    return folder, result.stdout


def test_samples_are_shipped_with_credits():
    photos = sample_photos()
    assert len(photos) == 21
    credits = (photos[0].parent / "CREDITS.md").read_text()
    for scene in {p.stem.rsplit("_", 1)[0] for p in photos}:
        assert scene in credits


def test_demo_clusters_each_scene_together(demo):
    _, out = demo
    assert "21 photos (21 new)" in out
    clusters = re.findall(r"cluster \d+: (.*)", out)
    assert len(clusters) == 7
    for line in clusters:
        scenes = {name.rsplit("_", 1)[0] for name in line.split(", ")}
        assert len(scenes) == 1, line


def test_demo_rerun_reuses_the_library(demo):
    folder, _ = demo
    again = run("demo", "--folder", str(folder), "--no-serve")
    assert again.returncode == 0 and "21 photos (0 new), 0 new distances" in again.stdout


def test_similar_labels_near_duplicates(demo):
    folder, _ = demo
    query = next(p for p in sample_photos() if p.name == "coffee_0.jpg")
    result = run("--library", str(folder), "similar", str(query), "--top", "5", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [r["relation"] for r in rows[:2]] == ["near-duplicate", "near-duplicate"]
    assert all(r["path"].split("/")[-1].startswith("coffee_") for r in rows[:2])
    # Other scenes: never near-duplicates, and the farthest of the five is unrelated.
    assert {r["relation"] for r in rows[2:]} <= {"similar", "unrelated"}
    assert rows[-1]["relation"] == "unrelated"
