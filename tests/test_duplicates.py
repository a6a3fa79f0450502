"""Groups of near-duplicates: grouping around keepers, the keeper's choice, the stored
groups kept up to date by build-index, the command's outputs and the migration."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image, ImageFilter

from leitmotiv import duplicates, store
from leitmotiv.cli import cli
from leitmotiv.config import Settings
from leitmotiv.library import Library
from leitmotiv.sharpness import laplacian_variance

FAST_PARAMS = {"featurizer": {"gmm": {"n_samples": 2000}}}


def test_a_chain_of_small_steps_does_not_join_its_ends():
    # a~b and b~c are near, a and c are not: connected components would make one
    # group {a, b, c}; around the best photo a, c is left out.
    ranks = {1: (0,), 2: (1,), 3: (2,)}
    placed = duplicates.group_pairs(ranks, [(1, 2, 0.1), (2, 3, 0.1)])
    assert placed == {1: (1, 0.0), 2: (1, 0.1)}


def test_the_best_ranked_photo_keeps_the_group():
    ranks = {1: (5,), 2: (0,), 3: (3,)}
    placed = duplicates.group_pairs(ranks, [(1, 2, 0.2), (2, 3, 0.3), (1, 3, 0.1)])
    assert placed == {2: (2, 0.0), 1: (2, 0.2), 3: (2, 0.3)}


def test_sharpness_falls_with_blur(photos_dir):
    image = Image.open(photos_dir / "coffee_0.jpg").convert("RGB")
    sharp, blurred = io.BytesIO(), io.BytesIO()
    image.save(sharp, "JPEG", quality=90)
    image.filter(ImageFilter.GaussianBlur(3)).save(blurred, "JPEG", quality=90)
    assert laplacian_variance(blurred.getvalue()) < 0.5 * laplacian_variance(sharp.getvalue())
    with pytest.raises(ValueError, match="not a readable image"):
        laplacian_variance(b"not an image")


@pytest.fixture
def copies(tmp_path, photos_dir) -> Path:
    """coffee_0 with a half-size copy and a blurred copy, and another scene."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee_0.jpg", "rocket_0.jpg", "rocket_3.jpg"):
        shutil.copy2(photos_dir / name, folder / name)
    image = Image.open(photos_dir / "coffee_0.jpg").convert("RGB")
    image.resize((image.width // 2, image.height // 2)).save(folder / "coffee_small.jpg")
    image.filter(ImageFilter.GaussianBlur(2)).save(folder / "coffee_blur.jpg", quality=90)
    return folder


def _library(tmp_path: Path) -> Library:
    return Library.open(Settings(library=tmp_path / "library", params=FAST_PARAMS))


def test_keeper_has_most_pixels_and_members_are_near_it(tmp_path, copies):
    with _library(tmp_path) as library:
        library.add([copies], jobs=1)
        report = library.build_index(jobs=1)
        assert report.duplicates_changed >= 3
        found = library.duplicates()
        threshold = library.near_duplicate_threshold()
        coffee = [g for g in found if Path(g.keeper.path).name.startswith("coffee")]
        assert len(coffee) == 1
        group = coffee[0]
        names = {Path(p.path).name for p, _ in group.members}
        assert names == {"coffee_small.jpg", "coffee_blur.jpg"}
        # The full-size copies have more pixels than the small one; the sharp
        # original beats the blurred copy of the same size.
        assert Path(group.keeper.path).name == "coffee_0.jpg"
        assert group.reason == "sharpest"
        assert all(0 <= d < threshold for _, d in group.members)
        # Nothing changed: a second build rewrites no group.
        assert library.build_index(jobs=1).duplicates_changed == 0
        assert library.count_photos() == 5  # nothing deleted


def test_lower_threshold_splits_groups_from_stored_distances(tmp_path, copies):
    with _library(tmp_path) as library:
        library.add([copies], jobs=1)
        library.build_index(jobs=1)
        stored = library.duplicates()
        assert library.duplicates(threshold=1e-9) == []
        assert sum(g.size for g in library.duplicates(threshold=10.0)) == 5
        assert library.duplicates() == stored  # the stored groups are untouched
        for bad in (-1.0, float("nan"), float("inf")):
            with pytest.raises(ValueError, match="positive finite"):
                library.duplicates(threshold=bad)


def test_cli_json_csv_and_text(tmp_path, copies):
    base = ["--library", str(tmp_path / "library")]
    config = tmp_path / "config.toml"
    config.write_text("[params.featurizer.gmm]\nn_samples = 2000\n")
    runner = CliRunner()

    def run(*args, status=0):
        result = runner.invoke(cli, ["-c", str(config), *base, *args])
        assert result.exit_code == status, (result.stdout, result.stderr)
        return result

    assert run("duplicates", "--json").stdout.strip() == "[]"  # empty library
    run("add-directory", str(copies))
    run("build-index")
    groups = json.loads(run("duplicates", "--json").stdout)
    assert groups and groups[0]["size"] == 1 + len(groups[0]["members"])
    keeper = groups[0]["keeper"]
    assert {"id", "path", "width", "height", "size", "sharpness", "taken"} <= set(keeper)
    assert groups[0]["reason"] in ("most pixels", "sharpest", "earliest capture", "lowest id")
    assert all("distance" in m for m in groups[0]["members"])
    rows = list(csv.DictReader(io.StringIO(run("duplicates", "--csv").stdout)))
    assert sum(1 for r in rows if r["role"] == "keeper") == len(groups)
    assert len(rows) == sum(g["size"] for g in groups)
    text = run("duplicates").stdout
    assert f"keep {keeper['id']} ({groups[0]['reason']})" in text
    for bad in ("0", "-1", "nan", "inf", "-inf"):
        message = run("duplicates", "--threshold", bad, status=2).stderr
        assert "--threshold" in message and f"'{bad}' is not a positive finite distance" in message
    assert "'abc' is not a number" in run("duplicates", "--threshold", "abc", status=2).stderr
    assert "not both" in run("duplicates", "--json", "--csv", status=2).stderr


def test_version_5_library_gets_sharpness_from_its_thumbnails(tmp_path, copies):
    with _library(tmp_path) as library:
        library.add([copies], jobs=1)
        with store.bound(library.db):
            # As schema 5 left it: no sharpness column, no duplicate groups.
            library.db.drop_tables([store.DuplicateMember])
            library.db.execute_sql("ALTER TABLE photo DROP COLUMN sharpness")
            store.SchemaVersion.update(version=5).execute()
    with _library(tmp_path) as library:
        assert store.schema_version(library.db) == store.SCHEMA_VERSION == 8
        assert all(p.sharpness is None for p in library.photos())
        library.build_index(jobs=1)
        assert all(p.sharpness > 0 for p in library.photos())
        assert library.duplicates()
