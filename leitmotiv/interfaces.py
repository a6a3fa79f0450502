"""The three kinds of pluggable implementation: featurizer, divergence, clusterer.

A plugin contributes implementations through the hooks in :mod:`leitmotiv.hookspecs`.
Each implementation is a frozen dataclass: its fields are its typed parameters, its
class attributes ``name`` and ``kind`` identify it.  The store records
:meth:`Implementation.key` next to every model, distance and clustering, so that a
change of implementation or parameter invalidates exactly the results it produced.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from leitmotiv.mixture import Mixture

KINDS = ("featurizer", "divergence", "clusterer")


@dataclass(frozen=True)
class Implementation:
    """Base of every pluggable implementation.

    Subclasses set the class attributes ``name`` (unique within its kind) and
    ``kind`` (one of :data:`KINDS`) and declare their parameters as dataclass fields
    with defaults, so ``Cls()`` is the default configuration and
    ``Cls.from_params(d)`` applies overrides from a config file.
    """

    name: ClassVar[str]
    kind: ClassVar[str]

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a plain, JSON-serializable dict."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable string identifying this implementation and its parameters."""
        return f"{self.kind}:{self.name}:" + json.dumps(self.params, sort_keys=True)

    @classmethod
    def from_params(cls, params: dict[str, Any] | None = None) -> Implementation:
        """Build an instance, refusing unknown parameter names with a clear message."""
        params = dict(params or {})
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(
                f"unknown parameter(s) {', '.join(unknown)} for {cls.kind} {cls.name!r}; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )
        return cls(**params)


@dataclass(frozen=True)
class Featurizer(Implementation):
    """Turns a decoded photo into its generative model."""

    kind: ClassVar[str] = "featurizer"

    def model(self, image: np.ndarray, seed: int = 0) -> Mixture:
        """Fit the model of one photo.

        Parameters
        ----------
        image : ndarray, shape (height, width, 3), uint8
            The upright RGB photo.
        seed : int
            Seed of every random choice, so a model is reproducible.

        Returns
        -------
        Mixture
            The photo's mixture, carrying the transform back to pixel space.
        """
        raise NotImplementedError


@dataclass(frozen=True)
class Divergence(Implementation):
    """A distance between two photo models (small means alike)."""

    kind: ClassVar[str] = "divergence"

    def cross(
        self, rows: Sequence[Mixture], cols: Sequence[Mixture], n_jobs: int = -1
    ) -> np.ndarray:
        """Distances between every row model and every column model.

        Returns
        -------
        ndarray, shape (len(rows), len(cols)), float64
        """
        raise NotImplementedError

    def warm(self, mixtures: Sequence[Mixture]) -> None:
        """Prepare whatever per-model state :meth:`cross` caches, for many models at once.

        Optional: callers about to compare many models call it first; the default does
        nothing.  It must not change any result.
        """

    def dump_prepared(self, mixtures: Sequence[Mixture]) -> list[bytes | None]:
        """The per-model state :meth:`cross` prepared for each model, as bytes to keep.

        Optional: a large library keeps it with the photo and hands it back through
        :meth:`load_prepared` in a later run instead of preparing the model again.
        None where nothing is prepared or kept (the default: everywhere).
        """
        return [None] * len(mixtures)

    def load_prepared(self, mixtures: Sequence[Mixture], blobs: Sequence[bytes]) -> list[bool]:
        """Take back the state :meth:`dump_prepared` gave for equal models and equal
        parameters; False where a blob does not fit (that model is then prepared as
        usual).  It must not change any result.
        """
        return [False] * len(mixtures)

    def near_duplicate_threshold(self) -> float | None:
        """Distance below which two photos are near-duplicates (mild edits of one shot).

        None when this divergence, with these parameters, has not been calibrated.
        """
        return None

    def pairwise(self, mixtures: Sequence[Mixture], n_jobs: int = -1) -> np.ndarray:
        """Symmetric distance matrix with a zero diagonal, shape (N, N)."""
        d = self.cross(mixtures, mixtures, n_jobs=n_jobs)
        d = 0.5 * (d + d.T)
        np.fill_diagonal(d, 0.0)
        return d


@dataclass(frozen=True)
class Clustering:
    """Result of a clusterer.

    Attributes
    ----------
    labels : ndarray, shape (N,), int
        Cluster index of each item, 0..C-1.
    exemplars : ndarray, shape (C,), int
        Index of the item that represents each cluster.
    """

    labels: np.ndarray
    exemplars: np.ndarray


@dataclass(frozen=True)
class Clusterer(Implementation):
    """Groups photos from their distances."""

    kind: ClassVar[str] = "clusterer"

    def cluster(self, distances: np.ndarray) -> Clustering:
        """Cluster from a symmetric (N, N) distance matrix with a zero diagonal."""
        raise NotImplementedError

    def cluster_graph(
        self,
        n: int,
        rows: np.ndarray,
        cols: np.ndarray,
        values: np.ndarray,
        typical: float | None = None,
    ) -> Clustering:
        """Cluster from the distances on the edges of a sparse graph (large libraries).

        Parameters
        ----------
        n : int
            Number of items; an item without edges forms its own cluster.
        rows, cols, values : ndarray, shape (E,)
            Edges and their distances, each undirected edge once or from both ends.
        typical : float, optional
            The median distance between random pairs of items, for clusterers whose
            scale is set by all pairs (the graph holds only near ones).

        Raises
        ------
        NotImplementedError
            For clusterers that need every pairwise distance (the default here).
        """
        raise NotImplementedError(self.dense_only_reason())

    @property
    def clusters_graphs(self) -> bool:
        """Whether :meth:`cluster_graph` is implemented (a sparse index needs it)."""
        return type(self).cluster_graph is not Clusterer.cluster_graph

    def dense_only_reason(self) -> str:
        """Why this clusterer cannot serve a sparse index, and what to do instead."""
        return (
            f"the clusterer {self.name!r} needs every pairwise distance; index densely "
            "(--index dense) or choose a clusterer that works on a sparse graph, "
            "e.g. --clusterer affinity-sparse"
        )
