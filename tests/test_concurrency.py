"""Several processes writing one library at once, as real processes.

Two ``add-directory`` runs on one library must both complete, with each photo stored
once, on SQLite and on PostgreSQL (where the second run also opens a brand-new
database while the first is creating its schema).  A writer kept waiting by another
says so.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from leitmotiv import store

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 1000\n"


def command(config: Path, library: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "leitmotiv", "-c", str(config), "--library", str(library), *args]


def environment() -> dict[str, str]:
    """This checkout's leitmotiv, whatever is installed."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


@pytest.fixture
def twelve_photos(tmp_path, photos_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(n for n in os.listdir(photos_dir) if n.endswith(".jpg"))[:12]:
        shutil.copy2(photos_dir / name, folder / name)
    return folder


def run_twice_at_once(cmd: list[str]) -> list[subprocess.CompletedProcess]:
    procs = [
        subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment()
        )
        for _ in range(2)
    ]
    done = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        done.append(subprocess.CompletedProcess(cmd, proc.returncode, out, err))
    return done


def wait_for_line(proc: subprocess.Popen, text: str, seconds: float = 120) -> str:
    """Standard error of ``proc`` up to the line holding ``text`` (or its end)."""
    lines: queue.Queue[str] = queue.Queue()

    def read_stderr() -> None:
        for line in proc.stderr:
            lines.put(line)

    threading.Thread(target=read_stderr, daemon=True).start()
    err = ""
    deadline = time.monotonic() + seconds
    while text not in err and proc.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(queue.Empty):
            err += lines.get(timeout=0.5)
    return err


def stored_counts(db) -> tuple[int, int, int]:
    """(photo rows, distinct photo paths, model rows) of a library's database."""
    with store.bound(db):
        photos = store.Photo.select().count()
        paths = store.Photo.select(store.Photo.path).distinct().count()
        models = store.Model.select().count()
    return photos, paths, models


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_add_directory_runs_at_once_both_complete(tmp_path, twelve_photos, backend, request):
    config = tmp_path / "config.toml"
    text = FAST_CONFIG
    if backend == "postgres":
        url = request.getfixturevalue("empty_postgres")  # a brand-new, empty schema
        text = f"database = {url!r}\n" + text
    config.write_text(text, encoding="utf-8")
    library = tmp_path / "library"
    cmd = command(config, library, "add-directory", str(twelve_photos), "-j", "1")
    for result in run_twice_at_once(cmd):
        assert result.returncode == 0, result.stderr
        assert "failed 0" in result.stdout
    db = store.connect(url if backend == "postgres" else None, library)
    try:
        assert stored_counts(db) == (12, 12, 12)
    finally:
        db.close()
    again = subprocess.run(cmd, capture_output=True, text=True, env=environment(), timeout=300)
    assert again.returncode == 0 and "unchanged 12" in again.stdout, again.stderr


def test_a_writer_kept_waiting_says_so_then_completes(tmp_path, twelve_photos):
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    library = tmp_path / "library"
    photo = sorted(twelve_photos.iterdir())[0]
    first = command(config, library, "add-image", str(photo), "-j", "1")
    subprocess.run(first, check=True, capture_output=True, env=environment(), timeout=300)
    # Another process holds the write lock until the writer says it is waiting.
    holder = sqlite3.connect(library / store.SQLITE_NAME, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    waiting = subprocess.Popen(
        command(config, library, "add-directory", str(twelve_photos), "-j", "1"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
    )
    said = f"waiting for another process writing to {library / store.SQLITE_NAME}"
    err = wait_for_line(waiting, said)
    holder.execute("COMMIT")
    holder.close()
    assert said in err
    out = waiting.stdout.read()
    assert waiting.wait(timeout=300) == 0, err
    assert "added 11" in out and "unchanged 1" in out


def test_opening_a_new_postgres_database_waits_for_its_schema(tmp_path, empty_postgres):
    config = tmp_path / "config.toml"
    config.write_text(f"database = {empty_postgres!r}\n", encoding="utf-8")
    holder = store.connect(empty_postgres, tmp_path)
    try:
        with holder.atomic():
            store._lock_schema(holder)  # as a process creating the schema would
            empty = tmp_path / "empty"
            empty.mkdir()
            opening = subprocess.Popen(  # a command that writes, so creates the schema
                command(config, tmp_path / "library", "add-directory", str(empty), "--json"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=environment(),
            )
            err = wait_for_line(opening, "waiting for another process changing the schema")
        assert "waiting for another process changing the schema of" in err
        out = opening.stdout.read()
        assert opening.wait(timeout=120) == 0, err
        assert json.loads(out)["added"] == 0
    finally:
        holder.close()
