"""Candidate pairs for large libraries: a small embedding searched by exact brute force.

All-pairs Jensen–Shannon is quadratic in the number of photos; beyond a few thousand
photos only each photo's most promising partners are compared exactly.  This module
finds them, in two stages that the divergence supplies (its *fast path*, see
:class:`leitmotiv.implementation.Divergence`): its :meth:`~leitmotiv.implementation.
Divergence.embedding` of each model, searched for each photo's ``wide`` nearest
neighbours, and its :meth:`~leitmotiv.implementation.Divergence.estimator`, a cheap
estimate of the divergence that re-ranks them down to ``k``.  Nothing here depends on
one divergence or one model dimension.

The embedding of the default divergence
---------------------------------------
Each model is embedded by its characteristic function at a fixed set of frequencies
(:mod:`leitmotiv.embedding`): Euclidean distances between embeddings estimate a
kernel distance between the models.  As the default divergence adds a spatial and a
palette term, its embedding is the spatial model's features (5-D, width ``h = 0.15``
in the "common" model units) followed by those of the whitened colour marginal of
:func:`leitmotiv.jensen_shannon.colour_view` (width 0.7), times a weight.

What was measured (recall of the exact top-10 among 30 candidates, 400 models: the 160
shared photos and 240 edited copies; the 120-photo column is originals only):

======================================================  ==========  =========
embedding                                               400 models  120 real
======================================================  ==========  =========
moment-matched Gaussian (mean, Cholesky of covariance)  0.87        --
sqrt-density at 256 + 64 Sobol probes (Hellinger)       0.61        --
characteristic function, palette weight 1               0.92        0.86
characteristic function, palette weight 3               0.95        0.92
======================================================  ==========  =========

The probe (Hellinger) embedding suffers from the variance of importance sampling of
peaked 5-D densities; the characteristic function is closed form and smooth.  The
palette weight is larger than the divergence's (0.2) because the kernel discrepancy of
whitened palettes is small in absolute terms (the two are linked:
:data:`leitmotiv.jensen_shannon.PALETTE_EMBEDDING_GAIN`).  For reference, the Monte Carlo divergence
itself, re-estimated with another seed, recalls 0.90 of its own top-10 in 10 and 0.99 in
30: the order within the top-10 is partly estimator noise.

Because no embedding tested reaches 0.95 on distinct real photos by itself,
:func:`refine` adds a second, still cheap stage: a wide candidate list from the
embedding is re-ranked by the divergence estimated with few Monte Carlo samples (128
instead of 1000 for the spatial term), and the best ``k`` are kept for the exact
divergence.  With a wide list of 100 and ``k = 30`` this recalled 0.97 of the exact
top-10 on both sets above (0.94 with 64 samples).

Where a photo has hundreds of near-copies the embedding is the weak stage.  On 5,000
derived models of two scenes (``benchmarks/scale.py``'s edits; 2,500 copies per scene,
the density of its 100,000-photo library; 60 queries against the exact top 10), the
share of the exact top 10 among the first ``W`` embedding neighbours was:

=============  =======  =======  =======
palette weight  W = 100  W = 200  W = 400
=============  =======  =======  =======
1              0.875    0.933    0.980
1.5            0.862    0.935    0.980
3              0.812    0.870    0.918
=============  =======  =======  =======

and the cheap estimate lost almost nothing re-ranking a wide list down to ``k``: at
weight 1, ``W`` = 300 kept 0.968 with ``k`` = 50 and 0.965 with ``k`` = 30 (weight 1.5:
0.960 with ``k`` = 100).  On the 160 distinct shared photos weight
1.5 recalls 0.977 in 100 (3: 0.982; 1: 0.933), hence 1.5 until December 2026, with 300
re-ranked.  A cheaper palette term in the estimate (64 samples instead of 250) cost
0.09 of recall on the distinct photos and is not used.

A library of distinct photos is the other extreme (``benchmarks/recall.py``: random
parts of the shared photos, most without a near-copy).  There a photo's exact top 10
lies in the flat tail of its distances, ordered by the palette term, and weight 1.5
with 300 neighbours held only 0.86 of it (2,500 photos, 150 queries), while the cheap
estimate again lost nothing down to ``k`` = 50.  Weight 2.5 with 600 neighbours holds
0.97 there; on the near-copies it trades a little of the embedding's share for the
wider list (see :data:`leitmotiv.jensen_shannon.PALETTE_EMBEDDING_GAIN` and
:func:`leitmotiv.sparse_index.wide_for`).

Search
------
:func:`candidate_pairs` is exact brute force on the embeddings: blocks of rows against
all rows by one matrix product each (into one scratch array reused by every block), the
block's top ``k`` by :func:`numpy.argpartition`; memory is ``O(N k + block N)``, never
``N x N``.  The float32 product selects a few extra candidates, whose distances are
then recomputed in float64 and sorted by ``(distance, index)``, so results are
deterministic and do not depend on ``block``.  A divergence that compares pairs under
maps whose effect on the embedding is a permutation of its columns (the default's frame
maps, :meth:`leitmotiv.implementation.Divergence.embedding_maps`) has each pair's
distance taken as the least over them: one more matrix product per map.  A divergence
with :meth:`~leitmotiv.implementation.Divergence.embedding_gaps` gets :data:`SHORTLIST`
times the neighbours asked for from that search, and its gaps choose among them: for
the default divergence the parts' distances added as its terms are, which the
Euclidean distance (a sum of squares, each photo's colour share folded into its own
vector) cannot do in one product.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from leitmotiv.divergence import n_threads, one_blas_thread
from leitmotiv.interfaces import Divergence
from leitmotiv.mixture import Mixture

__all__ = [
    "SHORTLIST",
    "candidate_pairs",
    "nearest",
    "refine",
    "refine_added",
    "sample_median_distance",
    "search",
    "sparse_distances",
    "unique_pairs",
]


#: Rows of :func:`sparse_distances` whose models are prepared together.
_WARM_ROWS = 2048

#: Extra candidates taken from the float32 search before the exact float64 re-ranking;
#: covers round-off near the k-th distance.
_SLACK = 8

#: With a divergence's embedding gaps, the Euclidean search keeps this many times the
#: neighbours asked for, and the gaps choose among them.  On 10,000 diverse photos
#: (``benchmarks/recall.py``'s library, 150 held-out queries) the ``js`` gaps held 0.990
#: of the exact top 10 among 600 chosen from all photos, 0.981 from a shortlist of
#: 2,400 and 0.969 from 1,200; the Euclidean 600 nearest held 0.931.
SHORTLIST = 4

#: ``gaps(queries (B, D), candidates (B, C, D)) -> (B, C)``, see
#: :meth:`leitmotiv.implementation.Divergence.embedding_gaps`.
Gaps = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Bytes of the index arrays of one partition call in the search.  Below glibc's
#: largest mmap threshold (32 MiB), so freed ones are reused: freshly mapped pages cost
#: up to ~2 s per GiB on a virtual machine that hands free memory back to its host.
_PARTITION_BYTES = 16 << 20


# ----------------------------------------------------------------------- search


def _exact_top(
    queries: np.ndarray,
    base: np.ndarray,
    candidates: np.ndarray,
    k: int,
    exclude: np.ndarray | None,
    maps: Sequence[np.ndarray] | None = None,
    gaps: Gaps | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank candidate columns and keep the ``k`` best by (distance, index): by
    ``gaps`` if given, else by the Euclidean distance in float64 (the least over the
    column permutations ``maps`` of the queries, if given)."""
    dist = np.full(candidates.shape, np.inf)
    # Sub-blocks keep the gathered (rows, candidates, D) float64 array small.
    step = max(1, 4_000_000 // max(1, candidates.shape[1] * base.shape[1]))
    if gaps is not None:
        # Small products, one per query: BLAS threads would cost more than they save.
        with one_blas_thread():
            for a in range(0, len(queries), step):
                dist[a : a + step] = gaps(queries[a : a + step], base[candidates[a : a + step]])
    else:
        for a in range(0, len(queries), step):
            gathered = base[candidates[a : a + step]].astype(np.float64)
            for perm in [slice(None), *(maps or [])]:
                diff = queries[a : a + step][:, perm][:, None, :].astype(np.float64) - gathered
                found = np.sqrt(np.einsum("bkd,bkd->bk", diff, diff))
                np.minimum(dist[a : a + step], found, out=dist[a : a + step])
    if exclude is not None:
        dist[candidates == exclude[:, None]] = np.inf
    order = np.lexsort((candidates, dist), axis=-1)[:, :k]
    return (
        np.take_along_axis(candidates, order, axis=1),
        np.take_along_axis(dist, order, axis=1),
    )


def nearest(
    queries: np.ndarray,
    base: np.ndarray,
    k: int,
    *,
    exclude: np.ndarray | None = None,
    maps: Sequence[np.ndarray] | None = None,
    gaps: Gaps | None = None,
    base_sq: np.ndarray | None = None,
    buffer: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Top ``k`` base rows of each query row; ``exclude[i]`` (the query itself) is skipped.

    With ``maps`` (column permutations) a pair's distance is the least over the
    permuted queries: permutations keep the norm, so the largest dot product decides.
    With ``gaps`` (:meth:`leitmotiv.implementation.Divergence.embedding_gaps`, unless
    it returns None for these embeddings) the :data:`SHORTLIST` times ``k`` Euclidean
    nearest are ordered by them instead.

    Parameters
    ----------
    queries : ndarray, shape (B, D), float32
    base : ndarray, shape (N, D), float32
    k : int
    exclude : ndarray of int, shape (B,), optional
    maps, gaps :
        See above.
    base_sq : ndarray, shape (N,), optional
        The squared norms of ``base`` (computed if not given).
    buffer : ndarray, optional
        float32 scratch of at least ``(B, N)``, for a caller that searches block after
        block.

    Returns
    -------
    indices : ndarray, shape (B, min(k, N)), int64
        Nearest first, ties broken by index.
    distances : ndarray, same shape, float64
        The Euclidean distances, or the gaps.
    """
    n = len(base)
    if gaps is not None and (not n or not len(queries)):
        gaps = None
    if gaps is not None and gaps(queries[:1], base[None, :1]) is None:
        gaps = None  # none for these embeddings: the Euclidean order stays
    if base_sq is None:
        base_sq = np.einsum("nd,nd->n", base, base)
    if buffer is None:
        buffer = np.empty((len(queries), n), dtype=np.float32)
    sq = buffer[: len(queries), :n]
    np.matmul(queries, base.T, out=sq)
    for perm in maps or []:
        np.maximum(sq, queries[:, perm] @ base.T, out=sq)
    sq *= -2.0
    sq += base_sq  # + |q|^2, constant per row
    if exclude is not None:
        sq[np.arange(len(queries)), exclude] = np.inf
    wanted = k * SHORTLIST if gaps is not None else k + _SLACK
    take = min(wanted + (exclude is not None), n)
    if take >= n:
        part = np.broadcast_to(np.arange(n), (len(queries), n)).copy()
    else:
        # argpartition returns a full (rows, n) int64 array: a few rows at a time it stays
        # small enough for the allocator to reuse rather than map fresh pages per block.
        part = np.empty((len(queries), take), dtype=np.int64)
        step = max(1, _PARTITION_BYTES // (8 * n))
        for a in range(0, len(queries), step):
            part[a : a + step] = np.argpartition(sq[a : a + step], take - 1, axis=1)[:, :take]
    return _exact_top(queries, base, part, k, exclude, maps, gaps)


def candidate_pairs(
    embeddings: np.ndarray,
    k: int,
    *,
    maps: Sequence[np.ndarray] | None = None,
    gaps: Gaps | None = None,
    start: int = 0,
    block: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest other items in the embedding, by exact brute force.

    Parameters
    ----------
    embeddings : ndarray, shape (N, D)
        From :meth:`leitmotiv.implementation.Divergence.embedding`.
    k : int
        Neighbours per item; capped at ``N - 1``.
    maps : sequence of ndarray, optional
        Column permutations besides the identity
        (:meth:`leitmotiv.implementation.Divergence.embedding_maps`): a pair's distance
        is then the least of ``|e_i - e_j|`` and the ``|e_i[perm] - e_j|``.
    gaps : callable, optional
        :meth:`leitmotiv.implementation.Divergence.embedding_gaps`: the
        :data:`SHORTLIST` times ``k`` Euclidean nearest are then ordered by it.
    start : int
        Only the items from ``start`` on are searched for (among all ``N``), e.g. the
        photos just added to a library.
    block : int
        Rows per matrix product; memory is ``O(block N + N k)``.
    progress : callable, optional
        Called as ``progress(done_rows, N - start)`` after each block.

    Returns
    -------
    indices : ndarray, shape (N - start, min(k, N - 1)), int64
        Neighbours of each searched item, nearest first, ties broken by index; never
        the item itself.
    distances : ndarray, same shape, float64
        Their Euclidean distances in the embedding, or their gaps.
    """
    emb = np.ascontiguousarray(embeddings, dtype=np.float32)
    n = len(emb)
    start = min(max(int(start), 0), n)
    k = max(0, min(int(k), n - 1))
    indices = np.empty((n - start, k), dtype=np.int64)
    distances = np.empty((n - start, k), dtype=np.float64)
    if k == 0:
        return indices, distances
    base_sq = np.einsum("nd,nd->n", emb, emb)
    buffer = np.empty((min(block, n - start), n), dtype=np.float32)
    for first in range(start, n, block):
        stop = min(first + block, n)
        idx, dist = nearest(
            emb[first:stop],
            emb,
            k,
            exclude=np.arange(first, stop),
            maps=maps,
            gaps=gaps,
            base_sq=base_sq,
            buffer=buffer,
        )
        indices[first - start : stop - start], distances[first - start : stop - start] = idx, dist
        if progress is not None:
            progress(stop - start, n - start)
    return indices, distances


def _merge_lists(
    indices: np.ndarray,
    distances: np.ndarray,
    rows: np.ndarray,
    extra: np.ndarray,
    extra_dist: np.ndarray,
    n: int,
) -> np.ndarray:
    """Merge ``extra`` candidates into the lists of ``rows`` in place, keeping ``k`` by
    ``(distance, index)``; returns the rows whose list changed.

    The stored lists are sorted and the extra entries per row are few, so instead of
    sorting each row again every entry's place in the merged row is counted: an extra
    entry goes after the stored entries ordered before it and after the extra entries
    sorted before it, a stored entry moves down by the extra entries placed before it.
    This is a merge of two sorted lists, the same result as sorting the concatenation,
    in a fraction of the time for hundreds of entries per row.
    """
    k = indices.shape[1]
    old_idx, old_dist = indices[rows], distances[rows]
    old_dist[old_idx < 0] = np.inf
    old_key = np.where(old_idx < 0, n, old_idx)  # padding last, as its distance is inf
    extra_dist = np.where(extra < 0, np.inf, extra_dist)
    extra_key = np.where(extra < 0, n, extra)
    order = np.lexsort((extra_key, extra_dist), axis=-1)
    extra = np.take_along_axis(extra, order, axis=1)
    extra_dist = np.take_along_axis(extra_dist, order, axis=1)
    extra_key = np.take_along_axis(extra_key, order, axis=1)
    n_rows, n_extra = extra.shape
    # before[r, j]: stored entries of row r ordered before its j-th extra entry.
    before = np.empty((n_rows, n_extra), dtype=np.int64)
    for j in range(n_extra):
        d, key = extra_dist[:, j, None], extra_key[:, j, None]
        before[:, j] = ((old_dist < d) | ((old_dist == d) & (old_key < key))).sum(axis=1)
    extra_at = before + np.arange(n_extra)
    # Stored entry i moves down by the extra entries placed before it.
    shift = np.zeros((n_rows, k + 1), dtype=np.int64)
    np.add.at(shift, (np.repeat(np.arange(n_rows), n_extra), np.minimum(before, k).ravel()), 1)
    old_at = np.arange(k) + np.cumsum(shift, axis=1)[:, :k]
    merged_idx = np.empty((n_rows, k + n_extra), dtype=np.int64)
    merged_dist = np.empty((n_rows, k + n_extra))
    r_old = np.repeat(np.arange(n_rows), k)
    r_extra = np.repeat(np.arange(n_rows), n_extra)
    merged_idx[r_old, old_at.ravel()] = old_idx.ravel()
    merged_dist[r_old, old_at.ravel()] = old_dist.ravel()
    merged_idx[r_extra, extra_at.ravel()] = extra.ravel()
    merged_dist[r_extra, extra_at.ravel()] = extra_dist.ravel()
    new_idx, new_dist = merged_idx[:, :k], merged_dist[:, :k]
    new_idx[~np.isfinite(new_dist)] = -1
    differs = (new_idx != indices[rows]).any(axis=1)
    indices[rows], distances[rows] = new_idx, new_dist
    return rows[differs]


# ------------------------------------------------------------- exact distances


def unique_pairs(indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The undirected pairs of a candidate table, each once, grouped by row.

    A pair found from both ends is kept at the smaller row index, so each row keeps
    nearly its whole list (its calls stay about ``k`` wide).  Negative entries
    (padding) are dropped.

    Returns
    -------
    rows, cols : ndarray of int64, sorted by ``(row, col)``
    """
    indices = np.asarray(indices, dtype=np.int64)
    n, k = indices.shape if indices.ndim == 2 else (0, 0)
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = indices.reshape(-1)
    keep = (cols >= 0) & (cols != rows)
    rows, cols = rows[keep], cols[keep]
    lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
    # First occurrence in row-major order of each undirected pair.
    key = lo * max(n, 1) + hi
    _, first = np.unique(key, return_index=True)
    first.sort()
    rows, cols = rows[first], cols[first]
    order = np.lexsort((cols, rows))
    return rows[order], cols[order]


def sparse_distances(
    mixtures: Sequence[Mixture],
    pairs: np.ndarray | tuple[np.ndarray, np.ndarray],
    divergence: Divergence,
    *,
    block: int = 64,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
    valid: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exact divergence on candidate pairs only, each undirected pair once.

    Pairs are grouped by row: one ``divergence.cross([row], its columns)`` per row, so
    no pair is computed that was not asked for (a block of rows against the union of
    their columns would compute about ``block`` times too many).  Rows run on a pool of
    threads, each call single-threaded; for the default divergence that costs about
    0.5-0.7 ms per pair on a busy 2-core machine, as a large block does per pair.

    Parameters
    ----------
    mixtures : sequence of Mixture
    pairs : ndarray (N, k) or (rows, cols)
        A candidate table from :func:`candidate_pairs` or explicit pairs; duplicates,
        both orientations and self-pairs are removed.
    divergence : Divergence
    block : int
        Rows per task of the thread pool (and between ``progress`` calls).
    n_jobs : int
        Threads; -1 for all cores.
    progress : callable, optional
        Called as ``progress(done_pairs, total_pairs)``.
    valid : ndarray of bool, optional
        With explicit pairs, which of them to use (e.g. to skip padding).

    Returns
    -------
    rows, cols : ndarray of int64
        Each undirected pair once, sorted by ``(row, col)``: from a table, at the row
        that listed it first; from explicit pairs, at the endpoint with more pairs.
    values : ndarray of float64
    """
    mixtures = list(mixtures)
    if isinstance(pairs, tuple):
        r, c = (np.asarray(a, dtype=np.int64).reshape(-1) for a in pairs)
        n = max(len(mixtures), 1)
        lo, hi = np.minimum(r, c), np.maximum(r, c)
        keep = lo != hi
        if valid is not None:
            keep &= np.asarray(valid, dtype=bool).reshape(-1)
        key = np.unique(lo[keep] * n + hi[keep])
        lo, hi = key // n, key % n
        # Group each pair under its endpoint with more pairs, so that e.g. the pairs of
        # a few added photos make a few wide calls rather than many one-pair calls.
        degree = np.bincount(np.concatenate([lo, hi]), minlength=n)
        flip = degree[hi] > degree[lo]
        rows, cols = np.where(flip, hi, lo), np.where(flip, lo, hi)
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
    else:
        rows, cols = unique_pairs(pairs)
    values = np.empty(len(rows))
    if len(rows) == 0:
        return rows, cols, values
    bounds = np.flatnonzero(np.diff(rows)) + 1
    starts = np.concatenate([[0], bounds])
    stops = np.concatenate([bounds, [len(rows)]])

    def run(groups: range) -> None:
        for g in groups:
            a, b = starts[g], stops[g]
            values[a:b] = divergence.cross(
                [mixtures[rows[a]]], [mixtures[j] for j in cols[a:b]], n_jobs=1
            )[0]

    # One row's call is small: spawning threads inside it costs more than it saves on a
    # busy machine (measured 5x slower), so the rows are spread over threads instead,
    # each call single-threaded (the kernels release the GIL).  BLAS is pinned to one
    # thread for the whole run so the calls' own pinning cannot race.  Rows go in
    # stretches whose models are first prepared together (Divergence.warm), which is
    # several times cheaper per model than one by one.
    with one_blas_thread(), ThreadPoolExecutor(n_threads(n_jobs)) as pool:
        for first in range(0, len(starts), _WARM_ROWS):
            last = min(first + _WARM_ROWS, len(starts))
            span = slice(starts[first], stops[last - 1])
            involved = np.unique(np.concatenate([rows[span], cols[span]]))
            divergence.warm([mixtures[i] for i in involved])
            chunks = [range(g, min(g + block, last)) for g in range(first, last, block)]
            for chunk, _ in zip(chunks, pool.map(run, chunks), strict=True):
                if progress is not None:
                    progress(int(stops[chunk[-1]]), len(rows))
    return rows, cols, values


def _estimate(
    mixtures: Sequence[Mixture],
    pairs: tuple[np.ndarray, np.ndarray],
    divergence: Divergence,
    *,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Each undirected pair of ``pairs`` estimated once (negative entries skipped).

    Returns
    -------
    keys, values : ndarray
        ``min * N + max`` of each pair, sorted, and the pair's divergence.
    """
    r, c = pairs
    n = max(len(mixtures), 1)
    rows, cols, values = sparse_distances(
        mixtures, (r, c), divergence, n_jobs=n_jobs, progress=progress, valid=(r >= 0) & (c >= 0)
    )
    keys = np.minimum(rows, cols) * n + np.maximum(rows, cols)
    order = np.argsort(keys)
    return keys[order], values[order]


def _lookup(keys: np.ndarray, values: np.ndarray, a: np.ndarray, b: np.ndarray, n: int):
    """Values of the pairs ``(a, b)`` from :func:`_estimate`; inf for padding or self."""
    want = np.minimum(a, b) * n + np.maximum(a, b)
    pos = np.clip(np.searchsorted(keys, want), 0, max(len(keys) - 1, 0))
    found = values[pos] if len(keys) else np.full(want.shape, np.inf)
    return np.where((a >= 0) & (b >= 0) & (a != b), found, np.inf)


def _rank(
    table: np.ndarray, row_ids: np.ndarray, keys: np.ndarray, values: np.ndarray, k: int, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``table`` re-ranked by the estimates, its best ``k`` kept."""
    est = _lookup(keys, values, np.broadcast_to(row_ids[:, None], table.shape), table, n)
    rank = np.lexsort((np.where(table < 0, n, table), est), axis=-1)[:, :k]
    out_idx = np.take_along_axis(table, rank, axis=1)
    out_est = np.take_along_axis(est, rank, axis=1)
    out_idx[~np.isfinite(out_est)] = -1
    return out_idx, out_est


def refine(
    mixtures: Sequence[Mixture],
    indices: np.ndarray,
    k: int,
    divergence: Divergence,
    *,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Re-rank wide candidate lists by a cheap estimate of the divergence, keep ``k``.

    The second stage of the candidate search (see the module docstring): each
    undirected pair of the wide lists is estimated once, by ``divergence.estimator()``,
    and each row keeps its ``k`` best by ``(estimate, index)``.

    Parameters
    ----------
    mixtures : sequence of Mixture
    indices : ndarray, shape (N, k_wide)
        Wide lists from :func:`candidate_pairs`; negative entries are padding.
    k : int
        Candidates kept per row (at most ``k_wide``).
    divergence : Divergence
        The divergence the candidates are for.
    n_jobs : int
    progress : callable, optional
        As for :func:`sparse_distances`.

    Returns
    -------
    indices : ndarray, shape (N, min(k, k_wide)), int64
        Padded with -1 where a row has fewer candidates.
    estimates : ndarray, same shape, float64
        The cheap estimates (inf for padding).
    """
    table = np.asarray(indices, dtype=np.int64)
    row_ids = np.arange(len(table))
    n = max(len(mixtures), 1)
    k = max(0, min(int(k), table.shape[1] if table.ndim == 2 else 0))
    if table.size == 0 or k == 0:
        return (np.full((len(table), k), -1, dtype=np.int64), np.full((len(table), k), np.inf))
    keys, values = _estimate(
        mixtures,
        (np.repeat(row_ids, table.shape[1]), table.reshape(-1)),
        divergence.estimator(),
        n_jobs=n_jobs,
        progress=progress,
    )
    return _rank(table, row_ids, keys, values, k, n)


def search(
    mixtures: Sequence[Mixture],
    k: int,
    divergence: Divergence,
    *,
    wide: int = 600,
    block: int = 1024,
    n_jobs: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """The whole candidate search: the divergence's embedding, :func:`candidate_pairs`,
    :func:`refine`.

    Parameters
    ----------
    mixtures : sequence of Mixture
    k : int
        Candidates per photo for the exact divergence.
    divergence : Divergence
    wide : int
        Embedding neighbours re-ranked per photo; ``wide <= k`` skips the re-ranking.
    block, n_jobs :
        See :func:`candidate_pairs` and :func:`refine`.

    Returns
    -------
    indices, estimates : ndarray, shape (N, min(k, N - 1))
        Estimates are embedding distances when the re-ranking is skipped.
    """
    embeddings = divergence.embedding(mixtures)
    maps = divergence.embedding_maps(np.shape(embeddings)[1])
    indices, distances = candidate_pairs(
        embeddings, max(k, wide), maps=maps, gaps=divergence.embedding_gaps, block=block
    )
    if wide <= k:
        return indices, distances
    return refine(mixtures, indices, k, divergence, n_jobs=n_jobs)


def refine_added(
    mixtures: Sequence[Mixture],
    added_wide: np.ndarray,
    indices: np.ndarray,
    estimates: np.ndarray,
    k: int,
    divergence: Divergence,
    *,
    n_jobs: int = -1,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Re-ranked lists after photos were added, estimating only the added photos' pairs.

    The added photos (the last ``len(added_wide)`` of ``mixtures``) are re-ranked in
    full (:func:`refine` of their wide lists).  Every photo an added photo's wide list
    holds may then admit it: the pair's estimate is at hand, and it is merged into that
    photo's list by ``(estimate, index)``.  Nothing else is estimated, so the cost is
    that of the added photos' wide lists, whatever the size of the library.  An old
    photo's list is thus the best ``k`` of its own wide list when it was added and of
    the photos added later whose wide lists hold it; near neighbours in the embedding
    are mostly mutual, so this loses little against re-searching the old photos (see
    :mod:`leitmotiv.sparse_index`).

    Parameters
    ----------
    mixtures : sequence of Mixture
        All photos, the added ones last.
    added_wide : ndarray, shape (N_added, k_wide)
        The added photos' wide lists (:func:`candidate_pairs` with ``start``).
    indices, estimates : ndarray, shape (N_old, k_old)
        The old photos' re-ranked lists (-1 and inf pad a short one).
    k : int
    divergence : Divergence
    n_jobs, progress :
        As for :func:`refine`.

    Returns
    -------
    indices, estimates : ndarray, shape (N, min(k, N - 1))
    changed : ndarray of int64
        Old photos whose list changed.
    """
    n = len(mixtures)
    added_wide = np.asarray(added_wide, dtype=np.int64)
    n_old = n - len(added_wide)
    k = max(0, min(int(k), n - 1))
    out_idx = np.full((n, k), -1, dtype=np.int64)
    out_est = np.full((n, k), np.inf)
    w = min(k, indices.shape[1] if indices.ndim == 2 else 0)
    out_idx[:n_old, :w] = indices[:, :w]
    out_est[:n_old, :w] = estimates[:, :w]
    out_est[out_idx < 0] = np.inf
    if n == n_old or k == 0 or added_wide.size == 0:
        return out_idx, out_est, np.zeros(0, dtype=np.int64)
    new_rows = np.arange(n_old, n)
    keys, values = _estimate(
        mixtures,
        (np.repeat(new_rows, added_wide.shape[1]), added_wide.reshape(-1)),
        divergence.estimator(),
        n_jobs=n_jobs,
        progress=progress,
    )
    out_idx[new_rows], out_est[new_rows] = _rank(added_wide, new_rows, keys, values, k, n)
    # Admissions: photo t may take the added photo a whose wide list holds t; an added
    # t already weighed a when a is in its own wide list.
    a = np.repeat(new_rows, added_wide.shape[1])
    t = added_wide.reshape(-1)
    keep = t >= 0
    a, t = a[keep], t[keep]
    mutual = np.isin(t * n + a, a * n + t)
    a, t = a[~mutual], t[~mutual]
    if t.size == 0:
        return out_idx, out_est, np.zeros(0, dtype=np.int64)
    by_target = np.lexsort((a, t))
    a, t = a[by_target], t[by_target]
    targets, first = np.unique(t, return_index=True)
    counts = np.diff(np.r_[first, t.size])
    extra = np.full((targets.size, counts.max()), -1, dtype=np.int64)
    slot = np.arange(t.size) - np.repeat(first, counts)
    extra[np.repeat(np.arange(targets.size), counts), slot] = a
    extra_est = _lookup(keys, values, np.broadcast_to(targets[:, None], extra.shape), extra, n)
    changed = _merge_lists(out_idx, out_est, targets, extra, extra_est, n)
    return out_idx, out_est, changed[changed < n_old].astype(np.int64)


def sample_median_distance(
    mixtures: Sequence[Mixture],
    divergence: Divergence,
    n_pairs: int = 500,
    *,
    seed: int = 0,
    n_jobs: int = -1,
) -> float:
    """Median divergence over random pairs: the dense clusterer's preference, sampled.

    Dense affinity propagation takes the median of all pairwise similarities as the
    preference.  The median of a k-NN graph's edges is much closer (a within-group
    distance) and makes sparse affinity propagation split groups; passing
    ``preference=-sample_median_distance(...)`` to
    :class:`leitmotiv.sparse_cluster.SparseAffinityPropagation` restores the dense
    default's scale at the cost of ``n_pairs`` distances.

    Returns
    -------
    float
        0.0 for fewer than two mixtures.
    """
    n = len(mixtures)
    if n < 2:
        return 0.0
    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, size=n_pairs)
    b = (a + rng.integers(1, n, size=n_pairs)) % n  # never a self-pair
    _, _, values = sparse_distances(mixtures, (a, b), divergence, n_jobs=n_jobs)
    return float(np.median(values))
