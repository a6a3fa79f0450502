"""The peewee models of a library's database and how the database is opened.

One database per library: by default the SQLite file ``<library>/leitmotiv.db`` in WAL
mode (so the web view can read while an ingest writes), or any database named by a
peewee URL (``postgresql://user@host/db``, ``sqlite:////path/file.db``, ...).

The models are bound to :data:`database_proxy`, which resolves to a database per
thread: :func:`bound` points it at one library's database for a block of code, in the
calling thread only, so a process can use several libraries at once, from several
threads (the web server's), without one thread's queries reaching another's database.
Outside :func:`bound` the models have no database.

Implementation keys (:meth:`leitmotiv.interfaces.Implementation.key`, a name plus
its parameters as JSON) are stored once in :class:`ImplementationKey`; models, distances
and clustering runs refer to them by id, which keeps the large distance table small.

Every write is one unit of work in its own ``db.atomic()`` block (see
:mod:`leitmotiv.library`), so a killed process leaves either the whole unit or none.

Several processes may write one library at once (two ``add-directory`` runs, an
ingest beside a ``build-index``).  On SQLite every transaction begins ``IMMEDIATE``,
taking the write lock at its start, where the busy timeout applies (a transaction
that began with a read and then writes fails at once with "database is locked"); a
writer that has to wait says so on the log.  On PostgreSQL a photo row is claimed
with ``ON CONFLICT DO NOTHING`` and ``SELECT ... FOR UPDATE`` (:func:`claim_photo`),
and schema changes run under an advisory lock, so two processes opening a brand-new
database both succeed.  A full disk fails with :class:`DatabaseFull`, naming the
database, and leaves the interrupted unit rolled back.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import logging
import os
import sqlite3
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

import peewee as pw
from playhouse import db_url

from leitmotiv.paths import from_stored, to_stored

log = logging.getLogger(__name__)

#: Name of the SQLite database file inside the library folder.
SQLITE_NAME = "leitmotiv.db"

#: Settings of a read-only SQLite connection: no journal mode or sync change (those
#: write), and ``query_only`` refuses any write that would slip through.
SQLITE_READ_ONLY_PRAGMAS = {
    "query_only": 1,
    "foreign_keys": 1,
    "cache_size": -64000,
    "busy_timeout": 30000,
}

#: The key id a reader uses for an implementation key that was never stored: no row
#: has it (ids start at 1), so its queries find nothing computed yet.
NO_KEY = 0

#: How long (ms) a writer waits for another process's write lock before giving up.
BUSY_TIMEOUT_MS = 30000

#: How long (ms) a writer waits silently; beyond this it logs that it is waiting.
QUIET_WAIT_MS = 1000

#: SQLite settings: WAL lets readers work during a write; ``busy_timeout`` (ms) makes a
#: second writer wait for the lock instead of failing at once.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "cache_size": -64000,
    "busy_timeout": BUSY_TIMEOUT_MS,
    "synchronous": "normal",
}

#: The largest id a photo, cluster or any row can have: SQLite integers are signed
#: 64-bit, and a larger number in a query makes the driver raise instead of matching
#: nothing.
MAX_ID = 2**63 - 1

#: Key of the PostgreSQL advisory lock held while the schema is created or migrated.
_SCHEMA_LOCK = 0x6C65_6974_6D6F  # "leitmo"


class ThreadDatabaseProxy(pw.DatabaseProxy):
    """A database proxy that each thread points at its own database.

    peewee's ``bind_ctx`` rebinds model classes for the whole process, so two
    libraries used from two threads could read and write each other's tables; this
    proxy keeps the binding in thread-local storage instead.
    """

    __slots__ = ("_local",)

    def __init__(self) -> None:
        object.__setattr__(self, "_local", threading.local())
        super().__init__()

    def __setattr__(self, attr: str, value: Any) -> None:
        # peewee's Proxy only admits the attributes it declares; ``obj`` is ours.
        object.__setattr__(self, attr, value)

    @property
    def obj(self) -> pw.Database | None:
        """This thread's database (None outside :func:`bound`)."""
        return getattr(self._local, "db", None)

    @obj.setter
    def obj(self, db: pw.Database | None) -> None:
        self._local.db = db


#: The database every model is bound to: this thread's, set by :func:`bound`.
database_proxy = ThreadDatabaseProxy()


class DatabaseFull(pw.OperationalError):
    """The database could not grow: its disk (or its size limit) is full."""


class DatabaseBusy(pw.OperationalError):
    """Another process held the database's write lock for longer than the busy timeout."""


class ReadOnlyLibrary(PermissionError):
    """A write to a library whose folder (or database) cannot be written."""


def masked_url(url: str) -> str:
    """A database URL as it may be shown: its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _without_password(text: str, url: str) -> str:
    """``text`` (e.g. a driver's error message) with the URL's password masked."""
    password = urlsplit(url).password
    text = text.replace(url, masked_url(url))
    for spelling in {password, unquote(password or "")} - {None, ""}:
        text = text.replace(spelling, "***")  # as written in the URL, and decoded
    return text


def folder_is_writable(folder: Path) -> bool:
    """Whether a file can be created in ``folder`` (tried, since permission bits do not
    tell a read-only mount apart, nor what the superuser may do)."""
    try:
        fd, name = tempfile.mkstemp(prefix=".leitmotiv-write-test-", dir=folder)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _is_full(exc: BaseException) -> bool:
    return "database or disk is full" in str(exc)


def _is_locked(exc: BaseException) -> bool:
    return "database is locked" in str(exc)


class LibraryDatabase(pw.SqliteDatabase):
    """A library's SQLite database: write transactions begin ``IMMEDIATE``, waits for
    another writer are logged, and a full disk is reported as such.

    Parameters
    ----------
    database : str
        Path of the file (or a ``file:`` URI with ``uri=True``).
    read_only : bool
        Opened read-only: transactions begin ``DEFERRED`` (an ``IMMEDIATE`` one would
        need the write lock), :func:`key_id` inserts nothing.
    **kwargs
        As :class:`peewee.SqliteDatabase` (``pragmas``, ``uri``...).
    """

    def __init__(self, database: str, read_only: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("lock_type", None if read_only else "IMMEDIATE")
        super().__init__(database, **kwargs)
        self.read_only = read_only

    @property
    def path(self) -> str:
        """The database file, for messages (without a ``file:`` URI's options)."""
        name = str(self.database)
        if self.connect_params.get("uri"):
            return unquote(name.removeprefix("file:").split("?", 1)[0])
        return name

    def _explained(self, exc: BaseException) -> BaseException:
        """The error to raise for a driver error: a full disk or a lock held too long
        named as such, with the file; anything else as it is."""
        if _is_full(exc):
            return DatabaseFull(f"cannot write {self.path}: database or disk is full")
        if _is_locked(exc):
            return DatabaseBusy(
                f"{self.path} is locked: another process has been writing to it for "
                f"more than {BUSY_TIMEOUT_MS // 1000} s; try again when it is done"
            )
        return exc

    def execute_sql(self, sql: str, params: Any = None, *args: Any, **kwargs: Any):
        try:
            return super().execute_sql(sql, params, *args, **kwargs)
        except (pw.OperationalError, sqlite3.OperationalError) as exc:
            explained = self._explained(exc)
            if explained is exc:
                raise
            raise explained from exc

    def begin(self, lock_type: str | None = None) -> None:
        """Begin a transaction; an ``IMMEDIATE`` one waits for another writer's lock,
        saying so when the wait is longer than :data:`QUIET_WAIT_MS`."""
        lock_type = lock_type or self._lock_type
        statement = f"BEGIN {lock_type}" if lock_type else "BEGIN"
        conn = self.connection()
        if lock_type is None:
            conn.execute(statement)
            return
        conn.execute(f"PRAGMA busy_timeout = {QUIET_WAIT_MS}")
        try:
            conn.execute(statement)
        except sqlite3.OperationalError as exc:
            if not _is_locked(exc):
                raise self._explained(exc) from exc
            log.warning("waiting for another process writing to %s", self.path)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS - QUIET_WAIT_MS}")
            try:
                conn.execute(statement)
            except sqlite3.OperationalError as again:
                raise self._explained(again) from again
        finally:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")

    def commit(self) -> None:
        try:
            super().commit()
        except pw.OperationalError as exc:
            explained = self._explained(exc)
            if explained is exc:
                raise
            raise explained from exc

    def rollback(self) -> None:
        """Roll back, unless SQLite already did: after "database or disk is full" it
        ends the transaction itself, and a second rollback would raise "cannot
        rollback - no transaction is active" in place of the real cause."""
        conn = self._state.conn
        if conn is not None and not conn.in_transaction:
            return
        super().rollback()


def utcnow() -> dt.datetime:
    """The current time in UTC, naive (the store keeps naive UTC timestamps)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


class PathField(pw.TextField):
    """A file path, kept losslessly even when its name is not valid UTF-8
    (see :mod:`leitmotiv.paths`); Python code sees the path as the OS functions do."""

    def db_value(self, value: str | None) -> str | None:
        return None if value is None else to_stored(value)

    def python_value(self, value: str | None) -> str | None:
        return None if value is None else from_stored(value)


class BaseModel(pw.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class SchemaVersion(BaseModel):
    """The one row holding the schema version the database has been migrated to."""

    version = pw.IntegerField()


class ImplementationKey(BaseModel):
    """An implementation and its parameters, as :meth:`Implementation.key` spells it."""

    key = pw.TextField(unique=True)


class Photo(BaseModel):
    """One photo file.

    ``taken`` is the capture time as a naive wall-clock time (so photos sort by the
    time shown on the camera); ``taken_offset`` is its UTC offset in seconds when the
    EXIF data gave one.  ``mtime`` and ``size`` are those of the file when it was last
    read, so an unchanged file is recognised without reading it.
    """

    path = PathField(unique=True)
    sha256 = pw.CharField(max_length=64, index=True)
    size = pw.BigIntegerField()
    mtime = pw.DoubleField()
    width = pw.IntegerField()
    height = pw.IntegerField()
    taken = pw.DateTimeField(null=True, index=True)
    taken_offset = pw.IntegerField(null=True)
    taken_source = pw.CharField(max_length=16, null=True)
    thumbnail = pw.BlobField(null=True)
    added = pw.DateTimeField(default=utcnow)
    # Variance of the Laplacian of the thumbnail (see leitmotiv.sharpness); null for
    # photos added before schema 5 until a write command fills it in.
    sharpness = pw.DoubleField(null=True)


class Model(BaseModel):
    """A photo's fitted mixture for one featurizer configuration."""

    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", backref="models")
    featurizer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    mixture = pw.BlobField()
    n_components = pw.IntegerField()
    lower_bound = pw.DoubleField(null=True)  # NaN is stored as NULL (SQLite cannot keep NaN)
    n_iter = pw.IntegerField()
    seconds = pw.DoubleField()

    class Meta:
        indexes = ((("photo", "featurizer"), True),)


class Distance(BaseModel):
    """The distance between two photos (``photo_a < photo_b`` by id) for one divergence
    computed on the models of one featurizer configuration."""

    photo_a = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="photo_a_id")
    photo_b = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="photo_b_id", index=True)
    featurizer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    divergence = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    value = pw.DoubleField()

    class Meta:
        primary_key = pw.CompositeKey("photo_a", "photo_b", "featurizer", "divergence")
        constraints = (pw.Check("photo_a_id < photo_b_id"),)


class Neighbours(BaseModel):
    """A photo's candidate list for the pruned index of a large library.

    ``search`` names the divergence and the search parameters the list was made for
    (see :mod:`leitmotiv.sparse_index`).  Blobs are little-endian arrays: ``embedding``
    float32; ``candidates`` the candidates' photo ids (int64) then their estimated
    divergences (float64).  ``samples`` keeps what the cheap estimate drew for the photo
    (:meth:`leitmotiv.interfaces.Divergence.dump_prepared`), so that a later update
    does not draw it again; NULL where the divergence keeps nothing.
    """

    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="photo_id")
    featurizer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    search = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    embedding = pw.BlobField()
    candidates = pw.BlobField()
    samples = pw.BlobField(null=True)

    class Meta:
        primary_key = pw.CompositeKey("photo", "featurizer", "search")


class ClusterRun(BaseModel):
    """One clustering of the library; the current run of a configuration is the one
    with ``is_current`` set (exactly one per configuration once committed)."""

    clusterer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    featurizer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    divergence = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    n_photos = pw.IntegerField()
    # Photos of the last full clustering this run extends (itself if it is one); null
    # for runs written before schema 3.
    base_photos = pw.IntegerField(null=True)
    created = pw.DateTimeField(default=utcnow)
    is_current = pw.BooleanField(default=False, index=True)
    # What the listings show of the whole run, stored with it (schema 5; see
    # leitmotiv.summaries): its number of clusters, the motifs' timeline resolution,
    # the span of the capture times in microseconds, and the timeline's first and last
    # period starts.  Null before the run is summarised.
    n_clusters = pw.IntegerField(null=True)
    resolution = pw.CharField(max_length=8, null=True)
    span_us = pw.BigIntegerField(null=True)
    first_period = pw.DateTimeField(null=True)
    last_period = pw.DateTimeField(null=True)


class Cluster(BaseModel):
    """One cluster of a run, represented by its exemplar photo."""

    run = pw.ForeignKeyField(ClusterRun, on_delete="CASCADE", backref="clusters")
    exemplar = pw.ForeignKeyField(Photo, on_delete="CASCADE")


class ClusterMember(BaseModel):
    """Membership of a photo in a cluster (the exemplar is a member too)."""

    cluster = pw.ForeignKeyField(Cluster, on_delete="CASCADE", backref="members")
    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", index=True)
    # Rank in the cluster's display order (exemplar first, then by capture time), so a
    # page of members is read through an index (schema 5).
    position = pw.IntegerField(null=True)

    class Meta:
        indexes = ((("cluster", "photo"), True), (("cluster", "position"), False))


class ClusterSummary(BaseModel):
    """What the listings show of one cluster, computed when its run is stored.

    ``periods`` is JSON: ``[[label, start (ISO), photos, occurrences], ...]`` of its
    motif's timeline; ``motif_rank`` orders the run's motifs (0 = most recurrent);
    ``first_taken``/``last_taken`` span its members' capture times (wall clock);
    ``average_key`` names the content of its average image.  ``cluster_json`` and
    ``motif_json`` are the cluster's entries of ``/api/clusters`` and ``/api/motifs``
    as JSON text, ready to serve (schema 8; see
    :func:`leitmotiv.summaries.store_listings`).
    """

    cluster = pw.ForeignKeyField(
        Cluster, primary_key=True, on_delete="CASCADE", column_name="cluster_id"
    )
    run = pw.ForeignKeyField(ClusterRun, on_delete="CASCADE", index=False)
    size = pw.IntegerField()
    first_taken = pw.DateTimeField(null=True)
    last_taken = pw.DateTimeField(null=True)
    score = pw.DoubleField()
    motif_rank = pw.IntegerField()
    n_occurrences = pw.IntegerField()
    n_undated = pw.IntegerField()
    periods = pw.TextField()
    average_key = pw.CharField(max_length=32)
    cluster_json = pw.TextField(null=True)
    motif_json = pw.TextField(null=True)

    class Meta:
        indexes = ((("run", "cluster"), True), (("run", "motif_rank"), True))


class DuplicateMember(BaseModel):
    """A photo's place in a group of near-duplicates of one (featurizer, divergence)
    configuration: the group's suggested keeper and the photo's distance to it (the
    keeper's own row has itself as keeper and distance 0).  See
    :mod:`leitmotiv.duplicates`."""

    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="photo_id")
    featurizer = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    divergence = pw.ForeignKeyField(ImplementationKey, on_delete="CASCADE")
    keeper = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="keeper_id", index=True)
    distance = pw.DoubleField()

    class Meta:
        primary_key = pw.CompositeKey("photo", "featurizer", "divergence")


class MapLayout(BaseModel):
    """The 2-D map of one clustering run (see :mod:`leitmotiv.layout`): how it was made
    and its bounds.  Deleted with its run, so the map always belongs to the clustering
    it is shown with.

    ``method`` names how the positions were made (``"umap"``, ``"mds"`` for tiny
    libraries, ``"placed"`` when photos were added to a kept layout); ``base_photos``
    counts the photos of the last full layout it extends.  ``cells`` holds how many
    points each cell of a grid over the bounds holds (little-endian int32,
    ``leitmotiv.layout.GRID`` squared, row by x cell), so that a viewport's count
    reads only the cells on its border.
    """

    run = pw.ForeignKeyField(
        ClusterRun, primary_key=True, on_delete="CASCADE", column_name="run_id"
    )
    method = pw.CharField(max_length=16)
    base_photos = pw.IntegerField()
    n_points = pw.IntegerField()
    min_x = pw.DoubleField()
    min_y = pw.DoubleField()
    max_x = pw.DoubleField()
    max_y = pw.DoubleField()
    cells = pw.BlobField()


class MapPoint(BaseModel):
    """A photo's place on the map of one run: its position, its cluster (for the
    colour) and its ``rank`` among the representatives (0 first: cluster exemplars,
    largest clusters first, then the others in a seeded random order), with ``level``
    the rank's band (see :func:`leitmotiv.layout.level_of`).  A viewport query walks
    the levels in order through the index on ``(run, level, x, y)``; ``cell`` is the
    point's cell of the map's grid (``x cell * GRID + y cell``), through which a
    viewport's border cells are counted."""

    run = pw.ForeignKeyField(ClusterRun, on_delete="CASCADE", column_name="run_id", index=False)
    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", column_name="photo_id")
    cluster = pw.ForeignKeyField(
        Cluster, on_delete="CASCADE", column_name="cluster_id", index=False
    )
    x = pw.DoubleField()
    y = pw.DoubleField()
    rank = pw.IntegerField()
    level = pw.IntegerField()
    cell = pw.IntegerField()

    class Meta:
        primary_key = pw.CompositeKey("run", "photo")


class Failure(BaseModel):
    """A file that could not be added, with the reason, from the latest attempt."""

    path = PathField(unique=True)
    reason = pw.TextField()
    time = pw.DateTimeField(default=utcnow)


#: Every table, parents before children (the order tables are created in).
MODELS: tuple[type[BaseModel], ...] = (
    SchemaVersion,
    ImplementationKey,
    Photo,
    Model,
    Distance,
    Neighbours,
    ClusterRun,
    Cluster,
    ClusterMember,
    ClusterSummary,
    DuplicateMember,
    MapLayout,
    MapPoint,
    Failure,
)


def _create_initial_schema(db: pw.Database) -> None:
    # Made by their own migrations:
    later = (Neighbours, ClusterSummary, DuplicateMember, MapLayout, MapPoint)
    db.create_tables([m for m in MODELS[1:] if m not in later], safe=True)


#: ``(version, migration)`` in order.  A migration takes the database and brings the
#: schema from the previous version to its own; later ones use ``playhouse.migrate``
#: (``SchemaMigrator.from_database(db)``) to alter tables in place.
def _add_neighbours(db: pw.Database) -> None:
    db.create_tables([Neighbours], safe=True)


def _add_base_photos(db: pw.Database) -> None:
    table = ClusterRun._meta.table_name
    if "base_photos" not in {c.name for c in db.get_columns(table)}:
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN base_photos INTEGER")


def _rebuild_neighbours(db: pw.Database) -> None:
    # Version 4 keeps each photo's sample set instead of its wide embedding list, and
    # the lists are made differently (the search key changed): the old rows are a
    # cache that no longer applies, so the table is made anew.
    db.drop_tables([Neighbours], safe=True)
    db.create_tables([Neighbours], safe=True)


#: The photo grid's order (undated last, then by capture time, then path), as an index:
#: a page of the grid, however deep, is read from it without sorting the table.
PHOTO_ORDER_INDEX = "photo_by_taken"


def _add_summaries(db: pw.Database) -> None:
    # Version 5: per-clustering summaries stored with each run, member positions, and
    # the indexes the web view's listings read through.  The tables may already have
    # the new columns (a database created by this version's models), hence the checks.
    from playhouse.migrate import SchemaMigrator, migrate

    migrator = SchemaMigrator.from_database(db)
    for model, names in (
        (ClusterRun, ("n_clusters", "resolution", "span_us", "first_period", "last_period")),
        (ClusterMember, ("position",)),
    ):
        table = model._meta.table_name
        present = {c.name for c in db.get_columns(table)}
        migrate(
            *(
                migrator.add_column(table, name, model._meta.fields[name])
                for name in names
                if name not in present
            )
        )
    member = ClusterMember._meta.table_name
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS {member}_cluster_id_position ON {member} "
        "(cluster_id, position)"
    )
    photo = Photo._meta.table_name
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS {PHOTO_ORDER_INDEX} ON {photo} ((taken IS NULL), taken, path)"
    )
    db.create_tables([ClusterSummary], safe=True)
    # Runs stored before this version get their summaries now, in this transaction.
    from leitmotiv import summaries

    for (run_id,) in ClusterRun.select(ClusterRun.id).tuples():
        summaries.store_run(run_id)


def _add_duplicates(db: pw.Database) -> None:
    table = Photo._meta.table_name
    if "sharpness" not in {c.name for c in db.get_columns(table)}:
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN sharpness REAL")
    db.create_tables([DuplicateMember], safe=True)


#: The map's viewport indexes: a box query reads one level's x range from the first,
#: and the columns it returns (rank, photo, cluster) too, without touching the table;
#: the second counts the points of a viewport's border cells.
MAP_BOX_INDEX = "mappoint_box"
MAP_CELL_INDEX = "mappoint_cell"


def _add_map(db: pw.Database) -> None:
    # Version 7: the map of each clustering run.  Runs stored before it have no map
    # until the next build-index stores one (leitmotiv.layout).
    db.create_tables([MapLayout, MapPoint], safe=True)
    table = MapPoint._meta.table_name
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS {MAP_BOX_INDEX} ON {table} "
        "(run_id, level, x, y, rank, photo_id, cluster_id)"
    )
    db.execute_sql(
        f"CREATE INDEX IF NOT EXISTS {MAP_CELL_INDEX} ON {table} (run_id, cell, x, y)"
    )


def _add_listings(db: pw.Database) -> None:
    # Version 8 (7 is the map's): each cluster's entries of /api/clusters and
    # /api/motifs stored ready to serve.  A database whose summary table was made by
    # this version's model has the columns already; runs stored before get their
    # listings now, in this transaction.
    table = ClusterSummary._meta.table_name
    present = {c.name for c in db.get_columns(table)}
    for name in ("cluster_json", "motif_json"):
        if name not in present:
            db.execute_sql(f"ALTER TABLE {table} ADD COLUMN {name} TEXT")
    from leitmotiv import summaries

    stored = ClusterRun.select(ClusterRun.id).where(ClusterRun.n_clusters.is_null(False))
    for (run_id,) in stored.tuples():
        summaries.store_listings(run_id)


MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [
    (1, _create_initial_schema),
    (2, _add_neighbours),
    (3, _add_base_photos),
    (4, _rebuild_neighbours),
    (5, _add_summaries),
    (6, _add_duplicates),
    (7, _add_map),
    (8, _add_listings),
]

#: The version a freshly migrated database has.
SCHEMA_VERSION = MIGRATIONS[-1][0]


def schema_version(db: pw.Database) -> int:
    """The schema version recorded in ``db`` (0 for an empty database)."""
    with bound(db):
        if not db.table_exists(SchemaVersion._meta.table_name):
            return 0
        row = SchemaVersion.select(pw.fn.MAX(SchemaVersion.version)).scalar()
        return int(row or 0)


def _lock_schema(db: pw.Database) -> None:
    """Inside a transaction: wait until no other process is changing the schema.

    SQLite needs nothing more (an ``IMMEDIATE`` transaction already holds the write
    lock); PostgreSQL takes a transaction-level advisory lock, because two
    ``CREATE TABLE IF NOT EXISTS`` at once can both fail on its catalogue.
    """
    if isinstance(db, pw.PostgresqlDatabase):
        taken = db.execute_sql("SELECT pg_try_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        if not taken.fetchone()[0]:
            log.warning("waiting for another process changing the schema of %s", db.database)
            db.execute_sql("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))


def migrate(db: pw.Database) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION`, each step in its own transaction.

    Safe when several processes open one database at once: each step runs under the
    schema lock (see :func:`_lock_schema`) and is skipped if another process has
    done it meanwhile.  A database already at the current version is only read.

    Returns
    -------
    int
        The version the database is at afterwards.

    Raises
    ------
    RuntimeError
        If the database was written by a newer leitmotiv (its version is unknown here).
    """
    with bound(db):
        current = schema_version(db)
        for version, step in MIGRATIONS:
            if version <= current:
                continue
            with db.atomic():
                _lock_schema(db)
                db.create_tables([SchemaVersion], safe=True)
                current = schema_version(db)
                if version <= current:
                    continue
                step(db)
                SchemaVersion.delete().execute()
                SchemaVersion.create(version=version)
            log.info("migrated the database to schema version %d", version)
            current = version
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {current}, newer than this leitmotiv "
                f"understands ({SCHEMA_VERSION}); upgrade leitmotiv"
            )
    return current


def connect(
    url: str | None, folder: Path, read_only: bool = False, immutable: bool = False
) -> pw.Database:
    """Open (without migrating) the database of a library.

    Parameters
    ----------
    url : str or None
        A peewee database URL; None means the SQLite file :data:`SQLITE_NAME` in
        ``folder``.  SQLite URLs get the same pragmas (and transactions) as the
        default file.
    folder : Path
        The library folder (must exist).
    read_only : bool
        Open a connection that cannot write: the SQLite file with ``mode=ro``, other
        SQLite URLs with ``query_only``, PostgreSQL with read-only transactions.
    immutable : bool
        With ``read_only``, open the SQLite file as one nobody writes (``immutable=1``):
        no locks and no WAL index, which a folder this process may not write to needs.

    Raises
    ------
    peewee.OperationalError
        If the database cannot be opened; a URL's password is masked in the message.
    """
    pragmas = SQLITE_READ_ONLY_PRAGMAS if read_only else SQLITE_PRAGMAS
    if url is None:
        path = Path(folder) / SQLITE_NAME
        if read_only:
            uri = path.absolute().as_uri().replace("file://", "file:", 1) + "?mode=ro"
            uri += "&immutable=1" if immutable else ""
            db: pw.Database = LibraryDatabase(uri, read_only=True, uri=True, pragmas=pragmas)
        else:
            db = LibraryDatabase(str(path), pragmas=pragmas)
    elif url.startswith("sqlite"):
        params = db_url.parse(url)
        db = LibraryDatabase(params.pop("database"), read_only=read_only, pragmas=pragmas, **params)
    elif read_only and url.startswith("postgres"):
        db = db_url.connect(url, options="-c default_transaction_read_only=on")
    else:
        db = db_url.connect(url)
    try:
        db.connect(reuse_if_open=True)
    except pw.OperationalError as exc:
        if url is None:
            raise
        reason = _without_password(str(exc).strip(), url)
        raise pw.OperationalError(f"cannot open the database {masked_url(url)}: {reason}") from None
    return db


def database_exists(url: str | None, folder: Path) -> bool:
    """Whether a library's database is there to read, looked for without creating it.

    Parameters
    ----------
    url : str or None
        As for :func:`connect`.
    folder : Path
        The library folder.

    Returns
    -------
    bool
        For SQLite, whether the file exists (an in-memory database always does); a
        server database (PostgreSQL, ...) is taken to exist, since it is made by its
        administrator and connecting to it creates nothing.
    """
    if url is None:
        return (folder / SQLITE_NAME).is_file()
    if url.startswith("sqlite"):
        name = db_url.parse(url).get("database") or ""
        return name in ("", ":memory:") or Path(name).is_file()
    return True


def open_database(url: str | None, folder: Path) -> pw.Database:
    """Connect to a library's database and migrate it (for commands that write)."""
    db = connect(url, folder)
    migrate(db)
    return db


def _empty_store() -> pw.Database:
    """An empty store in memory: what reading a library that holds nothing yet sees."""
    # One connection shared by every thread: an in-memory database is private to the
    # connection that made it.
    db = pw.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)
    migrate(db)
    return db


def open_read_only(url: str | None, folder: Path) -> pw.Database:
    """Connect to a library's database for reading only: nothing is written, not even
    a migration.

    A library whose SQLite file does not exist yet reads as empty (an empty store in
    memory, never on disk).

    Raises
    ------
    NotADirectoryError
        If the library folder cannot exist (a file is in its way).
    RuntimeError
        If the schema is not this leitmotiv's: an older one is brought up to date only
        by a command that writes; a newer one needs a newer leitmotiv.
    """
    if url is None and not (Path(folder) / SQLITE_NAME).exists():
        # A folder that could not be made is an error, as it is for a writer.
        existing = next(
            p for p in (Path(folder).absolute(), *Path(folder).absolute().parents) if p.exists()
        )
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder))
        return _empty_store()
    try:
        db = connect(url, folder, read_only=True)
        version = schema_version(db)
    except pw.OperationalError:
        if url is not None:
            raise
        # Reading a WAL database needs its shared-memory index (-shm), which SQLite
        # cannot create in a folder this process may not write to: read the file as
        # immutable then (a writer's later changes show after the library is reopened).
        db = connect(url, folder, read_only=True, immutable=True)
        version = schema_version(db)
        log.info("%s is not writable: reading its database as immutable", folder)
    if version == SCHEMA_VERSION:
        return db
    db.close()
    if version == 0:  # a server database nothing was stored in yet reads as empty
        return _empty_store()
    if version > SCHEMA_VERSION:
        raise RuntimeError(
            f"the database has schema version {version}, newer than this leitmotiv "
            f"understands ({SCHEMA_VERSION}); upgrade leitmotiv"
        )
    raise RuntimeError(
        f"the library's database has schema version {version}, older than this "
        f"leitmotiv's ({SCHEMA_VERSION}); run a command that writes to the library "
        "(add-directory, add-image or build-index) to upgrade it first"
    )


@contextlib.contextmanager
def bound(db: pw.Database) -> Iterator[pw.Database]:
    """Bind every model to ``db`` for the duration of the block, in this thread only
    (other threads keep their own binding); blocks nest."""
    previous = database_proxy.obj
    database_proxy.obj = db
    try:
        yield db
    finally:
        database_proxy.obj = previous


def find_key_id(key: str) -> int:
    """The id of an implementation key, or :data:`NO_KEY` if it was never stored
    (nothing was computed with it); never writes."""
    found = ImplementationKey.get_or_none(ImplementationKey.key == key)
    return NO_KEY if found is None else found.id


def key_id(key: str) -> int:
    """The id of an implementation key, inserting it on first use (idempotent).

    Looks before it inserts, so that a reader does not take the write lock.
    """
    found = ImplementationKey.get_or_none(ImplementationKey.key == key)
    if found is not None:
        return found.id
    if getattr(ImplementationKey._meta.database, "read_only", False):
        return -1  # nothing is stored for a new key: an id that matches no row
    ImplementationKey.insert(key=key).on_conflict_ignore().execute()
    return ImplementationKey.get(ImplementationKey.key == key).id


def claim_photo(path: str, values: dict[pw.Field, Any]) -> tuple[int, str | None]:
    """The row of the photo at ``path``, inserted with ``values`` if there is none,
    locked for the rest of the caller's transaction.

    Two processes adding one file at once must not both insert it: on SQLite the
    ``IMMEDIATE`` transaction already excludes the other writer; on PostgreSQL the
    insert does nothing on a conflict (it waits for the other transaction to end) and
    the row is then read ``FOR UPDATE``, so the two writes of one photo follow each
    other.

    Returns
    -------
    (int, str or None)
        The photo's id and, for a photo that was there before, the SHA-256 it had
        (None for a photo inserted now).
    """
    query = Photo.select(Photo.id, Photo.sha256).where(Photo.path == path).tuples()
    if _locks_rows():
        query = query.for_update()
    row = query.first()
    if row is not None:
        return row[0], row[1]
    inserted = Photo.insert({Photo.path: path, **values}).on_conflict_ignore().execute()
    if inserted:
        return int(inserted), None
    row = query.clone().first()  # another process inserted it meanwhile
    return row[0], row[1]


def _locks_rows() -> bool:
    db = Photo._meta.database
    db = db.obj if isinstance(db, pw.DatabaseProxy) else db
    return bool(getattr(db, "for_update", False))


def change_marker(db: pw.Database) -> tuple[Any, tuple[int, int]] | None:
    """This thread's connection to ``db`` and a value of it that changes whenever the
    database may have changed, so that a reader can keep a figure until it does.

    SQLite: ``PRAGMA data_version`` (it changes when another connection commits) and
    the connection's own ``total_changes``.  None for other databases: their readers
    do not cache.
    """
    if isinstance(db, pw.DatabaseProxy):
        db = db.obj
    if not isinstance(db, pw.SqliteDatabase):
        return None
    conn = db.connection()
    (version,) = conn.execute("PRAGMA data_version").fetchone()
    return conn, (int(version), int(conn.total_changes))


class KeptUntilChanged:
    """Values a reader keeps per connection until the database may have changed
    (:func:`change_marker`), each under a tag that says what it is of.

    Entries hold their connection, so a connection's id is not reused while its entry
    is kept; at most ``size`` connections are remembered.  Nothing is kept for
    databases without a change marker (every :meth:`get` misses).
    """

    def __init__(self, size: int = 64) -> None:
        self._size = size
        self._lock = threading.Lock()
        self._kept: dict[int, tuple[Any, tuple[int, int], Any, Any]] = {}

    def get(self, marker: tuple[Any, tuple[int, int]] | None, tag: Any) -> Any:
        """The value put under ``tag`` at this connection's ``marker``, or None."""
        if marker is None:
            return None
        conn, version = marker
        with self._lock:
            kept = self._kept.get(id(conn))
        if kept is None or kept[0] is not conn or kept[1] != version or kept[2] != tag:
            return None
        return kept[3]

    def put(self, marker: tuple[Any, tuple[int, int]] | None, tag: Any, value: Any) -> None:
        """Keep ``value`` under ``tag`` for the connection of ``marker`` (read before
        the value was, so that a change meanwhile makes the next :meth:`get` miss)."""
        if marker is None:
            return
        conn, version = marker
        with self._lock:
            if id(conn) not in self._kept and len(self._kept) >= self._size:
                self._kept.pop(next(iter(self._kept)))
            self._kept[id(conn)] = (conn, version, tag, value)


def raw_rows(db: pw.Database, query: pw.Query, batch: int = 10_000) -> Iterator[tuple]:
    """The rows of ``query`` as the database driver returns them (blobs as bytes or
    memoryview), without peewee's per-row processing: a large library reads hundreds of
    thousands of rows, where that processing costs more than the reading."""
    cursor = db.execute(query)
    while rows := cursor.fetchmany(batch):
        yield from rows


#: The value that marks the parameter a :class:`Lookup` fills in (no id takes it).
LOOKUP_SLOT = -0x1EE7_0000_0001


class Lookup:
    """A one-parameter query compiled to SQL once, then run with each new value.

    Peewee writes a statement's text anew on every call, which for a one-row lookup
    costs far more than SQLite takes to answer it (at 100,000 photos about 0.2 ms
    against 0.01 ms): the web view makes such lookups on every request.

    Parameters
    ----------
    db : peewee.Database
    query : peewee.Query
        The query with :data:`LOOKUP_SLOT` where the value goes (exactly once).
    """

    def __init__(self, db: pw.Database, query: pw.Query) -> None:
        with bound(db):
            self.sql, params = query.sql()
        if params.count(LOOKUP_SLOT) != 1:
            raise ValueError("a lookup takes its value in exactly one parameter")
        self._params = list(params)
        self._slot = params.index(LOOKUP_SLOT)
        self._db = db

    def rows(self, value: Any) -> list[tuple]:
        """The rows for ``value``, as the driver returns them (see :func:`raw_rows`)."""
        params = list(self._params)
        params[self._slot] = value
        return self._db.execute_sql(self.sql, params).fetchall()


def join_taken(taken: Any, offset: int | None) -> dt.datetime | None:
    """A stored capture time (text from SQLite) with its UTC offset, as photos show it."""
    if taken is None:
        return None
    if isinstance(taken, str):  # SQLite hands back text it cannot parse as-is
        taken = dt.datetime.fromisoformat(taken)
    if offset is not None:
        taken = taken.replace(tzinfo=dt.timezone(dt.timedelta(seconds=offset)))
    return taken


def one_of(field: pw.Field, values: list[int]) -> pw.Expression:
    """``field IN (values)`` with one placeholder per value, written directly: peewee's
    ``in_`` converts each value through the field, which for the hundreds of ids a
    listing asks for costs more than running the query.  Integers only (ids)."""
    marks = ", ".join([field.model._meta.database.param] * len(values))
    return pw.Expression(field, pw.OP.IN, pw.SQL(f"({marks})", [int(v) for v in values]))


#: Rows per INSERT: 5 columns x 1000 rows stays under SQLite's bound-variable limit.
INSERT_CHUNK = 1000


def insert_rows(
    model: type[BaseModel],
    fields: list[pw.Field],
    rows: list[tuple[Any, ...]],
    ignore_conflicts: bool = False,
) -> None:
    """Insert many rows of ``model`` (bound to its database); the caller owns the
    transaction.

    On SQLite one prepared statement runs for every row (``executemany``), some fifteen
    times faster than peewee's multi-row ``INSERT`` built in Python for the hundreds of
    thousands of rows a large library writes.  Other databases get multi-row inserts of
    :data:`INSERT_CHUNK` rows, one round trip each.
    """
    db = model._meta.database
    if isinstance(db, pw.DatabaseProxy):
        db = db.obj
    if isinstance(db, pw.SqliteDatabase):
        columns = ", ".join(field.column_name for field in fields)
        marks = ", ".join("?" * len(fields))
        verb = "INSERT OR IGNORE" if ignore_conflicts else "INSERT"
        sql = f"{verb} INTO {model._meta.table_name} ({columns}) VALUES ({marks})"
        try:
            db.cursor().executemany(sql, rows)
        except sqlite3.OperationalError as exc:
            explain = getattr(db, "_explained", lambda e: e)
            raise explain(pw.OperationalError(*exc.args)) from exc
        return
    for start in range(0, len(rows), INSERT_CHUNK):
        query = model.insert_many(rows[start : start + INSERT_CHUNK], fields=fields)
        (query.on_conflict_ignore() if ignore_conflicts else query).execute()


def insert_distances(rows: list[tuple[int, int, int, int, float]]) -> None:
    """Insert ``(photo_a, photo_b, featurizer_id, divergence_id, value)`` rows (a < b),
    ignoring pairs already stored; the caller owns the transaction."""
    fields = [
        Distance.photo_a,
        Distance.photo_b,
        Distance.featurizer,
        Distance.divergence,
        Distance.value,
    ]
    insert_rows(Distance, fields, rows, ignore_conflicts=True)


def runs_of(keys: tuple[int, int, int]) -> pw.Expression:
    """SQL condition: the cluster runs of one (featurizer, divergence, clusterer) key triple."""
    featurizer_id, divergence_id, clusterer_id = keys
    return (
        (ClusterRun.featurizer == featurizer_id)
        & (ClusterRun.divergence == divergence_id)
        & (ClusterRun.clusterer == clusterer_id)
    )


def current_run(keys: tuple[int, int, int]) -> ClusterRun | None:
    """The current cluster run of one (featurizer, divergence, clusterer), or None."""
    is_current = ClusterRun.is_current == True  # noqa: E712 - SQL expression
    return (
        ClusterRun.select().where(runs_of(keys) & is_current).order_by(ClusterRun.id.desc()).first()
    )


# -- the index's reads and writes: models, distances, candidate lists -----------------
# The numerical modules (pair_chunks, sparse_index) call these and never build SQL.


def model_blobs(db: pw.Database, featurizer_id: int, photo_ids: Iterable[int]) -> dict[int, bytes]:
    """The stored model blobs of ``photo_ids`` for one featurizer, by photo id."""
    out: dict[int, bytes] = {}
    wanted = sorted({int(p) for p in photo_ids})
    with bound(db):
        for s in range(0, len(wanted), INSERT_CHUNK):
            query = (
                Model.select(Model.photo, Model.mixture)
                .where(
                    (Model.featurizer == featurizer_id)
                    & Model.photo.in_(wanted[s : s + INSERT_CHUNK])
                )
                .tuples()
            )
            for photo_id, blob in query.iterator():
                out[photo_id] = bytes(blob)
    return out


def save_distances(
    db: pw.Database,
    pairs: Iterable[tuple[int, int]],
    values: Iterable[float],
    featurizer_id: int,
    divergence_id: int,
) -> None:
    """Store computed distances of photo-id pairs ``(a, b)``, ``a < b``, in one
    transaction (pairs already stored are kept)."""
    rows = [
        (int(a), int(b), featurizer_id, divergence_id, float(v))
        for (a, b), v in zip(pairs, values, strict=True)
    ]
    with bound(db), db.atomic():
        insert_distances(rows)


def search_key_id(db: pw.Database, key: str) -> int:
    """The id of a candidate search's key (see :class:`Neighbours`), in its own
    transaction."""
    with bound(db), db.atomic():
        return key_id(key)


def neighbour_lists(
    db: pw.Database, featurizer_id: int, search_id: int
) -> Iterator[tuple[int, bytes, bytes]]:
    """Every stored candidate list of one featurizer and search, as
    ``(photo id, embedding blob, candidates blob)`` straight from the cursor."""
    with bound(db):
        query = Neighbours.select(
            Neighbours.photo, Neighbours.embedding, Neighbours.candidates
        ).where((Neighbours.featurizer == featurizer_id) & (Neighbours.search == search_id))
    for photo_id, embedding, candidates in raw_rows(db, query):
        yield photo_id, bytes(embedding), bytes(candidates)


def neighbour_embeddings(
    db: pw.Database, featurizer_id: int, search_id: int
) -> Iterator[tuple[int, bytes]]:
    """The embedding stored with every candidate list of one featurizer and search, as
    ``(photo id, embedding blob)`` straight from the cursor (the lists left unread)."""
    with bound(db):
        query = Neighbours.select(Neighbours.photo, Neighbours.embedding).where(
            (Neighbours.featurizer == featurizer_id) & (Neighbours.search == search_id)
        )
    for photo_id, embedding in raw_rows(db, query):
        yield photo_id, bytes(embedding)


def kept_samples(
    db: pw.Database, featurizer_id: int, search_id: int, photo_ids: Iterable[int]
) -> Iterator[tuple[int, bytes]]:
    """The sample sets kept with the candidate lists of ``photo_ids`` (those that have
    one), as ``(photo id, blob)``."""
    wanted = sorted(int(p) for p in photo_ids)
    with bound(db):
        where = (Neighbours.featurizer == featurizer_id) & (Neighbours.search == search_id)
        queries = [
            Neighbours.select(Neighbours.photo, Neighbours.samples).where(
                where & Neighbours.photo.in_(wanted[s : s + INSERT_CHUNK])
            )
            for s in range(0, len(wanted), INSERT_CHUNK)
        ]
    for query in queries:
        for photo_id, blob in raw_rows(db, query):
            if blob:
                yield photo_id, bytes(blob)


def write_neighbours(
    db: pw.Database,
    featurizer_id: int,
    search_id: int,
    changed: Iterable[tuple[int, bytes]],
    added: Iterable[tuple[int, bytes, bytes, bytes | None]],
) -> None:
    """Store one batch of candidate lists in one transaction.

    Parameters
    ----------
    changed : iterable of (photo id, candidates blob)
        Stored lists that get a new candidates blob.
    added : iterable of (photo id, embedding blob, candidates blob, samples blob or None)
        New lists.
    """
    meta = Neighbours._meta
    column = {name: meta.fields[name].column_name for name in meta.fields}
    # One prepared statement for every changed row: a batch changes thousands.
    update = (
        f"UPDATE {meta.table_name} SET {column['candidates']} = {db.param} "
        f"WHERE {column['photo']} = {db.param} "
        f"AND {column['featurizer']} = {db.param} AND {column['search']} = {db.param}"
    )
    fields = [
        Neighbours.photo,
        Neighbours.featurizer,
        Neighbours.search,
        Neighbours.embedding,
        Neighbours.candidates,
        Neighbours.samples,
    ]
    changed_rows = [(blob, int(p), featurizer_id, search_id) for p, blob in changed]
    added_rows = [
        (int(p), featurizer_id, search_id, emb, cands, samples) for p, emb, cands, samples in added
    ]
    with bound(db), db.atomic():
        for s in range(0, len(changed_rows), INSERT_CHUNK):
            db.cursor().executemany(update, changed_rows[s : s + INSERT_CHUNK])
        for s in range(0, len(added_rows), INSERT_CHUNK):
            insert_rows(Neighbours, fields, added_rows[s : s + INSERT_CHUNK])


# ---------------------------------------------------------------- the map's viewports
# A viewport request runs a dozen small statements; peewee building each one anew
# cost more than SQLite running it (measured: 0.16 of 0.29 s for 10 requests at
# 100,000 photos), so these are written once, with the driver's placeholder.


def _map_sql(db: pw.Database, text: str) -> str:
    return text.format(
        p=db.param,
        points=MapPoint._meta.table_name,
        maps=MapLayout._meta.table_name,
        runs=ClusterRun._meta.table_name,
        photos=Photo._meta.table_name,
    )


def current_map(db: pw.Database, keys: tuple[int, int, int]) -> tuple | None:
    """The current run's map of configuration ``keys`` as (run id, n_points, min_x,
    min_y, max_x, max_y, cells), or None."""
    sql = _map_sql(
        db,
        "SELECT m.run_id, m.n_points, m.min_x, m.min_y, m.max_x, m.max_y, m.cells "
        "FROM {maps} m JOIN {runs} r ON r.id = m.run_id WHERE r.is_current "
        "AND r.clusterer_id = {p} AND r.featurizer_id = {p} AND r.divergence_id = {p}",
    )
    featurizer_id, divergence_id, clusterer_id = keys
    return db.execute_sql(sql, (clusterer_id, featurizer_id, divergence_id)).fetchone()


def map_level_rows(
    db: pw.Database, run_id: int, level: int, box: tuple[float, float, float, float], limit: int
) -> list[tuple[int, int, float, float, int, str]]:
    """The lowest-ranked ``limit`` points of one level of a run's map inside ``box``:
    (rank, photo id, x, y, cluster id, the photo's SHA-256), read from the viewport
    index (a photo no longer in the library is left out)."""
    sql = _map_sql(
        db,
        # The page first, then its photos: joining before the LIMIT would join every
        # point in the box.
        "SELECT m.rank, m.photo_id, m.x, m.y, m.cluster_id, p.sha256 FROM ("
        "SELECT rank, photo_id, x, y, cluster_id FROM {points} WHERE run_id = {p} "
        "AND level = {p} AND x BETWEEN {p} AND {p} AND y BETWEEN {p} AND {p} "
        "ORDER BY rank LIMIT {p}) m JOIN {photos} p ON p.id = m.photo_id ORDER BY m.rank",
    )
    x0, y0, x1, y1 = box
    return db.execute_sql(sql, (run_id, level, x0, x1, y0, y1, limit)).fetchall()


def map_cells_count(
    db: pw.Database, run_id: int, cells: list[int], box: tuple[float, float, float, float]
) -> int:
    """Points of a run's map in grid ``cells`` that lie inside ``box``."""
    total = 0
    x0, y0, x1, y1 = box
    for start in range(0, len(cells), INSERT_CHUNK):
        chunk = cells[start : start + INSERT_CHUNK]
        marks = ", ".join([db.param] * len(chunk))
        sql = _map_sql(
            db,
            "SELECT COUNT(*) FROM {points} WHERE run_id = {p} AND cell IN (" + marks + ") "
            "AND x BETWEEN {p} AND {p} AND y BETWEEN {p} AND {p}",
        )
        total += db.execute_sql(sql, (run_id, *chunk, x0, x1, y0, y1)).fetchone()[0]
    return total
