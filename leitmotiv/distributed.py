"""Running fits and distance chunks on a Dask cluster (``--dask``).

The work units are the ones a single machine runs: one photo's fit
(:func:`leitmotiv.ingest.fit_file`) and one chunk of pairs
(:mod:`leitmotiv.pair_chunks`).  Dask schedules them; nothing here schedules work.

- A fit reads the photo file on the worker (the paths must be valid there, e.g. a shared
  mount) and returns the model to the client, which writes it to the store, as in a
  local run.
- A chunk task opens the library's store on the worker, reads the models of its photos,
  computes the distances and writes them in one transaction.  With several machines the
  store must be a server database (PostgreSQL) that every worker reaches by the same
  URL; with a local cluster the default SQLite file works (WAL, one writer at a time).

``address`` is a scheduler address (``tcp://host:8786``) or ``"local"`` for a
:class:`distributed.LocalCluster` of one single-threaded worker process per core.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from leitmotiv import pair_chunks, store
from leitmotiv.workers import SINGLE_THREAD_ENV, LostTask

__all__ = ["DaskWorkers", "compute_chunk_remote", "dask_client"]


class DaskUnavailable(RuntimeError):
    """Raised when ``--dask`` is asked for but dask.distributed is not installed."""


@contextlib.contextmanager
def dask_client(address: str, jobs: int) -> Iterator[Any]:
    """A connected :class:`distributed.Client` for ``address``, closed afterwards.

    Parameters
    ----------
    address : str
        ``"local"`` or a scheduler address.
    jobs : int
        Worker processes of a local cluster.
    """
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise DaskUnavailable(
            "--dask needs dask.distributed: pip install 'leitmotiv[dask]'"
        ) from None
    if address == "local":
        # One thread per worker process: the kernels are single-threaded per task and
        # the processes use the cores.
        with (
            LocalCluster(
                n_workers=jobs,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                env=SINGLE_THREAD_ENV,  # one thread each, as the local pool's
            ) as cluster,
            Client(cluster) as client,
        ):
            yield client
    else:
        try:
            client = Client(address, timeout="30s")
        except OSError as exc:
            raise OSError(f"cannot reach the Dask scheduler at {address}: {exc}") from None
        with client:
            yield client


class DaskWorkers:
    """Runs tasks on a Dask cluster: the :class:`~leitmotiv.workers.Workers` protocol."""

    def __init__(self, client: Any) -> None:
        self.client = client

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

        With ``lost``, a task that failed on the cluster (e.g. its worker died) yields
        ``lost(task, reason)``, so one photo never stops a batch; otherwise the error
        propagates.
        """
        from distributed import as_completed
        from tqdm import tqdm

        if not tasks:
            return
        weight = weight or (lambda task: 1)
        futures = {self.client.submit(fn, *task, pure=False): task for task in tasks}
        total = sum(weight(t) for t in tasks)
        with tqdm(total=total, desc=desc, unit=unit, disable=not progress) as bar:
            for future in as_completed(futures):
                task = futures.pop(future)
                if future.status == "error" and lost is not None:
                    yield lost(task, f"the Dask task failed: {future.exception()}")
                else:
                    yield future.result()
                future.release()
                bar.update(weight(task))


@functools.cache
def _worker_database(url: str | None, folder: str):
    """The store of a library, opened once per worker process."""
    return store.connect(url, Path(folder))


def compute_chunk_remote(
    url: str | None,
    folder: str,
    featurizer_id: int,
    divergence_id: int,
    divergence: tuple[str, dict[str, Any]],
    pairs: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Compute and store one chunk of pairs on a worker; the pairs and their values.

    Parameters
    ----------
    url, folder : str
        The library's database URL (None: the SQLite file in ``folder``) and folder.
    featurizer_id, divergence_id : int
        Store keys of the models and of the distances.
    divergence : (name, params)
        The divergence implementation, built on the worker by its plugin manager.
    pairs : ndarray, shape (m, 2)
    """
    from leitmotiv.plugins import get_implementation

    db = _worker_database(url, folder)
    impl = get_implementation("divergence", divergence[0], divergence[1])
    from leitmotiv.mixture import Mixture

    blobs = store.model_blobs(db, featurizer_id, np.unique(pairs).tolist())
    models = {photo_id: Mixture.from_bytes(blob) for photo_id, blob in blobs.items()}
    done, values = pair_chunks.compute_chunk(pairs, models, impl, n_jobs=1)
    store.save_distances(db, done, values, featurizer_id, divergence_id)
    return done, values
