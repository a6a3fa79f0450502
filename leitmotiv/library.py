"""A photo library: the one object the command line and the web view use.

:class:`Library` owns the database of one library folder (see :mod:`leitmotiv.store`)
and the three configured implementations (featurizer, divergence, clusterer), held in
a :class:`~leitmotiv.context.Context`.  Each user-facing operation is a short method
that hands the context to the module doing the work:

- adding photos, incrementally (what to add, refit or move): :mod:`leitmotiv.ingest`;
- building the similarity index, dense or sparse, and clustering: :mod:`leitmotiv.index`;
- read-only questions (photos, similar, clusters, motifs, failures): :mod:`leitmotiv.queries`;
- renders and average images, cached as PNG files: :mod:`leitmotiv.render_cache`;
- where the fits and chunks of pairs run (this machine's processes or a Dask cluster):
  :mod:`leitmotiv.workers` and :mod:`leitmotiv.distributed`.

Nothing below this module imports it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import peewee as pw

from leitmotiv import (
    duplicates,
    index,
    ingest,
    layout,
    outside,
    queries,
    render_cache,
    store,
    summaries,
)
from leitmotiv.config import Settings
from leitmotiv.context import Context
from leitmotiv.duplicates import DuplicateGroup
from leitmotiv.index import DISTANCE_BLOCK, IndexReport
from leitmotiv.ingest import IngestReport
from leitmotiv.motifs import Motif
from leitmotiv.queries import Cluster, Failure, Photo, parse_date_bound
from leitmotiv.workers import ProcessWorkers, Workers, peak_memory_mib, resolve_jobs, show_progress

__all__ = [
    "DISTANCE_BLOCK",
    "Cluster",
    "DuplicateGroup",
    "Failure",
    "IndexReport",
    "IngestReport",
    "Library",
    "Photo",
    "parse_date_bound",
    "peak_memory_mib",
    "resolve_jobs",
]


def _shared(name: str) -> property:
    """An attribute of the library that is its context's (reading and setting it)."""
    return property(
        lambda self: getattr(self.context, name),
        lambda self, value: setattr(self.context, name, value),
        doc=f"The context's ``{name}``.",
    )


@contextlib.contextmanager
def _workers(jobs: int, dask: str | None) -> Iterator[Workers]:
    """The process pool of this machine, or a Dask cluster's workers."""
    if dask is None:
        with ProcessWorkers(jobs) as workers:
            yield workers
    else:
        from leitmotiv.distributed import DaskWorkers, dask_client

        with dask_client(dask, resolve_jobs(jobs)) as client:
            yield DaskWorkers(client)


class Library:
    """One photo library: a folder, its database and the configured implementations.

    Use :meth:`open`; call :meth:`close` when done (or use it as a context manager).

    Attributes
    ----------
    context : Context
        What the modules doing the work share.
    read_only : bool
        Opened for reading only (see :meth:`open`).
    folder : Path
        The library folder (database, ``cache/`` of rendered images).
    settings : Settings
    db : peewee.Database
    featurizer, divergence, clusterer : Implementation
        The configured implementations, built by the plugin manager.
    """

    def __init__(self, settings: Settings, db: pw.Database, read_only: bool = False) -> None:
        self.context = Context.create(settings, db)
        self.read_only = read_only
        self._pngs = render_cache.PngCache(self.context.folder, writable=not read_only)
        # A sparse index's embeddings, kept between searches by an outside photo.
        self._embeddings = outside.EmbeddingCache()

    settings = _shared("settings")
    folder = _shared("folder")
    db = _shared("db")
    featurizer = _shared("featurizer")
    divergence = _shared("divergence")
    clusterer = _shared("clusterer")

    @classmethod
    def open(cls, settings: Settings, read_only: bool = False) -> Library:
        """Open the library of ``settings``, creating its folder and database if needed.

        Parameters
        ----------
        settings : Settings
        read_only : bool
            Open it for reading only (the web view and the commands that only read):
            nothing is created, migrated or written, not even a cached image (those
            stay in memory); a library that does not exist yet reads as empty.
            :meth:`add` and :meth:`build_index` then refuse to run.

        Raises
        ------
        leitmotiv.store.ReadOnlyLibrary
            If the library must be written and its folder cannot be.
        OSError
            If the folder cannot be created.
        RuntimeError
            If, read-only, the database's schema is older (run a command that writes
            first) or newer than this leitmotiv's.
        leitmotiv.plugins.UnknownImplementation, ValueError
            If the settings name an unknown implementation or parameter.
        """
        folder = Path(settings.library)
        if read_only:
            return cls(settings, store.open_read_only(settings.database, folder), read_only=True)
        # Only a library whose database is the file in its folder is read-only with it.
        if settings.database is None and folder.is_dir() and not store.folder_is_writable(folder):
            raise store.ReadOnlyLibrary(
                f"the library folder {folder} is read-only: this command writes to the "
                "library (reading commands such as photos, similar and clusters work)"
            )
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

    # -- writing ------------------------------------------------------------------

    def _check_writable(self, what: str) -> None:
        if self.read_only:
            raise PermissionError(f"cannot {what}: the library {self.folder} is open read-only")

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
            Counts of what happened to each file; see :mod:`leitmotiv.ingest`.

        Notes
        -----
        Workers are started with the ``forkserver`` method, which imports the main
        module again in each worker: a script calling this with more than one job
        needs the usual ``if __name__ == "__main__":`` guard.
        """
        self._check_writable("add photos")
        return ingest.add(
            self.context,
            paths,
            recursive,
            lambda: _workers(jobs, dask),
            show_progress(progress),
        )

    def index_method(self, n_photos: int) -> str:
        """``"dense"`` or ``"sparse"``: how a library of ``n_photos`` is indexed."""
        return index.method_for(self.context, n_photos)

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
        self._check_writable("build the index")
        start = time.perf_counter()
        show = show_progress(progress)
        index.check_sparse(self.context, self.index_method(self.count_photos()))
        with _workers(jobs, dask) as workers:
            refits = ingest.refit_missing(self.context, workers, show)
            report = index.build(
                self.context, workers, jobs, show, remote=dask is not None, recluster=recluster
            )
        report.refit, report.failed = refits.updated, refits.failed
        report.peak_memory_mib = peak_memory_mib()
        report.seconds = time.perf_counter() - start
        return report

    # -- reading ------------------------------------------------------------------

    def photos(self, offset: int = 0, limit: int | None = None) -> list[Photo]:
        """Photos ordered by capture time (unknown times last), then path."""
        return queries.photos(self.context, offset, limit)

    def photos_next_to(self, photo_id: int, limit: int, before: bool = False) -> list[Photo] | None:
        """The ``limit`` photos after (or before) photo ``photo_id`` in :meth:`photos`'
        order, read from that photo's key (a keyset page); None if there is no such
        photo."""
        return queries.photos_next_to(self.context, photo_id, limit, before)

    def count_photos(self) -> int:
        """Number of photos in the library."""
        return queries.count_photos(self.context)

    def photo(self, photo_id: int) -> Photo | None:
        """The photo with this id, or None."""
        return queries.photo(self.context, photo_id)

    def find_photo(self, id_or_path: str) -> Photo | None:
        """The photo named by its id (digits) or by its path (relative to the working
        directory, ``~`` expanded), or None."""
        return queries.find_photo(self.context, id_or_path)

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
        return queries.similar(self.context, photo_id, top, offset)

    def photos_by_id(self, ids: Iterable[int]) -> dict[int, Photo]:
        """The photos with these ids, by id (unknown ids are left out)."""
        return queries.photos_by_id(self.context, ids)

    def count_similar(self, photo_id: int) -> int:
        """Number of photos :meth:`similar` ranks for this photo (its stored distances)."""
        return queries.count_similar(self.context, photo_id)

    def summary(self) -> summaries.RunSummary | None:
        """The stored summary of the current clustering (None before :meth:`build_index`)."""
        return queries.summary(self.context)

    def cluster_summaries(
        self, offset: int = 0, limit: int | None = None, by_motif: bool = False
    ) -> list[summaries.ClusterSummary]:
        """A page of the current clustering's stored cluster summaries, by cluster id or
        by motif rank (see :mod:`leitmotiv.summaries`)."""
        return queries.cluster_summaries(self.context, offset, limit, by_motif)

    def listings(
        self, offset: int = 0, limit: int | None = None, by_motif: bool = False
    ) -> list[tuple[str, str]]:
        """A page of the current clustering's ``/api/clusters`` and ``/api/motifs``
        entries, ``(cluster JSON, motif JSON)`` texts stored with the clustering, by
        cluster id or by motif rank."""
        return queries.listings(self.context, offset, limit, by_motif)

    def cluster_summary(self, cluster_id: int) -> summaries.ClusterSummary | None:
        """The stored summary of one cluster of the current clustering, or None."""
        return queries.cluster_summary(self.context, cluster_id)

    def member_ids(
        self, cluster_ids: Iterable[int], start: int = 0, stop: int | None = None
    ) -> dict[int, list[int]]:
        """Members ``start .. stop - 1`` of each cluster in display order (exemplar
        first, then by capture time), by cluster id."""
        return queries.member_ids(self.context, cluster_ids, start, stop)

    def motif(self, cluster_id: int) -> Motif | None:
        """One motif of the current clustering, as :meth:`motifs` makes it, or None."""
        return queries.motif(self.context, cluster_id)

    def similar_to_image(self, rgb, top: int = 10) -> list[tuple[Photo, float]]:
        """The indexed photos nearest to a photo that is not in the library.

        Parameters
        ----------
        rgb : ndarray, shape (H, W, 3), uint8
            The photo, decoded at :data:`leitmotiv.ingest.FIT_LONG_SIDE` (see
            :meth:`similar_to_file`); it is fitted in memory and nothing is stored.
        top : int
            How many photos to return.

        Returns
        -------
        list of (Photo, float)
            As :meth:`similar`; see :mod:`leitmotiv.outside` for how the library is
            searched (candidates on a sparse index, every photo on a dense one).
        """
        query = outside.fit_image(self.context, rgb)
        return outside.rank(self.context, query, top, self._embeddings)

    def similar_to_file(self, path: str | os.PathLike[str], top: int = 10):
        """:meth:`similar_to_image` for a photo file.

        Raises
        ------
        leitmotiv.imaging.DecodeError
            If the file cannot be decoded (the message names it and says why).
        """
        from leitmotiv.imaging import decode

        image = decode(path, target_long_side=ingest.FIT_LONG_SIDE)
        return self.similar_to_image(image.rgb, top)

    def duplicates(
        self, threshold: float | None = None, offset: int = 0, limit: int | None = None
    ) -> list[DuplicateGroup]:
        """The groups of near-duplicates, largest first, each with a suggested keeper.

        See :func:`leitmotiv.duplicates.groups`: stored by :meth:`build_index` for the
        calibrated threshold; another ``threshold`` groups the stored distances anew.
        ``offset`` and ``limit`` take a page of that order.
        """
        return duplicates.groups(self.context, threshold, offset, limit)

    def count_duplicates(self) -> int:
        """Number of stored groups of near-duplicates."""
        return duplicates.count(self.context)

    def map_points(self, box: tuple[float, float, float, float], limit: int):
        """What a viewport of the library's map shows: the lowest-ranked photos inside
        ``box`` ``(x0, y0, x1, y1)``, at most ``limit``, with the map's bounds and the
        number of photos in the box (see :func:`leitmotiv.layout.points_in`); None
        before :meth:`build_index` has stored a map."""
        return layout.points_in(self.context, box, limit)

    def map_size(self) -> int:
        """Photos on the library's stored map (0 before :meth:`build_index`)."""
        info = layout.map_info(self.context)
        return 0 if info is None else info[1]

    def clusters(self) -> list[Cluster]:
        """The clusters of the current clustering (empty before :meth:`build_index`)."""
        return queries.clusters(self.context)

    def cluster(self, cluster_id: int) -> Cluster | None:
        """One cluster of the current clustering, or None."""
        return queries.cluster(self.context, cluster_id)

    def motifs(
        self,
        since: dt.date | dt.datetime | None = None,
        until: dt.date | dt.datetime | None = None,
        clusters: Sequence[Cluster] | None = None,
    ) -> list[Motif]:
        """The clusters of the current clustering seen through time, as motifs.

        See :func:`leitmotiv.queries.motifs`; ``clusters`` is the result of
        :meth:`clusters` when the caller has it already.
        """
        return queries.motifs(self.context, since, until, clusters)

    def failures(self) -> list[Failure]:
        """Files that could not be added, by path."""
        return queries.failures(self.context)

    def mixture(self, photo_id: int):
        """The photo's model for the current featurizer (a Mixture), or None."""
        return queries.mixture(self.context, photo_id)

    def thumbnail(self, photo_id: int) -> bytes | None:
        """The JPEG thumbnail stored when the photo was added, or None."""
        return queries.thumbnail(self.context, photo_id)

    def thumbnail_stamp(self, photo_id: int) -> tuple[str, float] | None:
        """The content hash and modification time of the file the photo's thumbnail was
        made from (what names and dates the thumbnail without reading it), or None."""
        return queries.thumbnail_stamp(self.context, photo_id)

    def render(self, photo_id: int, long_side: int = 256) -> bytes | None:
        """PNG of the photo's model rendered back to an image (long side in pixels),
        or None if the photo has no model.  Cached in ``<library>/cache/``, or in memory
        when read-only (:class:`~leitmotiv.render_cache.PngCache`)."""
        return render_cache.render(self.context, self._pngs, photo_id, long_side)

    def average(self, cluster_id: int, long_side: int = 256) -> bytes | None:
        """PNG of the average model of a cluster's members, rendered, or None if there
        is no such cluster in the current clustering.  Cached like :meth:`render`."""
        return render_cache.average(self.context, self._pngs, cluster_id, long_side)
