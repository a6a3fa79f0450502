"""A library whose disk fills up: the error says so, names the database, and the
store keeps only whole units of work (every photo stored has its model); after
space is freed the same command completes.

Two ways to fill it: SQLite's ``max_page_count`` (anywhere), and a real tiny tmpfs
(needs root, as in CI; skipped with the reason otherwise).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from leitmotiv import store
from leitmotiv.config import Settings
from leitmotiv.library import Library

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 1000\n"


@pytest.fixture
def photos(tmp_path, photos_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(n for n in os.listdir(photos_dir) if n.endswith(".jpg"))[:20]:
        shutil.copy2(photos_dir / name, folder / name)
    return folder


def check_whole_units(db_path: Path) -> int:
    """The number of photos stored, checking the file and that each has its model."""
    with contextlib.closing(sqlite3.connect(db_path)) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        photos = con.execute("SELECT COUNT(*) FROM photo").fetchone()[0]
        modelled = con.execute("SELECT COUNT(DISTINCT photo_id) FROM model").fetchone()[0]
    assert modelled == photos
    return photos


def test_a_full_database_says_so_and_keeps_whole_photos(tmp_path, photos):
    settings = Settings(
        library=tmp_path / "library", params={"featurizer": {"gmm": {"n_samples": 1000}}}
    )
    db_path = tmp_path / "library" / store.SQLITE_NAME
    with Library.open(settings) as library:
        pages = library.db.execute_sql("PRAGMA page_count").fetchone()[0]
        library.db.execute_sql(f"PRAGMA max_page_count = {pages + 8}")
        with pytest.raises(store.DatabaseFull) as caught:
            library.add([photos], jobs=1, progress=False)
    message = str(caught.value)
    assert message == f"cannot write {db_path}: database or disk is full"
    stored = check_whole_units(db_path)
    assert 0 < stored < 20
    with Library.open(settings) as library:  # a new connection has no page limit
        report = library.add([photos], jobs=1, progress=False)
    assert (report.added, report.unchanged, report.failed) == (20 - stored, stored, 0)
    assert check_whole_units(db_path) == 20


@pytest.fixture
def tiny_disk(tmp_path):
    """A 600 kB tmpfs mounted at ``tmp_path / "disk"`` (root only)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(disk)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_full_disk_says_so_then_the_rerun_completes(tmp_path, photos, tiny_disk):
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    library = tiny_disk / "library"
    cmd = [sys.executable, "-m", "leitmotiv", "-c", str(config), "--library", str(library)]
    cmd += ["add-directory", str(photos), "-j", "1"]
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    full = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert full.returncode == 1
    db_path = library / store.SQLITE_NAME
    assert full.stderr.strip() == f"error: cannot write {db_path}: database or disk is full"
    stored = check_whole_units(db_path)
    assert 0 < stored < 20  # photo 1 is stored: the render below reads it
    # Reading still works: a render reads the library only (its cache stays in
    # memory), so the full disk neither stops it nor gets a partial file.
    out = tmp_path / "render.png"
    render = subprocess.run(
        [*cmd[:7], "render", "1", "-o", str(out)], capture_output=True, text=True, env=env
    )
    assert render.returncode == 0, render.stderr
    assert out.read_bytes().startswith(b"\x89PNG")
    assert render.stderr == ""
    cache = library / "cache"
    assert not [n for n in (os.listdir(cache) if cache.exists() else []) if n.endswith(".tmp")]
    subprocess.run(["mount", "-o", "remount,size=20m", str(tiny_disk)], check=True)
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"unchanged {stored}" in done.stdout
    assert check_whole_units(db_path) == 20
