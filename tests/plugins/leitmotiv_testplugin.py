"""A test-only plugin: a clusterer that leaves every photo in a cluster of its own."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv.hookspecs import hookimpl

# The stable path third-party plugins import the interfaces from.
from leitmotiv.implementation import Clusterer, Clustering


@dataclass(frozen=True)
class Alone(Clusterer):
    """Every item is its own cluster and its own exemplar."""

    name: ClassVar[str] = "alone"

    def cluster(self, distances: np.ndarray) -> Clustering:
        n = len(distances)
        return Clustering(np.arange(n), np.arange(n))


@hookimpl
def leitmotiv_clusterers():
    return [Alone]
