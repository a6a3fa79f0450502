"""Affinity propagation on a sparse distance graph, without any N x N array.

Frey and Dueck (2007) pass two kinds of message between items ``i`` and candidate
exemplars ``k`` along the edges of a similarity graph ``s(i, k)``:

- responsibility ``r(i, k) = s(i, k) - max_{k' != k} (a(i, k') + s(i, k'))``,
- availability ``a(i, k) = min(0, r(k, k) + sum_{i' not in {i, k}} max(0, r(i', k)))``
  for ``i != k``, and ``a(k, k) = sum_{i' != k} max(0, r(i', k))``,

each damped, ``m <- damping m + (1 - damping) m_new``.  Item ``k`` is an exemplar when
``a(k, k) + r(k, k) > 0``.  Only edges of the graph carry messages (a missing edge is a
similarity of minus infinity), so memory and time per iteration are ``O(edges)``.

Here the graph is stored as edge arrays sorted by row (CSR): the responsibility update
needs, per row, the largest and second largest ``a + s`` over the row's edges
(:func:`numpy.maximum.reduceat`), the availability update needs, per column, the sum of
positive responsibilities (:func:`numpy.bincount`).  Every item has its self edge,
whose similarity is the *preference* (the median of the edge similarities by default).

The iteration, the tie-breaking noise and the final assignment follow the dense
:class:`leitmotiv.cluster.AffinityPropagation` (scikit-learn's), so on a complete graph
both give the same clustering up to that noise; the noise here is a fixed-seed draw per
edge, so results are deterministic.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.affinity_settings import check_parameters, preference_value
from leitmotiv.interfaces import Clusterer, Clustering

__all__ = ["SparseAffinityPropagation", "knn_graph", "sparse_affinity_propagation"]


def knn_graph(distances: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each item's ``k`` nearest others of a dense distance matrix, as edge arrays.

    Ties are broken by index.  Returns ``rows, cols, values`` (``N k`` directed edges).
    """
    distances = np.asarray(distances, dtype=np.float64)
    n = len(distances)
    k = max(0, min(int(k), n - 1))
    if k == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    masked = distances.copy()
    np.fill_diagonal(masked, np.inf)
    order = np.argsort(masked, axis=1, kind="stable")[:, :k]
    rows = np.repeat(np.arange(n, dtype=np.int64), k)
    cols = order.reshape(-1).astype(np.int64)
    return rows, cols, distances[rows, cols]


def _undirected_edges(
    n: int, rows: np.ndarray, cols: np.ndarray, values: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Both orientations of every edge, each once, self-loops dropped, sorted by (row, col).

    An edge given twice (e.g. from both ends of a k-NN graph) keeps the smaller value.
    """
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    cols = np.asarray(cols, dtype=np.int64).reshape(-1)
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    if not (rows.shape == cols.shape == values.shape):
        raise ValueError("rows, cols and values must have the same length")
    if rows.size and (rows.min() < 0 or cols.min() < 0 or max(rows.max(), cols.max()) >= n):
        raise ValueError(f"edge endpoints must be in [0, {n})")
    if not np.all(np.isfinite(values)):
        raise ValueError("edge values must be finite")
    keep = rows != cols
    r = np.concatenate([rows[keep], cols[keep]])
    c = np.concatenate([cols[keep], rows[keep]])
    v = np.concatenate([values[keep], values[keep]])
    order = np.lexsort((v, c, r))
    r, c, v = r[order], c[order], v[order]
    first = np.ones(r.size, dtype=bool)
    first[1:] = (r[1:] != r[:-1]) | (c[1:] != c[:-1])
    return r[first], c[first], v[first]


def sparse_affinity_propagation(
    n: int,
    rows: np.ndarray,
    cols: np.ndarray,
    similarities: np.ndarray,
    preference: float,
    *,
    damping: float = 0.7,
    max_iter: int = 1000,
    convergence_iter: int = 30,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Affinity propagation on the edges of a sparse similarity graph.

    Parameters
    ----------
    n : int
        Number of items.
    rows, cols, similarities : ndarray, shape (E,)
        Directed edges without self-loops, sorted by ``(row, col)``, each once.
    preference : float
        Similarity of every item to itself.
    damping, max_iter, convergence_iter :
        As in :class:`leitmotiv.cluster.AffinityPropagation`.
    seed : int
        Seed of the tie-breaking noise.

    Returns
    -------
    labels : ndarray, shape (n,), int64
    exemplars : ndarray, shape (C,), int64
    converged : bool
        False if ``max_iter`` was reached first; the exemplars of the last iteration
        are used then (an item whose neighbours include none becomes its own).
    """
    # Self edges join the graph; keep the rows sorted so each row is one segment.
    r = np.concatenate([rows, np.arange(n, dtype=np.int64)])
    c = np.concatenate([cols, np.arange(n, dtype=np.int64)])
    s = np.concatenate([similarities, np.full(n, float(preference))])
    order = np.lexsort((c, r))
    r, c, s = r[order], c[order], s[order].copy()
    # Same noise model as scikit-learn: relative eps plus an absolute tiny term.
    rng = np.random.default_rng(seed)
    s += (np.finfo(np.float64).eps * s + np.finfo(np.float64).tiny * 100) * rng.standard_normal(
        s.size
    )
    starts = np.flatnonzero(np.r_[True, r[1:] != r[:-1]])
    diag = np.flatnonzero(r == c)  # one per item, in item order
    edge = np.arange(s.size)
    # An item whose only edge is its self edge has no competing exemplar; a finite
    # stand-in below every similarity keeps its messages finite (it is its own exemplar).
    floor = float(s.min()) - 1.0

    R = np.zeros_like(s)
    A = np.zeros_like(s)
    history = np.zeros((convergence_iter, n), dtype=bool)
    converged = False
    for it in range(max_iter):
        # Responsibilities: s minus the best competing a + s of the same row.
        AS = A + s
        best = np.maximum.reduceat(AS, starts)
        best_e = best[r]
        is_best = AS == best_e
        # First edge of each row attaining the maximum, as np.argmax would choose.
        first_pos = np.full(n, s.size)
        np.minimum.at(first_pos, r[is_best], edge[is_best])
        AS[first_pos] = -np.inf
        second = np.maximum(np.maximum.reduceat(AS, starts), floor)
        new_r = s - best_e
        new_r[first_pos] = s[first_pos] - second
        R = damping * R + (1.0 - damping) * new_r
        # Availabilities: per-column sums of positive responsibilities.
        Rp = np.maximum(R, 0.0)
        Rp[diag] = R[diag]
        col_sum = np.bincount(c, weights=Rp, minlength=n)
        new_a = col_sum[c] - Rp
        self_a = new_a[diag].copy()
        np.minimum(new_a, 0.0, out=new_a)
        new_a[diag] = self_a
        A = damping * A + (1.0 - damping) * new_a

        exemplar = (A[diag] + R[diag]) > 0
        history[it % convergence_iter] = exemplar
        if it >= convergence_iter:
            stable = history.sum(axis=0)
            if np.all((stable == convergence_iter) | (stable == 0)) and exemplar.any():
                converged = True
                break
    labels, exemplars = _assign(n, r, c, s, exemplar)
    return labels, exemplars, converged


def _assign(
    n: int, r: np.ndarray, c: np.ndarray, s: np.ndarray, exemplar: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Labels from the exemplars, refined as scikit-learn does, on the graph's edges."""
    if not exemplar.any():
        # No exemplar at all: every item is its own cluster (the dense fallback).
        return np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
    s_floor = s.min() - 1.0  # a missing edge counts as less similar than any edge

    def nearest(ex: np.ndarray) -> np.ndarray:
        """Each item's most similar exemplar among its edges (itself if an exemplar)."""
        target = np.full(n, -1, dtype=np.int64)
        on = ex[c] & (r != c)
        cand = np.flatnonzero(on)
        if cand.size:
            # Sort by (row, -similarity, col) so the first per row is np.argmax's choice.
            order = np.lexsort((c[cand], -s[cand], r[cand]))
            cand = cand[order]
            first = np.r_[True, r[cand][1:] != r[cand][:-1]]
            target[r[cand][first]] = c[cand][first]
        target[ex] = np.flatnonzero(ex)
        # Items with no exemplar among their neighbours follow their most similar
        # neighbour that has one (repeatedly); any left over stand alone.
        order = np.lexsort((c, -s, r))
        rr, cc = r[order], c[order]
        off = rr != cc
        rr, cc = rr[off], cc[off]
        while True:
            missing = target[rr] < 0
            ok = missing & (target[cc] >= 0)
            if not ok.any():
                break
            idx = np.flatnonzero(ok)
            first = np.r_[True, rr[idx][1:] != rr[idx][:-1]]
            target[rr[idx][first]] = target[cc[idx][first]]
        lone = target < 0
        target[lone] = np.flatnonzero(lone)
        return target

    target = nearest(exemplar)
    # Refine: within each cluster the member with the largest summed similarity to the
    # other members becomes the exemplar (missing edges count as s_floor).
    same = (target[r] == target[c]) & (r != c)
    score = np.bincount(c[same], weights=s[same], minlength=n)
    members = np.bincount(target, minlength=n)
    known = np.bincount(c[same], minlength=n)
    diag_s = np.zeros(n)
    is_diag = r == c
    diag_s[r[is_diag]] = s[is_diag]
    score = score + diag_s + (members[target] - 1 - known) * s_floor
    refined = np.zeros(n, dtype=bool)
    order = np.lexsort((np.arange(n), -score, target))
    first = np.r_[True, target[order][1:] != target[order][:-1]]
    refined[order[first]] = True
    target = nearest(refined)
    exemplars = np.unique(target)
    labels = np.searchsorted(exemplars, target).astype(np.int64)
    return labels, exemplars.astype(np.int64)


@dataclass(frozen=True)
class SparseAffinityPropagation(Clusterer):
    """Affinity propagation on a sparse k-nearest-neighbour distance graph.

    The scalable counterpart of :class:`leitmotiv.cluster.AffinityPropagation`:
    similarity is minus the distance, messages flow only along the graph's edges
    (taken as undirected), memory is ``O(edges)``.

    Parameters
    ----------
    preference : str or float
        ``"median"`` (of the edge similarities), ``"min"`` or a number.
    damping : float
        In [0.5, 1).
    max_iter, convergence_iter : int
        Iteration limits; if ``max_iter`` is reached the last exemplars are kept.
    n_neighbors : int
        Neighbours per item when :meth:`cluster` builds the graph from a dense matrix.
    """

    name: ClassVar[str] = "affinity-sparse"

    preference: str | float = "median"
    damping: float = 0.7
    max_iter: int = 1000
    convergence_iter: int = 30
    n_neighbors: int = 30

    def __post_init__(self) -> None:
        check_parameters(self.damping, self.preference)
        if int(self.n_neighbors) < 1:
            raise ValueError(f"n_neighbors must be at least 1, got {self.n_neighbors}")

    def _preference(self, similarities: np.ndarray) -> float:
        return preference_value(self.preference, similarities)

    def cluster_graph(
        self,
        n: int,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
        typical: float | None = None,
    ) -> Clustering:
        """Cluster ``n`` items from the distances on the edges of a sparse graph.

        As :meth:`leitmotiv.interfaces.Clusterer.cluster_graph`; self-loops are
        ignored.  With ``typical`` the ``"median"`` preference is ``-typical``, the
        scale of dense affinity propagation.  Without it, the ``"median"`` preference
        is the median over the graph's edges, which for a k-NN graph is a near-neighbour
        distance: measured on separated synthetic groups it gives two to four times as
        many clusters as dense affinity propagation.  For the dense default's scale
        pass ``typical``, e.g. :func:`leitmotiv.candidates.sample_median_distance`.
        """
        if typical is not None and self.preference == "median":
            return dataclasses.replace(self, preference=-float(typical)).cluster_graph(
                n, rows, cols, values
            )
        n = int(n)
        if n < 0:
            raise ValueError("n must be non-negative")
        r, c, d = _undirected_edges(n, rows, cols, values)
        if n <= 1:
            zeros = np.zeros(n, dtype=np.int64)
            return Clustering(zeros, zeros.copy())
        similarities = -d
        # The median over undirected edges: each appears twice in (r, c), once with r < c.
        preference = self._preference(similarities[r < c])
        labels, exemplars, _ = sparse_affinity_propagation(
            n,
            r,
            c,
            similarities,
            preference,
            damping=self.damping,
            max_iter=self.max_iter,
            convergence_iter=self.convergence_iter,
        )
        return Clustering(labels, exemplars)

    def cluster(self, distances: np.ndarray) -> Clustering:
        """Cluster from a dense symmetric distance matrix via its k-NN graph.

        A ``"median"`` or ``"min"`` preference is taken over all pairs of the matrix,
        as the dense clusterer does, not over the graph's edges: the edges are the
        nearest pairs only, and their median splits groups (see :meth:`cluster_graph`).
        """
        distances = np.asarray(distances, dtype=np.float64)
        n = len(distances)
        if distances.shape != (n, n):
            raise ValueError(f"distances must be square, got shape {distances.shape}")
        rows, cols, values = knn_graph(distances, self.n_neighbors)
        clusterer = self
        if isinstance(self.preference, str) and n >= 2:
            pairs = -distances[np.triu_indices(n, 1)]
            clusterer = dataclasses.replace(self, preference=self._preference(pairs))
        return clusterer.cluster_graph(n, rows, cols, values)
