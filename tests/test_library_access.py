"""How the command line reaches a library: ids no database can hold, a library folder
that cannot be written, and a database URL given as ``--library``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_extreme_dates import dated_library

REPO_ROOT = Path(__file__).resolve().parents[1]
HUGE = "99999999999999999999999"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(cwd)}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run(
        [sys.executable, "-m", "leitmotiv", *args],
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["similar", HUGE], ["render", HUGE, "-o", "x.png"], ["average", HUGE, "-o", "x.png"],
     ["similar", str(2**63)], ["render", "0", "-o", "x.png"]],
)  # fmt: skip
def test_an_id_no_database_can_hold_is_an_unknown_photo(tmp_path, args):
    dated_library(tmp_path / "library", [None]).close()
    result = run("--library", "library", *args, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "no photo" in result.stderr or "no cluster" in result.stderr
    assert "Traceback" not in result.stderr and "too large" not in result.stderr


@pytest.fixture
def read_only_library(tmp_path):
    """A library of three photos (one cluster) in a folder that cannot be written:
    a read-only tmpfs as root (who may write anywhere else), else a mode-555 folder."""
    folder = tmp_path / "disk" / "library"
    folder.parent.mkdir()
    mounted = os.geteuid() == 0
    if mounted:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(folder.parent)],
            capture_output=True,
        )
        if done.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    dated_library(folder, [None, None, None]).close()
    if mounted:
        subprocess.run(["mount", "-o", "remount,ro", str(folder.parent)], check=True)
    else:
        folder.chmod(0o555)
    yield folder
    if mounted:
        subprocess.run(["umount", str(folder.parent)], check=True)
    else:
        folder.chmod(0o755)


def test_reading_commands_work_on_a_read_only_library(tmp_path, read_only_library):
    before = sorted(os.listdir(read_only_library))
    photos = run("--library", str(read_only_library), "photos", "--json", cwd=tmp_path)
    assert photos.returncode == 0, photos.stderr
    assert [p["path"] for p in json.loads(photos.stdout)] == [f"/nowhere/{i}.jpg" for i in range(3)]
    clusters = run("--library", str(read_only_library), "clusters", "--json", cwd=tmp_path)
    assert clusters.returncode == 0, clusters.stderr
    assert len(json.loads(clusters.stdout)[0]["members"]) == 3
    # A configuration the library has never stored: nothing to find, nothing written.
    (tmp_path / "other.toml").write_text("[params.divergence.js]\ncolour_weight = 0.3\n")
    other = run(
        "-c", "other.toml", "--library", str(read_only_library), "similar", "1", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert json.loads(other.stdout) == []
    assert sorted(os.listdir(read_only_library)) == before


@pytest.mark.parametrize("command", [["add-directory", "."], ["build-index"]])
def test_writing_commands_say_the_folder_is_read_only(tmp_path, read_only_library, command):
    result = run("--library", str(read_only_library), *command, cwd=tmp_path)
    assert result.returncode == 2
    assert f"the library folder {read_only_library} is read-only" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_database_url_as_library_never_becomes_a_folder_nor_shows_its_password(tmp_path):
    url = "postgresql://someone:secret-word@127.0.0.1:1/photos"
    result = run("--library", url, "photos", cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot open the database postgresql://someone:***@127.0.0.1:1/photos" in result.stderr
    assert "secret-word" not in result.stderr + result.stdout
    assert not any("postgresql" in name for name in os.listdir(tmp_path))
    for _, dirs, files in os.walk(tmp_path):
        assert not any("secret" in name for name in dirs + files)


def test_a_database_url_as_library_is_the_database(tmp_path, empty_postgres):
    result = run("--library", empty_postgres, "photos", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
    assert not any("postgresql" in name for name in os.listdir(tmp_path))


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://me:p%40ss@db:5432/photos?sslmode=require",
         "postgresql://me:***@db:5432/photos?sslmode=require"),
        ("postgresql://me@db/photos", "postgresql://me@db/photos"),
        ("sqlite:////srv/photos.db", "sqlite:////srv/photos.db"),
    ],
)  # fmt: skip
def test_a_database_url_is_shown_without_its_password(url, shown):
    from leitmotiv.store import _without_password, masked_url

    assert masked_url(url) == shown
    assert _without_password(f"refused for {url}", url) == f"refused for {shown}"
    if "p%40ss" in url:  # a driver may quote the password decoded
        assert _without_password('password "p@ss" refused', url) == 'password "***" refused'


def test_a_reader_counts_the_photos_another_process_adds(tmp_path):
    """The web view keeps the photo count per connection until the database changes:
    a photo stored by another connection, or by the reader's own, is counted at once."""
    from leitmotiv import store
    from leitmotiv.config import Settings
    from leitmotiv.library import Library

    folder = tmp_path / "library"
    dated_library(folder, [None, None]).close()
    reader = Library.open(Settings(library=folder), read_only=True)
    writer = Library.open(Settings(library=folder))
    try:
        assert reader.count_photos() == 2
        assert reader.count_photos() == 2  # kept
        with store.bound(writer.db):
            store.Photo.insert(path="/nowhere/new.jpg", sha256="f" * 64, size=1, mtime=0.0,
                               width=4, height=3).execute()  # fmt: skip
        assert reader.count_photos() == 3
        assert writer.count_photos() == 3
        with store.bound(writer.db):
            store.Photo.delete().where(store.Photo.path == "/nowhere/new.jpg").execute()
        assert writer.count_photos() == 2  # its own write
        assert reader.count_photos() == 2
    finally:
        writer.close()
        reader.close()
