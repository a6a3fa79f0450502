"""End-to-end tests of the library commands of the ``leitmotiv`` command line.

The quality test builds the library of the 64 test photos once per session, through the CLI, with
the default featurizer parameters (it is about quality); the other tests use fewer
samples to stay fast.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from leitmotiv.cli import cli

FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 2000\n"


class Leitmotiv:
    """Runs ``leitmotiv`` in-process on one library with one config file."""

    def __init__(self, library: Path, config: Path) -> None:
        self.base = ["-c", str(config), "--library", str(library)]
        self.runner = CliRunner()

    def __call__(self, *args: str, status: int = 0):
        result = self.runner.invoke(cli, [*self.base, *map(str, args)])
        assert result.exit_code == status, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


def _leitmotiv(folder: Path, config_text: str) -> Leitmotiv:
    folder.mkdir(parents=True, exist_ok=True)
    config = folder / "config.toml"
    config.write_text(config_text)
    return Leitmotiv(folder / "library", config)


@pytest.fixture(scope="session")
def photos_library(tmp_path_factory, photos_dir) -> Leitmotiv:
    """The 64 test photos, added and indexed through the CLI (default parameters)."""
    run = _leitmotiv(tmp_path_factory.mktemp("photos-library"), "")
    out = run("add-directory", photos_dir).stdout
    assert "added 64," in out and "failed 0" in out
    run("build-index")
    return run


@pytest.fixture
def fast(tmp_path) -> Leitmotiv:
    return _leitmotiv(tmp_path, FAST_CONFIG)


def test_similarity_and_clusters_match_the_scenes(photos_library, photos_dir, groups):
    from sklearn.metrics import adjusted_rand_score

    photos = photos_library.json("photos")
    assert len(photos) == 64
    group_of = {p["id"]: groups[Path(p["path"]).name] for p in photos}
    scores = []
    for p in photos:
        ranked = photos_library.json("similar", p["id"], "--top", "3")
        assert len(ranked) == 3 and p["id"] not in {r["id"] for r in ranked}
        assert [r["distance"] for r in ranked] == sorted(r["distance"] for r in ranked)
        scores.append(1 + sum(group_of[r["id"]] == group_of[p["id"]] for r in ranked))
    ns_score = sum(scores) / len(scores)

    clusters = photos_library.json("clusters")
    label = {m["id"]: c["id"] for c in clusters for m in c["members"]}
    assert sorted(label) == sorted(group_of)
    ids = sorted(group_of)
    ari = adjusted_rand_score([group_of[i] for i in ids], [label[i] for i in ids])
    print(f"photos: N-S score {ns_score:.3f}, ARI {ari:.3f}, {len(clusters)} clusters")
    assert ns_score >= 3.85
    assert ari >= 0.9


def test_photos_json_fields_and_exif_dates(photos_library, groups_rows):
    photos = photos_library.json("photos")
    assert set(photos[0]) == {
        "id",
        "path",
        "taken",
        "taken_source",
        "width",
        "height",
        "components",
    }
    by_name = {Path(p["path"]).name: p for p in photos}
    for row in groups_rows:
        p = by_name[row["file"]]
        assert Path(p["path"]).is_absolute()
        assert p["components"] >= 1
        if row["taken"]:
            expected = dt.datetime.strptime(row["taken"], "%Y:%m:%d %H:%M:%S")
            assert p["taken_source"] == "exif", row["file"]
            assert dt.datetime.fromisoformat(p["taken"]).replace(tzinfo=None) == expected
        else:
            assert p["taken_source"] == "mtime", row["file"]
    # Ordered by date captured; EXIF dates and file times are both dates.
    taken = [dt.datetime.fromisoformat(p["taken"]).replace(tzinfo=None) for p in photos]
    assert taken == sorted(taken)


def test_similar_by_path_and_unknown_photo(photos_library, photos_dir):
    by_path = photos_library.json("similar", photos_dir / "coffee_0.jpg", "--top", "3")
    assert len(by_path) == 3
    assert all(Path(r["path"]).is_absolute() for r in by_path)
    result = photos_library("similar", "no-such-photo.jpg", status=2)
    assert "no-such-photo.jpg" in result.stderr
    assert "Traceback" not in result.stderr
    photos_library("similar", "999999", status=2)


def test_clusters_json_shape(photos_library):
    clusters = photos_library.json("clusters")
    assert clusters
    for c in clusters:
        assert set(c) == {"id", "exemplar", "members"}
        assert c["members"][0] == c["exemplar"]
    counts = Counter(m["id"] for c in clusters for m in c["members"])
    assert set(counts.values()) == {1}


def test_render_and_average(photos_library, tmp_path):
    photo = photos_library.json("photos")[0]
    out = tmp_path / "render.png"
    photos_library("render", photo["id"], "-o", out, "--size", "64")
    assert out.read_bytes()[:4] == b"\x89PNG"
    cluster = photos_library.json("clusters")[0]
    out = tmp_path / "average.png"
    photos_library("average", cluster["id"], "-o", out, "--size", "64")
    assert out.read_bytes()[:4] == b"\x89PNG"
    photos_library("average", "999999", "-o", out, status=2)
    photos_library("render", "nope", "-o", out, status=2)


def test_bad_corpus_exits_1_and_lists_failures(fast, tmp_path, bad_dir):
    bad = tmp_path / "bad"
    shutil.copytree(bad_dir, bad, symlinks=True)
    result = fast("add-directory", bad, "-j", "2", status=1)
    summary = result.stdout.strip().splitlines()[-1]
    failures = fast.json("failures")
    assert summary.startswith("added ")
    assert f"failed {len(failures)} in " in summary
    for f in failures:
        assert f"{f['path']}: {f['reason']}" in result.stderr
        assert Path(f["path"]).is_absolute()
        dt.datetime.fromisoformat(f["time"])
    assert "Traceback" not in result.stderr
    # A second run has the same failures and nothing new to add.
    again = fast("add-directory", bad, status=1)
    assert again.stdout.startswith("added 0, updated 0, moved 0, unchanged ")


def test_add_image_and_usage_errors(fast, photos_dir, tmp_path):
    out = fast("add-image", photos_dir / "coffee_0.jpg", photos_dir / "coffee_1.jpg").stdout
    assert out.startswith("added 2, updated 0, moved 0, unchanged 0, ignored 0, failed 0 in ")
    report = fast.json("add-image", photos_dir / "coffee_0.jpg")
    assert report["unchanged"] == 1
    fast("add-image", photos_dir, status=2)  # a folder: use add-directory
    fast("add-directory", tmp_path / "missing", status=2)
    index = fast.json("build-index")
    assert (index["n_photos"], index["pairs_computed"]) == (2, 1)
    ranked = fast.json("similar", photos_dir / "coffee_1.jpg")
    assert [Path(r["path"]).name for r in ranked] == ["coffee_0.jpg"]


def test_read_commands_on_a_missing_library_say_what_to_run(fast, tmp_path):
    folder = tmp_path / "nowhere"
    run = Leitmotiv(folder, fast.base[1])
    for command in ("photos", "clusters", "motifs"):
        result = run(command)
        assert result.stdout == ""
        assert f"no photos in the library {folder} yet" in result.stderr
        assert f"leitmotiv --library {folder} add-directory FOLDER" in result.stderr
        assert run(command, "--json").stdout.strip() == "[]"
    result = run("similar", "1", status=2)
    assert "add-directory" in result.stderr
    assert run("failures", "--json").stdout.strip() == "[]"
    assert not folder.exists()  # reading created neither the folder nor a database


def test_an_unindexed_library_asks_for_build_index(fast, photos_dir):
    fast("add-image", photos_dir / "coffee_0.jpg", photos_dir / "coffee_1.jpg")
    for command in (["clusters"], ["motifs"], ["similar", photos_dir / "coffee_0.jpg"]):
        result = fast(*command)
        assert result.stdout == ""
        assert "is not indexed yet: run `leitmotiv --library" in result.stderr
        assert "build-index`" in result.stderr
    assert "indexed 2 photos (dense): 1 new pair, 1 cluster in " in fast("build-index").stdout
    assert "(2 photos)" in fast("clusters").stdout
    assert fast("clusters").stderr == ""


def test_one_photo_is_singular(fast, photos_dir):
    fast("add-image", photos_dir / "coffee_0.jpg")
    assert "indexed 1 photo (dense): 0 new pairs, 1 cluster in " in fast("build-index").stdout
    assert "(1 photo)" in fast("clusters").stdout


def test_ignored_files_are_listed_with_their_reasons(fast, tmp_path, photos_dir):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(photos_dir / "coffee_0.jpg", folder / "coffee.jpg")
    shutil.copy(photos_dir / "coffee_1.jpg", folder / "IMG_0002")  # a JPEG by content
    (folder / "notes.txt").write_text("shopping list\n")
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    report = fast.json("add-directory", folder)
    assert (report["added"], report["ignored"], report["failed"]) == (2, 2, 0)
    assert sorted((Path(f["path"]).name, f["reason"]) for f in report["ignored_files"]) == [
        (".DS_Store", "hidden (the name starts with a dot)"),
        ("notes.txt", "not a photo (neither its name nor its first bytes are an image format)"),
    ]
    quiet = fast("add-directory", folder).stdout
    assert "notes.txt" not in quiet
    verbose = fast("add-directory", folder, "-v").stdout.splitlines()
    assert f"ignored {folder / 'notes.txt'}: not a photo" in verbose[1]
    assert verbose[-1].startswith("added 0, updated 0, moved 0, unchanged 2, ignored 2,")
    named = fast.json("add-image", folder / "notes.txt")
    assert [f["reason"] for f in named["ignored_files"]] == [report["ignored_files"][1]["reason"]]


def test_output_into_a_closed_pipe_stops_quietly(photos_library):
    """``leitmotiv photos | head -1``: the reader goes away, the command stops with
    SIGPIPE's status and no error message or traceback."""
    import os
    import signal
    import subprocess
    import sys

    read_end, write_end = os.pipe()
    os.close(read_end)  # nobody will read: the first write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "leitmotiv", *photos_library.base, "photos"],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=300,
        )
    finally:
        os.close(write_end)
    assert done.returncode == 128 + signal.SIGPIPE, done.stderr
    assert done.stderr == ""
