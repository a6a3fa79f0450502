"""The three kinds of pluggable implementation: featurizer, divergence, clusterer.

A plugin contributes implementations through the hooks in :mod:`leitmotiv.hookspecs`.
Each implementation is a frozen dataclass: its fields are its typed parameters, its
class attributes ``name`` and ``kind`` identify it.  The store records
:meth:`Implementation.key` next to every model, distance and clustering, so that a
change of implementation or parameter invalidates exactly the results it produced.

Parameters are declared once, with their type (the field's annotation), default and
range (:func:`leitmotiv.parameters.parameter`), and every instance is checked against
that declaration when it is made (:meth:`Implementation.__post_init__`), whether from
a config file or in Python: an implementation checks nothing by hand.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from leitmotiv.parameters import parameter_specs

if TYPE_CHECKING:
    from leitmotiv.mixture import Mixture

KINDS = ("featurizer", "divergence", "clusterer")


class SparseIndexUnavailable(ValueError):
    """The chosen clusterer or divergence cannot serve a sparse index (a usage error:
    the message says which plugin and what to choose instead)."""


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
    #: Version of the implementation's code.  Bump it whenever a change alters the
    #: results for unchanged parameters: the version is part of :meth:`key`, so what
    #: an older version stored is never mixed with new results but computed again.
    version: ClassVar[int] = 1

    def __post_init__(self) -> None:
        """Check every parameter against its declaration (see
        :func:`leitmotiv.parameters.parameter`)."""
        owner = f"{self.kind} {self.name!r}"
        for spec in parameter_specs(type(self)):
            object.__setattr__(self, spec.name, spec.check(owner, getattr(self, spec.name)))

    @property
    def params(self) -> dict[str, Any]:
        """The parameters as a plain, JSON-serializable dict."""
        return dataclasses.asdict(self)

    def key(self) -> str:
        """A stable string identifying this implementation, its version and parameters.

        ``kind:name:{params}`` for version 1 (the form keys had before versions were
        recorded, so results stored then stay valid), ``kind:name@N:{params}`` from
        version 2 on.
        """
        tag = self.name if self.version == 1 else f"{self.name}@{self.version}"
        return f"{self.kind}:{tag}:" + json.dumps(self.params, sort_keys=True)

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
    """A distance between two photo models (small means alike).

    A divergence implements :meth:`cross`.  Libraries above a few thousand photos
    (the sparse index, :mod:`leitmotiv.sparse_index`) compare each photo exactly with
    a few candidates only, and ask the divergence for its *fast path*, three methods
    with generic defaults that work for models of any dimension:

    - :meth:`embedding`: a vector per model whose Euclidean nearest neighbours are
      likely nearest neighbours under the divergence (default: the models'
      characteristic function at fixed random frequencies,
      :func:`leitmotiv.embedding.fourier_embedding`);
    - :meth:`estimator`: a cheaper divergence that ranks like this one, which re-ranks
      the embedding's neighbours (default: this divergence with an eighth of its
      ``n_samples`` if it has an integer parameter of that name, else itself);
    - :meth:`sparse_unavailable_reason`: None, or why this divergence cannot serve a
      sparse index (checked before any work; default None);
    - :meth:`embedding_maps` and :meth:`embedding_gaps`, optional refinements of the
      embedding's neighbours (default None: plain Euclidean neighbours).

    A divergence that knows its models better overrides the first two, as the
    built-in ``js`` does (its embedding has a palette part, like its distance).
    """

    kind: ClassVar[str] = "divergence"

    def embedding(self, mixtures: Sequence[Mixture]) -> np.ndarray:
        """Vectors whose Euclidean neighbours approximate this divergence's neighbours.

        A model's vector must depend on that model and this divergence's parameters
        only (not on the other models of the call), so that a photo added later is
        embedded as if it had been there from the start.

        Parameters
        ----------
        mixtures : sequence of Mixture
            Models of one dimension.

        Returns
        -------
        ndarray, shape (N, D), float32
            ``D`` is fixed for a given divergence and model dimension.

        Raises
        ------
        ValueError
            If the models cannot be embedded together (e.g. different dimensions).
        """
        from leitmotiv.embedding import fourier_embedding

        return fourier_embedding(mixtures)

    def embedding_maps(self, width: int) -> list[np.ndarray] | None:
        """Column permutations of an :meth:`embedding` of ``width`` floats, besides the
        identity, under which this divergence also compares two models (e.g. frame
        maps: the embedding of a moved model is a permutation of the model's), or None:
        plain Euclidean neighbours.  The candidate search then takes, for each pair, the
        least of ``|e_i - e_j|`` and the ``|e_i[perm] - e_j|`` (the permutations closed
        under inverses, so that this is symmetric)."""
        return None

    def embedding_gaps(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray | None:
        """Finer distances from embeddings to their candidates' embeddings, or None.

        When a divergence defines them, the candidate search keeps
        :data:`leitmotiv.candidates.SHORTLIST` times as many Euclidean neighbours
        (under :meth:`embedding_maps`) as it needs and orders those by these gaps.  For
        a distance that adds terms the Euclidean distance squares and sums, the sum of
        the parts' own distances ranks like it where a sum of squares does not.

        Parameters
        ----------
        queries : ndarray, shape (B, D), float32
            Embeddings from :meth:`embedding`.
        candidates : ndarray, shape (B, C, D), float32
            Each query's candidates' embeddings.

        Returns
        -------
        ndarray, shape (B, C), or None
            None (the default): the Euclidean order under the maps is kept.
        """
        return None

    def estimator(self) -> Divergence:
        """A cheaper divergence that ranks like this one: re-ranks embedding neighbours.

        Its :meth:`cross` gives the estimates, and its :meth:`warm`,
        :meth:`dump_prepared` and :meth:`load_prepared` let a library keep what the
        estimate prepares per model.  The default takes an integer parameter named
        ``n_samples`` to be a number of Monte Carlo samples and uses an eighth of it
        (at least 16; itself if the parameters are refused); without one, the
        divergence is its own estimator.  Override it when ``n_samples`` means
        something else or a better cheap estimate exists.
        """
        n = self.params.get("n_samples")
        if isinstance(n, bool) or not isinstance(n, int) or n <= 16:
            return self
        try:
            return dataclasses.replace(self, n_samples=max(16, n // 8))
        except ValueError:
            return self

    def sparse_unavailable_reason(self) -> str | None:
        """Why this divergence cannot serve a sparse index, or None if it can.

        A library refuses a sparse build with this message before any work.
        """
        return None

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

    def unrelated_threshold(self) -> float | None:
        """Distance from which two photos are unrelated (not the same scene).

        None when this divergence, with these parameters, has not been calibrated.
        """
        return None

    def relation(self, distance: float) -> str:
        """What a distance says about two photos, by the calibrated thresholds.

        Returns
        -------
        str
            ``"near-duplicate"`` below :meth:`near_duplicate_threshold`;
            ``"unrelated"`` from :meth:`unrelated_threshold` on; ``"similar"`` (the
            same scene, not a copy) in between, and wherever a threshold is not
            calibrated.
        """
        near, unrelated = self.near_duplicate_threshold(), self.unrelated_threshold()
        if near is not None and distance < near:
            return "near-duplicate"
        if unrelated is not None and distance >= unrelated:
            return "unrelated"
        return "similar"

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
