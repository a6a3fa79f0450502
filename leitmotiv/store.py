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
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import peewee as pw
from playhouse import db_url

log = logging.getLogger(__name__)

#: Name of the SQLite database file inside the library folder.
SQLITE_NAME = "leitmotiv.db"

#: SQLite settings: WAL lets readers work during a write; ``busy_timeout`` (ms) makes a
#: second writer wait for the lock instead of failing at once.
SQLITE_PRAGMAS = {
    "journal_mode": "wal",
    "foreign_keys": 1,
    "cache_size": -64000,
    "busy_timeout": 30000,
    "synchronous": "normal",
}


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


def utcnow() -> dt.datetime:
    """The current time in UTC, naive (the store keeps naive UTC timestamps)."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


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

    path = pw.TextField(unique=True)
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


class Cluster(BaseModel):
    """One cluster of a run, represented by its exemplar photo."""

    run = pw.ForeignKeyField(ClusterRun, on_delete="CASCADE", backref="clusters")
    exemplar = pw.ForeignKeyField(Photo, on_delete="CASCADE")


class ClusterMember(BaseModel):
    """Membership of a photo in a cluster (the exemplar is a member too)."""

    cluster = pw.ForeignKeyField(Cluster, on_delete="CASCADE", backref="members")
    photo = pw.ForeignKeyField(Photo, on_delete="CASCADE", index=True)

    class Meta:
        indexes = ((("cluster", "photo"), True),)


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


class Failure(BaseModel):
    """A file that could not be added, with the reason, from the latest attempt."""

    path = pw.TextField(unique=True)
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
    DuplicateMember,
    Failure,
)


def _create_initial_schema(db: pw.Database) -> None:
    db.create_tables([m for m in MODELS[1:] if m not in (Neighbours, DuplicateMember)], safe=True)


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


def _add_duplicates(db: pw.Database) -> None:
    table = Photo._meta.table_name
    if "sharpness" not in {c.name for c in db.get_columns(table)}:
        db.execute_sql(f"ALTER TABLE {table} ADD COLUMN sharpness REAL")
    db.create_tables([DuplicateMember], safe=True)


MIGRATIONS: list[tuple[int, Callable[[pw.Database], None]]] = [
    (1, _create_initial_schema),
    (2, _add_neighbours),
    (3, _add_base_photos),
    (4, _rebuild_neighbours),
    (5, _add_duplicates),
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


def migrate(db: pw.Database) -> int:
    """Bring ``db`` to :data:`SCHEMA_VERSION`, each step in its own transaction.

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
        db.create_tables([SchemaVersion], safe=True)
        current = schema_version(db)
        if current > SCHEMA_VERSION:
            raise RuntimeError(
                f"the database has schema version {current}, newer than this leitmotiv "
                f"understands ({SCHEMA_VERSION}); upgrade leitmotiv"
            )
        for version, step in MIGRATIONS:
            if version <= current:
                continue
            with db.atomic():
                step(db)
                SchemaVersion.delete().execute()
                SchemaVersion.create(version=version)
            log.info("migrated the database to schema version %d", version)
            current = version
    return current


def connect(url: str | None, folder: Path) -> pw.Database:
    """Open (without migrating) the database of a library.

    Parameters
    ----------
    url : str or None
        A peewee database URL; None means the SQLite file :data:`SQLITE_NAME` in
        ``folder``.  SQLite URLs get the same pragmas as the default file.
    folder : Path
        The library folder (must exist).
    """
    if url is None:
        db: pw.Database = pw.SqliteDatabase(str(folder / SQLITE_NAME), pragmas=SQLITE_PRAGMAS)
    elif url.startswith("sqlite"):
        db = db_url.connect(url, pragmas=SQLITE_PRAGMAS)
    else:
        db = db_url.connect(url)
    db.connect(reuse_if_open=True)
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
    """Connect to a library's database and migrate it."""
    db = connect(url, folder)
    migrate(db)
    return db


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


def key_id(key: str) -> int:
    """The id of an implementation key, inserting it on first use (idempotent).

    Looks before it inserts, so that a reader does not take the write lock.
    """
    found = ImplementationKey.get_or_none(ImplementationKey.key == key)
    if found is not None:
        return found.id
    ImplementationKey.insert(key=key).on_conflict_ignore().execute()
    return ImplementationKey.get(ImplementationKey.key == key).id


def raw_rows(db: pw.Database, query: pw.Query, batch: int = 10_000) -> Iterator[tuple]:
    """The rows of ``query`` as the database driver returns them (blobs as bytes or
    memoryview), without peewee's per-row processing: a large library reads hundreds of
    thousands of rows, where that processing costs more than the reading."""
    cursor = db.execute(query)
    while rows := cursor.fetchmany(batch):
        yield from rows


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
        db.cursor().executemany(sql, rows)
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
