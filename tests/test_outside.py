"""Search by an outside photo: fitted in memory, ranked like a library photo, on a
dense index (every photo) and a sparse one (candidates), storing nothing."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from leitmotiv import store
from leitmotiv.cli import cli
from leitmotiv.config import Settings
from leitmotiv.library import Library

FAST_PARAMS = {"featurizer": {"gmm": {"n_samples": 2000}}}
SCENES = ("astronaut", "coffee", "rocket", "dahlia")


@pytest.fixture
def library_photos(tmp_path, photos_dir) -> Path:
    """Versions 0, 2 and 3 of four scenes; version 1 stays outside the library."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(photos_dir)):
        if name.split("_")[0] in SCENES and not name.endswith("_1.jpg"):
            shutil.copy2(photos_dir / name, folder / name)
    return folder


def _counts(library: Library) -> tuple[int, ...]:
    with store.bound(library.db):
        return tuple(m.select().count() for m in (store.Photo, store.Model, store.Distance))


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_an_outside_photo_finds_its_scene_and_stores_nothing(
    tmp_path, library_photos, photos_dir, method
):
    settings = Settings(
        library=tmp_path / "library", params=FAST_PARAMS, index=method, neighbours=4
    )
    with Library.open(settings) as library:
        library.add([library_photos], jobs=1)
        assert library.build_index(jobs=1).method == method
        before = _counts(library)
        for scene in SCENES:
            ranking = library.similar_to_file(photos_dir / f"{scene}_1.jpg", top=3)
            assert len(ranking) == 3
            assert Path(ranking[0][0].path).name.startswith(scene)
            assert [d for _, d in ranking] == sorted(d for _, d in ranking)
        # A copy of a library photo ranks that photo first, about as near as itself.
        copy = tmp_path / "copy.jpg"
        shutil.copy2(library_photos / "coffee_0.jpg", copy)
        (first, distance), *_ = library.similar_to_file(copy, top=3)
        assert Path(first.path).name == "coffee_0.jpg"
        assert distance < library.similar(first.id, top=1)[0][1]
        assert _counts(library) == before  # nothing stored


def test_cli_similar_outside_file(tmp_path, library_photos, photos_dir):
    config = tmp_path / "config.toml"
    config.write_text("[params.featurizer.gmm]\nn_samples = 2000\n")
    runner = CliRunner()
    base = ["-c", str(config), "--library", str(tmp_path / "library")]

    def run(*args, status=0):
        result = runner.invoke(cli, [*base, *map(str, args)])
        assert result.exit_code == status, (result.stdout, result.stderr)
        return result

    run("add-directory", library_photos)
    run("build-index")
    outside = json.loads(run("similar", photos_dir / "rocket_1.jpg", "--top", "2", "--json").stdout)
    assert [Path(r["path"]).name.split("_")[0] for r in outside] == ["rocket", "rocket"]
    assert all(r["in_library"] is False for r in outside)
    assert {"id", "path", "distance", "relation"} <= set(outside[0])
    inside = json.loads(run("similar", library_photos / "rocket_0.jpg", "--json").stdout)
    assert all(r["in_library"] is True for r in inside)
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    result = run("similar", not_an_image, status=2)
    assert "notes.jpg" in result.stderr and "not an image" in result.stderr
    assert "Traceback" not in result.stderr
    assert "no such file" in run("similar", tmp_path / "missing.jpg", status=2).stderr
    # A name that is not UTF-8 shows its odd byte as U+FFFD, not as an escape.
    odd = os.fsdecode(bytes(tmp_path / "missing") + b"\xff.jpg")
    assert "missing\ufffd.jpg" in run("similar", odd, status=2).stderr
    # Something that is there but is no photo file is refused for what it is.
    folder = tmp_path / "folder.jpg"
    folder.mkdir()
    assert "is a directory" in run("similar", folder, status=2).stderr
    dangling = tmp_path / "dangling.jpg"
    dangling.symlink_to(tmp_path / "gone.jpg")
    assert "broken link" in run("similar", dangling, status=2).stderr
    if hasattr(os, "mkfifo"):
        pipe = tmp_path / "pipe.jpg"
        os.mkfifo(pipe)
        assert "not a regular file" in run("similar", pipe, status=2).stderr
    assert len(json.loads(run("photos", "--json").stdout)) == 12  # nothing added


def test_cli_similar_outside_file_on_an_empty_library(tmp_path, photos_dir):
    """No photo to rank: an empty list (the file still checked), as other reads give."""
    runner = CliRunner()
    base = ["--library", str(tmp_path / "library")]
    result = runner.invoke(cli, [*base, "similar", str(photos_dir / "rocket_1.jpg"), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout) == []
    assert "no photos in the library" in result.stderr
    bad = tmp_path / "notes.jpg"
    bad.write_text("hello")
    result = runner.invoke(cli, [*base, "similar", str(bad), "--json"])
    assert result.exit_code == 2 and "not an image" in result.stderr
    assert not (tmp_path / "library" / "leitmotiv.db").exists()  # a read creates nothing


def test_a_reader_searches_the_index_another_process_has_just_grown(
    tmp_path, library_photos, photos_dir
):
    settings = Settings(
        library=tmp_path / "library", params=FAST_PARAMS, index="sparse", neighbours=4
    )
    outside = photos_dir / "rocket_1.jpg"
    with Library.open(settings) as writer:
        writer.add([library_photos], jobs=1)
        writer.build_index(jobs=1)
    with Library.open(settings, read_only=True) as reader:  # as `serve` keeps it open
        first = reader.similar_to_file(outside, top=3)
        assert reader.similar_to_file(outside, top=3) == first  # from the kept embeddings
        assert all(Path(p.path).name != "rocket_1.jpg" for p, _ in first)
        with Library.open(settings) as writer:
            shutil.copy2(outside, library_photos / "rocket_1.jpg")
            writer.add([library_photos], jobs=1)
            writer.build_index(jobs=1)
        (photo, distance), *_ = reader.similar_to_file(outside, top=3)
        assert Path(photo.path).name == "rocket_1.jpg" and distance < first[0][1]
