"""Ingest workers run their numerical libraries on one thread each.

The pool runs one worker per core; a worker whose BLAS also starts a thread per core
makes them compete (12 MP ingest fell from 19 to 6 photos/s).  A forkserver worker has
imported NumPy and SciPy before the pool's initializer runs, which is what
``_loaded_then_initialized`` reproduces.
"""

from __future__ import annotations

import multiprocessing as mp
from concurrent.futures import ProcessPoolExecutor

import pytest

from leitmotiv import ingest


def _loaded_then_initialized() -> None:
    import numpy  # noqa: F401 - loads OpenBLAS with its default thread count
    import scipy.linalg  # noqa: F401

    ingest.single_threaded()


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


@pytest.mark.skipif(
    "forkserver" not in mp.get_all_start_methods(), reason="needs the forkserver start method"
)
def test_workers_blas_is_single_threaded_even_if_loaded_first():
    with ProcessPoolExecutor(
        1, mp_context=mp.get_context("forkserver"), initializer=_loaded_then_initialized
    ) as pool:
        threads = pool.submit(_blas_threads).result()
    assert threads, "no BLAS library found in the worker"
    assert all(n == 1 for n in threads), threads
