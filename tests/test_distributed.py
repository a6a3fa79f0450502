"""``--dask``: fits and distance chunks on a real dask.distributed cluster.

A scheduler and a worker with two processes are started on this machine as separate
programs (``dask scheduler``, ``dask worker``), as on a cluster; the results must
equal those of the same commands run in one process.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from leitmotiv import store
from leitmotiv.config import Settings
from leitmotiv.library import Library
from leitmotiv.mixture import Mixture

distributed = pytest.importorskip("distributed")

FAST = {"featurizer": {"gmm": {"n_samples": 2000}}}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def scheduler(tmp_path_factory):
    """The address of a running scheduler with two single-threaded worker processes."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    logs = tmp_path_factory.mktemp("dask")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "distributed.cli"]
    procs = [
        subprocess.Popen(
            [
                *cli[:2],
                "distributed.cli.dask_scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--dashboard-address",
                ":0",
            ],
            stdout=open(logs / "scheduler.log", "w"),
            stderr=subprocess.STDOUT,
            env=env,
        ),
    ]
    try:
        procs.append(
            subprocess.Popen(
                [
                    *cli[:2],
                    "distributed.cli.dask_worker",
                    address,
                    "--nworkers",
                    "2",
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(logs),
                ],
                stdout=open(logs / "worker.log", "w"),
                stderr=subprocess.STDOUT,
                env=env,
            )
        )
        with distributed.Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=120)
        yield address
    finally:
        for proc in reversed(procs):
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def twelve_photos(tmp_path, photos_dir) -> Path:
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(p.name for p in photos_dir.glob("*.jpg"))[:12]:
        shutil.copy2(photos_dir / name, folder / name)
    return folder


def _models(lib: Library) -> dict[str, Mixture]:
    return {p.path: lib.mixture(p.id) for p in lib.photos()}


def _distances(lib: Library) -> dict[tuple[str, str], float]:
    path = {p.id: p.path for p in lib.photos()}
    with store.bound(lib.db):
        rows = store.Distance.select(
            store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
        ).tuples()
        return {tuple(sorted((path[a], path[b]))): v for a, b, v in rows}


def _clusters(lib: Library) -> list[list[str]]:
    return sorted(sorted(m.path for m in c.members) for c in lib.clusters())


def test_dense_index_on_dask_equals_one_process(scheduler, twelve_photos, tmp_path):
    with Library.open(Settings(library=tmp_path / "one", params=FAST)) as lib:
        lib.add([twelve_photos], progress=False)
        lib.build_index(progress=False)
        models, distances, clusters = _models(lib), _distances(lib), _clusters(lib)
    with Library.open(Settings(library=tmp_path / "dask", params=FAST)) as lib:
        report = lib.add([twelve_photos], progress=False, dask=scheduler)
        assert report.added == 12 and report.failed == 0
        index = lib.build_index(progress=False, dask=scheduler)
        assert index.method == "dense" and index.pairs_computed == 66
        for path, model in _models(lib).items():
            np.testing.assert_allclose(model.means, models[path].means, rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(model.weights, models[path].weights, rtol=1e-9)
        got = _distances(lib)
        assert got.keys() == distances.keys()
        for pair, value in got.items():
            assert value == pytest.approx(distances[pair], rel=1e-9, abs=1e-12)
        assert _clusters(lib) == clusters


def test_sparse_index_on_dask_equals_one_process(scheduler, twelve_photos, tmp_path):
    sparse = {"index": "sparse", "neighbours": 4, "params": FAST}
    with Library.open(Settings(library=tmp_path / "one", **sparse)) as lib:
        lib.add([twelve_photos], progress=False)
    shutil.copytree(tmp_path / "one", tmp_path / "dask")
    with Library.open(Settings(library=tmp_path / "one", **sparse)) as lib:
        lib.build_index(progress=False)
        distances, clusters = _distances(lib), _clusters(lib)
    with Library.open(Settings(library=tmp_path / "dask", **sparse)) as lib:
        index = lib.build_index(progress=False, dask=scheduler)
        assert index.method == "sparse" and index.pairs_computed == len(distances)
        assert _distances(lib) == distances  # the same per-row computations, bit for bit
        assert _clusters(lib) == clusters


@pytest.mark.postgres
def test_dask_workers_share_a_postgresql_store(scheduler, twelve_photos, tmp_path, empty_postgres):
    url = empty_postgres
    sparse = {"index": "sparse", "neighbours": 4, "params": FAST}
    with Library.open(Settings(library=tmp_path / "one", **sparse)) as lib:
        lib.add([twelve_photos], progress=False)
        lib.build_index(progress=False)
        distances, clusters = _distances(lib), _clusters(lib)
    with Library.open(Settings(library=tmp_path / "pg", database=url, **sparse)) as lib:
        assert lib.add([twelve_photos], progress=False, dask=scheduler).added == 12
        index = lib.build_index(progress=False, dask=scheduler)
        assert index.method == "sparse" and index.pairs_computed == len(distances)
        got = _distances(lib)
        assert got.keys() == distances.keys()
        for pair, value in got.items():
            assert value == pytest.approx(distances[pair], rel=1e-9, abs=1e-12)
        assert _clusters(lib) == clusters


def test_cli_build_index_with_a_local_cluster(twelve_photos, tmp_path):
    env = {**os.environ, "LEITMOTIV_LIBRARY": str(tmp_path / "lib")}
    base = [sys.executable, "-m", "leitmotiv"]
    run = subprocess.run(
        [*base, "add-directory", str(twelve_photos), "--dask", "local", "-j", "2", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["added"] == 12
    run = subprocess.run(
        [
            *base,
            "build-index",
            "--dask",
            "local",
            "-j",
            "2",
            "--index",
            "sparse",
            "--neighbours",
            "5",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["method"] == "sparse" and report["new_lists"] == 12
    assert 12 * 5 // 2 <= report["pairs_computed"] <= 12 * 5


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path):
    env = {**os.environ, "LEITMOTIV_LIBRARY": str(tmp_path / "lib")}
    start = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "leitmotiv",
            "build-index",
            "--dask",
            f"tcp://127.0.0.1:{_free_port()}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert run.returncode == 1
    assert "cannot reach the Dask scheduler at tcp://127.0.0.1:" in run.stderr
    assert "Traceback" not in run.stderr
    assert time.monotonic() - start < 120
