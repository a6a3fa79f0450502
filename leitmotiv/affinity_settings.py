"""What the dense and the sparse affinity propagation share: the preference rules their
``preference`` parameter accepts (declared with each parameter, see
:mod:`leitmotiv.parameters`) and the rule that turns the setting into a
self-similarity.

Both :class:`leitmotiv.cluster.AffinityPropagation` and
:class:`leitmotiv.sparse_cluster.SparseAffinityPropagation` import it; neither imports
the other's module for it, so the dense clusterer can delegate its sparse graphs to the
sparse one without an import cycle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["PREFERENCES", "preference_value"]

#: The preference rules besides a number: the median or the least similarity.
PREFERENCES = ("median", "min")


def preference_value(preference: str | float, similarities: np.ndarray) -> float:
    """The self-similarity for a preference setting.

    Parameters
    ----------
    preference : "median", "min" or float
    similarities : ndarray, 1-D
        The similarities between distinct items the rule is relative to.
    """
    if isinstance(preference, str) and similarities.size == 0:
        return 0.0
    if preference == "median":
        return float(np.median(similarities))
    if preference == "min":
        return float(np.min(similarities))
    return float(preference)
