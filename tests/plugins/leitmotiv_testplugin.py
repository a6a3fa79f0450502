"""A test-only plugin: a clusterer that leaves every photo in a cluster of its own, and
a divergence without a sparse path."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.hookspecs import hookimpl

# The stable path third-party plugins import the interfaces from.
from leitmotiv.implementation import Clusterer, Clustering, Divergence


@dataclass(frozen=True)
class Alone(Clusterer):
    """Every item is its own cluster and its own exemplar."""

    name: ClassVar[str] = "alone"

    def cluster(self, distances: np.ndarray) -> Clustering:
        n = len(distances)
        return Clustering(np.arange(n), np.arange(n))


@dataclass(frozen=True)
class MeanGap(Divergence):
    """Distance between the models' mean positions; declines to serve a sparse index."""

    name: ClassVar[str] = "mean-gap"

    def cross(self, rows, cols, n_jobs: int = -1) -> np.ndarray:
        a = np.array([m.weights @ m.means for m in rows]).reshape(len(rows), -1)
        b = np.array([m.weights @ m.means for m in cols]).reshape(len(cols), -1)
        return np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1))

    def sparse_unavailable_reason(self) -> str | None:
        return "the divergence 'mean-gap' has no sparse path; index densely (--index dense)"


@hookimpl
def leitmotiv_clusterers():
    return [Alone]


@hookimpl
def leitmotiv_divergences():
    return [MeanGap]
