"""The default clusterer: affinity propagation on similarity = −distance."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.affinity_settings import check_parameters, preference_value
from leitmotiv.interfaces import Clusterer, Clustering
from leitmotiv.sparse_cluster import SparseAffinityPropagation


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

    preference: str | float = "median"
    damping: float = 0.7
    max_iter: int = 1000
    convergence_iter: int = 30

    def __post_init__(self) -> None:
        check_parameters(self.damping, self.preference)

    def _preference(self, similarity: np.ndarray) -> float:
        off_diagonal = similarity[~np.eye(len(similarity), dtype=bool)]
        return preference_value(self.preference, off_diagonal)

    def cluster(self, distances: np.ndarray) -> Clustering:
        """Cluster items from their symmetric distance matrix, shape (N, N).

        Deterministic: no random tie-breaking noise is added beyond scikit-learn's
        fixed-seed jitter.  One item forms one cluster; if the message passing does
        not converge, every item becomes its own cluster rather than failing.
        """
        from sklearn.cluster import AffinityPropagation as SkAffinityPropagation
        from sklearn.exceptions import ConvergenceWarning

        distances = np.asarray(distances, dtype=np.float64)
        n = len(distances)
        if distances.shape != (n, n):
            raise ValueError(f"distances must be square, got shape {distances.shape}")
        if n == 0:
            return Clustering(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
        if n == 1:
            return Clustering(np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64))
        similarity = -distances
        model = SkAffinityPropagation(
            affinity="precomputed",
            preference=self._preference(similarity),
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
            return Clustering(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64))
        return Clustering(labels.astype(np.int64), exemplars)

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
