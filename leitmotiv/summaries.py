"""Per-clustering summaries: what the listings show of a clustering, stored with it.

A library of 100,000 photos has thousands of clusters.  The clusters and motifs pages
show thirty at a time, each with its size, exemplar, first members, capture-date range
and motif timeline; computing those per request would read the whole clustering every
time.  So when a clustering run is stored (:meth:`leitmotiv.library.Library.build_index`,
or the schema migration for runs stored before), :func:`store_run` computes them once,
in the same transaction:

- each member's *position* in its cluster's display order (the exemplar first, then by
  capture time, undated last, then by path), so a page of members is an index range;
- per cluster (:class:`leitmotiv.store.ClusterSummary`): size, exemplar, capture-date
  range, its motif's score, rank, occurrences, undated count and periods
  (:mod:`leitmotiv.motifs`), and a key naming its average image's content;
- per run: the number of clusters, and the motifs' resolution, the library's span and
  the first and last period (what a single motif and the shared timeline need);
- per cluster, its entries of ``/api/clusters`` and ``/api/motifs`` as JSON text
  (:func:`store_listings`): those listings then read a page of rows and join their
  texts, instead of every member photo and a motif per cluster (they list every
  member, some 900 and 1,300 photos a page at 100,000 photos).

The readers below return these rows; the stored values equal a recomputation from the
members (tested), because they are made by the same functions of :mod:`leitmotiv.motifs`.
All functions use the store's models as bound by the caller (:func:`leitmotiv.store.bound`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import NamedTuple

from leitmotiv import paths, store
from leitmotiv.motifs import Motif, Shot, library_scale, motif_of, motif_order


@dataclass(frozen=True)
class RunSummary:
    """The current clustering as a whole.

    Attributes
    ----------
    run_id, n_clusters, n_photos : int
    created : datetime
        When the run was stored (UTC, naive).
    resolution : str
        The motifs' timeline resolution: "day", "month" or "year".
    span : timedelta
        From the first to the last EXIF capture time of the clustered photos.
    first_period, last_period : datetime or None
        Starts of the earliest and latest period any motif appears in (None when no
        photo has a capture date).
    """

    run_id: int
    n_clusters: int
    n_photos: int
    created: dt.datetime
    resolution: str
    span: dt.timedelta
    first_period: dt.datetime | None
    last_period: dt.datetime | None


@dataclass(frozen=True)
class PeriodSummary:
    """One period of a motif's timeline: its label and start, photos and occurrences."""

    label: str
    start: dt.datetime
    n_photos: int
    n_occurrences: int


@dataclass(frozen=True)
class ClusterSummary:
    """One cluster as the listings show it (see :class:`leitmotiv.store.ClusterSummary`)."""

    cluster_id: int
    exemplar_id: int
    size: int
    first_taken: dt.datetime | None
    last_taken: dt.datetime | None
    score: float
    motif_rank: int
    n_occurrences: int
    n_undated: int
    periods: list[PeriodSummary]
    average_key: str


def member_order(photo_id: int, exemplar_id: int, taken: dt.datetime | None, path: str):
    """Sort key of a cluster's display order: exemplar, then capture time, undated last,
    then path."""
    return (photo_id != exemplar_id, taken is None, taken or dt.datetime.min, path)


def average_key(featurizer_key: str, hashes: Iterable[str]) -> str:
    """A name for the content of a cluster's average image: the featurizer that made the
    models and the members' file hashes, in any order."""
    text = "\0".join([featurizer_key, *sorted(hashes)])
    return hashlib.blake2b(text.encode(), digest_size=12).hexdigest()


# --------------------------------------------------------------------- writing


def store_run(run_id: int) -> None:
    """Compute and store the summaries of clustering run ``run_id``.

    Rewrites the run's member rows with their positions, writes one summary row per
    cluster and the run's own fields.  The caller owns the transaction (the run's, so
    readers never see a run without its summaries).
    """
    run = store.ClusterRun.get_by_id(run_id)
    featurizer_key = store.ImplementationKey.get_by_id(run.featurizer_id).key
    exemplar = dict(
        store.Cluster.select(store.Cluster.id, store.Cluster.exemplar)
        .where(store.Cluster.run == run_id)
        .tuples()
    )
    members: dict[int, list[tuple]] = {cid: [] for cid in exemplar}
    rows = (
        store.ClusterMember.select(
            store.ClusterMember.cluster,
            store.Photo.id,
            store.Photo.path,
            store.Photo.taken,
            store.Photo.taken_source,
            store.Photo.sha256,
        )
        .join(store.Photo)
        .where(store.ClusterMember.cluster.in_(list(exemplar)))
        .tuples()
    )
    for cid, *photo in rows:
        members[cid].append(tuple(photo))
    for cid, photos in members.items():
        photos.sort(key=lambda p, e=exemplar[cid]: member_order(p[0], e, p[2], p[1]))

    shots = [
        (cid, exemplar[cid], [Shot(pid, taken, source) for pid, _, taken, source, _ in photos])
        for cid, photos in members.items()
    ]
    resolution, span = library_scale(shots)
    motifs = sorted((motif_of(*cluster, resolution, span) for cluster in shots), key=motif_order)
    rank = {m.cluster_id: r for r, m in enumerate(motifs)}
    starts = [p.start for m in motifs for p in m.periods]

    store.ClusterMember.delete().where(store.ClusterMember.cluster.in_(list(exemplar))).execute()
    store.insert_rows(
        store.ClusterMember,
        [store.ClusterMember.cluster, store.ClusterMember.photo, store.ClusterMember.position],
        [(cid, p[0], i) for cid, photos in members.items() for i, p in enumerate(photos)],
    )
    summary_rows = []
    for motif in motifs:
        photos = members[motif.cluster_id]
        times = [p[2] for p in photos if p[2] is not None]
        periods = [
            [p.label, p.start.isoformat(), len(p.photo_ids), len(p.occurrences)]
            for p in motif.periods
        ]
        summary_rows.append(
            (
                motif.cluster_id,
                run_id,
                len(photos),
                min(times) if times else None,
                max(times) if times else None,
                motif.score,
                rank[motif.cluster_id],
                motif.n_occurrences,
                len(motif.undated_ids),
                json.dumps(periods),
                average_key(featurizer_key, (p[4] for p in photos)),
            )
        )
    fields = [
        store.ClusterSummary.cluster,
        store.ClusterSummary.run,
        store.ClusterSummary.size,
        store.ClusterSummary.first_taken,
        store.ClusterSummary.last_taken,
        store.ClusterSummary.score,
        store.ClusterSummary.motif_rank,
        store.ClusterSummary.n_occurrences,
        store.ClusterSummary.n_undated,
        store.ClusterSummary.periods,
        store.ClusterSummary.average_key,
    ]
    store.ClusterSummary.delete().where(store.ClusterSummary.run == run_id).execute()
    store.insert_rows(store.ClusterSummary, fields, summary_rows)
    store.ClusterRun.update(
        n_clusters=len(exemplar),
        resolution=resolution,
        span_us=span // dt.timedelta(microseconds=1),
        first_period=min(starts, default=None),
        last_period=max(starts, default=None),
    ).where(store.ClusterRun.id == run_id).execute()
    store_listings(run_id)


class _Ref(NamedTuple):
    """What the listings' JSON shows of a member photo."""

    id: int
    path: str
    taken: dt.datetime | None


def store_listings(run_id: int, cluster_ids: list[int] | None = None) -> None:
    """Store each cluster's entries of ``/api/clusters`` and ``/api/motifs`` (the shapes
    of :mod:`leitmotiv.json_shapes`) as JSON text in its summary row; with
    ``cluster_ids``, those clusters' only.

    Run after the run's other summaries are stored (it reads the members' positions
    and the run's timeline scale); the caller owns the transaction.  The text is UTF-8
    as served: an undecodable byte of a file name is U+FFFD already
    (:func:`leitmotiv.paths.shown`).
    """
    from leitmotiv.json_shapes import cluster_json, motif_json

    summary = run_summary(store.ClusterRun.get_by_id(run_id))
    m, p = store.ClusterMember, store.Photo
    condition = store.Cluster.run == run_id
    if cluster_ids is not None:
        condition &= m.cluster.in_(cluster_ids)
    rows = (
        m.select(
            m.cluster, store.Cluster.exemplar, p.id, p.path, p.taken, p.taken_offset, p.taken_source
        )
        .join(p)
        .switch(m)
        .join(store.Cluster)
        .where(condition)
        .order_by(m.cluster, m.position)
        .tuples()
    )
    # Per cluster, in display order: its exemplar, the members and their shots.
    clusters: dict[int, tuple[int, list[_Ref], list[Shot]]] = {}
    for cid, exemplar, pid, path, taken, offset, source in rows:
        _, refs, shots = clusters.setdefault(cid, (exemplar, [], []))
        refs.append(_Ref(pid, path, store.join_taken(taken, offset)))
        shots.append(Shot(pid, refs[-1].taken, source))
    for cid, (exemplar, refs, shots) in clusters.items():
        photos = {ref.id: ref for ref in refs}
        found = motif(summary, cid, exemplar, shots)
        entries = (
            cluster_json(SimpleNamespace(id=cid, exemplar=photos[exemplar], members=refs)),
            motif_json(found, photos, f"/clusters/{cid}/average.png"),
        )
        cluster_text, motif_text = (
            json.dumps(entry, ensure_ascii=False).encode("utf-8", paths.SHOWN_ERRORS).decode()
            for entry in entries
        )
        store.ClusterSummary.update(cluster_json=cluster_text, motif_json=motif_text).where(
            store.ClusterSummary.cluster == cid
        ).execute()


def refresh_listings(photo_id: int) -> None:
    """Store again the listings of every clustering's cluster that holds photo
    ``photo_id``, whose path or capture time changed (a moved or rewritten file): the
    listings show them.  The caller owns the transaction."""
    m = store.ClusterMember
    holding = (
        m.select(store.Cluster.run, m.cluster)
        .join(store.Cluster)
        .join(store.ClusterRun)
        .where((m.photo == photo_id) & store.ClusterRun.n_clusters.is_null(False))
        .tuples()
    )
    for run_id, cluster_id in list(holding):
        store_listings(run_id, [cluster_id])


# --------------------------------------------------------------------- reading


def run_summary(run) -> RunSummary | None:
    """The summary of a :class:`leitmotiv.store.ClusterRun` row; None if it has none."""
    if run is None or run.n_clusters is None:
        return None
    return RunSummary(
        run_id=run.id,
        n_clusters=run.n_clusters,
        n_photos=run.n_photos,
        created=run.created,
        resolution=run.resolution,
        span=dt.timedelta(microseconds=run.span_us),
        first_period=run.first_period,
        last_period=run.last_period,
    )


def _to_summary(row: tuple) -> ClusterSummary:
    cluster_id, exemplar_id, size, first, last, score, rank, n_occ, n_undated, periods, key = row
    return ClusterSummary(
        cluster_id=cluster_id,
        exemplar_id=exemplar_id,
        size=size,
        first_taken=store.join_taken(first, None),
        last_taken=store.join_taken(last, None),
        score=score,
        motif_rank=rank,
        n_occurrences=n_occ,
        n_undated=n_undated,
        periods=[
            PeriodSummary(label, dt.datetime.fromisoformat(start), n, k)
            for label, start, n, k in json.loads(periods)
        ],
        average_key=key,
    )


def _summaries():
    """The summary rows in :func:`_to_summary`'s order, read with
    :func:`leitmotiv.store.raw_rows` (the stored listings' texts are left out: only the
    JSON listings read them)."""
    s = store.ClusterSummary
    return s.select(
        s.cluster,
        store.Cluster.exemplar,
        s.size,
        s.first_taken,
        s.last_taken,
        s.score,
        s.motif_rank,
        s.n_occurrences,
        s.n_undated,
        s.periods,
        s.average_key,
    ).join(store.Cluster)


def cluster_summaries(
    run_id: int, offset: int = 0, limit: int | None = None, by_motif: bool = False
) -> list[ClusterSummary]:
    """One page of a run's cluster summaries, by cluster id or, with ``by_motif``, by
    motif rank (most recurrent first); both orders are index ranges."""
    key = store.ClusterSummary.motif_rank if by_motif else store.ClusterSummary.cluster
    query = _summaries().where(store.ClusterSummary.run == run_id).order_by(key)
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return [_to_summary(row) for row in store.raw_rows(store.ClusterSummary._meta.database, query)]


def listings(
    run_id: int, offset: int = 0, limit: int | None = None, by_motif: bool = False
) -> list[tuple[str, str]]:
    """``(cluster JSON, motif JSON)`` texts of one page of a run's clusters, by cluster id
    or by motif rank, as :func:`store_listings` stored them."""
    s = store.ClusterSummary
    query = (
        s.select(s.cluster_json, s.motif_json)
        .where(s.run == run_id)
        .order_by(s.motif_rank if by_motif else s.cluster)
        .tuples()
    )
    if limit is not None:
        query = query.limit(limit)
    if offset:
        query = query.offset(offset)
    return list(store.raw_rows(s._meta.database, query))


def cluster_summary(run_id: int, cluster_id: int) -> ClusterSummary | None:
    """The summary of one cluster of the run, or None."""
    query = _summaries().where(
        (store.ClusterSummary.run == run_id) & (store.ClusterSummary.cluster == cluster_id)
    )
    row = next(store.raw_rows(store.ClusterSummary._meta.database, query), None)
    return None if row is None else _to_summary(row)


def member_ids(cluster_ids: Iterable[int], start: int = 0, stop: int | None = None):
    """Members ``start .. stop - 1`` (display positions) of each cluster, by cluster id:
    an index range per cluster, however deep the page."""
    cluster_ids = list(cluster_ids)
    out: dict[int, list[int]] = {cid: [] for cid in cluster_ids}
    condition = store.ClusterMember.cluster.in_(cluster_ids)
    if start:
        condition &= store.ClusterMember.position >= start
    if stop is not None:
        condition &= store.ClusterMember.position < stop
    query = (
        store.ClusterMember.select(store.ClusterMember.cluster, store.ClusterMember.photo)
        .where(condition)
        .order_by(store.ClusterMember.cluster, store.ClusterMember.position)
    )
    for cid, pid in store.raw_rows(store.ClusterMember._meta.database, query):
        out[cid].append(pid)
    return out


def motif(summary: RunSummary, cluster_id: int, exemplar_id: int, shots: list[Shot]) -> Motif:
    """One cluster's motif, exactly as :func:`leitmotiv.motifs.find_motifs` makes it for
    the whole library, from the run's stored resolution and span (``shots`` in display
    order)."""
    return motif_of(cluster_id, exemplar_id, shots, summary.resolution, summary.span)
