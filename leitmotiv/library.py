"""A photo library: adding photos, building the similarity index, and queries.

:class:`Library` is what the command line and the web view use.  It owns the
database of one library folder (see :mod:`leitmotiv.store`) and the three configured
implementations (featurizer, divergence, clusterer).

Adding photos
-------------
:meth:`Library.add` walks the given files and folders and brings the store up to date,
incrementally:

- a file whose extension is not an image type is *ignored* (not a failure), and so are
  hidden files and folders (names starting with a dot) and the library folder itself;
- a file with the same path, size and modification time as before is *unchanged*; if
  only the time differs, its content hash decides;
- a new path whose content hash is that of a known photo whose file is gone is a
  *moved* photo: its path is updated and its model kept;
- an edited file (new content at a known path) is *updated*: re-read and refitted, its
  old models and distances dropped;
- a photo lacking a model for the current featurizer configuration is refitted (also
  counted as *updated*); models of other configurations are kept;
- anything that cannot be read becomes a :class:`Failure` (path, reason, time) and the
  batch carries on; a later success at that path removes the failure.

Decoding and fitting run in worker processes (:mod:`leitmotiv.ingest`); this process
is the only writer and stores each photo in its own transaction as its result
arrives, so a run killed at any moment loses at most the photos in flight and the
next run picks up where it stopped.

Photos whose files vanished stay in the library, with their thumbnail and model, until
the file reappears somewhere (then it is recognised as moved).  There is no "missing"
flag: a file may be on a disk that is not mounted right now.

Building the index
------------------
:meth:`Library.build_index` computes only the distances not stored yet for the current
(featurizer, divergence) configuration, block by block (each block stored in its own
transaction), then clusters and stores the new clustering as the current one in one
transaction, so readers see the old clustering until the new one is complete.

The index is *dense* (every pair; clustering on the full matrix) up to
``settings.dense_limit`` photos and *sparse* above (or as ``settings.index`` says): each
photo's candidate lists are kept up to date in the store (:mod:`leitmotiv.sparse_index`),
only each photo and its ``settings.neighbours`` candidates get a distance, computed in
chunks (:mod:`leitmotiv.pair_jobs`), and the clusterer works on that graph
(:meth:`~leitmotiv.implementation.Clusterer.cluster_graph`); no N x N array exists on
that path.  With ``dask=...`` the fits and the chunks of pairs run on a Dask cluster
(:mod:`leitmotiv.distributed`), writing to the same store.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import hashlib
import io
import itertools
import logging
import multiprocessing as mp
import os
import resource
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

import numpy as np
import peewee as pw

from leitmotiv import ingest, pair_jobs, store
from leitmotiv.config import Settings
from leitmotiv.implementation import SparseIndexUnavailable
from leitmotiv.motifs import Motif
from leitmotiv.sparse_index import positions_in

log = logging.getLogger(__name__)


#: Query rows per block of the distance computation; each block is one transaction.
DISTANCE_BLOCK = 64


@dataclasses.dataclass(frozen=True)
class Photo:
    """A photo of the library.

    Attributes
    ----------
    id : int
    path : str
        Absolute path of the file (as last seen).
    taken : datetime or None
        Capture time (timezone-aware when the EXIF data gave an offset).
    taken_source : str or None
        ``"exif"`` or ``"mtime"``.
    width, height : int
        Size of the full upright image, in pixels.
    components : int or None
        Components of its model for the current featurizer (None if not fitted).
    sha256 : str
        Hex digest of the file's content.
    size : int
        File size in bytes.
    """

    id: int
    path: str
    taken: dt.datetime | None
    taken_source: str | None
    width: int
    height: int
    components: int | None
    sha256: str
    size: int


@dataclasses.dataclass(frozen=True)
class Cluster:
    """A cluster of the current clustering: its exemplar and its members (exemplar first)."""

    id: int
    exemplar: Photo
    members: list[Photo]


@dataclasses.dataclass(frozen=True)
class Failure:
    """A file that could not be added: its path, the reason, and when (UTC)."""

    path: str
    reason: str
    time: dt.datetime


@dataclasses.dataclass
class IngestReport:
    """What :meth:`Library.add` did.

    ``failures`` lists the failures of this run; ``timings`` sums the seconds the
    workers spent per stage (hash, decode, thumbnail, model) over the fitted files.
    """

    added: int = 0
    updated: int = 0
    moved: int = 0
    unchanged: int = 0
    ignored: int = 0
    failed: int = 0
    seconds: float = 0.0
    failures: list[Failure] = dataclasses.field(default_factory=list)
    timings: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class IndexReport:
    """What :meth:`Library.build_index` did: new pairs computed, photos indexed,
    clusters found, wall time; ``refit`` photos were fitted first and ``failed`` of
    those could not be read; ``method`` is ``"dense"`` or ``"sparse"``; for a sparse
    index ``new_lists`` photos got candidate lists and ``changed_lists`` older lists
    changed; ``clustering`` is ``"full"``, ``"extended"`` (added photos placed in the
    kept clusters, see :mod:`leitmotiv.cluster_extension`) or ``"kept"``;
    ``candidate_seconds``, ``distance_seconds`` and ``cluster_seconds`` split
    the time; ``peak_memory_mib`` is the process's peak resident memory so far."""

    pairs_computed: int = 0
    n_photos: int = 0
    n_clusters: int = 0
    seconds: float = 0.0
    refit: int = 0
    failed: int = 0
    method: str = "dense"
    new_lists: int = 0
    changed_lists: int = 0
    clustering: str = "kept"
    candidate_seconds: float = 0.0
    distance_seconds: float = 0.0
    cluster_seconds: float = 0.0
    peak_memory_mib: float = 0.0


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


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else bool(progress)


class _Workers:
    """A process pool created on first use (or none at all with one job)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = resolve_jobs(jobs)
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> _Workers:
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
    ) -> Iterator[Any]:
        """Yield ``fn(*task)`` for every task, in completion order.

        The first element of each task is its path: if a worker process dies (e.g.
        killed for lack of memory) the tasks it took down yield a
        :class:`~leitmotiv.ingest.FileFailure` and a fresh pool takes the rest.
        """
        if not tasks:
            return
        from tqdm import tqdm

        with tqdm(total=len(tasks), desc=desc, unit="file", disable=not progress) as bar:
            if self.jobs == 1 or len(tasks) == 1:
                for task in tasks:
                    yield fn(*task)
                    bar.update()
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
                        result = ingest.FileFailure(
                            task[0], "the worker process died while reading it (out of memory?)"
                        )
                    yield result
                    bar.update()

    def _ensure_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # Not "fork": the parent may hold locks of BLAS/OpenMP/tqdm threads, and a
            # forked child inheriting a held lock hangs for ever.
            method = "forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn"
            self._pool = ProcessPoolExecutor(
                max_workers=self.jobs,
                mp_context=mp.get_context(method),
                initializer=ingest.single_threaded,
            )
        return self._pool


def _split_taken(taken: dt.datetime | None) -> tuple[dt.datetime | None, int | None]:
    """(naive wall-clock time, UTC offset in seconds or None) of a capture time."""
    if taken is None:
        return None, None
    offset = taken.utcoffset()
    return taken.replace(tzinfo=None), None if offset is None else int(offset.total_seconds())


def _join_taken(taken: Any, offset: int | None) -> dt.datetime | None:
    if taken is None:
        return None
    if isinstance(taken, str):  # SQLite hands back text it cannot parse as-is
        taken = dt.datetime.fromisoformat(taken)
    if offset is not None:
        taken = taken.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    return taken


def _wall_clock(bound: dt.date | dt.datetime | None, end: bool = False) -> dt.datetime | None:
    """A date range bound as the naive wall-clock datetime the motif analysis compares.

    A plain date means its first moment, or its last one for the end of a range, so
    ``until=date(2020, 12, 31)`` keeps photos of that evening.
    """
    if bound is None:
        return None
    if isinstance(bound, dt.datetime):
        return bound.replace(tzinfo=None)
    if end:
        return dt.datetime.combine(bound, dt.time.max)
    return dt.datetime.combine(bound, dt.time.min)


def parse_date_bound(text: str, end: bool = False) -> dt.datetime:
    """The start (or, with ``end``, the last moment) of a date given as text.

    Accepts ``YYYY``, ``YYYY-MM``, ``YYYY-MM-DD`` and ISO datetimes, so that
    ``--since 2018 --until 2020`` means the three whole years 2018 to 2020.

    Raises
    ------
    ValueError
        If the text is none of these.
    """
    text = text.strip()
    try:
        if len(text) == 4 and text.isdigit():
            first = dt.datetime(int(text), 1, 1)
            following = first.replace(year=first.year + 1)
        elif len(text) == 7 and text[4] == "-":
            first = dt.datetime.strptime(text, "%Y-%m")
            following = (first + dt.timedelta(days=32)).replace(day=1)
        elif len(text) == 10:
            first = dt.datetime.strptime(text, "%Y-%m-%d")
            following = first + dt.timedelta(days=1)
        else:
            return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date: use YYYY, YYYY-MM, YYYY-MM-DD or an ISO datetime"
        ) from None
    return following - dt.timedelta(microseconds=1) if end else first


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


class Library:
    """One photo library: a folder, its database and the configured implementations.

    Use :meth:`open`; call :meth:`close` when done (or use it as a context manager).

    Attributes
    ----------
    folder : Path
        The library folder (database, ``cache/`` of rendered images).
    settings : Settings
    featurizer, divergence, clusterer : Implementation
        The configured implementations, built by the plugin manager.
    """

    def __init__(self, settings: Settings, db: pw.Database) -> None:
        from leitmotiv.plugins import get_implementation

        self.settings = settings
        self.folder = Path(settings.library)
        self.db = db
        self._keys: tuple[int, int, int] | None = None
        self.featurizer = get_implementation(
            "featurizer", settings.featurizer, settings.params_for("featurizer")
        )
        self.divergence = get_implementation(
            "divergence", settings.divergence, settings.params_for("divergence")
        )
        self.clusterer = get_implementation(
            "clusterer", settings.clusterer, settings.params_for("clusterer")
        )

    @classmethod
    def open(cls, settings: Settings) -> Library:
        """Open the library of ``settings``, creating its folder and database if needed.

        Raises
        ------
        OSError
            If the folder cannot be created.
        leitmotiv.plugins.UnknownImplementation, ValueError
            If the settings name an unknown implementation or parameter.
        """
        folder = Path(settings.library)
        folder.mkdir(parents=True, exist_ok=True)
        db = store.open_database(settings.database, folder)
        return cls(settings, db)

    def close(self) -> None:
        """Close the database connection of this thread."""
        if not self.db.is_closed():
            self.db.close()

    def __enter__(self) -> Library:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- keys ---------------------------------------------------------------------

    def _key_ids(self) -> tuple[int, int, int]:
        """Ids of the (featurizer, divergence, clusterer) keys, created on first use.

        They never change for this instance (the implementations are fixed), so they
        are looked up once.
        """
        if self._keys is None:
            with store.bound(self.db), self.db.atomic():
                self._keys = (
                    store.key_id(self.featurizer.key()),
                    store.key_id(self.divergence.key()),
                    store.key_id(self.clusterer.key()),
                )
        return self._keys

    def _featurizer_spec(self) -> tuple[str, dict[str, Any]]:
        return self.featurizer.name, dict(self.featurizer.params)

    # -- ingest -------------------------------------------------------------------

    def _collect(
        self, paths: Iterable[str | os.PathLike[str]], recursive: bool, report: IngestReport
    ) -> list[str]:
        """The image files under ``paths`` (absolute, unique, in walk order)."""
        from leitmotiv.imaging import is_image_name

        library_real = os.path.realpath(self.folder)
        files: dict[str, None] = {}
        visited: set[str] = set()

        def walk(folder: str) -> None:
            real = os.path.realpath(folder)
            if real in visited or real == library_real:
                return
            visited.add(real)
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError as exc:
                self._fail(folder, f"cannot list the folder ({exc.strerror or exc})", report)
                return
            for entry in entries:
                if entry.name.startswith("."):
                    report.ignored += 1
                    continue
                try:
                    is_dir = entry.is_dir()  # follows links; a link loop is caught by `visited`
                except OSError:
                    is_dir = False
                if is_dir:
                    if is_image_name(entry.name):
                        self._fail(entry.path, "is a directory, not a file", report)
                    if recursive:
                        walk(entry.path)
                elif is_image_name(entry.name):
                    files[entry.path] = None
                else:
                    report.ignored += 1

        for given in paths:
            path = os.path.abspath(os.path.expanduser(os.fspath(given)))
            if os.path.isdir(path):
                walk(path)
            elif is_image_name(path) or not os.path.lexists(path):
                files[path] = None  # a missing file becomes a failure naming it
            else:
                report.ignored += 1
        return list(files)

    def _fail(self, path: str, reason: str, report: IngestReport | None) -> None:
        """Record a failure (replacing an older one of the same path)."""
        now = store.utcnow()
        with store.bound(self.db), self.db.atomic():
            store.Failure.insert(path=path, reason=reason, time=now).on_conflict(
                conflict_target=[store.Failure.path],
                update={store.Failure.reason: reason, store.Failure.time: now},
            ).execute()
        if report is not None:
            report.failed += 1
            report.failures.append(Failure(path, reason, now))

    def _write_fitted(self, result: ingest.FittedFile, featurizer_id: int) -> bool:
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
        }
        lower_bound = result.lower_bound if np.isfinite(result.lower_bound) else None
        with store.bound(self.db), self.db.atomic():
            row = store.Photo.get_or_none(store.Photo.path == result.path)
            if row is None:
                photo_id = store.Photo.insert({store.Photo.path: result.path, **fields}).execute()
                is_new = True
            else:
                photo_id, is_new = row.id, False
                if row.sha256 != result.sha256:
                    # New content: every model and distance of the old content is stale.
                    store.Model.delete().where(store.Model.photo == photo_id).execute()
                    store.Distance.delete().where(
                        (store.Distance.photo_a == photo_id) | (store.Distance.photo_b == photo_id)
                    ).execute()
                    # Its candidate lists too: it is searched again as a new photo.
                    store.Neighbours.delete().where(store.Neighbours.photo == photo_id).execute()
                store.Photo.update(fields).where(store.Photo.id == photo_id).execute()
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

    def _move(self, photo_id: int, found: ingest.FileHash) -> None:
        with store.bound(self.db), self.db.atomic():
            store.Photo.update(path=found.path, size=found.size, mtime=found.mtime).where(
                store.Photo.id == photo_id
            ).execute()
            store.Failure.delete().where(store.Failure.path == found.path).execute()

    def _fit(
        self,
        todo: list[tuple[str, str]],
        workers: _Workers,
        report: IngestReport,
        progress: bool,
        featurizer_id: int,
    ) -> None:
        """Fit ``(path, outcome)`` items; count each success under its outcome."""
        outcome = dict(todo)
        name, params = self._featurizer_spec()
        tasks = [(path, name, params) for path, _ in todo]
        for result in workers.run(ingest.fit_file, tasks, "fitting", progress):
            if isinstance(result, ingest.FileFailure):
                self._fail(result.path, result.reason, report)
                continue
            self._write_fitted(result, featurizer_id)
            for stage, seconds in result.timings.items():
                report.timings[stage] = report.timings.get(stage, 0.0) + seconds
            kind = outcome[result.path]
            if kind != "moved":  # a move was counted when its path was updated
                setattr(report, kind, getattr(report, kind) + 1)

    def add(
        self,
        paths: Iterable[str | os.PathLike[str]],
        recursive: bool = True,
        jobs: int = 0,
        progress: bool | None = None,
        *,
        dask: str | None = None,
    ) -> IngestReport:
        """Add photos (files, or folders to walk) to the library, incrementally.

        Parameters
        ----------
        paths : iterable of path-like
            Files and folders.
        recursive : bool
            Walk sub-folders too (symbolic links are followed, each real folder once).
        jobs : int
            Worker processes; 0 means one per core.
        progress : bool or None
            Show progress bars on standard error; None shows them on a terminal only.
        dask : str, optional
            Fit on Dask: a scheduler address or ``"local"`` (see
            :mod:`leitmotiv.distributed`); the paths must be readable by the workers.

        Returns
        -------
        IngestReport
            Counts of what happened to each file; see the module docstring.

        Notes
        -----
        Workers are started with the ``forkserver`` method, which imports the main
        module again in each worker: a script calling this with more than one job
        needs the usual ``if __name__ == "__main__":`` guard.
        """
        start = time.perf_counter()
        report = IngestReport()
        show = _show_progress(progress)
        files = self._collect(paths, recursive, report)
        featurizer_id = self._key_ids()[0]
        with store.bound(self.db):
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

        with self._workers(jobs, dask) as workers:
            tasks = [(path,) for path in to_hash]
            for found in workers.run(ingest.hash_file, tasks, "checking", show):
                if isinstance(found, ingest.FileFailure):
                    self._fail(found.path, found.reason, report)
                    continue
                row = known.get(found.path)
                if row is not None and found.sha256 == row.sha256:
                    with store.bound(self.db), self.db.atomic():  # touched, not edited
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
                    self._move(orphan.id, found)
                    report.moved += 1
                    if orphan.id not in modelled:
                        to_fit.append((found.path, "moved"))
                else:
                    to_fit.append((found.path, "added"))
            self._fit(to_fit, workers, report, show, featurizer_id)
        report.seconds = time.perf_counter() - start
        return report

    def _refit_missing(self, workers: Any, progress: bool) -> IngestReport:
        """Fit the photos that lack a model for the current featurizer (files present)."""
        report = IngestReport()
        featurizer_id = self._key_ids()[0]
        with store.bound(self.db):
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
        self._fit(todo, workers, report, progress, featurizer_id)
        return report

    # -- index --------------------------------------------------------------------

    def _indexed(self, featurizer_id: int) -> tuple[np.ndarray, list[Any]]:
        """Ids (ascending) and mixtures of the photos with a current model."""
        from leitmotiv.mixture import Mixture

        with store.bound(self.db):
            query = (
                store.Model.select(store.Model.photo, store.Model.mixture)
                .where(store.Model.featurizer == featurizer_id)
                .order_by(store.Model.photo)
            )
            ids, mixtures = [], []
            for photo_id, blob in store.raw_rows(self.db, query):
                ids.append(photo_id)
                mixtures.append(Mixture.from_bytes(bytes(blob)))
        return np.asarray(ids, dtype=np.int64), mixtures

    def _stored_distances(self, ids: np.ndarray, featurizer_id: int, divergence_id: int):
        """The stored distance matrix of ``ids`` (nan where missing, 0 on the diagonal)."""
        n = len(ids)
        index = {int(pid): i for i, pid in enumerate(ids)}
        distances = np.full((n, n), np.nan)
        np.fill_diagonal(distances, 0.0)
        with store.bound(self.db):
            query = (
                store.Distance.select(
                    store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
                )
                .where(
                    (store.Distance.featurizer == featurizer_id)
                    & (store.Distance.divergence == divergence_id)
                )
                .tuples()
            )
            for a, b, value in query.iterator():
                i, j = index.get(a), index.get(b)
                if i is not None and j is not None:
                    distances[i, j] = distances[j, i] = value
        return distances

    def index_method(self, n_photos: int) -> str:
        """``"dense"`` or ``"sparse"``: how a library of ``n_photos`` is indexed."""
        if self.settings.index == "auto":
            return "dense" if n_photos <= self.settings.dense_limit else "sparse"
        return self.settings.index

    def _check_sparse(self, method: str) -> None:
        """Refuse, before any work, a sparse index that the clusterer or the divergence
        cannot serve."""
        if method != "sparse":
            return
        if not self.clusterer.clusters_graphs:
            raise SparseIndexUnavailable(self.clusterer.dense_only_reason())
        reason = self.divergence.sparse_unavailable_reason()
        if reason is not None:
            raise SparseIndexUnavailable(reason)

    @contextlib.contextmanager
    def _workers(self, jobs: int, dask: str | None) -> Iterator[Any]:
        """The process pool of this machine, or a Dask cluster's workers."""
        if dask is None:
            with _Workers(jobs) as workers:
                yield workers
        else:
            from leitmotiv.distributed import DaskWorkers, dask_client

            with dask_client(dask, resolve_jobs(jobs)) as client:
                yield DaskWorkers(client)

    def build_index(
        self,
        jobs: int = 0,
        progress: bool | None = None,
        *,
        dask: str | None = None,
        recluster: bool = False,
    ) -> IndexReport:
        """Compute the missing distances and recluster the library.

        Photos lacking a model for the current featurizer are fitted first.  Only
        pairs without a stored distance for the current (featurizer, divergence) are
        computed.  A dense index (libraries up to ``settings.dense_limit`` photos by
        default) has every pair: adding k photos to n computes k·n + k(k-1)/2 pairs.
        A sparse index has each photo's ``settings.neighbours`` candidates (see
        :mod:`leitmotiv.sparse_index`): adding photos updates the stored candidate
        lists and computes only the pairs they gained.  The clustering is redone only
        if the set of photos, a distance or the clusterer changed.  Every step commits
        as it goes, so an interrupted build resumes where it stopped.

        Parameters
        ----------
        jobs : int
            Worker processes for refits and threads for the divergence; 0 means all
            cores (with ``dask="local"``: worker processes of the local cluster).
        progress : bool or None
            Progress bars with the time left on standard error; None shows them on a
            terminal only.
        dask : str, optional
            Run the fits and the distance chunks on Dask: a scheduler address
            (``"tcp://host:8786"``) or ``"local"`` (see :mod:`leitmotiv.distributed`).
        recluster : bool
            Cluster the whole library again even if a sparse index only grew a
            little (by default, photos added since the last full clustering are
            placed in the kept clusters until the library has grown by 10 %).

        Returns
        -------
        IndexReport

        Raises
        ------
        SparseIndexUnavailable
            If the index is sparse and the clusterer needs every pairwise distance or
            the divergence has no sparse path (a ValueError).
        """
        start = time.perf_counter()
        show = _show_progress(progress)
        keys = self._key_ids()
        with store.bound(self.db):
            self._check_sparse(self.index_method(self.count_photos()))
        with self._workers(jobs, dask) as workers:
            refits = self._refit_missing(workers, show)
            report = IndexReport(refit=refits.updated, failed=refits.failed)
            ids, mixtures = self._indexed(keys[0])
            report.n_photos = len(ids)
            report.method = self.index_method(len(ids))
            self._check_sparse(report.method)
            if report.method == "dense":
                self._index_dense(ids, mixtures, keys, jobs, show, workers, dask, report)
            else:
                self._index_sparse(
                    ids, mixtures, keys, jobs, show, workers, dask, report, recluster
                )
        if report.pairs_computed:
            # Fresh statistics let the query planner pick the photo indexes for
            # `similar` rather than the low-selectivity configuration index (measured:
            # 65 ms -> 1.6 ms per query on 1,000 photos with SQLite).
            with store.bound(self.db):
                self.db.execute_sql("ANALYZE")
        report.peak_memory_mib = peak_memory_mib()
        report.seconds = time.perf_counter() - start
        return report

    def _remote_chunks(
        self, chunks: list[np.ndarray], workers: Any, show: bool
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Compute and store chunks of pairs on Dask workers; yield (pairs, values)."""
        from leitmotiv.distributed import compute_chunk_remote

        featurizer_id, divergence_id, _ = self._key_ids()
        spec = (self.divergence.name, dict(self.divergence.params))
        tasks = [
            (self.settings.database, str(self.folder), featurizer_id, divergence_id, spec, chunk)
            for chunk in chunks
        ]
        yield from workers.run(
            compute_chunk_remote,
            tasks,
            "distances",
            show,
            unit="pair",
            weight=lambda task: len(task[-1]),
            per_file=False,
        )

    def _index_dense(self, ids, mixtures, keys, jobs, show, workers, dask, report) -> None:
        """Every missing pair, by blocks of rows; clustering on the full matrix."""
        from tqdm import tqdm

        featurizer_id, divergence_id, _ = keys
        distances = self._stored_distances(ids, featurizer_id, divergence_id)
        missing = np.isnan(distances)
        t0 = time.perf_counter()
        if dask is not None:
            i, j = np.nonzero(np.triu(missing, 1))
            chunks = pair_jobs.plan_chunks(
                np.stack([ids[i], ids[j]], axis=1), size=pair_jobs.CHUNK_PAIRS
            )
            for pairs, values in self._remote_chunks(chunks, workers, show):
                report.pairs_computed += len(values)
                p, q = np.searchsorted(ids, pairs[:, 0]), np.searchsorted(ids, pairs[:, 1])
                distances[p, q] = distances[q, p] = values
        else:
            # Rows to compute: repeatedly the photo with the most missing pairs, so that
            # k new photos in an indexed library give exactly k rows.
            todo = []
            count = missing.sum(axis=1)
            remaining = missing.copy()
            while count.max(initial=0) > 0:
                i = int(np.argmax(count))
                todo.append(i)
                count -= remaining[:, i]
                count[i] = 0
                remaining[i, :] = remaining[:, i] = False
            n_threads = resolve_jobs(jobs)
            with tqdm(
                total=int(missing.sum()) // 2, desc="distances", unit="pair", disable=not show
            ) as bar:
                for s in range(0, len(todo), DISTANCE_BLOCK):
                    block = todo[s : s + DISTANCE_BLOCK]
                    cols = np.flatnonzero(missing[block].any(axis=0))
                    values = self.divergence.cross(
                        [mixtures[i] for i in block],
                        [mixtures[j] for j in cols],
                        n_jobs=n_threads,
                    )
                    # The block's missing pairs, each once: a pair of two block rows
                    # is missing in both, and the earlier row takes it.
                    r, c = np.nonzero(missing[np.ix_(block, cols)])
                    i, j = np.asarray(block)[r], cols[c]
                    _, first = np.unique(
                        np.minimum(i, j) * len(ids) + np.maximum(i, j), return_index=True
                    )
                    first.sort()
                    r, c, i, j = r[first], c[first], i[first], j[first]
                    v = values[r, c]
                    distances[i, j] = distances[j, i] = v
                    missing[i, j] = missing[j, i] = False
                    pairs = np.sort(np.stack([ids[i], ids[j]], axis=1), axis=1)
                    pair_jobs.save_chunk(self.db, pairs, v, featurizer_id, divergence_id)
                    report.pairs_computed += len(v)
                    bar.update(len(v))
        report.distance_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        report.n_clusters, redone = self._recluster(
            ids, keys, report.pairs_computed, lambda: self.clusterer.cluster(distances)
        )
        report.clustering = "full" if redone else "kept"
        report.cluster_seconds = time.perf_counter() - t1

    def _stored_edges(
        self, ids: np.ndarray, featurizer_id: int, divergence_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stored distances among ``ids`` (ascending) as (positions, positions, values),
        read in batches so memory stays that of the arrays."""
        found_a, found_b, found_v = [], [], []
        query = store.Distance.select(
            store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
        ).where(
            (store.Distance.featurizer == featurizer_id)
            & (store.Distance.divergence == divergence_id)
        )
        # Millions of rows: straight from the cursor, converted 200,000 at a time.
        rows = store.raw_rows(self.db, query, batch=200_000)
        while batch := list(itertools.islice(rows, 200_000)):
            arr = np.asarray(batch, dtype=np.float64)
            p = positions_in(ids, arr[:, 0].astype(np.int64))
            q = positions_in(ids, arr[:, 1].astype(np.int64))
            keep = (p >= 0) & (q >= 0)
            found_a.append(p[keep])
            found_b.append(q[keep])
            found_v.append(arr[keep, 2])
        if not found_a:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)
        return np.concatenate(found_a), np.concatenate(found_b), np.concatenate(found_v)

    def _index_sparse(
        self, ids, mixtures, keys, jobs, show, workers, dask, report, recluster
    ) -> None:
        """Candidate lists, the exact distance of each photo and its candidates, and
        clustering on that graph; no N x N array anywhere."""
        from tqdm import tqdm

        from leitmotiv import candidates, cluster_extension, sparse_index

        featurizer_id, divergence_id, _ = keys
        n_threads = resolve_jobs(jobs)
        k = self.settings.neighbours
        params = sparse_index.SearchParameters(
            k=k, wide=sparse_index.wide_for(k), batch=sparse_index.BATCH
        )
        t0 = time.perf_counter()
        with store.bound(self.db):
            graph = sparse_index.update_candidates(
                self.db,
                ids,
                mixtures,
                self.divergence,
                featurizer_id,
                params,
                n_jobs=n_threads,
                progress=show,
            )
        report.new_lists, report.changed_lists = graph.new, graph.changed
        report.candidate_seconds = time.perf_counter() - t0
        t1 = time.perf_counter()
        rows, cols, values = self._stored_edges(ids, featurizer_id, divergence_id)
        r, c = candidates.unique_pairs(graph.indices)
        lo, hi = np.minimum(r, c), np.maximum(r, c)
        n = max(len(ids), 1)
        # Both key sets sorted and merged by a binary search: several times faster than
        # np.isin on the millions of stored pairs of a large library.
        stored = np.sort(np.minimum(rows, cols) * n + np.maximum(rows, cols))
        by_key = np.argsort(lo * n + hi)
        wanted = (lo * n + hi)[by_key]
        at = np.searchsorted(stored, wanted).clip(max=max(len(stored) - 1, 0))
        missing = np.ones(len(wanted), dtype=bool)
        if len(stored):
            missing[by_key] = stored[at] != wanted
        lo, hi = lo[missing], hi[missing]
        chunks = pair_jobs.plan_chunks(
            np.stack([ids[lo], ids[hi]], axis=1),
            np.stack([lo, hi], axis=1),
            graph.embeddings,
            size=pair_jobs.CHUNK_PAIRS,
        )
        del graph
        if dask is not None:
            computed = self._remote_chunks(chunks, workers, show)
        else:
            computed = self._local_chunks(chunks, ids, mixtures, n_threads, show)
        new_rows, new_cols, new_values = [rows], [cols], [values]
        for pairs, chunk_values in computed:
            new_rows.append(np.searchsorted(ids, pairs[:, 0]))
            new_cols.append(np.searchsorted(ids, pairs[:, 1]))
            new_values.append(chunk_values)
            report.pairs_computed += len(chunk_values)
        report.distance_seconds = time.perf_counter() - t1
        rows, cols = np.concatenate(new_rows), np.concatenate(new_cols)
        values = np.concatenate(new_values)
        t2 = time.perf_counter()

        with store.bound(self.db):
            current = self._current_run(keys)
            prior = None if current is None or recluster else self._run_labels(current, ids)
        extend = (
            prior is not None
            and current.base_photos is not None
            and len(ids) <= current.base_photos * (1 + cluster_extension.REGROW)
        )

        def cluster():
            with tqdm(total=1, desc="clustering", disable=not show) as bar:
                typical = candidates.sample_median_distance(
                    mixtures, self.divergence, n_jobs=n_threads
                )
                if extend:
                    clustering = cluster_extension.extend_clustering(
                        *prior,
                        (rows, cols, values),
                        lambda pairs: self._distances_of(pairs, ids, mixtures, n_threads),
                        typical,
                        self.clusterer,
                    )
                else:
                    clustering = self.clusterer.cluster_graph(len(ids), rows, cols, values, typical)
                bar.update()
            return clustering

        report.n_clusters, redone = self._recluster(
            ids,
            keys,
            report.pairs_computed,
            cluster,
            base_photos=current.base_photos if extend else len(ids),
            force=recluster,
        )
        report.clustering = ("extended" if extend else "full") if redone else "kept"
        report.cluster_seconds = time.perf_counter() - t2

    def _distances_of(self, pairs, ids, mixtures, n_threads) -> np.ndarray:
        """Distances of distinct position pairs, computed now and not stored."""
        models = {int(ids[p]): mixtures[int(p)] for p in np.unique(pairs)}
        photo_pairs = ids[pairs]
        _, values = pair_jobs.compute_chunk(photo_pairs, models, self.divergence, n_threads)
        # compute_chunk returns the pairs sorted by (smaller id, larger id).
        order = np.lexsort((photo_pairs.max(axis=1), photo_pairs.min(axis=1)))
        out = np.empty(len(pairs))
        out[order] = values
        return out

    def _run_labels(self, run: Any, ids: np.ndarray):
        """A stored run as (labels, exemplars) over positions of ``ids``: -1 for photos
        not in the run; None if an exemplar is no longer indexed."""
        labels = np.full(len(ids), -1, dtype=np.int64)
        clusters = list(
            store.Cluster.select(store.Cluster.id, store.Cluster.exemplar)
            .where(store.Cluster.run == run.id)
            .order_by(store.Cluster.id)
            .tuples()
        )
        index = {cid: c for c, (cid, _) in enumerate(clusters)}
        exemplars = positions_in(ids, [e for _, e in clusters])
        if (exemplars < 0).any():
            return None
        members = np.asarray(
            list(
                store.ClusterMember.select(store.ClusterMember.cluster, store.ClusterMember.photo)
                .join(store.Cluster)
                .where(store.Cluster.run == run.id)
                .tuples()
            ),
            dtype=np.int64,
        ).reshape(-1, 2)
        pos = positions_in(ids, members[:, 1])
        keep = pos >= 0
        labels[pos[keep]] = [index[int(c)] for c in members[keep, 0]]
        return labels, exemplars

    def _local_chunks(
        self,
        chunks: list[np.ndarray],
        ids: np.ndarray,
        mixtures: list[Any],
        n_threads: int,
        show: bool,
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Compute and store chunks of pairs in this process; yield (pairs, values)."""
        from tqdm import tqdm

        featurizer_id, divergence_id, _ = self._key_ids()
        total = sum(len(chunk) for chunk in chunks)
        with tqdm(total=total, desc="distances", unit="pair", disable=not show) as bar:
            for chunk in chunks:
                photos = np.unique(chunk)
                models = {int(p): mixtures[int(np.searchsorted(ids, p))] for p in photos}
                pairs, values = pair_jobs.compute_chunk(
                    chunk, models, self.divergence, n_jobs=n_threads
                )
                pair_jobs.save_chunk(self.db, pairs, values, featurizer_id, divergence_id)
                yield pairs, values
                bar.update(len(values))

    @staticmethod
    def _runs_of(keys: tuple[int, int, int]):
        """SQL condition: the cluster runs of this (featurizer, divergence, clusterer)."""
        featurizer_id, divergence_id, clusterer_id = keys
        return (
            (store.ClusterRun.featurizer == featurizer_id)
            & (store.ClusterRun.divergence == divergence_id)
            & (store.ClusterRun.clusterer == clusterer_id)
        )

    def _current_run(self, keys: tuple[int, int, int]):
        is_current = store.ClusterRun.is_current == True  # noqa: E712 - SQL expression
        return (
            store.ClusterRun.select()
            .where(self._runs_of(keys) & is_current)
            .order_by(store.ClusterRun.id.desc())
            .first()
        )

    def _recluster(
        self,
        ids: np.ndarray,
        keys: tuple[int, int, int],
        new_pairs: int,
        cluster: Callable[[], Any],
        base_photos: int | None = None,
        force: bool = False,
    ) -> tuple[int, bool]:
        """Cluster (by calling ``cluster``) and store the run as current, unless nothing
        changed since the current run (or ``force``).  ``base_photos`` is recorded with
        the run (default: all of ``ids``).

        Returns
        -------
        (int, bool)
            The number of clusters, and whether the clustering was redone.
        """
        featurizer_id, divergence_id, clusterer_id = keys
        with store.bound(self.db):
            current = self._current_run(keys)
            if current is not None and new_pairs == 0 and not force:
                members = {
                    pid
                    for (pid,) in store.ClusterMember.select(store.ClusterMember.photo)
                    .join(store.Cluster)
                    .where(store.Cluster.run == current.id)
                    .tuples()
                }
                if members == {int(i) for i in ids}:
                    kept = store.Cluster.select().where(store.Cluster.run == current.id)
                    return kept.count(), False
        if len(ids) == 0:
            return 0, False
        if len(ids) == 1:
            labels, exemplars = np.zeros(1, dtype=int), np.zeros(1, dtype=int)
        else:
            clustering = cluster()
            labels, exemplars = clustering.labels, clustering.exemplars
        with store.bound(self.db), self.db.atomic():
            run = store.ClusterRun.create(
                clusterer=clusterer_id,
                featurizer=featurizer_id,
                divergence=divergence_id,
                n_photos=len(ids),
                base_photos=len(ids) if base_photos is None else base_photos,
                is_current=False,
            )
            # Clusters in bulk (tens of thousands on a large library); each exemplar is
            # one cluster's, so the returned (id, exemplar) rows say which is which.
            cluster_of: dict[int, int] = {}
            for c in range(0, len(exemplars), store.INSERT_CHUNK):
                rows = [(run.id, int(ids[e])) for e in exemplars[c : c + store.INSERT_CHUNK]]
                inserted = (
                    store.Cluster.insert_many(
                        rows, fields=[store.Cluster.run, store.Cluster.exemplar]
                    )
                    .returning(store.Cluster.id, store.Cluster.exemplar)
                    .tuples()
                    .execute()
                )
                cluster_of.update((exemplar, cid) for cid, exemplar in inserted)
            order = np.argsort(labels, kind="stable")
            bounds = np.searchsorted(labels[order], np.arange(len(exemplars) + 1))
            members = [
                (cluster_of[int(ids[exemplar])], int(ids[i]))
                for c, exemplar in enumerate(exemplars)
                for i in order[bounds[c] : bounds[c + 1]]
            ]
            store.insert_rows(
                store.ClusterMember,
                [store.ClusterMember.cluster, store.ClusterMember.photo],
                members,
            )
            # Older runs of this configuration are dropped in the same transaction:
            # readers see either the old run or the new one, never a mix.
            store.ClusterRun.delete().where(
                self._runs_of(keys) & (store.ClusterRun.id != run.id)
            ).execute()
            store.ClusterRun.update(is_current=True).where(store.ClusterRun.id == run.id).execute()
        return len(exemplars), True

    # -- queries ------------------------------------------------------------------

    def _photo_query(self):
        featurizer_id = self._key_ids()[0]
        return store.Photo.select(
            store.Photo.id,
            store.Photo.path,
            store.Photo.taken,
            store.Photo.taken_offset,
            store.Photo.taken_source,
            store.Photo.width,
            store.Photo.height,
            store.Photo.sha256,
            store.Photo.size,
            store.Model.n_components,
        ).join(
            store.Model,
            pw.JOIN.LEFT_OUTER,
            on=(store.Model.photo == store.Photo.id) & (store.Model.featurizer == featurizer_id),
        )

    @staticmethod
    def _to_photo(row: Any) -> Photo:
        model = getattr(row, "model", None)
        return Photo(
            id=row.id,
            path=row.path,
            taken=_join_taken(row.taken, row.taken_offset),
            taken_source=row.taken_source,
            width=row.width,
            height=row.height,
            components=None if model is None else model.n_components,
            sha256=row.sha256,
            size=row.size,
        )

    def _photos_by_id(self, ids: Iterable[int]) -> dict[int, Photo]:
        ids = list(ids)
        with store.bound(self.db):
            return {
                row.id: self._to_photo(row)
                for row in self._photo_query().where(store.Photo.id.in_(ids))
            }

    def photos(self, offset: int = 0, limit: int | None = None) -> list[Photo]:
        """Photos ordered by capture time (unknown times last), then path."""
        with store.bound(self.db):
            query = self._photo_query().order_by(
                store.Photo.taken.is_null(), store.Photo.taken, store.Photo.path
            )
            if limit is not None:
                query = query.limit(limit)
            if offset:
                query = query.offset(offset)
            return [self._to_photo(row) for row in query]

    def count_photos(self) -> int:
        """Number of photos in the library."""
        with store.bound(self.db):
            return store.Photo.select().count()

    def photo(self, photo_id: int) -> Photo | None:
        """The photo with this id, or None."""
        return self._photos_by_id([int(photo_id)]).get(int(photo_id))

    def find_photo(self, id_or_path: str) -> Photo | None:
        """The photo named by its id (digits) or by its path (relative to the working
        directory, ``~`` expanded), or None."""
        text = str(id_or_path).strip()
        if text.isdigit():
            found = self.photo(int(text))
            if found is not None:
                return found
        candidates = [os.path.abspath(os.path.expanduser(text))]
        candidates.append(os.path.realpath(candidates[0]))
        with store.bound(self.db):
            for path in candidates:
                row = self._photo_query().where(store.Photo.path == path).first()
                if row is not None:
                    return self._to_photo(row)
        return None

    def near_duplicate_threshold(self) -> float | None:
        """Distance below which :meth:`similar` results are near-duplicates, if the
        configured divergence is calibrated (see ``benchmarks/quality.py``)."""
        return self.divergence.near_duplicate_threshold()

    def relation(self, distance: float) -> str:
        """``near-duplicate``, ``similar`` or ``unrelated``: what a distance of the
        chosen divergence says about two photos (:meth:`Divergence.relation`)."""
        return self.divergence.relation(distance)

    def similar(
        self, photo_id: int, top: int | None = None, offset: int = 0
    ) -> list[tuple[Photo, float]]:
        """The photos nearest to a photo, nearest first, the photo itself excluded.

        Only indexed photos appear (run :meth:`build_index` after adding photos).

        Returns
        -------
        list of (Photo, float)
            The photos and their distance to the query.
        """
        featurizer_id, divergence_id, _ = self._key_ids()
        d = store.Distance
        other = pw.Case(None, [(d.photo_a == photo_id, d.photo_b)], d.photo_a)
        with store.bound(self.db):
            query = (
                d.select(other.alias("other"), d.value)
                .where(
                    ((d.photo_a == photo_id) | (d.photo_b == photo_id))
                    & (d.featurizer == featurizer_id)
                    & (d.divergence == divergence_id)
                )
                .order_by(d.value, other)
                .tuples()
            )
            if top is not None:
                query = query.limit(top)
            if offset:
                query = query.offset(offset)
            pairs = list(query)
        photos = self._photos_by_id(pid for pid, _ in pairs)
        return [(photos[pid], float(value)) for pid, value in pairs if pid in photos]

    def _clusters(self, cluster_id: int | None = None) -> list[Cluster]:
        keys = self._key_ids()
        with store.bound(self.db):
            run = self._current_run((keys[0], keys[1], keys[2]))
            if run is None:
                return []
            query = store.Cluster.select().where(store.Cluster.run == run.id)
            if cluster_id is not None:
                query = query.where(store.Cluster.id == cluster_id)
            clusters = list(query.order_by(store.Cluster.id).tuples())
            members: dict[int, list[int]] = {cid: [] for cid, *_ in clusters}
            rows = (
                store.ClusterMember.select(store.ClusterMember.cluster, store.ClusterMember.photo)
                .where(store.ClusterMember.cluster.in_(list(members)))
                .tuples()
            )
            for cid, pid in rows:
                members[cid].append(pid)
        photos = self._photos_by_id({pid for pids in members.values() for pid in pids})
        out = []
        for cid, _run, exemplar in clusters:
            ordered = sorted(
                (photos[p] for p in members[cid] if p in photos),
                key=lambda p: (p.id != exemplar, p.taken is None, str(p.taken), p.path),
            )
            out.append(Cluster(cid, photos[exemplar], ordered))
        return out

    def clusters(self) -> list[Cluster]:
        """The clusters of the current clustering (empty before :meth:`build_index`)."""
        return self._clusters()

    def cluster(self, cluster_id: int) -> Cluster | None:
        """One cluster of the current clustering, or None."""
        found = self._clusters(int(cluster_id))
        return found[0] if found else None

    def motifs(
        self,
        since: dt.date | dt.datetime | None = None,
        until: dt.date | dt.datetime | None = None,
        clusters: Sequence[Cluster] | None = None,
    ) -> list[Motif]:
        """The clusters of the current clustering seen through time, as motifs.

        See :mod:`leitmotiv.motifs` for bursts, periods and the recurrence score.
        Only EXIF capture times place a photo on the timeline; photos dated by their
        file time alone are the motif's ``undated_ids``.

        Parameters
        ----------
        since, until : date or datetime, optional
            Keep only the occurrences captured in ``[since, until]`` (wall-clock
            time).  A plain ``until`` date includes that whole day.  With either
            bound, motifs with no occurrence in the range are left out.
        clusters : sequence of Cluster, optional
            The result of :meth:`clusters`, when the caller has it already (saves
            reading the clustering twice).

        Returns
        -------
        list of Motif
            Highest recurrence score first (empty before :meth:`build_index`).
        """
        from leitmotiv.motifs import Shot, find_motifs

        if clusters is None:
            clusters = self.clusters()
        shots = [
            (c.id, c.exemplar.id, [Shot(p.id, p.taken, p.taken_source) for p in c.members])
            for c in clusters
        ]
        found = find_motifs(shots, since=_wall_clock(since), until=_wall_clock(until, end=True))
        if since is not None or until is not None:
            found = [m for m in found if m.periods]
        return found

    def failures(self) -> list[Failure]:
        """Files that could not be added, by path."""
        with store.bound(self.db):
            return [
                Failure(row.path, row.reason, row.time)
                for row in store.Failure.select().order_by(store.Failure.path)
            ]

    def _model_row(self, photo_id: int):
        featurizer_id = self._key_ids()[0]
        with store.bound(self.db):
            return (
                store.Model.select(store.Model.mixture, store.Photo.sha256)
                .join(store.Photo)
                .where(
                    (store.Model.photo == int(photo_id)) & (store.Model.featurizer == featurizer_id)
                )
                .first()
            )

    def mixture(self, photo_id: int):
        """The photo's model for the current featurizer (a Mixture), or None."""
        from leitmotiv.mixture import Mixture

        row = self._model_row(photo_id)
        return None if row is None else Mixture.from_bytes(bytes(row.mixture))

    def thumbnail(self, photo_id: int) -> bytes | None:
        """The JPEG thumbnail stored when the photo was added, or None."""
        with store.bound(self.db):
            row = (
                store.Photo.select(store.Photo.thumbnail)
                .where(store.Photo.id == int(photo_id))
                .first()
            )
        return None if row is None or row.thumbnail is None else bytes(row.thumbnail)

    def _cached_png(self, name: str, make: Callable[[], np.ndarray]) -> bytes:
        """PNG bytes from ``<library>/cache/<name>``, made and written on a miss."""
        cache = self.folder / "cache"
        path = cache / name
        try:
            return path.read_bytes()
        except OSError:
            pass
        data = _png(make())
        try:
            cache.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, path)  # readers never see half a file
        except OSError as exc:  # a read-only library still renders, uncached
            log.warning("cannot write %s: %s", path, exc)
        return data

    def _digest(self, *parts: str) -> str:
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]

    def render(self, photo_id: int, long_side: int = 256) -> bytes | None:
        """PNG of the photo's model rendered back to an image (long side in pixels),
        or None if the photo has no model.  Cached in ``<library>/cache/``."""
        if long_side <= 0:
            raise ValueError(f"long_side must be positive, got {long_side}")
        photo = self.photo(photo_id)
        row = self._model_row(photo_id)
        if photo is None or row is None:
            return None
        width, height = _fit_size(photo.width, photo.height, long_side)
        name = f"render-{self._digest(self.featurizer.key(), row.photo.sha256)}-{long_side}.png"

        def make() -> np.ndarray:
            from leitmotiv.mixture import Mixture

            return Mixture.from_bytes(bytes(row.mixture)).render(width, height)

        return self._cached_png(name, make)

    def average(self, cluster_id: int, long_side: int = 256) -> bytes | None:
        """PNG of the average model of a cluster's members, rendered, or None if there
        is no such cluster in the current clustering.  Cached in ``<library>/cache/``."""
        if long_side <= 0:
            raise ValueError(f"long_side must be positive, got {long_side}")
        cluster = self.cluster(cluster_id)
        if cluster is None:
            return None
        hashes = sorted(p.sha256 for p in cluster.members)
        name = f"average-{self._digest(self.featurizer.key(), *hashes)}-{long_side}.png"

        def make() -> np.ndarray:
            from leitmotiv.mixture import average_mixture

            mixtures = [m for m in (self.mixture(p.id) for p in cluster.members) if m is not None]
            mean = average_mixture(mixtures)
            if mean.transform is not None:
                width, height = _fit_size(mean.transform.width, mean.transform.height, long_side)
            else:
                width, height = _fit_size(
                    cluster.exemplar.width, cluster.exemplar.height, long_side
                )
            return mean.render(width, height)

        return self._cached_png(name, make)


__all__ = [
    "Cluster",
    "Failure",
    "IndexReport",
    "IngestReport",
    "Library",
    "Photo",
    "parse_date_bound",
]
