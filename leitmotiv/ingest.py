"""The per-file work of an ingest, run in worker processes.

A worker never touches the database: it reads one file, fits its model and returns
plain bytes and numbers, which the parent process writes to the store (the single
writer).  Workers get the featurizer as its name and parameters and rebuild it with
the plugin manager, because plugin classes need not be picklable and the worker must
use exactly the configuration the parent records.

Errors a file can cause (:class:`~leitmotiv.imaging.DecodeError`, ``OSError``,
``ValueError``) are returned as a :class:`FileFailure` rather than raised, so that the
reason survives the trip between processes intact and the batch carries on.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

#: Long side (pixels) photos are decoded at for fitting: the featurizer blurs at about
#: 1 % of the long side, so more pixels only cost decode time.
FIT_LONG_SIDE = 512

#: Long side (pixels) of the JPEG thumbnail stored with each photo.
THUMBNAIL_LONG_SIDE = 256

#: Seed of every fit, so a photo's model is reproducible.
FIT_SEED = 0


@dataclass(frozen=True)
class FileFailure:
    """A file that could not be read or modelled."""

    path: str
    reason: str


@dataclass(frozen=True)
class FileHash:
    """The identity of a file's contents, read before deciding whether to fit it."""

    path: str
    sha256: str
    size: int
    mtime: float


@dataclass(frozen=True)
class FittedFile:
    """Everything the store keeps about a photo, computed from its file.

    ``timings`` maps the stages (``hash``, ``decode``, ``thumbnail``, ``model``) to the
    seconds they took in the worker.
    """

    path: str
    sha256: str
    size: int
    mtime: float
    width: int
    height: int
    taken: Any  # datetime or None
    taken_source: str
    thumbnail: bytes
    mixture: bytes
    n_components: int
    lower_bound: float
    n_iter: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


_FEATURIZERS: dict[str, Any] = {}


#: Environment that keeps OpenMP and BLAS to one thread (worker processes set it).
SINGLE_THREAD_ENV = {
    name: "1" for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
}


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


def _featurizer(name: str, params: dict[str, Any]):
    """The featurizer ``name(**params)``, built once per worker process."""
    from leitmotiv.plugins import get_implementation

    cache_key = name + json.dumps(params, sort_keys=True)
    if cache_key not in _FEATURIZERS:
        _FEATURIZERS[cache_key] = get_implementation("featurizer", name, params)
    return _FEATURIZERS[cache_key]


def _reason(exc: BaseException) -> str:
    from leitmotiv.imaging import DecodeError

    if isinstance(exc, DecodeError):
        return exc.reason
    if isinstance(exc, OSError):
        return exc.strerror or str(exc) or type(exc).__name__
    return str(exc) or type(exc).__name__


def hash_file(path: str) -> FileHash | FileFailure:
    """Hash one file (to recognise an unchanged or moved file without decoding it)."""
    from leitmotiv.imaging import DecodeError, file_sha256, regular_file_stat

    try:
        st = regular_file_stat(path)  # a named pipe or a device is refused unopened
        return FileHash(path, file_sha256(path), st.st_size, st.st_mtime)
    except (DecodeError, OSError, ValueError) as exc:
        return FileFailure(path, _reason(exc))


def fit_file(path: str, featurizer: str, params: dict[str, Any]) -> FittedFile | FileFailure:
    """Decode one photo, make its thumbnail and fit its model.

    Parameters
    ----------
    path : str
        Absolute path of the file.
    featurizer : str
        Name of the featurizer implementation.
    params : dict
        Its parameters.

    Returns
    -------
    FittedFile or FileFailure
        The failure carries the reason in plain words; other exceptions (bugs) are
        turned into a failure naming the exception type, so one bad file or one bug
        on an odd file never stops a batch.
    """
    from leitmotiv.imaging import (
        DecodeError,
        decode,
        file_sha256,
        regular_file_stat,
        thumbnail_jpeg,
    )

    timings: dict[str, float] = {}
    try:
        t0 = time.perf_counter()
        # stat before reading: if the file changes while we read it, the recorded
        # mtime is the older one and the next run looks at it again.  A named pipe or a
        # device is refused here, unopened.
        st = regular_file_stat(path)
        digest = file_sha256(path)
        t1 = time.perf_counter()
        image = decode(path, target_long_side=FIT_LONG_SIDE)
        t2 = time.perf_counter()
        thumb = thumbnail_jpeg(image.rgb, long_side=THUMBNAIL_LONG_SIDE)
        t3 = time.perf_counter()
        mixture = _featurizer(featurizer, params).model(image.rgb, seed=FIT_SEED)
        t4 = time.perf_counter()
        blob = mixture.to_bytes()
    except (DecodeError, OSError, ValueError) as exc:
        return FileFailure(path, _reason(exc))
    except MemoryError:
        return FileFailure(path, "not enough memory to process it")
    except Exception as exc:  # a bug on an unusual file must not end the batch
        return FileFailure(path, f"internal error ({type(exc).__name__}: {exc})")
    timings.update(hash=t1 - t0, decode=t2 - t1, thumbnail=t3 - t2, model=t4 - t3)
    return FittedFile(
        path=path,
        sha256=digest,
        size=st.st_size,
        mtime=st.st_mtime,
        width=image.width,
        height=image.height,
        taken=image.taken,
        taken_source=image.taken_source,
        thumbnail=thumb,
        mixture=blob,
        n_components=mixture.n_components,
        lower_bound=float(mixture.lower_bound),
        n_iter=int(mixture.n_iter),
        seconds=t4 - t3,
        timings=timings,
    )
