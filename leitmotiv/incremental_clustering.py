"""Extending a clustering with added photos, without clustering the library again.

Affinity propagation is global: each run passes messages over the whole graph, which on
a 100,000-photo library costs minutes, far more than indexing 1 % more photos.  So when
a sparse index grows by a little, :func:`extend_clustering` keeps the clusters and
places only the added photos, the way affinity propagation's own last step places every
non-exemplar:

1. an added photo looks at the clusters of its nearest already-clustered neighbours
   in the candidate graph (the ``probe`` nearest);
2. it joins the cluster whose *exemplar* is nearest, provided that exemplar is within
   ``typical`` (the median distance of random pairs, which is minus the preference of
   the default clusterer: farther than that, affinity propagation would rather make a
   new exemplar);
3. the added photos that joined no cluster are clustered among themselves, on the
   edges between them, by the configured clusterer.

:meth:`leitmotiv.library.Library.build_index` clusters in full again once the library
has grown by :data:`REGROW` since the last full clustering, or when asked.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from leitmotiv.interfaces import Clusterer, Clustering

__all__ = ["REGROW", "extend_clustering"]

#: Growth since the last full clustering beyond which the library is clustered again.
REGROW = 0.10


def extend_clustering(
    labels: np.ndarray,
    exemplars: np.ndarray,
    edges: tuple[np.ndarray, np.ndarray, np.ndarray],
    distance: Callable[[np.ndarray], np.ndarray],
    typical: float,
    clusterer: Clusterer,
    probe: int = 10,
) -> Clustering:
    """Place the unlabelled items of a clustering.

    Parameters
    ----------
    labels : ndarray of int, shape (N,)
        Cluster of each item, -1 for the added ones.
    exemplars : ndarray of int, shape (C,)
        Exemplar (item index) of each cluster.
    edges : (rows, cols, values)
        The distance graph, each undirected edge once or from both ends.
    distance : callable
        ``distance(pairs)`` gives the distances of item pairs, shape (m, 2), -> (m,).
    typical : float
        The median distance of random pairs: the farthest an exemplar may be.
    clusterer : Clusterer
        Clusters the added items that joined no cluster (``cluster_graph``).
    probe : int
        Nearest clustered neighbours whose clusters an added item considers.

    Returns
    -------
    Clustering
        The old clusters (same indices and exemplars) with the added items, then the
        clusters of the added items among themselves.
    """
    labels = np.asarray(labels, dtype=np.int64).copy()
    exemplars = np.asarray(exemplars, dtype=np.int64)
    rows, cols, values = (np.asarray(a) for a in edges)
    r = np.concatenate([rows, cols]).astype(np.int64)
    c = np.concatenate([cols, rows]).astype(np.int64)
    v = np.concatenate([values, values]).astype(np.float64)
    # Each added item's nearest clustered neighbours, nearest first.
    keep = (labels[r] < 0) & (labels[c] >= 0)
    r, c, v = r[keep], c[keep], v[keep]
    order = np.lexsort((c, v, r))
    r, c = r[order], c[order]
    first = np.searchsorted(r, r, side="left")
    near = (np.arange(r.size) - first) < probe
    item, cluster = np.unique(np.stack([r[near], labels[c[near]]], axis=1), axis=0).T
    if item.size:
        d = distance(np.stack([item, exemplars[cluster]], axis=1))
        # The nearest exemplar of each item: sort by (item, distance), take the first.
        best = np.lexsort((cluster, d, item))
        item, cluster, d = item[best], cluster[best], d[best]
        head = np.r_[True, item[1:] != item[:-1]]
        item, cluster, d = item[head], cluster[head], d[head]
        close = d <= typical
        labels[item[close]] = cluster[close]
    left = np.flatnonzero(labels < 0)
    exemplars = list(exemplars)
    if left.size:
        local = np.full(len(labels), -1, dtype=np.int64)
        local[left] = np.arange(left.size)
        inside = (local[rows] >= 0) & (local[cols] >= 0)
        sub = clusterer.cluster_graph(
            left.size, local[rows[inside]], local[cols[inside]], values[inside], typical
        )
        base = len(exemplars)
        labels[left] = base + sub.labels
        exemplars.extend(left[sub.exemplars].tolist())
    return Clustering(labels, np.asarray(exemplars, dtype=np.int64))
