"""Where per-item work runs: one :class:`Workers` protocol, two implementations.

:class:`ProcessWorkers` is this machine's process pool; :class:`leitmotiv.distributed.DaskWorkers`
runs the same tasks on a Dask cluster.  Callers (ingest's fits, the index's chunks of
pairs) hand either one a picklable function and its tasks and read the results as they
complete; nothing here knows what a task is.  A task lost with its worker is either an
error or, when the caller says how (``lost``), a plain value the caller chose, so one
bad photo never stops a batch.

Also here: how many workers ``jobs`` means, the single-thread environment every worker
process runs in, whether to show progress bars, and the peak memory a report quotes.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import resource
import sys
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Protocol

__all__ = [
    "SINGLE_THREAD_ENV",
    "LostTask",
    "ProcessWorkers",
    "Workers",
    "peak_memory_mib",
    "resolve_jobs",
    "show_progress",
    "single_threaded",
]

#: Environment that keeps OpenMP and BLAS to one thread (worker processes set it).
SINGLE_THREAD_ENV = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}

#: ``lost(task, reason)``: the value yielded for a task whose worker died.
LostTask = Callable[[tuple[Any, ...], str], Any]


def single_threaded() -> None:
    """Worker initializer: one thread per worker for OpenMP and BLAS.

    The pool already runs one worker per core; threads inside each worker would only
    compete for the same cores (measured: about twice slower).  The variables cover
    libraries loaded later; a forkserver worker has already imported NumPy and SciPy
    (it imports the main module), whose BLAS read them at load, so their thread pools
    are limited now as well (without this, 12 MP ingest ran at 6 photos/s instead of 19).
    """
    from threadpoolctl import threadpool_limits

    os.environ.update(SINGLE_THREAD_ENV)
    threadpool_limits(limits=1)


def resolve_jobs(jobs: int) -> int:
    """Worker processes for ``jobs`` (0 means one per available core)."""
    if jobs and jobs > 0:
        return jobs
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


def peak_memory_mib() -> float:
    """Peak resident memory of this process so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def show_progress(progress: bool | None) -> bool:
    """Whether to draw progress bars: as asked, or (None) when standard error is a terminal."""
    return sys.stderr.isatty() if progress is None else bool(progress)


class Workers(Protocol):
    """Something that runs ``fn(*task)`` for many tasks and yields the results."""

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[tuple[Any, ...]],
        desc: str,
        progress: bool,
        unit: str = "file",
        weight: Callable[[tuple[Any, ...]], int] | None = None,
        lost: LostTask | None = None,
    ) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task, in completion order.

        Parameters
        ----------
        fn : callable
            A module-level function (it is pickled by name).
        tasks : sequence of tuple
            Its arguments, one tuple per task.
        desc, unit : str
            Label and unit of the progress bar.
        progress : bool
            Draw a progress bar on standard error.
        weight : callable, optional
            A task's share of the progress bar (default 1 each).
        lost : callable, optional
            ``lost(task, reason)`` is yielded for a task whose worker died or failed;
            without it the error propagates.
        """
        ...


class ProcessWorkers:
    """This machine's process pool, created on first use (or none at all with one job).

    Use it as a context manager: leaving it shuts the pool down.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = resolve_jobs(jobs)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessWorkers:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)

    def run(
        self,
        fn: Callable[..., Any],
        tasks: Sequence[tuple[Any, ...]],
        desc: str,
        progress: bool,
        unit: str = "file",
        weight: Callable[[tuple[Any, ...]], int] | None = None,
        lost: LostTask | None = None,
    ) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task, in completion order (see :class:`Workers`).

        If a worker process dies (e.g. killed for lack of memory) the tasks it took
        down yield ``lost(task, reason)`` and a fresh pool takes the rest.
        """
        if not tasks:
            return
        from tqdm import tqdm

        weight = weight or (lambda task: 1)
        total = sum(weight(task) for task in tasks)
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
            if self.jobs == 1 or len(tasks) == 1:
                for task in tasks:
                    yield fn(*task)
                    bar.update(weight(task))
                return
            pending = list(reversed(tasks))
            running: dict[Future, tuple[Any, ...]] = {}
            # Keep a bounded number of tasks queued, so results are written as they
            # arrive and an interrupted run has little in flight.
            limit = 4 * self.jobs
            while pending or running:
                pool = self._ensure_pool()
                while pending and len(running) < limit:
                    task = pending.pop()
                    running[pool.submit(fn, *task)] = task
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    task = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        self._pool = None  # the next round starts a fresh pool
                        if lost is None:
                            raise
                        result = lost(
                            task, "the worker process died while reading it (out of memory?)"
                        )
                    yield result
                    bar.update(weight(task))

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Not "fork": the parent may hold locks of BLAS/OpenMP/tqdm threads, and a
            # forked child inheriting a held lock hangs for ever.
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=mp.get_context(method),
                initializer=single_threaded,
            )
        return self._pool
