"""Building a library's similarity index: the distances, then the clustering.

:func:`build` computes only the distances not stored yet for the current (featurizer,
divergence) configuration, each block or chunk stored in its own transaction, then
clusters and stores the new clustering as the current one in one transaction, so
readers see the old clustering until the new one is complete.

The index is *dense* (every pair; clustering on the full matrix) up to
``settings.dense_limit`` photos and *sparse* above (or as ``settings.index`` says): each
photo's candidate lists are kept up to date in the store (:mod:`leitmotiv.sparse_index`),
only each photo and its ``settings.neighbours`` candidates get a distance, computed in
chunks (:mod:`leitmotiv.pair_chunks`), and the clusterer works on that graph
(:meth:`~leitmotiv.interfaces.Clusterer.cluster_graph`); no N x N array exists on
that path.  With remote workers (:class:`leitmotiv.distributed.DaskWorkers`) the chunks
of pairs run on a Dask cluster, writing to the same store.
"""

from __future__ import annotations

import dataclasses
import itertools
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from leitmotiv import duplicates, layout, pair_chunks, store, summaries
from leitmotiv.cluster import near_duplicates_only
from leitmotiv.context import Context
from leitmotiv.interfaces import SparseIndexUnavailable
from leitmotiv.sparse_index import positions_in
from leitmotiv.workers import Workers, resolve_jobs

__all__ = [
    "DISTANCE_BLOCK",
    "IndexReport",
    "build",
    "check_sparse",
    "indexed_models",
    "method_for",
]

#: Query rows per block of the distance computation; each block is one transaction.
DISTANCE_BLOCK = 64


@dataclasses.dataclass
class IndexReport:
    """What :meth:`leitmotiv.library.Library.build_index` did: new pairs computed,
    photos indexed, clusters found, wall time; ``refit`` photos were fitted first and
    ``failed`` of those could not be read; ``method`` is ``"dense"`` or ``"sparse"``;
    for a sparse index ``new_lists`` photos got candidate lists and ``changed_lists``
    older lists changed; ``clustering`` is ``"full"``, ``"extended"`` (added photos
    placed in the kept clusters, see :mod:`leitmotiv.incremental_clustering`) or ``"kept"``;
    ``candidate_seconds``, ``distance_seconds`` and ``cluster_seconds`` split
    the time; ``peak_memory_mib`` is the process's peak resident memory so far;
    ``duplicates_changed`` photos joined, left or moved between groups of
    near-duplicates (see :mod:`leitmotiv.duplicates`); ``layout`` says how the map
    was stored (``"full"``, ``"placed"`` for added photos placed on the kept map,
    ``"kept"``; see :mod:`leitmotiv.layout`) and ``layout_seconds`` how long it took."""

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
    duplicates_changed: int = 0
    layout: str = "kept"
    layout_seconds: float = 0.0


def indexed_models(ctx: Context, featurizer_id: int) -> tuple[np.ndarray, list[Any]]:
    """Ids (ascending) and mixtures of the photos with a model of ``featurizer_id``."""
    from leitmotiv.mixture import Mixture

    with store.bound(ctx.db):
        query = (
            store.Model.select(store.Model.photo, store.Model.mixture)
            .where(store.Model.featurizer == featurizer_id)
            .order_by(store.Model.photo)
        )
        ids, mixtures = [], []
        for photo_id, blob in store.raw_rows(ctx.db, query):
            ids.append(photo_id)
            mixtures.append(Mixture.from_bytes(bytes(blob)))
    return np.asarray(ids, dtype=np.int64), mixtures


def _stored_distances(ctx: Context, ids: np.ndarray, featurizer_id: int, divergence_id: int):
    """The stored distance matrix of ``ids`` (nan where missing, 0 on the diagonal)."""
    n = len(ids)
    index = {int(pid): i for i, pid in enumerate(ids)}
    distances = np.full((n, n), np.nan)
    np.fill_diagonal(distances, 0.0)
    with store.bound(ctx.db):
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


def method_for(ctx: Context, n_photos: int) -> str:
    """``"dense"`` or ``"sparse"``: how a library of ``n_photos`` is indexed."""
    if ctx.settings.index == "auto":
        return "dense" if n_photos <= ctx.settings.dense_limit else "sparse"
    return ctx.settings.index


def check_sparse(ctx: Context, method: str) -> None:
    """Refuse, before any work, a sparse index that the clusterer or the divergence
    cannot serve.

    Raises
    ------
    SparseIndexUnavailable
        If ``method`` is ``"sparse"`` and the clusterer needs every pairwise distance or
        the divergence has no sparse path (a ValueError).
    """
    if method != "sparse":
        return
    if not ctx.clusterer.clusters_graphs:
        raise SparseIndexUnavailable(ctx.clusterer.dense_only_reason())
    reason = ctx.divergence.sparse_unavailable_reason()
    if reason is not None:
        raise SparseIndexUnavailable(reason)


def build(
    ctx: Context,
    workers: Workers,
    jobs: int,
    progress: bool,
    remote: bool,
    recluster: bool,
) -> IndexReport:
    """Compute the missing distances of the photos with a model and recluster.

    Parameters
    ----------
    ctx : Context
    workers : Workers
        Where remote chunks of pairs run (used only with ``remote``).
    jobs : int
        Threads for the divergence; 0 means all cores.
    progress : bool
        Progress bars on standard error.
    remote : bool
        Compute the chunks of pairs on ``workers`` (a Dask cluster) rather than here.
    recluster : bool
        Cluster the whole library again even if a sparse index only grew a little.

    Returns
    -------
    IndexReport
        Without ``refit``, ``failed``, ``seconds`` and ``peak_memory_mib``, which the
        caller knows.

    Raises
    ------
    SparseIndexUnavailable
        If the index is sparse and the clusterer or the divergence cannot serve it.
    """
    keys = ctx.key_ids(create=True)
    report = IndexReport()
    ids, mixtures = indexed_models(ctx, keys[0])
    report.n_photos = len(ids)
    report.method = method_for(ctx, len(ids))
    check_sparse(ctx, report.method)
    if report.method == "dense":
        _index_dense(ctx, ids, mixtures, jobs, progress, workers, remote, report)
    else:
        _index_sparse(ctx, ids, mixtures, jobs, progress, workers, remote, report, recluster)
    if report.pairs_computed:
        # Fresh statistics let the query planner pick the photo indexes for
        # `similar` rather than the low-selectivity configuration index (measured:
        # 65 ms -> 1.6 ms per query on 1,000 photos with SQLite).
        with store.bound(ctx.db):
            ctx.db.execute_sql("ANALYZE")
    report.duplicates_changed = duplicates.update(ctx)
    return report


def _remote_chunks(
    ctx: Context, chunks: list[np.ndarray], workers: Workers, show: bool
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Compute and store chunks of pairs on Dask workers; yield (pairs, values)."""
    from leitmotiv.distributed import compute_chunk_remote

    featurizer_id, divergence_id, _ = ctx.key_ids(create=True)
    spec = ctx.divergence_spec()
    tasks = [
        (ctx.settings.database, str(ctx.folder), featurizer_id, divergence_id, spec, chunk)
        for chunk in chunks
    ]
    yield from workers.run(
        compute_chunk_remote,
        tasks,
        "distances",
        show,
        unit="pair",
        weight=lambda task: len(task[-1]),
    )


def _index_dense(ctx, ids, mixtures, jobs, show, workers, remote, report) -> None:
    """Every missing pair, by blocks of rows; clustering on the full matrix."""
    from tqdm import tqdm

    featurizer_id, divergence_id, _ = ctx.key_ids(create=True)
    distances = _stored_distances(ctx, ids, featurizer_id, divergence_id)
    missing = np.isnan(distances)
    t0 = time.perf_counter()
    if remote:
        i, j = np.nonzero(np.triu(missing, 1))
        chunks = pair_chunks.plan_chunks(
            np.stack([ids[i], ids[j]], axis=1), size=pair_chunks.CHUNK_PAIRS
        )
        for pairs, values in _remote_chunks(ctx, chunks, workers, show):
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
                values = ctx.divergence.cross(
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
                store.save_distances(ctx.db, pairs, v, featurizer_id, divergence_id)
                report.pairs_computed += len(v)
                bar.update(len(v))
    report.distance_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    def cluster():
        # A library with no structure to cluster on (two photos, say) is decided by
        # the divergence's calibration when it has one.
        near = near_duplicates_only(distances, ctx.divergence.near_duplicate_threshold())
        return near if near is not None else ctx.clusterer.cluster(distances)

    report.n_clusters, redone = _recluster(
        ctx,
        ids,
        report.pairs_computed,
        cluster,
        lambda: layout.nearest_in_matrix(distances),
        report,
    )
    report.clustering = "full" if redone else "kept"
    report.cluster_seconds = time.perf_counter() - t1 - report.layout_seconds


def _stored_edges(
    ctx: Context, ids: np.ndarray, featurizer_id: int, divergence_id: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The stored distances among ``ids`` (ascending) as (positions, positions, values),
    read in batches so memory stays that of the arrays."""
    found_a, found_b, found_v = [], [], []
    query = store.Distance.select(
        store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
    ).where(
        (store.Distance.featurizer == featurizer_id) & (store.Distance.divergence == divergence_id)
    )
    # Millions of rows: straight from the cursor, converted 200,000 at a time.
    rows = store.raw_rows(ctx.db, query, batch=200_000)
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


def _index_sparse(ctx, ids, mixtures, jobs, show, workers, remote, report, recluster) -> None:
    """Candidate lists, the exact distance of each photo and its candidates, and
    clustering on that graph; no N x N array anywhere."""
    from tqdm import tqdm

    from leitmotiv import candidates, incremental_clustering, sparse_index

    keys = ctx.key_ids(create=True)
    featurizer_id, divergence_id, _ = keys
    n_threads = resolve_jobs(jobs)
    k = ctx.settings.neighbours
    params = sparse_index.SearchParameters(
        k=k, wide=sparse_index.wide_for(k), batch=sparse_index.BATCH
    )
    t0 = time.perf_counter()
    graph = sparse_index.update_candidates(
        ctx.db,
        ids,
        mixtures,
        ctx.divergence,
        featurizer_id,
        params,
        n_jobs=n_threads,
        progress=show,
    )
    report.new_lists, report.changed_lists = graph.new, graph.changed
    report.candidate_seconds = time.perf_counter() - t0
    t1 = time.perf_counter()
    with store.bound(ctx.db):
        rows, cols, values = _stored_edges(ctx, ids, featurizer_id, divergence_id)
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
    chunks = pair_chunks.plan_chunks(
        np.stack([ids[lo], ids[hi]], axis=1),
        np.stack([lo, hi], axis=1),
        graph.embeddings,
        size=pair_chunks.CHUNK_PAIRS,
    )
    del graph
    if remote:
        computed = _remote_chunks(ctx, chunks, workers, show)
    else:
        computed = _local_chunks(ctx, chunks, ids, mixtures, n_threads, show)
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

    with store.bound(ctx.db):
        current = store.current_run(keys)
        prior = None if current is None or recluster else _run_labels(current, ids)
    extend = (
        prior is not None
        and current.base_photos is not None
        and len(ids) <= current.base_photos * (1 + incremental_clustering.REGROW)
    )

    def cluster():
        with tqdm(total=1, desc="clustering", disable=not show) as bar:
            typical = candidates.sample_median_distance(mixtures, ctx.divergence, n_jobs=n_threads)
            if extend:
                clustering = incremental_clustering.extend_clustering(
                    *prior,
                    (rows, cols, values),
                    lambda pairs: _distances_of(ctx, pairs, ids, mixtures, n_threads),
                    typical,
                    ctx.clusterer,
                )
            else:
                clustering = ctx.clusterer.cluster_graph(len(ids), rows, cols, values, typical)
            bar.update()
        return clustering

    report.n_clusters, redone = _recluster(
        ctx,
        ids,
        report.pairs_computed,
        cluster,
        lambda: layout.nearest_in_edges(len(ids), rows, cols, values),
        report,
        base_photos=current.base_photos if extend else len(ids),
        force=recluster,
        extend=extend,
    )
    report.clustering = ("extended" if extend else "full") if redone else "kept"
    report.cluster_seconds = time.perf_counter() - t2 - report.layout_seconds


def _distances_of(ctx: Context, pairs, ids, mixtures, n_threads) -> np.ndarray:
    """Distances of distinct position pairs, computed now and not stored."""
    models = {int(ids[p]): mixtures[int(p)] for p in np.unique(pairs)}
    photo_pairs = ids[pairs]
    _, values = pair_chunks.compute_chunk(photo_pairs, models, ctx.divergence, n_threads)
    # compute_chunk returns the pairs sorted by (smaller id, larger id).
    order = np.lexsort((photo_pairs.max(axis=1), photo_pairs.min(axis=1)))
    out = np.empty(len(pairs))
    out[order] = values
    return out


def _run_labels(run: Any, ids: np.ndarray):
    """A stored run as (labels, exemplars) over positions of ``ids``: -1 for photos
    not in the run; None if an exemplar is no longer indexed.  The models must be
    bound to the library's database."""
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
    ctx: Context,
    chunks: list[np.ndarray],
    ids: np.ndarray,
    mixtures: list[Any],
    n_threads: int,
    show: bool,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Compute and store chunks of pairs in this process; yield (pairs, values)."""
    from tqdm import tqdm

    featurizer_id, divergence_id, _ = ctx.key_ids(create=True)
    total = sum(len(chunk) for chunk in chunks)
    with tqdm(total=total, desc="distances", unit="pair", disable=not show) as bar:
        for chunk in chunks:
            photos = np.unique(chunk)
            models = {int(p): mixtures[int(np.searchsorted(ids, p))] for p in photos}
            pairs, values = pair_chunks.compute_chunk(
                chunk, models, ctx.divergence, n_jobs=n_threads
            )
            store.save_distances(ctx.db, pairs, values, featurizer_id, divergence_id)
            yield pairs, values
            bar.update(len(values))


def _recluster(
    ctx: Context,
    ids: np.ndarray,
    new_pairs: int,
    cluster: Callable[[], Any],
    neighbours: Callable[[], tuple[np.ndarray, np.ndarray]],
    report: IndexReport,
    base_photos: int | None = None,
    force: bool = False,
    extend: bool = False,
) -> tuple[int, bool]:
    """Cluster (by calling ``cluster``) and store the run as current with its map,
    unless nothing changed since the current run (or ``force``).  ``base_photos`` is
    recorded with the run (default: all of ``ids``).

    The map (:mod:`leitmotiv.layout`) is made from ``neighbours()`` (each photo's
    nearest photos, as :func:`leitmotiv.layout.nearest_in_edges` gives them) and
    stored in the run's transaction: in full, or, when ``extend`` (the clustering
    extends the current one) and the current run has a map, by placing the added
    photos on it.  A kept run without a map (stored before schema 7) gets one.
    ``report.layout`` and ``report.layout_seconds`` say what was done.

    Returns
    -------
    (int, bool)
        The number of clusters, and whether the clustering was redone.
    """
    keys = ctx.key_ids(create=True)
    featurizer_id, divergence_id, clusterer_id = keys
    db = ctx.db
    with store.bound(db):
        current = store.current_run(keys)
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
                if not layout.has_layout(current.id):
                    _map_kept_run(ctx, current, ids, neighbours, report)
                return kept.count(), False
        prior = layout.stored_positions(current.id, ids) if extend and current else None
    if len(ids) == 0:
        return 0, False
    if len(ids) == 1:
        labels, exemplars = np.zeros(1, dtype=int), np.zeros(1, dtype=int)
    else:
        clustering = cluster()
        labels, exemplars = clustering.labels, clustering.exemplars
    t0 = time.perf_counter()
    idx, dist = neighbours()
    if prior is not None:
        xy, rank, layout_base = prior
        the_map = layout.extend(xy, rank, idx, dist, labels, exemplars, layout_base)
        report.layout = "placed"
    else:
        the_map = layout.compute(idx, dist, labels, exemplars)
        report.layout = "full"
    report.layout_seconds = time.perf_counter() - t0
    with store.bound(db), db.atomic():
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
                store.Cluster.insert_many(rows, fields=[store.Cluster.run, store.Cluster.exemplar])
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
        summaries.store_run(run.id)
        cluster_ids = np.asarray([cluster_of[int(ids[e])] for e in exemplars])[labels]
        layout.save(run.id, ids, cluster_ids, the_map)
        # Older runs of this configuration are dropped in the same transaction:
        # readers see either the old run or the new one, never a mix.
        store.ClusterRun.delete().where(
            store.runs_of(keys) & (store.ClusterRun.id != run.id)
        ).execute()
        store.ClusterRun.update(is_current=True).where(store.ClusterRun.id == run.id).execute()
    return len(exemplars), True


def _map_kept_run(
    ctx: Context,
    run: Any,
    ids: np.ndarray,
    neighbours: Callable[[], tuple[np.ndarray, np.ndarray]],
    report: IndexReport,
) -> None:
    """Store a full map for a kept run that has none (bound models)."""
    t0 = time.perf_counter()
    prior = _run_labels(run, ids)
    if prior is None:
        return
    labels, exemplars = prior
    cluster_ids = np.asarray(
        store.Cluster.select(store.Cluster.id)
        .where(store.Cluster.run == run.id)
        .order_by(store.Cluster.id)
        .tuples(),
        dtype=np.int64,
    ).reshape(-1)
    the_map = layout.compute(*neighbours(), labels, exemplars)
    with ctx.db.atomic():
        layout.save(run.id, ids, cluster_ids[labels], the_map)
    report.layout = "full"
    report.layout_seconds = time.perf_counter() - t0
