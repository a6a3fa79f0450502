"""The default clusterer: affinity propagation on similarity = −distance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.affinity_settings import PREFERENCES, preference_value
from leitmotiv.interfaces import Clusterer, Clustering
from leitmotiv.parameters import parameter
from leitmotiv.sparse_cluster import SparseAffinityPropagation

#: Distances up to this are identical photos (the same model twice: its divergence is
#: zero up to rounding, which the square root of the distance lifts to about 1e-8).
IDENTICAL_DISTANCE = 1e-6

#: A library where even each photo's nearest neighbour lies within this fraction of
#: the median distance is structureless: no pair is more alike than the typical pair
#: (measured on the shared sets, unrelated photos spread about 4 % around their
#: median; mild edits sit 25 % or more below it).
UNRELATED_MARGIN = 0.05


def identical_groups(distances: np.ndarray) -> np.ndarray:
    """For each item, the first item identical to it (itself if none comes earlier).

    Parameters
    ----------
    distances : ndarray, shape (N, N)
        Symmetric, zero diagonal.

    Returns
    -------
    ndarray, shape (N,), int64
        Identical means within :data:`IDENTICAL_DISTANCE`; an item's representative
        is the lowest index among the items identical to it.
    """
    n = len(distances)
    representative = np.arange(n, dtype=np.int64)
    close = distances <= IDENTICAL_DISTANCE
    for i in range(n):
        if representative[i] == i:
            later = np.flatnonzero(close[i, i + 1 :]) + i + 1
            later = later[representative[later] == later]
            representative[later] = i
    return representative


def structureless(distances: np.ndarray) -> bool:
    """Whether no item is nearer to another than the typical pair of items is.

    True when every item's nearest neighbour lies within :data:`UNRELATED_MARGIN` of
    the median distance: two photos of different scenes, a handful of unrelated ones,
    a library of equally distant photos.  Message passing would group them by noise
    (or, on equal similarities, by an arbitrary tie-break); they are better left apart.
    """
    n = len(distances)
    if n < 2:
        return False
    off = ~np.eye(n, dtype=bool)
    nearest = np.where(off, distances, np.inf).min(axis=1)
    return bool(np.all(nearest >= (1.0 - UNRELATED_MARGIN) * np.median(distances[off])))


def near_duplicates_only(distances: np.ndarray, near_duplicate: float | None) -> Clustering | None:
    """One cluster for a :func:`structureless` library whose photos are all
    near-duplicates of each other by the divergence's calibration; None otherwise.

    Alone, a clusterer cannot tell two mild edits of one photo from two unrelated
    photos (each pair is the library's median); the divergence's calibrated
    near-duplicate distance (:meth:`leitmotiv.interfaces.Divergence.near_duplicate_threshold`)
    can.  Libraries with any structure are left to the clusterer.
    """
    n = len(distances)
    if near_duplicate is None or n < 2 or not structureless(distances):
        return None
    if distances[~np.eye(n, dtype=bool)].max() >= near_duplicate:
        return None
    return Clustering(np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64))


@dataclass(frozen=True)
class AffinityPropagation(Clusterer):
    """Affinity propagation (Frey and Dueck, 2007) on a precomputed distance matrix.

    Parameters
    ----------
    preference : str or float
        Self-similarity of every item: ``"median"`` (the median similarity, the usual
        choice, giving a moderate number of clusters), ``"min"`` (fewer clusters) or a
        number. Larger means more clusters.
    damping : float
        Damping factor in [0.5, 1).
    max_iter, convergence_iter : int
        Iteration limits of the message passing.
    """

    name: ClassVar[str] = "affinity"

    preference: str | float = parameter("median", choices=PREFERENCES)
    damping: float = parameter(0.7, low=0.5, high=1.0, high_open=True)
    max_iter: int = parameter(1000, low=1)
    convergence_iter: int = parameter(30, low=1)

    def _preference(self, similarity: np.ndarray) -> float:
        off_diagonal = similarity[~np.eye(len(similarity), dtype=bool)]
        return preference_value(self.preference, off_diagonal)

    def cluster(self, distances: np.ndarray) -> Clustering:
        """Cluster items from their symmetric distance matrix, shape (N, N).

        Deterministic: no random tie-breaking noise is added beyond scikit-learn's
        fixed-seed jitter.  Degenerate libraries are decided here, not by the message
        passing: identical items (see :func:`identical_groups`) always share a
        cluster and are clustered as one item; when the distinct items are
        :func:`structureless` (e.g. two unrelated photos), each is its own cluster;
        otherwise a member no nearer to its exemplar than the preference (the median
        distance by default) stands alone.  If the message passing does not
        converge, every item becomes its own cluster rather than failing.
        """
        distances = np.asarray(distances, dtype=np.float64)
        n = len(distances)
        if distances.shape != (n, n):
            raise ValueError(f"distances must be square, got shape {distances.shape}")
        representative = identical_groups(distances)
        distinct = np.flatnonzero(representative == np.arange(n))
        inner = distances[np.ix_(distinct, distinct)]
        if len(distinct) <= 1 or structureless(inner):
            labels = np.arange(len(distinct), dtype=np.int64)
            exemplars = labels.copy()
        else:
            labels, exemplars = self._propagate(inner)
        # Each identical copy takes its representative's label.
        position = np.searchsorted(distinct, representative)
        return Clustering(labels[position], distinct[exemplars])

    def _propagate(self, distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(labels, exemplars) of scikit-learn's affinity propagation on distinct items."""
        from sklearn.cluster import AffinityPropagation as SkAffinityPropagation
        from sklearn.exceptions import ConvergenceWarning

        n = len(distances)
        similarity = -distances
        preference = self._preference(similarity)
        model = SkAffinityPropagation(
            affinity="precomputed",
            preference=preference,
            damping=self.damping,
            max_iter=self.max_iter,
            convergence_iter=self.convergence_iter,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            labels = model.fit_predict(similarity)
        exemplars = np.asarray(model.cluster_centers_indices_, dtype=np.int64)
        if exemplars.size == 0 or np.any(labels < 0):
            # Not converged: the honest fallback is one cluster per photo.
            return np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64)
        labels = labels.astype(np.int64)
        # A member no nearer to its exemplar than the preference gains nothing by
        # joining (a tie the message passing broke by its jitter, as for a photo
        # unrelated to a small library's only pair): it stands alone.  None of the
        # shared sets' clusters holds such a member.
        alone = np.flatnonzero(similarity[np.arange(n), exemplars[labels]] <= preference)
        alone = alone[~np.isin(alone, exemplars)]
        labels[alone] = len(exemplars) + np.arange(len(alone))
        return labels, np.concatenate([exemplars, alone])

    def cluster_graph(
        self,
        n: int,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
        typical: float | None = None,
    ) -> Clustering:
        """Cluster from a sparse distance graph: the same message passing on its edges.

        Delegates to :class:`leitmotiv.sparse_cluster.SparseAffinityPropagation` with
        this clusterer's settings, so a library that outgrows the dense index keeps
        its clusterer.  With ``typical`` (the median distance of random pairs) the
        ``"median"`` preference keeps the dense scale.
        """
        sparse = SparseAffinityPropagation(
            preference=self.preference,
            damping=self.damping,
            max_iter=self.max_iter,
            convergence_iter=self.convergence_iter,
        )
        return sparse.cluster_graph(n, rows, cols, values, typical)
