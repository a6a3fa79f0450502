"""Motifs of a real library whose capture dates are known, through the library and the CLI.

Copies of test photos get EXIF DateTimeOriginal values written by the test, so every
date is known: one scene is shot in four separate years, one in a single 20-minute
burst, one has no EXIF date at all (its files only have a modification time), and
two more mix those cases across a ten-year span.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from leitmotiv.cli import cli
from leitmotiv.config import Settings
from leitmotiv.library import Library

FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 2000\n"
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003


def _at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts)


#: Scene of the test photos -> capture times of its four versions (None: no EXIF date).
DATED_SCENES: dict[str, list[dt.datetime | None]] = {
    # The lake at dusk, every other summer: the motif the tool is named after.
    "dusk_lake": [_at(2016, 7, 1, 20, 10), _at(2018, 7, 14, 20, 30),
                  _at(2020, 6, 28, 21, 0), _at(2022, 7, 9, 20, 45)],
    # Four near-duplicates within 20 minutes of one afternoon: one burst.
    "red_marigold": [_at(2019, 5, 4, 14, 0), _at(2019, 5, 4, 14, 5),
                     _at(2019, 5, 4, 14, 12), _at(2019, 5, 4, 14, 20)],
    # Never dated by the camera: the files' modification times only.
    "coffee": [None, None, None, None],
    # Spring and autumn of 2017, then 2023 and 2024: three years, four occurrences.
    "forest_path": [_at(2017, 4, 2, 9, 0), _at(2017, 10, 15, 10, 0),
                    _at(2023, 10, 20, 11, 0), _at(2024, 4, 1, 8, 30)],
    # A burst in 2015, one return in 2025 (the library then spans ten years), one undated.
    "green_hills": [_at(2015, 3, 1, 12, 0), _at(2015, 3, 1, 12, 10),
                    _at(2025, 2, 14, 16, 0), None],
}  # fmt: skip


def write_dated_photos(photos_dir: Path, dest: Path) -> dict[str, str]:
    """Copy the photos of :data:`DATED_SCENES` into ``dest`` with their EXIF dates.

    Each copy is re-encoded by Pillow with only the EXIF written here, so a photo
    meant to be undated carries no capture time from its original.

    Returns
    -------
    dict
        ``{file name: scene}`` of the copies.
    """
    dest.mkdir(parents=True, exist_ok=True)
    scenes = {}
    for scene, times in DATED_SCENES.items():
        for version, taken in enumerate(times):
            name = f"{scene}_{version}.jpg"
            with Image.open(photos_dir / name) as im:
                exif = Image.Exif()
                if taken is not None:
                    exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = taken.strftime(
                        "%Y:%m:%d %H:%M:%S"
                    )
                im.convert("RGB").save(dest / name, quality=92, exif=exif.tobytes())
            scenes[name] = scene
    return scenes


def build_dated_library(root: Path, photos_dir: Path) -> tuple[list[str], dict[str, str], Library]:
    """Write the dated photos under ``root``, add and index them through the CLI.

    Returns
    -------
    (list of str, dict, Library)
        The CLI arguments selecting this library, ``{file name: scene}``, and the
        library opened (the caller closes it).
    """
    scenes = write_dated_photos(photos_dir, root / "photos")
    config = root / "config.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    base = ["-c", str(config), "--library", str(root / "library")]
    runner = CliRunner()
    for args in (["add-directory", str(root / "photos")], ["build-index"]):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 0, (result.stdout, result.stderr)
    settings = Settings(
        library=root / "library", params={"featurizer": {"gmm": {"n_samples": 2000}}}
    )
    return base, scenes, Library.open(settings)


@pytest.fixture(scope="module")
def dated(tmp_path_factory, photos_dir):
    """(CLI arguments, {file name: scene}, open Library) of the dated library."""
    base, scenes, library = build_dated_library(tmp_path_factory.mktemp("motifs"), photos_dir)
    yield base, scenes, library
    library.close()


def _by_scene(motifs, scenes: dict[str, str], photos: dict[int, str]) -> dict[str, object]:
    """The motif of each scene, checking that each scene is exactly one cluster."""
    out = {}
    for motif in motifs:
        (scene,) = {scenes[photos[pid]] for pid in motif.member_ids}
        out[scene] = motif
    assert set(out) == set(DATED_SCENES)
    return out


@pytest.fixture(scope="module")
def names(dated):
    _, _, library = dated
    return {p.id: Path(p.path).name for p in library.photos()}


def test_library_motifs_rank_recurrence_above_a_burst(dated, names):
    _, scenes, library = dated
    motifs = library.motifs()
    found = _by_scene(motifs, scenes, names)
    lake, burst, coffee = found["dusk_lake"], found["red_marigold"], found["coffee"]
    # Ranked by score: four years > three years > two years > one burst > undated.
    order = [scenes[names[m.exemplar_id]] for m in motifs]
    assert order == ["dusk_lake", "forest_path", "green_hills", "red_marigold", "coffee"]
    assert lake.score > burst.score
    assert lake.resolution == "year"  # the library spans 2015 to 2025
    assert [p.label for p in lake.periods] == ["2016", "2018", "2020", "2022"]
    assert lake.recurring and lake.n_occurrences == 4
    assert lake.gaps_days == pytest.approx([743.0, 715.0, 741.0], abs=0.1)
    # The four near-duplicates of one afternoon are one occurrence, not a motif.
    assert not burst.recurring
    assert burst.n_occurrences == 1 and len(burst.periods) == 1
    assert sorted(names[i] for i in burst.periods[0].photo_ids) == [
        f"red_marigold_{k}.jpg" for k in range(4)
    ]
    assert burst.score == pytest.approx(1.0)
    # Photos dated by their file time are counted apart, not put on the timeline.
    assert coffee.periods == [] and coffee.score == 0
    assert sorted(coffee.undated_ids) == sorted(coffee.member_ids)
    assert all(library.photo(i).taken_source == "mtime" for i in coffee.undated_ids)
    hills = found["green_hills"]
    assert [names[i] for i in hills.undated_ids] == ["green_hills_3.jpg"]
    assert [len(p.photo_ids) for p in hills.periods] == [2, 1]
    # Spring and autumn 2017 are two occurrences in one period.
    forest = found["forest_path"]
    assert [len(p.occurrences) for p in forest.periods] == [2, 1, 1]


def test_library_motifs_since_until(dated, names):
    _, scenes, library = dated
    motifs = library.motifs(since=dt.date(2018, 1, 1), until=dt.date(2020, 12, 31))
    # Only scenes with an occurrence in 2018-2020 remain; the span is now months.
    assert {scenes[names[m.exemplar_id]] for m in motifs} == {"dusk_lake", "red_marigold"}
    lake = next(m for m in motifs if scenes[names[m.exemplar_id]] == "dusk_lake")
    assert [p.label for p in lake.periods] == ["2018-07", "2020-06"]
    # A plain `until` date includes its whole day: the 20:10 photo of 2016-07-01 stays.
    (only,) = library.motifs(since=dt.date(2016, 7, 1), until=dt.date(2016, 7, 1))
    assert [names[i] for i in only.member_ids if i in only.periods[0].photo_ids] == [
        "dusk_lake_0.jpg"
    ]
    assert library.motifs(since=dt.date(2030, 1, 1)) == []


def _cli_json(base, *args):
    result = CliRunner().invoke(cli, [*base, "motifs", "--json", *args])
    assert result.exit_code == 0, (result.stdout, result.stderr)
    return json.loads(result.stdout)


def test_cli_motifs_json(dated, names, tmp_path):
    base, scenes, library = dated
    rows = _cli_json(base)
    assert [r["score"] for r in rows] == sorted((r["score"] for r in rows), reverse=True)
    scene_of = {scenes[Path(r["exemplar"]["path"]).name]: r for r in rows}
    lake, burst, coffee = scene_of["dusk_lake"], scene_of["red_marigold"], scene_of["coffee"]
    assert rows.index(lake) < rows.index(burst) < rows.index(coffee)
    assert lake["recurring"] and lake["resolution"] == "year"
    assert [p["label"] for p in lake["periods"]] == ["2016", "2018", "2020", "2022"]
    assert lake["periods"][0]["photos"] == [
        {
            "id": next(i for i, n in names.items() if n == "dusk_lake_0.jpg"),
            "path": str(library.folder.parent / "photos" / "dusk_lake_0.jpg"),
            "taken": "2016-07-01T20:10:00",
        }
    ]
    assert len(lake["gaps_days"]) == 3
    # "average" is the command that renders the motif's average image: run it.
    command = lake["average"].split()
    assert command[:3] == ["leitmotiv", "average", str(lake["cluster_id"])]
    out = tmp_path / command[-1]
    command[-1] = str(out)
    assert CliRunner().invoke(cli, [*base, *command[1:]]).exit_code == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p["occurrences"] for p in burst["periods"]] == [1]
    assert len(burst["periods"][0]["photos"]) == 4 and not burst["recurring"]
    assert coffee["periods"] == [] and coffee["score"] == 0
    assert sorted(p["id"] for p in coffee["undated"]) == sorted(p["id"] for p in coffee["members"])
    assert {"cluster_id", "score", "recurring", "resolution", "exemplar", "average", "periods",
            "gaps_days", "undated", "members"} <= set(lake)  # fmt: skip


def test_cli_motifs_since_until_and_text(dated):
    base, scenes, _ = dated
    rows = _cli_json(base, "--since", "2018", "--until", "2020")
    labels = {scenes[Path(r["exemplar"]["path"]).name]: [p["label"] for p in r["periods"]]
              for r in rows}  # fmt: skip
    assert labels == {"dusk_lake": ["2018-07", "2020-06"], "red_marigold": ["2019-05"]}
    assert _cli_json(base, "--since", "2024-04-01", "--until", "2024-04-01") != []
    bad = CliRunner().invoke(cli, [*base, "motifs", "--since", "last summer"])
    assert bad.exit_code == 2 and "is not a date" in bad.stderr

    text = CliRunner().invoke(cli, [*base, "motifs"])
    assert text.exit_code == 0
    lines = text.stdout.splitlines()
    assert len(lines) == len(DATED_SCENES)
    assert "recurring" in lines[0] and "2016: 1 photo, 2018: 1 photo" in lines[0]
    assert "dusk_lake_" in lines[0]
    assert "4 undated" in lines[-1] and "coffee_" in lines[-1]
    assert any("1 occurrence in 1 year: 2019: 4 photos" in line for line in lines)
