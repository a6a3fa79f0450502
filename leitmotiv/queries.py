"""Read-only questions about a library: photos, similar photos, clusters, motifs,
failures, and a photo's stored model and thumbnail.

Every function takes the library's :class:`~leitmotiv.context.Context` and returns
plain frozen records (:class:`Photo`, :class:`Cluster`, :class:`Failure`,
:class:`~leitmotiv.motifs.Motif`), never store rows.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
from collections.abc import Iterable, Sequence

import peewee as pw

from leitmotiv import paths, store, summaries
from leitmotiv.context import Context
from leitmotiv.motifs import Motif

__all__ = [
    "Cluster",
    "Failure",
    "Photo",
    "cluster",
    "cluster_summaries",
    "cluster_summary",
    "clusters",
    "count_photos",
    "count_similar",
    "failures",
    "find_photo",
    "member_ids",
    "mixture",
    "model_blob",
    "motif",
    "motifs",
    "parse_date_bound",
    "photo",
    "photos",
    "photos_by_id",
    "similar",
    "summary",
    "thumbnail",
    "thumbnail_stamp",
]


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
        ``"exif"``, ``"mtime"`` or ``"mtime-bad-exif"`` (see :mod:`leitmotiv.imaging`).
    width, height : int
        Size of the full upright image, in pixels.
    components : int or None
        Components of its model for the current featurizer (None if not fitted).
    sha256 : str
        Hex digest of the file's content.
    size : int
        File size in bytes.
    sharpness : float or None
        Variance of the Laplacian of its thumbnail (:mod:`leitmotiv.sharpness`); None
        until measured.
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
    sharpness: float | None = None


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


def _photo_query(ctx: Context) -> pw.ModelSelect:
    """The photo rows as tuples in :func:`_to_photo`'s order.  Pages read them with
    :func:`leitmotiv.store.raw_rows`: peewee's per-row conversions cost more than the
    query for the hundreds of photos a page shows."""
    featurizer_id = ctx.key_ids()[0]
    return (
        store.Photo.select(
            store.Photo.id,
            store.Photo.path,
            store.Photo.taken,
            store.Photo.taken_offset,
            store.Photo.taken_source,
            store.Photo.width,
            store.Photo.height,
            store.Photo.sha256,
            store.Photo.size,
            store.Photo.sharpness,
            store.Model.n_components,
        )
        .join(
            store.Model,
            pw.JOIN.LEFT_OUTER,
            on=(store.Model.photo == store.Photo.id) & (store.Model.featurizer == featurizer_id),
        )
        .tuples()
    )


def _to_photo(row: tuple) -> Photo:
    pid, path, taken, offset, source, width, height, sha256, size, sharpness, components = row
    return Photo(
        id=pid,
        path=paths.from_stored(path),  # raw rows skip the store's PathField
        taken=store.join_taken(taken, offset),
        taken_source=source,
        width=width,
        height=height,
        components=components,
        sha256=sha256,
        size=size,
        sharpness=sharpness,
    )


def photos_by_id(ctx: Context, ids: Iterable[int]) -> dict[int, Photo]:
    """The photos with these ids, by id (unknown ids are left out)."""
    ids = list(ids)
    found: dict[int, Photo] = {}
    with store.bound(ctx.db):
        # In chunks: SQLite bounds the number of variables in one statement.
        for start in range(0, max(len(ids), 1), store.INSERT_CHUNK):
            chunk = ids[start : start + store.INSERT_CHUNK]
            query = _photo_query(ctx).where(store.one_of(store.Photo.id, chunk))
            # Straight from the cursor: peewee's per-row processing costs more than
            # the query when a listing asks for tens of thousands of photos.
            for row in store.raw_rows(ctx.db, query):
                found[row[0]] = _to_photo(row)
    return found


def photos(ctx: Context, offset: int = 0, limit: int | None = None) -> list[Photo]:
    """Photos ordered by capture time (unknown times last), then path."""
    order = (store.Photo.taken.is_null(), store.Photo.taken, store.Photo.path)
    with store.bound(ctx.db):
        query = _photo_query(ctx).order_by(*order)
        if limit is not None or offset:
            # The page's ids first, from the index on that order alone (store.
            # PHOTO_ORDER_INDEX): a deep offset then skips index entries, not joined rows.
            page = store.Photo.select(store.Photo.id).order_by(*order).limit(limit).offset(offset)
            query = query.where(store.Photo.id.in_(page))
        return [_to_photo(row) for row in store.raw_rows(ctx.db, query)]


def photos_next_to(
    ctx: Context, photo_id: int, limit: int, before: bool = False
) -> list[Photo] | None:
    """The ``limit`` photos right after (or, with ``before``, right before) photo
    ``photo_id`` in :func:`photos`' order: a keyset page, read through the index on that
    order from the cursor's key, so a deep page costs what the first one does (an
    ``offset`` walks every index entry before it).

    The order is total (capture time, undated last, then the unique path), so paging
    from the last photo of each page reads every photo exactly once, ties in the
    capture time included.

    Returns
    -------
    list of Photo or None
        In :func:`photos`' order; None when there is no photo ``photo_id``.
    """
    p = store.Photo
    with store.bound(ctx.db):
        # The cursor's key as stored, compared with the index's columns as they are.
        key = next(
            store.raw_rows(ctx.db, p.select(p.taken, p.path).where(p.id == int(photo_id))),
            None,
        )
        if key is None:
            return None
        taken, path = key

        def undated(flag: bool) -> pw.Expression:
            # The index's first column, as the index states it (its range is one value).
            return p.taken.is_null() == flag

        key_bound = pw.Tuple(p.taken, p.path)
        # One or two ranges of the index, each read in order up to the page's size: the
        # dated photos from (or up to) the cursor's key, and the undated ones by path.
        if not before and taken is not None:
            ranges = [undated(False) & (key_bound > pw.Tuple(taken, path)), undated(True)]
        elif not before:
            ranges = [undated(True) & p.taken.is_null() & (p.path > path)]
        elif taken is None:
            ranges = [undated(True) & p.taken.is_null() & (p.path < path), undated(False)]
        else:
            ranges = [undated(False) & (key_bound < pw.Tuple(taken, path))]
        order = (p.taken.desc(), p.path.desc()) if before else (p.taken, p.path)
        ids: list[int] = []
        for condition in ranges:
            if len(ids) < limit:
                query = p.select(p.id).where(condition).order_by(*order).limit(limit - len(ids))
                ids += [pid for (pid,) in store.raw_rows(ctx.db, query)]
    if before:
        ids.reverse()
    found = photos_by_id(ctx, ids)
    return [found[pid] for pid in ids if pid in found]


#: Photo counts per connection, see :func:`count_photos`.
_photo_counts = store.KeptUntilChanged()


def count_photos(ctx: Context) -> int:
    """Number of photos in the library.

    Kept per connection until the database changes (:func:`leitmotiv.store.
    change_marker`): counting reads every row of an index, milliseconds at 100,000
    photos, and a listing page asks for the count on every request.
    """
    marker = store.change_marker(ctx.db)
    count = _photo_counts.get(marker, "photos")
    if count is None:
        with store.bound(ctx.db):
            count = store.Photo.select().count()
        _photo_counts.put(marker, "photos", count)
    return count


def photo(ctx: Context, photo_id: int) -> Photo | None:
    """The photo with this id, or None (also for an id no database can hold)."""
    if not 0 < int(photo_id) <= store.MAX_ID:
        return None
    by_id = ctx.lookup(
        "photo", lambda: _photo_query(ctx).where(store.Photo.id == store.LOOKUP_SLOT)
    )
    rows = by_id.rows(int(photo_id))
    return _to_photo(rows[0]) if rows else None


def find_photo(ctx: Context, id_or_path: str) -> Photo | None:
    """The photo named by its id (digits) or by its path (relative to the working
    directory, ``~`` expanded), or None."""
    text = str(id_or_path).strip()
    if text.isdigit():
        found = photo(ctx, int(text))
        if found is not None:
            return found
    candidates = [os.path.abspath(os.path.expanduser(text))]
    candidates.append(os.path.realpath(candidates[0]))
    with store.bound(ctx.db):
        for path in candidates:
            row = _photo_query(ctx).where(store.Photo.path == path).first()
            if row is not None:
                return _to_photo(row)
    return None


def similar(
    ctx: Context, photo_id: int, top: int | None = None, offset: int = 0
) -> list[tuple[Photo, float]]:
    """The photos nearest to a photo, nearest first, the photo itself excluded.

    Only indexed photos appear.

    Returns
    -------
    list of (Photo, float)
        The photos and their distance to the query.
    """
    featurizer_id, divergence_id, _ = ctx.key_ids()
    d = store.Distance
    other = pw.Case(None, [(d.photo_a == photo_id, d.photo_b)], d.photo_a)
    with store.bound(ctx.db):
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
    found = photos_by_id(ctx, (pid for pid, _ in pairs))
    return [(found[pid], float(value)) for pid, value in pairs if pid in found]


def _clusters(ctx: Context, cluster_id: int | None = None) -> list[Cluster]:
    keys = ctx.key_ids()
    with store.bound(ctx.db):
        run = store.current_run(keys)
        if run is None:
            return []
        query = store.Cluster.select().where(store.Cluster.run == run.id)
        if cluster_id is not None:
            query = query.where(store.Cluster.id == cluster_id)
        rows = list(query.order_by(store.Cluster.id).tuples())
        members = summaries.member_ids(cid for cid, *_ in rows)
    found = photos_by_id(ctx, {pid for pids in members.values() for pid in pids})
    return [
        Cluster(cid, found[exemplar], [found[p] for p in members[cid] if p in found])
        for cid, _run, exemplar in rows
    ]


def clusters(ctx: Context) -> list[Cluster]:
    """The clusters of the current clustering (empty before an index is built)."""
    return _clusters(ctx)


def cluster(ctx: Context, cluster_id: int) -> Cluster | None:
    """One cluster of the current clustering, or None."""
    if not 0 < int(cluster_id) <= store.MAX_ID:
        return None
    found = _clusters(ctx, int(cluster_id))
    return found[0] if found else None


def member_hashes(ctx: Context, cluster_id: int) -> list[str] | None:
    """The file hashes of one cluster's members, of the current clustering (what names
    its average image), or None if it has no such cluster."""
    if not 0 < int(cluster_id) <= store.MAX_ID:
        return None
    m = store.ClusterMember
    with store.bound(ctx.db):
        run = store.current_run(ctx.key_ids())
        if run is None:
            return None
        query = (
            m.select(store.Photo.sha256)
            .join(store.Photo)
            .switch(m)
            .join(store.Cluster)
            .where((store.Cluster.run == run.id) & (m.cluster == int(cluster_id)))
        )
        hashes = [sha256 for (sha256,) in store.raw_rows(ctx.db, query)]
    return hashes or None  # a cluster has at least its exemplar


def motifs(
    ctx: Context,
    since: dt.date | dt.datetime | None = None,
    until: dt.date | dt.datetime | None = None,
    known: Sequence[Cluster] | None = None,
) -> list[Motif]:
    """The clusters of the current clustering seen through time, as motifs.

    See :mod:`leitmotiv.motifs` for bursts, periods and the recurrence score.
    Only EXIF capture times place a photo on the timeline; photos dated by their
    file time alone are the motif's ``undated_ids``.

    Parameters
    ----------
    ctx : Context
    since, until : date or datetime, optional
        Keep only the occurrences captured in ``[since, until]`` (wall-clock
        time).  A plain ``until`` date includes that whole day.  With either
        bound, motifs with no occurrence in the range are left out.
    known : sequence of Cluster, optional
        The result of :func:`clusters`, when the caller has it already (saves
        reading the clustering twice).

    Returns
    -------
    list of Motif
        Highest recurrence score first (empty before an index is built).
    """
    from leitmotiv.motifs import Shot, find_motifs

    if known is None:
        known = clusters(ctx)
    shots = [
        (c.id, c.exemplar.id, [Shot(p.id, p.taken, p.taken_source) for p in c.members])
        for c in known
    ]
    found = find_motifs(shots, since=_wall_clock(since), until=_wall_clock(until, end=True))
    if since is not None or until is not None:
        found = [m for m in found if m.periods]
    return found


def failures(ctx: Context) -> list[Failure]:
    """Files that could not be added, by path."""
    with store.bound(ctx.db):
        return [
            Failure(row.path, row.reason, row.time)
            for row in store.Failure.select().order_by(store.Failure.path)
        ]


def model_blob(ctx: Context, photo_id: int) -> bytes | None:
    """The stored model of a photo for the current featurizer, as stored
    (:meth:`leitmotiv.mixture.Mixture.to_bytes`), or None."""
    featurizer_id = ctx.key_ids()[0]
    lookup = ctx.lookup(
        "model",
        lambda: store.Model.select(store.Model.mixture).where(
            (store.Model.photo == store.LOOKUP_SLOT) & (store.Model.featurizer == featurizer_id)
        ),
    )
    rows = lookup.rows(int(photo_id))
    return bytes(rows[0][0]) if rows else None


def mixture(ctx: Context, photo_id: int):
    """The photo's model for the current featurizer (a Mixture), or None."""
    from leitmotiv.mixture import Mixture

    blob = model_blob(ctx, photo_id)
    return None if blob is None else Mixture.from_bytes(blob)


def thumbnail_stamp(ctx: Context, photo_id: int) -> tuple[str, float] | None:
    """The content hash and modification time of the file the photo's thumbnail was made
    from (what names and dates the thumbnail without reading it), or None."""
    with store.bound(ctx.db):
        return (
            store.Photo.select(store.Photo.sha256, store.Photo.mtime)
            .where(store.Photo.id == int(photo_id))
            .tuples()
            .first()
        )


def count_similar(ctx: Context, photo_id: int) -> int:
    """Number of photos :func:`similar` ranks for this photo (its stored distances)."""
    featurizer_id, divergence_id, _ = ctx.key_ids()
    d = store.Distance
    with store.bound(ctx.db):
        return (
            d.select()
            .where(
                ((d.photo_a == photo_id) | (d.photo_b == photo_id))
                & (d.featurizer == featurizer_id)
                & (d.divergence == divergence_id)
            )
            .count()
        )


# ------------------------------------------------- the stored summaries of a clustering


def summary(ctx: Context) -> summaries.RunSummary | None:
    """The stored summary of the current clustering (None before an index is built)."""
    with store.bound(ctx.db):
        return summaries.run_summary(store.current_run(ctx.key_ids()))


def cluster_summaries(
    ctx: Context, offset: int = 0, limit: int | None = None, by_motif: bool = False
) -> list[summaries.ClusterSummary]:
    """A page of the current clustering's stored cluster summaries, by cluster id or by
    motif rank (see :mod:`leitmotiv.summaries`)."""
    run = summary(ctx)
    if run is None:
        return []
    with store.bound(ctx.db):
        return summaries.cluster_summaries(run.run_id, offset, limit, by_motif)


def listings(
    ctx: Context, offset: int = 0, limit: int | None = None, by_motif: bool = False
) -> list[tuple[str, str]]:
    """A page of the current clustering's ``/api/clusters`` and ``/api/motifs`` entries as
    stored JSON texts, by cluster id or by motif rank (see :mod:`leitmotiv.summaries`)."""
    run = summary(ctx)
    if run is None:
        return []
    with store.bound(ctx.db):
        return summaries.listings(run.run_id, offset, limit, by_motif)


def cluster_summary(ctx: Context, cluster_id: int) -> summaries.ClusterSummary | None:
    """The stored summary of one cluster of the current clustering, or None."""
    run = summary(ctx)
    if run is None:
        return None
    with store.bound(ctx.db):
        return summaries.cluster_summary(run.run_id, int(cluster_id))


def member_ids(
    ctx: Context, cluster_ids: Iterable[int], start: int = 0, stop: int | None = None
) -> dict[int, list[int]]:
    """Members ``start .. stop - 1`` of each cluster in display order (exemplar first,
    then by capture time), by cluster id."""
    with store.bound(ctx.db):
        return summaries.member_ids(cluster_ids, start, stop)


def motif(ctx: Context, cluster_id: int) -> Motif | None:
    """One motif of the current clustering, as :func:`motifs` makes it, or None."""
    from leitmotiv.motifs import Shot

    run = summary(ctx)
    found = None if run is None else cluster(ctx, cluster_id)
    if found is None:
        return None
    shots = [Shot(p.id, p.taken, p.taken_source) for p in found.members]
    return summaries.motif(run, found.id, found.exemplar.id, shots)


def thumbnail(ctx: Context, photo_id: int) -> bytes | None:
    """The JPEG thumbnail stored when the photo was added, or None."""
    with store.bound(ctx.db):
        row = (
            store.Photo.select(store.Photo.thumbnail).where(store.Photo.id == int(photo_id)).first()
        )
    return None if row is None or row.thumbnail is None else bytes(row.thumbnail)
