"""Adding photos to a library: what to add, refit or move, and the per-file work.

:func:`add` walks the given files and folders and brings the store up to date,
incrementally:

- a file that is not a photo by its extension nor by its first bytes is *ignored* (not
  a failure), and so are hidden files and folders (names starting with a dot) and the
  library folder itself; special files (named pipes, devices) named like photos fail
  (see :mod:`leitmotiv.folder_walk`);
- a file with the same path, size and modification time as before is *unchanged*; if
  only the time differs, its content hash decides;
- a new path whose content hash is that of a known photo whose file is gone is a
  *moved* photo: its path is updated and its model kept;
- an edited file (new content at a known path) is *updated*: re-read and refitted, its
  old models and distances dropped;
- a photo lacking a model for the current featurizer configuration is refitted (also
  counted as *updated*, :func:`refit_missing`); models of other configurations are kept;
- anything that cannot be read becomes a :class:`~leitmotiv.queries.Failure` (path,
  reason, time) and the batch carries on; a later success at that path removes the
  failure.

Photos whose files vanished stay in the library, with their thumbnail and model, until
the file reappears somewhere (then it is recognised as moved).  There is no "missing"
flag: a file may be on a disk that is not mounted right now.

The per-file work (:func:`hash_file`, :func:`fit_file`) runs in worker processes
(:mod:`leitmotiv.workers`).  A worker never touches the database: it reads one file,
fits its model and returns plain bytes and numbers, which this process writes to the
store (the single writer), each photo in its own transaction as its result arrives, so
a run killed at any moment loses at most the photos in flight and the next run picks
up where it stopped.  Workers get the featurizer as its name and parameters and
rebuild it with the plugin manager, because plugin classes need not be picklable and
the worker must use exactly the configuration the parent records.

Errors a file can cause (:class:`~leitmotiv.imaging.DecodeError`, ``OSError``,
``ValueError``) are returned as a :class:`FileFailure` rather than raised, so that the
reason survives the trip between processes intact and the batch carries on.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from leitmotiv import store, summaries
from leitmotiv.context import Context
from leitmotiv.queries import Failure
from leitmotiv.workers import SINGLE_THREAD_ENV, Workers, single_threaded

if TYPE_CHECKING:
    from leitmotiv.folder_walk import Skipped

__all__ = [
    "FIT_LONG_SIDE",
    "FIT_SEED",
    "SINGLE_THREAD_ENV",
    "THUMBNAIL_LONG_SIDE",
    "FileFailure",
    "FileHash",
    "FittedFile",
    "IngestReport",
    "add",
    "fit_file",
    "hash_file",
    "record_failure",
    "refit_missing",
    "single_threaded",
]

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
    sharpness: float
    mixture: bytes
    n_components: int
    lower_bound: float
    n_iter: int
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


_FEATURIZERS: dict[str, Any] = {}


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
    from leitmotiv.sharpness import laplacian_variance

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
        sharpness = laplacian_variance(thumb)
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
        sharpness=sharpness,
        mixture=blob,
        n_components=mixture.n_components,
        lower_bound=float(mixture.lower_bound),
        n_iter=int(mixture.n_iter),
        seconds=t4 - t3,
        timings=timings,
    )


# -- what to add, refit or move (this process, the single writer) ---------------------


@dataclass
class IngestReport:
    """What :meth:`leitmotiv.library.Library.add` did.

    ``failures`` lists the failures of this run; ``timings`` sums the seconds the
    workers spent per stage (hash, decode, thumbnail, model) over the fitted files;
    ``ignored_files`` gives the path and reason of each of the ``ignored``.
    """

    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    ignored: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    ignored_files: list[Skipped] = field(default_factory=list)


def _lost(task: tuple[Any, ...], reason: str) -> FileFailure:
    """The failure of a file whose worker died: every task's first element is its path."""
    return FileFailure(task[0], reason)


def _split_taken(taken: dt.datetime | None) -> tuple[dt.datetime | None, int | None]:
    """(naive wall-clock time, UTC offset in seconds or None) of a capture time."""
    if taken is None:
        return None, None
    offset = taken.utcoffset()
    return taken.replace(tzinfo=None), None if offset is None else int(offset.total_seconds())


def _collect(
    ctx: Context, paths: Iterable[str | os.PathLike[str]], recursive: bool, report: IngestReport
) -> list[str]:
    """The files to decode under ``paths`` (see :mod:`leitmotiv.folder_walk`); the
    failed entries are recorded, the ignored ones counted in ``report``."""
    from leitmotiv.folder_walk import collect

    walk = collect(paths, recursive, exclude=ctx.folder)
    for skipped in walk.failed:
        record_failure(ctx, skipped.path, skipped.reason, report)
    report.ignored += len(walk.ignored)
    report.ignored_files.extend(walk.ignored)
    return walk.files


def record_failure(ctx: Context, path: str, reason: str, report: IngestReport | None) -> None:
    """Record a failure (replacing an older one of the same path) in its own transaction,
    and count it in ``report``."""
    now = store.utcnow()
    with store.bound(ctx.db), ctx.db.atomic():
        store.Failure.insert(path=path, reason=reason, time=now).on_conflict(
            conflict_target=[store.Failure.path],
            update={store.Failure.reason: reason, store.Failure.time: now},
        ).execute()
    if report is not None:
        report.failed += 1
        report.failures.append(Failure(path, reason, now))


def _write_fitted(ctx: Context, result: FittedFile, featurizer_id: int) -> bool:
    """Store one fitted photo in one transaction; True if the photo is new."""
    taken, offset = _split_taken(result.taken)
    fields = {
        store.Photo.sha256: result.sha256,
        store.Photo.size: result.size,
        store.Photo.mtime: result.mtime,
        store.Photo.width: result.width,
        store.Photo.height: result.height,
        store.Photo.taken: taken,
        store.Photo.taken_offset: offset,
        store.Photo.taken_source: result.taken_source,
        store.Photo.thumbnail: result.thumbnail,
        store.Photo.sharpness: result.sharpness,
    }
    lower_bound = result.lower_bound if np.isfinite(result.lower_bound) else None
    with store.bound(ctx.db), ctx.db.atomic():
        photo_id, old_sha256 = store.claim_photo(result.path, fields)
        is_new = old_sha256 is None
        if not is_new:
            if old_sha256 != result.sha256:
                # New content: every model and distance of the old content is stale.
                store.Model.delete().where(store.Model.photo == photo_id).execute()
                store.Distance.delete().where(
                    (store.Distance.photo_a == photo_id) | (store.Distance.photo_b == photo_id)
                ).execute()
                # Its candidate lists too: it is searched again as a new photo.
                store.Neighbours.delete().where(store.Neighbours.photo == photo_id).execute()
            store.Photo.update(fields).where(store.Photo.id == photo_id).execute()
            summaries.refresh_listings(photo_id)  # its capture time may have changed
        store.Model.delete().where(
            (store.Model.photo == photo_id) & (store.Model.featurizer == featurizer_id)
        ).execute()
        store.Model.insert(
            photo=photo_id,
            featurizer=featurizer_id,
            mixture=result.mixture,
            n_components=result.n_components,
            lower_bound=lower_bound,
            n_iter=result.n_iter,
            seconds=result.seconds,
        ).execute()
        store.Failure.delete().where(store.Failure.path == result.path).execute()
    return is_new


def _move(ctx: Context, photo_id: int, found: FileHash) -> None:
    with store.bound(ctx.db), ctx.db.atomic():
        store.Photo.update(path=found.path, size=found.size, mtime=found.mtime).where(
            store.Photo.id == photo_id
        ).execute()
        store.Failure.delete().where(store.Failure.path == found.path).execute()
        summaries.refresh_listings(photo_id)  # the clusters' listings show its path


def _fit(
    ctx: Context,
    todo: list[tuple[str, str]],
    workers: Workers,
    report: IngestReport,
    progress: bool,
    featurizer_id: int,
) -> None:
    """Fit ``(path, outcome)`` items; count each success under its outcome."""
    outcome = dict(todo)
    name, params = ctx.featurizer_spec()
    tasks = [(path, name, params) for path, _ in todo]
    for result in workers.run(fit_file, tasks, "fitting", progress, lost=_lost):
        if isinstance(result, FileFailure):
            record_failure(ctx, result.path, result.reason, report)
            continue
        _write_fitted(ctx, result, featurizer_id)
        for stage, seconds in result.timings.items():
            report.timings[stage] = report.timings.get(stage, 0.0) + seconds
        kind = outcome[result.path]
        if kind != "moved":  # a move was counted when its path was updated
            setattr(report, kind, getattr(report, kind) + 1)


def add(
    ctx: Context,
    paths: Iterable[str | os.PathLike[str]],
    recursive: bool,
    open_workers: Callable[[], contextlib.AbstractContextManager[Workers]],
    progress: bool,
) -> IngestReport:
    """Add photos (files, or folders to walk) to the library, incrementally.

    Parameters
    ----------
    ctx : Context
    paths : iterable of path-like
        Files and folders.
    recursive : bool
        Walk sub-folders too (symbolic links are followed, each real folder once).
    open_workers : callable
        Opens the workers that hash and fit (called once, after the walk).
    progress : bool
        Show progress bars on standard error.

    Returns
    -------
    IngestReport
        Counts of what happened to each file; see the module docstring.
    """
    start = time.perf_counter()
    report = IngestReport()
    files = _collect(ctx, paths, recursive, report)
    featurizer_id = ctx.key_ids(create=True)[0]
    with store.bound(ctx.db):
        known = {
            row.path: row
            for row in store.Photo.select(
                store.Photo.id,
                store.Photo.path,
                store.Photo.size,
                store.Photo.mtime,
                store.Photo.sha256,
            )
        }
        modelled = {
            photo_id
            for (photo_id,) in store.Model.select(store.Model.photo)
            .where(store.Model.featurizer == featurizer_id)
            .tuples()
        }
    to_hash: list[str] = []
    to_fit: list[tuple[str, str]] = []
    new: list[str] = []
    for path in files:
        row = known.get(path)
        if row is None:
            new.append(path)
            continue
        try:
            st = os.stat(path)
        except OSError:
            to_fit.append((path, "updated"))  # the worker reports why it is unreadable
            continue
        if st.st_size == row.size and st.st_mtime == row.mtime:
            if row.id in modelled:
                report.unchanged += 1
            else:
                to_fit.append((path, "updated"))
        else:
            to_hash.append(path)
    # Moves can only come from photos whose file is gone; without any, new files
    # need no hashing before they are fitted.
    orphans: dict[str, list[Any]] = {}
    if new:
        for row in known.values():
            if not os.path.exists(row.path):
                orphans.setdefault(row.sha256, []).append(row)
    if orphans:
        to_hash.extend(new)
    else:
        to_fit.extend((path, "added") for path in new)

    with open_workers() as workers:
        tasks = [(path,) for path in to_hash]
        for found in workers.run(hash_file, tasks, "checking", progress, lost=_lost):
            if isinstance(found, FileFailure):
                record_failure(ctx, found.path, found.reason, report)
                continue
            row = known.get(found.path)
            if row is not None and found.sha256 == row.sha256:
                with store.bound(ctx.db), ctx.db.atomic():  # touched, not edited
                    store.Photo.update(size=found.size, mtime=found.mtime).where(
                        store.Photo.id == row.id
                    ).execute()
                if row.id in modelled:
                    report.unchanged += 1
                else:
                    to_fit.append((found.path, "updated"))
            elif row is not None:
                to_fit.append((found.path, "updated"))
            elif orphans.get(found.sha256):
                orphan = orphans[found.sha256].pop()
                _move(ctx, orphan.id, found)
                report.moved += 1
                if orphan.id not in modelled:
                    to_fit.append((found.path, "moved"))
            else:
                to_fit.append((found.path, "added"))
        _fit(ctx, to_fit, workers, report, progress, featurizer_id)
    report.seconds = time.perf_counter() - start
    return report


def refit_missing(ctx: Context, workers: Workers, progress: bool) -> IngestReport:
    """Fit the photos that lack a model for the current featurizer (files present)."""
    report = IngestReport()
    featurizer_id = ctx.key_ids(create=True)[0]
    with store.bound(ctx.db):
        modelled = store.Model.select(store.Model.photo).where(
            store.Model.featurizer == featurizer_id
        )
        paths = [
            path
            for (path,) in store.Photo.select(store.Photo.path)
            .where(store.Photo.id.not_in(modelled))
            .tuples()
        ]
    todo = [(path, "updated") for path in paths if os.path.exists(path)]
    _fit(ctx, todo, workers, report, progress, featurizer_id)
    return report
