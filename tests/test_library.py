"""Tests of :class:`leitmotiv.library.Library`: ingest, incremental updates, the index.

These tests are about bookkeeping, not model quality, so they fit with fewer samples
(``n_samples = 2000``) to keep the suite fast.
"""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import jpeg_claiming, no_hang, png_with_rows

from leitmotiv import sparse_index, store
from leitmotiv.config import Settings
from leitmotiv.library import Library

FAST_PARAMS = {"featurizer": {"gmm": {"n_samples": 2000}}}
FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 2000\n"


def make_settings(folder: Path, **params) -> Settings:
    merged = {"featurizer": {"gmm": {**FAST_PARAMS["featurizer"]["gmm"], **params}}}
    return Settings(library=folder, params=merged)


@pytest.fixture
def library(tmp_path):
    lib = Library.open(make_settings(tmp_path / "library"))
    yield lib
    lib.close()


@pytest.fixture
def few_photos(tmp_path, photos_dir):
    """Six photos of three scenes copied into a temporary folder."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(os.listdir(photos_dir)):
        if name.split("_")[0] in {"astronaut", "coffee", "rocket"} and name.endswith(
            ("_0.jpg", "_3.jpg")
        ):
            shutil.copy2(photos_dir / name, folder / name)
    assert len(os.listdir(folder)) == 6
    return folder


def _counts(report):
    return (
        report.added,
        report.updated,
        report.moved,
        report.unchanged,
        report.ignored,
        report.failed,
    )


def test_bad_corpus_fails_file_by_file(tmp_path, bad_dir, library):
    bad = tmp_path / "bad"
    shutil.copytree(bad_dir, bad, symlinks=True)
    # Cases the shared corpus cannot hold: special files, headers that lie, a cut PAM,
    # and names that are not valid UTF-8 (one a good photo, one a broken file).
    os.mkfifo(bad / "pipe.jpg")
    (bad / "zero.jpg").symlink_to("/dev/zero")
    png_with_rows(bad / "liar.png", 14000, 14000, np.zeros((1, 14000, 3), np.uint8))
    jpeg_claiming(bad / "liar.jpg", 14000, 14000)
    (bad / "short.pam").write_bytes(b"P7\nWIDTH 9\nHEIGHT 9\nDEPTH 3\nMAXVAL 255\nENDHDR\n\x00")
    odd_name = os.fsdecode(bytes(bad) + b"/caf\xe9.bmp")
    shutil.copy(bad / "photo.bmp", odd_name)
    odd_broken = os.fsdecode(bytes(bad) + b"/cut\xff.jpg")
    shutil.copy(bad / "truncated.jpg", odd_broken)
    new_cases = {
        "pipe.jpg": "not a regular file (a named pipe (FIFO))",
        "zero.jpg": "not a regular file (a character device)",
        "liar.png": "truncated pixel data",
        "liar.jpg": "truncated pixel data",
        "short.pam": "truncated pixel data",
        odd_broken: "truncated",
    }
    with no_hang(300):
        report = library.add([bad], jobs=2, progress=False)

    with open(bad / "expected.csv", newline="", encoding="utf-8") as fh:
        expected = list(csv.DictReader(fh))
    failed = {f.path: f.reason for f in library.failures()}
    added = {p.path for p in library.photos()}
    for row in expected:
        path = str(bad / row["file"].rstrip("/"))
        if row["expected"] == "error":
            assert path in failed, row["file"]
            assert failed[path], row["file"]
        elif row["expected"] == "decode":
            assert path in added, (row["file"], failed.get(path))
        else:
            assert (path in added) != (path in failed), row["file"]
    assert report.failed == len(failed) == len(report.failures)
    assert report.added == len(added) == library.count_photos()
    assert report.ignored >= 2  # README.md, expected.csv (and fake.jpg/README.txt)
    assert "broken link" in failed[str(bad / "dangling_link.jpg")]
    for name, reason in new_cases.items():
        assert failed[str(bad / name)].startswith(reason), (name, failed.get(str(bad / name)))
    assert odd_name in added  # stored and read back with its bytes intact


def test_second_run_is_unchanged_and_moves_keep_models(few_photos, library):
    first = library.add([few_photos], jobs=2, progress=False)
    assert _counts(first) == (6, 0, 0, 0, 0, 0)
    assert _counts(library.add([few_photos], progress=False)) == (0, 0, 0, 6, 0, 0)

    # A touched file (new mtime, same bytes) is recognised by its hash.
    touched = few_photos / "coffee_0.jpg"
    os.utime(touched, (time.time() + 10, time.time() + 10))
    assert _counts(library.add([few_photos], progress=False)) == (0, 0, 0, 6, 0, 0)

    # A renamed file is a move: same photo id, same model row, no refit.
    before = library.find_photo(str(few_photos / "rocket_0.jpg"))
    with store.bound(library.db):
        model_id = store.Model.get(store.Model.photo == before.id).id
    (few_photos / "sub").mkdir()
    os.rename(few_photos / "rocket_0.jpg", few_photos / "sub" / "renamed.jpg")
    assert _counts(library.add([few_photos], progress=False)) == (0, 0, 1, 5, 0, 0)
    after = library.photo(before.id)
    assert after.path == str(few_photos / "sub" / "renamed.jpg")
    with store.bound(library.db):
        assert store.Model.get(store.Model.photo == before.id).id == model_id
    assert library.count_photos() == 6


def test_an_edited_file_is_refitted(few_photos, library):
    library.add([few_photos], progress=False, jobs=1)
    target = few_photos / "astronaut_0.jpg"
    old = library.find_photo(str(target))
    shutil.copyfile(few_photos / "coffee_0.jpg", target)  # different content, same path
    os.utime(target, (time.time() + 5, time.time() + 5))
    report = library.add([few_photos], progress=False, jobs=1)
    assert _counts(report) == (0, 1, 0, 5, 0, 0)
    new = library.photo(old.id)
    assert new.sha256 != old.sha256
    assert new.sha256 == library.find_photo(str(few_photos / "coffee_0.jpg")).sha256


def test_changed_featurizer_refits_only_what_lacks_a_model(tmp_path, few_photos):
    folder = tmp_path / "library"
    with Library.open(make_settings(folder)) as lib:
        lib.add([few_photos], progress=False)
    with Library.open(make_settings(folder, n_samples=1500)) as lib:
        assert _counts(lib.add([few_photos], progress=False)) == (0, 6, 0, 0, 0, 0)
        assert _counts(lib.add([few_photos], progress=False)) == (0, 0, 0, 6, 0, 0)
        with store.bound(lib.db):
            assert store.Model.select().count() == 12  # the old models are kept
    with Library.open(make_settings(folder)) as lib:  # back: nothing to refit
        assert _counts(lib.add([few_photos], progress=False)) == (0, 0, 0, 6, 0, 0)


def test_build_index_computes_only_new_pairs(tmp_path, few_photos, library):
    extra = tmp_path / "extra"
    extra.mkdir()
    for name in ("astronaut_3.jpg", "coffee_3.jpg"):
        shutil.move(few_photos / name, extra / name)
    library.add([few_photos], progress=False)
    first = library.build_index(progress=False)
    assert (first.n_photos, first.pairs_computed) == (4, 6)
    assert first.n_clusters >= 1

    library.add([extra], progress=False)
    second = library.build_index(progress=False)
    assert (second.n_photos, second.pairs_computed) == (6, 2 * 4 + 1)
    with store.bound(library.db):
        assert store.Distance.select().count() == 15
    again = library.build_index(progress=False)
    assert again.pairs_computed == 0

    # Queries on the index.
    query = library.find_photo(str(extra / "coffee_3.jpg"))
    ranked = library.similar(query.id)
    assert len(ranked) == 5
    assert query.id not in {p.id for p, _ in ranked}
    assert [d for _, d in ranked] == sorted(d for _, d in ranked)
    assert Path(ranked[0][0].path).name == "coffee_0.jpg"
    assert [p.id for p, _ in library.similar(query.id, top=2, offset=1)] == [
        p.id for p, _ in ranked[1:3]
    ]
    clusters = library.clusters()
    assert sorted(p.id for c in clusters for p in c.members) == sorted(
        p.id for p in library.photos()
    )
    for c in clusters:
        assert c.members[0] == c.exemplar
        assert library.cluster(c.id) == c
    assert library.cluster(10**9) is None


def test_an_interrupted_build_index_resumes(few_photos, library, monkeypatch):
    import leitmotiv.index as index_module

    library.add([few_photos], progress=False)
    monkeypatch.setattr(index_module, "DISTANCE_BLOCK", 2)
    cls = type(library.divergence)
    cross = cls.cross
    calls = []

    def cross_then_die(self, rows, cols, n_jobs=-1):
        if calls:
            raise KeyboardInterrupt  # the process dies after its first block
        calls.append(len(rows))
        return cross(self, rows, cols, n_jobs=n_jobs)

    monkeypatch.setattr(cls, "cross", cross_then_die)
    with pytest.raises(KeyboardInterrupt):
        library.build_index(progress=False)
    with store.bound(library.db):
        assert store.Distance.select().count() == 5 + 4  # the first block's two rows
    assert library.clusters() == []

    monkeypatch.setattr(cls, "cross", cross)
    report = library.build_index(progress=False)
    assert report.pairs_computed == 15 - 9
    assert sum(len(c.members) for c in library.clusters()) == 6


def test_renders_and_thumbnails(few_photos, library):
    library.add([few_photos], progress=False)
    library.build_index(progress=False)
    photo = library.photos()[0]
    assert library.thumbnail(photo.id)[:2] == b"\xff\xd8"
    png = library.render(photo.id, long_side=64)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert library.render(photo.id, long_side=64) == png  # from the cache
    assert any(library.folder.joinpath("cache").iterdir())
    cluster = library.clusters()[0]
    assert library.average(cluster.id, long_side=48)[:8] == b"\x89PNG\r\n\x1a\n"
    assert library.render(10**9) is None
    assert library.average(10**9) is None
    assert library.mixture(photo.id).n_components == photo.components


def test_one_photo_and_its_model_as_the_listing_and_the_stored_row_give_them(few_photos, library):
    from leitmotiv import store
    from leitmotiv.mixture import Mixture

    library.add([few_photos], progress=False)
    listed = library.photos()
    assert [library.photo(p.id) for p in listed] == listed
    featurizer_id = library.context.key_ids()[0]
    for photo in listed:
        with store.bound(library.db):
            row = store.Model.get(
                (store.Model.photo == photo.id) & (store.Model.featurizer == featurizer_id)
            )
        stored = Mixture.from_bytes(bytes(row.mixture))
        np.testing.assert_array_equal(library.mixture(photo.id).means, stored.means)
    unknown = max(p.id for p in listed) + 1
    assert library.photo(unknown) is None and library.mixture(unknown) is None


def test_failures_are_recorded_and_cleared(tmp_path, few_photos, library):
    broken = few_photos / "broken.jpg"
    broken.write_bytes(b"not a jpeg at all")
    report = library.add([few_photos], progress=False)
    assert report.failed == 1
    (failure,) = library.failures()
    assert failure.path == str(broken)
    assert "not an image" in failure.reason
    assert failure.time is not None
    assert library.find_photo(str(broken)) is None

    shutil.copyfile(few_photos / "coffee_0.jpg", broken)
    report = library.add([few_photos], progress=False)
    assert (report.added, report.failed) == (1, 0)
    assert library.failures() == []


def test_symlink_loops_are_walked_once(tmp_path, few_photos, library):
    (few_photos / "loop").symlink_to(few_photos, target_is_directory=True)
    report = library.add([few_photos], progress=False)
    # Each real folder is walked once; the loop adds nothing new and nothing fails.
    assert report.failed == 0
    assert report.added == 6


def _photo_rows(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as con:
        return [row[0] for row in con.execute("SELECT path FROM photo")]


def test_kill_during_add_then_rerun(tmp_path, photos_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    names = sorted(n for n in os.listdir(photos_dir) if n.endswith(".jpg"))
    for name in names:
        shutil.copy2(photos_dir / name, folder / name)
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG)
    lib_dir = tmp_path / "library"
    cmd = [sys.executable, "-m", "leitmotiv", "-c", str(config), "--library", str(lib_dir)]
    cmd += ["add-directory", str(folder), "-j", "2"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    db_path = lib_dir / store.SQLITE_NAME
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            seen = len(_photo_rows(db_path))
        except sqlite3.Error:
            seen = 0
        if seen >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, f"finished before it could be killed: {proc.stderr.read()}"
    os.killpg(proc.pid, signal.SIGKILL)  # the command and its worker processes
    proc.wait()
    proc.stderr.close()
    partial = _photo_rows(db_path)
    assert 3 <= len(partial) < len(names)

    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"unchanged {len(partial)}" in done.stdout
    paths = _photo_rows(db_path)
    assert len(paths) == len(set(paths)) == len(names)
    with sqlite3.connect(db_path) as con:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert con.execute("SELECT COUNT(*) FROM model").fetchone()[0] == len(names)


@pytest.mark.postgres
def test_postgres_ingest_and_index(tmp_path, few_photos, empty_postgres):
    url = empty_postgres
    settings = Settings(library=tmp_path / "library", database=url, params=FAST_PARAMS)
    with Library.open(settings) as lib:
        assert store.schema_version(lib.db) == store.SCHEMA_VERSION
        assert _counts(lib.add([few_photos], progress=False)) == (6, 0, 0, 0, 0, 0)
        assert _counts(lib.add([few_photos], progress=False)) == (0, 0, 0, 6, 0, 0)
        report = lib.build_index(progress=False)
        assert (report.n_photos, report.pairs_computed) == (6, 15)
        assert len(lib.similar(lib.photos()[0].id)) == 5
        assert sum(len(c.members) for c in lib.clusters()) == 6
        assert lib.render(lib.photos()[0].id, long_side=32)[:4] == b"\x89PNG"
        with store.bound(lib.db):
            store.Distance.delete().execute()
    # The sparse index on the same server: candidate lists, chunked distances, graph.
    sparse = Settings(
        library=tmp_path / "library",
        database=url,
        params=FAST_PARAMS,
        index="sparse",
        neighbours=2,
    )
    with Library.open(sparse) as lib:
        report = lib.build_index(progress=False)
        assert report.method == "sparse" and report.new_lists == 6
        assert 6 <= report.pairs_computed <= 12
        with store.bound(lib.db):
            assert store.Neighbours.select().count() == 6
        assert sum(len(c.members) for c in lib.clusters()) == 6
        again = lib.build_index(progress=False)
        assert again.pairs_computed == 0 and again.new_lists == 0


def _sparse_lists(settings: Settings, folder: Path, first: int) -> tuple[dict, int]:
    """Sparse lists after indexing the ``first`` photos, then the rest:
    {path: candidates}, and the number of stored lists the last build changed."""
    paths = sorted(folder.glob("*.jpg"))
    with Library.open(settings) as lib:
        lib.add(paths[:first], progress=False)
        lib.build_index(progress=False)
        lib.add(paths[first:], progress=False)
        report = lib.build_index(progress=False)
        with store.bound(lib.db):
            rows = (
                store.Neighbours.select(
                    store.Photo.path, store.Neighbours.candidates
                )
                .join(store.Photo)
                .tuples()
            )
            path_of = {p.id: p.path for p in lib.photos()}
            ids = np.array(sorted(path_of))

            def by_path(blob: bytes) -> list:
                pos, values = sparse_index._table([blob], ids, len(ids))
                return [
                    (path_of[int(ids[p])], float(v))
                    for p, v in zip(pos[0], values[0], strict=True)
                    if p >= 0
                ]

            lists = {path: by_path(c) for path, c in rows}
    return lists, report.changed_lists


@pytest.mark.postgres
def test_postgres_sparse_update_equals_sqlite(tmp_path, few_photos, empty_postgres):
    """Adding a photo updates stored lists in place; PostgreSQL stores what SQLite does."""
    url = empty_postgres
    common = {"params": FAST_PARAMS, "index": "sparse", "neighbours": 2}
    on_postgres, changed = _sparse_lists(
        Settings(library=tmp_path / "pg", database=url, **common), few_photos, 5
    )
    assert changed > 0  # stored lists were updated in place
    on_sqlite, _ = _sparse_lists(Settings(library=tmp_path / "lite", **common), few_photos, 5)
    assert len(on_postgres) == 6
    assert on_postgres == on_sqlite


def test_two_libraries_in_two_threads_never_cross(tmp_path):
    # Two libraries read at once from two threads, as the threads of two web servers
    # in one process would: each must only ever see its own photos.  Switching threads
    # as often as the interpreter can makes one thread's query run while the other is
    # inside its binding (with a process-wide binding this crossed within a few reads).
    import threading


    libraries = []
    for name, count in (("one", 3), ("two", 5)):
        library = Library.open(Settings(library=tmp_path / name))
        with store.bound(library.db), library.db.atomic():
            for i in range(count):
                store.Photo.create(
                    path=f"/{name}/{i}.jpg", sha256=f"{i:064d}", size=1, mtime=0.0,
                    width=4, height=3, taken_source="mtime",
                )
        libraries.append((name, count, library))
    start = threading.Barrier(len(libraries))
    seen: dict[str, set] = {}

    def read(name, count, library):
        start.wait(timeout=10)
        paths, counts = set(), set()
        for _ in range(200):
            paths.update(p.path for p in library.photos())
            counts.add(library.count_photos())
        library.close()  # this thread's connection
        seen[name] = (paths, counts)

    threads = [threading.Thread(target=read, args=entry) for entry in libraries]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    for name, count, library in libraries:
        assert seen[name] == ({f"/{name}/{i}.jpg" for i in range(count)}, {count})
        library.close()
