"""HDBSCAN clustering of a photo library, as a leitmotiv plugin.

HDBSCAN (Campello, Moulavi and Sander, 2013) builds the hierarchy of density-connected
groups from the distance matrix and keeps the most persistent ones.  Compared with the
built-in affinity propagation it suits large libraries: it needs no preference to tune
the number of clusters, finds clusters of different sizes and densities, costs one
minimum spanning tree instead of iterated N x N message passing, and leaves outliers
alone instead of forcing them into a group.

leitmotiv requires every photo to belong to one cluster, so each photo HDBSCAN calls
noise becomes a cluster of its own.  The exemplar of a cluster is its medoid: the
member with the smallest sum of distances to the other members.

Select it with ``leitmotiv --clusterer hdbscan ...`` or, in the configuration file,
``clusterer = "hdbscan"`` with parameters under ``[params.clusterer.hdbscan]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.hookspecs import hookimpl
from leitmotiv.interfaces import Clusterer, Clustering

__all__ = ["Hdbscan", "leitmotiv_clusterers", "medoids"]
__version__ = "0.1.0"

_METHODS = ("eom", "leaf")


def medoids(distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """The medoid of every cluster: the member with the least total distance to the rest.

    Ties go to the member with the smallest index, so the choice is deterministic.

    Parameters
    ----------
    distances : ndarray, shape (N, N)
        Symmetric distances.
    labels : ndarray, shape (N,), int
        Cluster of each item, 0..C-1, every cluster non-empty.

    Returns
    -------
    ndarray, shape (C,), int64
        Index of each cluster's medoid.
    """
    n_clusters = int(labels.max()) + 1 if labels.size else 0
    out = np.empty(n_clusters, dtype=np.int64)
    for c in range(n_clusters):
        members = np.flatnonzero(labels == c)
        totals = distances[np.ix_(members, members)].sum(axis=1)
        out[c] = members[int(np.argmin(totals))]  # argmin returns the first minimum
    return out


@dataclass(frozen=True)
class Hdbscan(Clusterer):
    """HDBSCAN on the precomputed distance matrix (``sklearn.cluster.HDBSCAN``).

    Parameters
    ----------
    min_cluster_size : int
        Smallest group of photos that counts as a cluster, >= 2.  The default 2 lets a
        pair of near-duplicates form a cluster, which is what a photo library needs.
    min_samples : int or None
        Neighbours that make a photo a core point (larger is more conservative: more
        photos left as singletons).  ``None`` means ``min_cluster_size``.
    cluster_selection_epsilon : float
        Distance below which clusters are not split further, >= 0 (0 keeps HDBSCAN's
        own choice).  In the units of the divergence.  Known problem: scikit-learn's
        HDBSCAN raises for values > 0 with NumPy >= 2.4 (scikit-learn issue #33219);
        :meth:`cluster` then raises a ``RuntimeError`` that says so.
    cluster_selection_method : str
        ``"eom"`` (excess of mass: the most persistent clusters, usually fewer and
        larger) or ``"leaf"`` (the leaves of the cluster tree: many small, homogeneous
        clusters).
    allow_single_cluster : bool
        Whether the whole library may come out as one cluster.  Off by default, as in
        HDBSCAN; a library of a few near-identical photos then comes out as singletons.
    """

    name: ClassVar[str] = "hdbscan"

    min_cluster_size: int = 2
    min_samples: int | None = None
    cluster_selection_epsilon: float = 0.0
    cluster_selection_method: str = "eom"
    allow_single_cluster: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.min_cluster_size, bool) or not isinstance(self.min_cluster_size, int):
            raise ValueError(f"min_cluster_size must be an integer, got {self.min_cluster_size!r}")
        if self.min_cluster_size < 2:
            raise ValueError(f"min_cluster_size must be at least 2, got {self.min_cluster_size}")
        if self.min_samples is not None and (
            isinstance(self.min_samples, bool)
            or not isinstance(self.min_samples, int)
            or self.min_samples < 1
        ):
            raise ValueError(
                f"min_samples must be a positive integer or None, got {self.min_samples!r}"
            )
        epsilon = self.cluster_selection_epsilon
        if isinstance(epsilon, bool) or not isinstance(epsilon, int | float):
            raise ValueError(f"cluster_selection_epsilon must be a number, got {epsilon!r}")
        if not np.isfinite(epsilon) or epsilon < 0:
            raise ValueError(f"cluster_selection_epsilon must be finite and >= 0, got {epsilon}")
        if self.cluster_selection_method not in _METHODS:
            raise ValueError(
                f"cluster_selection_method must be one of {', '.join(_METHODS)}, "
                f"got {self.cluster_selection_method!r}"
            )
        if not isinstance(self.allow_single_cluster, bool):
            raise ValueError(
                f"allow_single_cluster must be true or false, got {self.allow_single_cluster!r}"
            )

    def cluster(self, distances: np.ndarray) -> Clustering:
        """Cluster photos from their symmetric distance matrix.

        Deterministic: HDBSCAN on a precomputed matrix involves no random choice, and
        the cluster numbers are renumbered by their first member, so the same matrix
        always gives the same labels.  Clusters come first (numbered in the order of
        their smallest member index), then one singleton per noise photo in index order.

        Parameters
        ----------
        distances : ndarray, shape (N, N)
            Symmetric, finite, non-negative, zero diagonal.

        Returns
        -------
        Clustering
            Every photo in exactly one cluster; exemplars are the medoids.

        Raises
        ------
        ValueError
            If the matrix is not square, or has negative or non-finite entries.
        RuntimeError
            If ``cluster_selection_epsilon > 0`` meets scikit-learn issue #33219.
        """
        distances = np.array(distances, dtype=np.float64)  # a copy: HDBSCAN may write to it
        n = len(distances)
        if distances.ndim != 2 or distances.shape != (n, n):
            raise ValueError(f"distances must be square, got shape {distances.shape}")
        if not np.all(np.isfinite(distances)):
            raise ValueError("distances must be finite")
        if np.any(distances < 0):
            raise ValueError("distances must be non-negative")
        if n == 0:
            return Clustering(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        # Small rounding asymmetries (e.g. from Monte Carlo divergences) must not make
        # the result depend on which triangle HDBSCAN happens to read.
        distances = 0.5 * (distances + distances.T)
        np.fill_diagonal(distances, 0.0)
        raw = self._hdbscan_labels(distances)
        labels = _relabel(raw)
        return Clustering(labels, medoids(distances, labels))

    def _hdbscan_labels(self, distances: np.ndarray) -> np.ndarray:
        """HDBSCAN's labels, -1 for noise; all noise when there are too few photos."""
        n = len(distances)
        min_samples = self.min_cluster_size if self.min_samples is None else self.min_samples
        # A core point needs min_samples neighbours (itself included) and a cluster
        # min_cluster_size members: with fewer photos than that there is no cluster to
        # find, and scikit-learn refuses such inputs rather than saying so.
        if n < max(2, min_samples, self.min_cluster_size):
            return np.full(n, -1, dtype=np.int64)
        from sklearn.cluster import HDBSCAN

        model = HDBSCAN(
            metric="precomputed",
            min_cluster_size=self.min_cluster_size,
            min_samples=min_samples,
            cluster_selection_epsilon=float(self.cluster_selection_epsilon),
            cluster_selection_method=self.cluster_selection_method,
            allow_single_cluster=self.allow_single_cluster,
            copy=False,  # the matrix is already our own copy
        )
        try:
            model.fit(distances)
        except TypeError as exc:
            # scikit-learn's epsilon search indexes size-1 arrays as scalars, which
            # NumPy >= 2.4 refuses (scikit-learn issue #33219).  Say so instead of
            # passing on a TypeError from inside its Cython tree code.
            if self.cluster_selection_epsilon > 0 and "0-dimensional" in str(exc):
                raise RuntimeError(
                    "scikit-learn's HDBSCAN fails with cluster_selection_epsilon > 0 on "
                    "this NumPy version (scikit-learn issue #33219); use "
                    "cluster_selection_epsilon = 0 until scikit-learn is fixed"
                ) from exc
            raise
        return np.asarray(model.labels_, dtype=np.int64)


def _relabel(raw: np.ndarray) -> np.ndarray:
    """Clusters numbered by their first member, then one new cluster per noise item."""
    labels = np.empty(raw.size, dtype=np.int64)
    mapping: dict[int, int] = {}
    clustered = raw >= 0
    for index in np.flatnonzero(clustered):
        labels[index] = mapping.setdefault(int(raw[index]), len(mapping))
    noise = np.flatnonzero(~clustered)
    labels[noise] = len(mapping) + np.arange(noise.size)
    return labels


@hookimpl
def leitmotiv_clusterers():
    """The ``hdbscan`` clusterer."""
    return [Hdbscan]
