"""``kill -9`` of an ``add-directory`` run leaves none of its processes behind: its
workers, the forkserver and the resource tracker all end with it (Linux)."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from leitmotiv import store

REPO_ROOT = Path(__file__).resolve().parents[1]
FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 1000\n"

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc")


def parent_of(pid: int) -> int | None:
    """The parent process id from ``/proc/<pid>/stat``; None once the process is gone
    (or a zombie waiting for its parent)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    state, ppid = stat.rsplit(")", 1)[1].split()[:2]
    return None if state == "Z" else int(ppid)


def descendants(pid: int) -> set[int]:
    """Every living process below ``pid`` in the process tree."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (ppid := parent_of(int(entry))) is not None:
            children.setdefault(ppid, []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if parent_of(pid) is not None}


def test_killing_add_directory_leaves_no_process_behind(tmp_path, photos_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(n for n in os.listdir(photos_dir) if n.endswith(".jpg")):
        shutil.copy2(photos_dir / name, folder / name)
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    library = tmp_path / "library"
    cmd = [sys.executable, "-m", "leitmotiv", "-c", str(config), "--library", str(library)]
    proc = subprocess.Popen(
        [*cmd, "add-directory", str(folder), "-j", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )
    deadline = time.monotonic() + 120
    stored = 0
    while stored < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
        try:
            with sqlite3.connect(library / store.SQLITE_NAME) as con:
                stored = con.execute("SELECT COUNT(*) FROM photo").fetchone()[0]
        except sqlite3.Error:
            stored = 0
    assert proc.poll() is None, "the run ended before it could be killed"
    helpers = descendants(proc.pid)
    assert len(helpers) >= 3  # two workers and the forkserver at least
    os.kill(proc.pid, signal.SIGKILL)  # the parent only, as `kill -9 PID` does
    proc.wait()
    deadline = time.monotonic() + 20
    while alive(helpers) and time.monotonic() < deadline:
        time.sleep(0.2)
    left = alive(helpers)
    for pid in left:  # do not leave them to the next test either
        os.kill(pid, signal.SIGKILL)
    assert not left, f"{len(left)} of {len(helpers)} processes outlived their parent"
