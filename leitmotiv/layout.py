"""The map of the library: a 2-D position for every indexed photo, stored with the
clustering it belongs to, and the viewport queries of the ``/map`` page.

**How the positions are made.**  From the neighbour graph the index already has (every
pair of a dense index, each photo's candidate neighbours on a sparse one), each photo
keeps its :data:`NEIGHBOURS` nearest photos, and UMAP (McInnes, Healy & Melville 2018,
the ``umap-learn`` package) lays that k-nearest-neighbour graph out in the plane
(``precomputed_knn``: UMAP searches nothing itself, so nothing N x N is made at 100,000
photos).  Chosen over scikit-learn's ``SpectralEmbedding`` of the same graph by
measurement (README, "The map"): a two-dimensional spectral embedding keeps only the
graph's two slowest modes, so most clusters collapse onto each other, while UMAP keeps
far more of each photo's neighbours next to it.  Seeded (``random_state``), so one
graph always gives one map; UMAP then runs on one thread.  Libraries of at most
:data:`SMALL` photos, too few for a neighbour graph, are placed by metric MDS
(scikit-learn) on their distances; a library of identical photos is one point.

Positions are scaled so that the map's longer side spans 0 to 1.

**Representatives.**  A zoomed-out view cannot show 100,000 thumbnails, so every photo
gets a ``rank``: the cluster exemplars first (largest clusters first), then the other
photos in a seeded random order, so that the lowest ranks in any box are a fair sample
of it with every visible cluster's exemplar first.  Ranks are grouped in levels
(:func:`level_of`: 256 ranks, then four times as many at each level), and a viewport
query (:func:`points_in`) reads level after level, each through the index on
``(run, level, x, y)``, until it has its limit: the work is that of the rows it
returns, whatever the zoom.

**Incremental.**  :func:`leitmotiv.index.build` keeps the layout with the clustering:
when it extends the clustering with a few added photos
(:mod:`leitmotiv.incremental_clustering`), the kept photos keep their places and each
added photo is placed at the mean of its already placed neighbours' positions, weighted
by ``1 / (distance + the smallest positive distance)`` (photos whose neighbours are all
new are placed in later rounds from those); when it clusters in full, the layout is
computed in full too.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from leitmotiv import store
from leitmotiv.context import Context

__all__ = [
    "GRID",
    "LEVEL_BASE",
    "NEIGHBOURS",
    "SMALL",
    "Layout",
    "MapBox",
    "MapPoint",
    "compute",
    "extend",
    "level_of",
    "map_info",
    "nearest_in_edges",
    "nearest_in_matrix",
    "points_in",
    "save",
    "stored_positions",
]

#: Neighbours per photo the layout is made from (UMAP's ``n_neighbors`` is one more:
#: its lists start with the photo itself).
NEIGHBOURS = 10
#: Libraries of at most this many photos are placed by MDS on their distances.
SMALL = 32
#: Ranks in the first level; each further level holds four times the previous one.
LEVEL_BASE = 256
#: Seed of the layout and of the representatives' order.
SEED = 0
#: Cells per side of the grid whose counts a viewport's count reads.
GRID = 128


@dataclasses.dataclass(frozen=True)
class Layout:
    """A map of ``N`` photos.

    Attributes
    ----------
    xy : ndarray, shape (N, 2)
        Positions, the longer side of their bounding box spanning 0 to 1.
    rank : ndarray of int, shape (N,)
        A permutation of 0..N-1: the order in which photos represent the map.
    method : str
        ``"umap"``, ``"mds"``, or ``"placed"`` (added photos placed on a kept layout).
    base_photos : int
        Photos of the last full layout this one extends (all of them if it is one).
    """

    xy: np.ndarray
    rank: np.ndarray
    method: str
    base_photos: int


def nearest_in_edges(
    n: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int = NEIGHBOURS
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest neighbours in a distance graph.

    Parameters
    ----------
    n : int
        Items.
    rows, cols, values : ndarray, shape (m,)
        The graph's edges (positions, positions, distances), each undirected edge once
        or from both ends.
    k : int

    Returns
    -------
    (ndarray of int, ndarray of float), shapes (n, k)
        Neighbour positions, nearest first (ties by position), and their distances;
        -1 and inf where an item has fewer than ``k`` neighbours.
    """
    r = np.concatenate([rows, cols]).astype(np.int64)
    c = np.concatenate([cols, rows]).astype(np.int64)
    d = np.concatenate([values, values]).astype(np.float64)
    keep = (r != c) & np.isfinite(d)
    r, c, d = r[keep], c[keep], d[keep]
    order = np.lexsort((c, d, r))
    r, c, d = r[order], c[order], d[order]
    # An edge given from both ends appears twice, side by side in this order.
    if r.size:
        fresh = np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])]
        r, c, d = r[fresh], c[fresh], d[fresh]
    first = np.searchsorted(r, r, side="left")
    slot = np.arange(r.size) - first
    near = slot < k
    idx = np.full((n, k), -1, dtype=np.int64)
    dist = np.full((n, k), np.inf)
    idx[r[near], slot[near]] = c[near]
    dist[r[near], slot[near]] = d[near]
    return idx, dist


def nearest_in_matrix(distances: np.ndarray, k: int = NEIGHBOURS) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest neighbours in a dense distance matrix (NaN: unknown).

    Returns the same as :func:`nearest_in_edges`.
    """
    d = np.where(np.isnan(distances), np.inf, distances)
    np.fill_diagonal(d, np.inf)
    k = min(k, max(len(d) - 1, 0))
    idx = np.argsort(d, axis=1, kind="stable")[:, :k]
    dist = np.take_along_axis(d, idx, axis=1)
    return np.where(np.isfinite(dist), idx, -1), dist


def level_of(rank: np.ndarray) -> np.ndarray:
    """The level of each rank: 0 for the first :data:`LEVEL_BASE` ranks, then level
    ``l`` holds ranks ``LEVEL_BASE * 4**(l-1) .. LEVEL_BASE * 4**l - 1``."""
    rank = np.asarray(rank, dtype=np.int64)
    level = np.zeros(rank.shape, dtype=np.int64)
    bound = LEVEL_BASE
    while (rank >= bound).any():
        level[rank >= bound] += 1
        bound *= 4
    return level


def _representatives(
    labels: np.ndarray, exemplars: np.ndarray, among: np.ndarray, seed: int
) -> np.ndarray:
    """Positions ``among`` in representative order: the exemplars among them (largest
    cluster first), then the others in a seeded random order."""
    sizes = np.bincount(labels, minlength=len(exemplars))
    is_exemplar = np.zeros(len(labels), dtype=bool)
    is_exemplar[exemplars] = True
    heads = among[is_exemplar[among]]
    heads = heads[np.lexsort((heads, -sizes[labels[heads]]))]
    rest = among[~is_exemplar[among]]
    rest = rest[np.random.default_rng(seed).permutation(rest.size)]
    return np.concatenate([heads, rest])


def _scaled(xy: np.ndarray) -> np.ndarray:
    """``xy`` moved and scaled so that its longer side spans 0 to 1."""
    if not len(xy):
        return xy
    low = xy.min(axis=0)
    span = float((xy.max(axis=0) - low).max())
    return (xy - low) / span if span > 0 else xy - low


def _small(n: int, idx: np.ndarray, dist: np.ndarray, seed: int) -> np.ndarray:
    """Positions of a tiny library: metric MDS on its distances (unknown ones as the
    largest known), one point if they are all zero."""
    from sklearn.manifold import MDS

    known = dist[np.isfinite(dist)]
    top = float(known.max()) if known.size else 0.0
    if n < 2 or top <= 0:
        return np.zeros((n, 2))
    matrix = np.full((n, n), top)
    np.fill_diagonal(matrix, 0.0)
    rows = np.repeat(np.arange(n), idx.shape[1])
    ok = idx.ravel() >= 0
    matrix[rows[ok], idx.ravel()[ok]] = dist.ravel()[ok]
    matrix = np.minimum(matrix, matrix.T)
    if n == 2:
        return np.array([[0.0, 0.0], [matrix[0, 1], 0.0]])
    mds = MDS(n_components=2, metric="precomputed", init="classical_mds", random_state=seed)
    return mds.fit_transform(matrix)


def _umap(n: int, idx: np.ndarray, dist: np.ndarray, seed: int) -> np.ndarray:
    """UMAP of a k-nearest-neighbour graph given as (idx, dist) of shape (n, k)."""
    with warnings.catch_warnings():
        # umap-learn warns on import that its optional TensorFlow part is missing.
        warnings.simplefilter("ignore", ImportWarning)
        import umap

    # UMAP's own neighbour lists start with the item itself at distance 0; a missing
    # neighbour is the item itself again (UMAP gives it no edge), since an infinite
    # distance would turn every position into NaN.
    k = idx.shape[1] + 1
    me = np.arange(n)[:, None]
    known = idx >= 0
    knn = np.concatenate([me, np.where(known, idx, me)], axis=1)
    knn_dist = np.concatenate([np.zeros((n, 1)), np.where(known, dist, 0.0)], axis=1)
    model = umap.UMAP(
        n_neighbors=k,
        n_components=2,
        precomputed_knn=(knn, knn_dist),
        random_state=seed,
        n_jobs=1,
    )
    with warnings.catch_warnings():
        # Warnings that hold for every graph given this way: no search index (so no
        # transform, which the layout does not use) and a single thread (the seed).
        warnings.filterwarnings("ignore", message=".*knn_search_index.*")
        warnings.filterwarnings("ignore", message=".*n_jobs.*")
        # A photo without neighbours (no stored distance) is placed apart, below.
        warnings.filterwarnings("ignore", message=".*disconnected from the manifold.*")
        # The data is never read with a precomputed graph; one column keeps it tiny.
        xy = model.fit_transform(np.zeros((n, 1), dtype=np.float32)).astype(np.float64)
    # A photo without any neighbour may come back without a place: the map's centre.
    lost = ~np.isfinite(xy).all(axis=1)
    xy[lost] = xy[~lost].mean(axis=0) if (~lost).any() else 0.0
    return xy


def compute(
    idx: np.ndarray,
    dist: np.ndarray,
    labels: np.ndarray,
    exemplars: np.ndarray,
    seed: int = SEED,
) -> Layout:
    """The full layout of a library.

    Parameters
    ----------
    idx, dist : ndarray, shape (N, k)
        Each photo's nearest neighbours and their distances (:func:`nearest_in_edges`).
    labels : ndarray of int, shape (N,)
        The clustering's label of each photo.
    exemplars : ndarray of int, shape (C,)
        Each cluster's exemplar (positions).
    seed : int

    Returns
    -------
    Layout
    """
    n = len(idx)
    labels = np.asarray(labels, dtype=np.int64)
    if n <= SMALL or not (dist[np.isfinite(dist)] > 0).any():
        # Tiny, or nothing but identical photos (one point, by MDS).
        xy, method = _small(n, idx, dist, seed), "mds"
    else:
        xy, method = _umap(n, idx, dist, seed), "umap"
    order = _representatives(labels, np.asarray(exemplars, np.int64), np.arange(n), seed)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return Layout(_scaled(xy), rank, method, n)


def extend(
    prior_xy: np.ndarray,
    prior_rank: np.ndarray,
    idx: np.ndarray,
    dist: np.ndarray,
    labels: np.ndarray,
    exemplars: np.ndarray,
    base_photos: int,
    seed: int = SEED,
) -> Layout:
    """A kept layout with added photos placed from their neighbours.

    Parameters
    ----------
    prior_xy : ndarray, shape (N, 2)
        Kept positions; NaN rows for the added photos.
    prior_rank : ndarray of int, shape (N,)
        Kept ranks (any increasing numbers); -1 for the added photos.
    idx, dist : ndarray, shape (N, k)
        Each photo's nearest neighbours and their distances.
    labels, exemplars : ndarray of int
        The (extended) clustering.
    base_photos : int
        Photos of the full layout the kept one extends.
    seed : int

    Returns
    -------
    Layout
        The kept photos where they were (ranks in their old order, the added photos
        after them), the added ones at the weighted mean of their placed neighbours
        (photos none of whose neighbours could be placed: at the centre of the map).
    """
    xy = np.array(prior_xy, dtype=np.float64)
    n = len(xy)
    finite = dist[np.isfinite(dist) & (dist > 0)]
    eps = float(finite.min()) if finite.size else 1.0
    weight = np.where(idx >= 0, 1.0 / (np.where(np.isfinite(dist), dist, np.inf) + eps), 0.0)
    todo = np.flatnonzero(np.isnan(xy[:, 0]))
    while todo.size:
        neighbours = idx[todo]
        placed = (neighbours >= 0) & ~np.isnan(xy[neighbours.clip(0), 0])
        w = np.where(placed, weight[todo], 0.0)
        total = w.sum(axis=1)
        ready = total > 0
        if not ready.any():
            break
        rows = todo[ready]
        pos = xy[neighbours[ready].clip(0)]
        share = (w[ready] / total[ready, None])[:, :, None]
        xy[rows] = np.nansum(pos * share, axis=1)
        todo = todo[~ready]
    lost = np.isnan(xy[:, 0])
    xy[lost] = np.nanmean(xy[~lost], axis=0) if (~lost).any() else 0.0
    kept = np.flatnonzero(np.asarray(prior_rank) >= 0)
    kept = kept[np.argsort(np.asarray(prior_rank)[kept], kind="stable")]
    added = np.flatnonzero(np.asarray(prior_rank) < 0)
    labels = np.asarray(labels, dtype=np.int64)
    order = np.concatenate(
        [kept, _representatives(labels, np.asarray(exemplars, np.int64), added, seed)]
    )
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return Layout(_scaled(xy), rank, "placed", base_photos)


# ------------------------------------------------------------------------ the store


def save(run_id: int, ids: np.ndarray, cluster_ids: np.ndarray, layout: Layout) -> None:
    """Store ``layout`` as the map of run ``run_id`` (bound models; the caller owns the
    transaction).

    Parameters
    ----------
    run_id : int
    ids : ndarray of int, shape (N,)
        The photos' ids, in the layout's order.
    cluster_ids : ndarray of int, shape (N,)
        Each photo's cluster (row id) in that run.
    layout : Layout
    """
    xy = layout.xy
    low = xy.min(axis=0) if len(xy) else np.zeros(2)
    high = xy.max(axis=0) if len(xy) else np.zeros(2)
    store.MapLayout.insert(
        run=run_id,
        method=layout.method,
        base_photos=layout.base_photos,
        n_points=len(ids),
        min_x=float(low[0]),
        min_y=float(low[1]),
        max_x=float(high[0]),
        max_y=float(high[1]),
        cells=np.bincount(_cells(xy, (*low, *high)), minlength=GRID * GRID).astype("<i4").tobytes(),
    ).execute()
    level = level_of(layout.rank)
    cell = _cells(xy, (*low, *high))
    m = store.MapPoint
    store.insert_rows(
        m,
        [m.run, m.photo, m.cluster, m.x, m.y, m.rank, m.level, m.cell],
        [
            (run_id, int(i), int(c), float(x), float(y), int(r), int(lv), int(g))
            for i, c, (x, y), r, lv, g in zip(
                ids, cluster_ids, xy, layout.rank, level, cell, strict=True
            )
        ],
    )


def _cell_size(bounds) -> tuple[float, float]:
    """Width and height of a grid cell over ``bounds`` (1 along a flat side)."""
    min_x, min_y, max_x, max_y = bounds
    return ((max_x - min_x) / GRID or 1.0), ((max_y - min_y) / GRID or 1.0)


def _cells(xy: np.ndarray, bounds) -> np.ndarray:
    """The grid cell (``x cell * GRID + y cell``) of each position in ``bounds``."""
    w, h = _cell_size(bounds)
    i = np.clip(((xy[:, 0] - bounds[0]) / w).astype(np.int64), 0, GRID - 1)
    j = np.clip(((xy[:, 1] - bounds[1]) / h).astype(np.int64), 0, GRID - 1)
    return i * GRID + j


def count_in(db, run_id: int, bounds, cells: bytes, box: tuple[float, float, float, float]) -> int:
    """Points of a run's map inside ``box``: the stored counts of the grid cells the
    box covers whole, plus the points inside it of the cells on its border (read
    through the ``(run, cell)`` index)."""
    x0, y0, x1, y1 = box
    min_x, min_y, max_x, max_y = bounds
    if x1 < min_x or y1 < min_y or x0 > max_x or y0 > max_y:
        return 0
    w, h = _cell_size(bounds)
    edges_x = min_x + w * np.arange(GRID + 1)
    edges_y = min_y + h * np.arange(GRID + 1)
    edges_x[-1], edges_y[-1] = max(max_x, edges_x[-1]), max(max_y, edges_y[-1])
    # Cells the box touches, and of those the ones inside it whole.
    i0, i1 = (int(np.clip(np.floor((v - min_x) / w), 0, GRID - 1)) for v in (x0, x1))
    j0, j1 = (int(np.clip(np.floor((v - min_y) / h), 0, GRID - 1)) for v in (y0, y1))
    i = np.arange(i0, i1 + 1)
    j = np.arange(j0, j1 + 1)
    whole_i = (edges_x[i] >= x0) & (edges_x[i + 1] <= x1)
    whole_j = (edges_y[j] >= y0) & (edges_y[j + 1] <= y1)
    counts = np.frombuffer(cells, dtype="<i4").reshape(GRID, GRID)
    total = int(counts[np.ix_(i[whole_i], j[whole_j])].sum())
    border = ~(whole_i[:, None] & whole_j[None, :])
    bi, bj = np.nonzero(border & (counts[np.ix_(i, j)] > 0))
    if bi.size:
        total += store.map_cells_count(db, run_id, (i[bi] * GRID + j[bj]).tolist(), box)
    return total


def has_layout(run_id: int) -> bool:
    """Whether run ``run_id`` has a stored map (bound models)."""
    return store.MapLayout.select().where(store.MapLayout.run == run_id).exists()


def stored_positions(run_id: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """The stored map of run ``run_id`` over ``ids`` (bound models).

    Returns
    -------
    (ndarray (N, 2), ndarray (N,), int) or None
        Positions (NaN for photos not on it), ranks (-1 for those) and its
        ``base_photos``; None if the run has no map.
    """
    info = store.MapLayout.get_or_none(store.MapLayout.run == run_id)
    if info is None:
        return None
    xy = np.full((len(ids), 2), np.nan)
    rank = np.full(len(ids), -1, dtype=np.int64)
    m = store.MapPoint
    rows = np.asarray(
        list(m.select(m.photo, m.x, m.y, m.rank).where(m.run == run_id).tuples()),
        dtype=np.float64,
    ).reshape(-1, 4)
    from leitmotiv.sparse_index import positions_in

    at = positions_in(ids, rows[:, 0].astype(np.int64))
    keep = at >= 0
    xy[at[keep]] = rows[keep, 1:3]
    rank[at[keep]] = rows[keep, 3].astype(np.int64)
    return xy, rank, info.base_photos


# ---------------------------------------------------------------------- reading


@dataclasses.dataclass(frozen=True)
class MapPoint:
    """A photo on the map: its id, position, cluster (id in the current clustering)
    and the content hash its thumbnail URL names."""

    id: int
    x: float
    y: float
    cluster: int
    sha256: str


@dataclasses.dataclass(frozen=True)
class MapBox:
    """What a viewport shows.

    Attributes
    ----------
    bounds : (float, float, float, float)
        The whole map's ``(x0, y0, x1, y1)``.
    n_points : int
        Photos on the whole map.
    in_box : int
        Photos inside the box.
    points : list of MapPoint
        The lowest-ranked photos inside the box, at most the limit, in rank order.
    """

    bounds: tuple[float, float, float, float]
    n_points: int
    in_box: int
    points: list[MapPoint]


def map_info(ctx: Context) -> tuple | None:
    """The current clustering's stored map as (run id, n_points, min_x, min_y, max_x,
    max_y, cells), or None before ``build-index`` has stored one."""
    return store.current_map(ctx.db, ctx.key_ids())


def points_in(ctx: Context, box: tuple[float, float, float, float], limit: int) -> MapBox | None:
    """The photos a viewport shows: the lowest ranks inside ``box``.

    Level after level (see :func:`level_of`), the level's lowest ranks inside the box
    until ``limit`` photos are found; the box's photos are counted by
    :func:`count_in`.

    Parameters
    ----------
    ctx : Context
    box : (x0, y0, x1, y1)
        The viewport in map coordinates, ``x0 <= x1`` and ``y0 <= y1``.
    limit : int
        Most photos returned.

    Returns
    -------
    MapBox or None
        None if the current clustering has no map.
    """
    info = map_info(ctx)
    if info is None:
        return None
    run_id, n_points, *bounds, cells = info
    top = int(level_of(np.array([max(n_points - 1, 0)]))[0])
    found: list[tuple[int, int, float, float, int, str]] = []
    db = ctx.db
    for level in range(top + 1):
        wanted = limit - len(found)
        if wanted <= 0:
            break
        found.extend(store.map_level_rows(db, run_id, level, box, wanted))
    in_box = count_in(db, run_id, bounds, bytes(cells), box)
    points = [
        MapPoint(int(photo), float(x), float(y), int(cluster), sha)
        for _, photo, x, y, cluster, sha in found
    ]
    return MapBox(tuple(bounds), n_points, in_box, points)
