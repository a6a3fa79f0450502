"""Tests of leitmotiv.paths: file names that are not valid UTF-8, from the folder to the
store (SQLite and PostgreSQL), the command line, JSON and the web view.

The names are made from bytes (``b"caf\\xe9.jpg"``, Latin-1 as an old camera card or
zip archive has it), so they hold exactly what such a folder holds.
"""

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
from leitmotiv.paths import BYTES_PREFIX, from_stored, shown, to_stored

FAST = {"featurizer": {"gmm": {"n_samples": 1000}}}


def test_stored_form_is_lossless_and_leaves_utf8_alone() -> None:
    for raw in (b"/photos/caf\xe9.jpg", b"/a/\xff\xfe/100%.jpg", b"/x/%41\xc3.jpg"):
        path = os.fsdecode(raw)
        text = to_stored(path)
        text.encode("utf-8")  # the store takes it
        assert text.startswith(BYTES_PREFIX) and "\x00" not in text
        assert os.fsencode(from_stored(text)) == raw
    for plain in ("/photos/café ☕.jpg", "/a/100%.jpg", "/b/bytes:x.jpg"):
        assert to_stored(plain) == plain == from_stored(plain)


def test_shown_replaces_each_undecodable_byte() -> None:
    assert shown(os.fsdecode(b"/p/caf\xe9.jpg")) == "/p/caf\ufffd.jpg"
    assert shown(os.fsdecode(b"/p/\xff\xfe.jpg")) == "/p/\ufffd\ufffd.jpg"
    assert shown("/p/café.jpg") == "/p/café.jpg"


@pytest.fixture
def odd_names(tmp_path, photos_dir) -> tuple[Path, list[str]]:
    """Three photos: one with a UTF-8 name, two whose names are not valid UTF-8."""
    folder = tmp_path / "card"
    folder.mkdir()
    shutil.copy(photos_dir / "coffee_0.jpg", folder / "coffee.jpg")
    names = [b"caf\xe9.jpg", b"z\xff\xfe.jpg"]
    paths = []
    for name, source in zip(names, ("coffee_1.jpg", "rocket_0.jpg"), strict=True):
        path = os.fsdecode(bytes(folder) + b"/" + name)
        shutil.copy(photos_dir / source, path)
        paths.append(path)
    return folder, paths


def _check_library(settings: Settings, folder: Path, odd: list[str]) -> None:
    with Library.open(settings) as library:
        report = library.add([folder], jobs=1, progress=False)
        assert (report.added, report.failed) == (3, 0)
        stored = {p.path for p in library.photos()}
        assert set(odd) <= stored
        assert all(os.path.exists(p) for p in stored)  # the paths open the files again
        # Unchanged on a second run: the stored paths match the walked ones exactly.
        assert library.add([folder], jobs=1, progress=False).unchanged == 3
        assert library.find_photo(odd[0]).path == odd[0]
        # A broken file with such a name is a failure row, kept with its bytes too.
        broken = os.fsdecode(bytes(folder) + b"/broken\xe9.jpg")
        Path(broken).write_bytes(b"\xff\xd8\xff\xe0 not really")
        again = library.add([folder], jobs=1, progress=False)
        assert [f.path for f in again.failures] == [broken]
        assert [f.path for f in library.failures()] == [broken]


def test_sqlite_store_keeps_the_bytes(tmp_path, odd_names) -> None:
    folder, odd = odd_names
    settings = Settings(library=tmp_path / "library", params=FAST)
    _check_library(settings, folder, odd)
    import sqlite3

    with sqlite3.connect(tmp_path / "library" / store.SQLITE_NAME) as db:
        raw = sorted(text for (text,) in db.execute("select path from photo"))
    assert raw[-2:] == [to_stored(p) for p in sorted(odd, key=to_stored)]


def test_postgres_store_keeps_the_bytes(tmp_path, odd_names, empty_postgres) -> None:
    folder, odd = odd_names
    settings = Settings(library=tmp_path / "library", database=empty_postgres, params=FAST)
    _check_library(settings, folder, odd)


def test_cli_and_json_show_replacement_characters(tmp_path, odd_names) -> None:
    folder, odd = odd_names
    config = tmp_path / "config.toml"
    config.write_text("[params.featurizer.gmm]\nn_samples = 1000\n")
    base = ["-c", str(config), "--library", str(tmp_path / "library")]
    runner = CliRunner()

    def run(*args):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 0, (result.output, result.exception)
        return result

    added = run("add-directory", str(folder), "--json")
    assert json.loads(added.stdout_bytes.decode("utf-8"))["added"] == 3
    listed = json.loads(run("photos", "--json").stdout_bytes.decode("utf-8"))  # strict UTF-8
    names = sorted(Path(p["path"]).name for p in listed)
    assert names == ["caf\ufffd.jpg", "coffee.jpg", "z\ufffd\ufffd.jpg"]
    table = run("photos").stdout_bytes.decode("utf-8")
    assert "caf\ufffd.jpg" in table
    # A path given on the command line, bytes and all, finds its photo.
    run("build-index")
    ranked = json.loads(run("similar", odd[0], "--json").stdout_bytes.decode("utf-8"))
    assert "caf\ufffd.jpg" not in [Path(r["path"]).name for r in ranked] and len(ranked) == 2


def test_web_view_shows_and_serves_them(tmp_path, odd_names) -> None:
    from test_web import call

    from leitmotiv.web.app import make_app

    folder, odd = odd_names
    with Library.open(Settings(library=tmp_path / "library", params=FAST)) as library:
        library.add([folder], jobs=1, progress=False)
        library.build_index(progress=False)
        photo = library.find_photo(odd[0])
        app = make_app(library)
        page = call(app, f"/photo/{photo.id}")
        assert page.status == 200 and "caf\ufffd.jpg" in page.text
        assert call(app, "/").status == 200
        listed = call(app, "/api/photos").json()["photos"]
        assert "caf\ufffd.jpg" in {Path(p["path"]).name for p in listed}
        original = call(app, f"/photo/{photo.id}/file")
        assert original.status == 200 and original.body == Path(odd[0]).read_bytes()
        assert original.headers["etag"]
        similar = call(app, f"/api/photos/{photo.id}/similar").json()["similar"]
        assert len(similar) == 2
