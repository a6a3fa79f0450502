"""The stable import path of the plugin interfaces, for third-party plugins.

The interfaces live in :mod:`leitmotiv.interfaces`; plugins written against
``from leitmotiv.implementation import Divergence`` (the name before the rename) keep
working through this module, which holds nothing else and will stay.
"""

from leitmotiv.interfaces import (
    KINDS,
    Clusterer,
    Clustering,
    Divergence,
    Featurizer,
    Implementation,
    SparseIndexUnavailable,
)

__all__ = [
    "KINDS",
    "Clusterer",
    "Clustering",
    "Divergence",
    "Featurizer",
    "Implementation",
    "SparseIndexUnavailable",
]
