"""What the dense and the sparse affinity propagation share: the check of their
parameters and the rule that turns the ``preference`` setting into a self-similarity.

Both :class:`leitmotiv.cluster.AffinityPropagation` and
:class:`leitmotiv.sparse_cluster.SparseAffinityPropagation` import it; neither imports
the other's module for it, so the dense clusterer can delegate its sparse graphs to the
sparse one without an import cycle.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_parameters", "preference_value"]


def check_parameters(damping: float, preference: str | float) -> None:
    """Refuse a damping outside [0.5, 1) or an unknown preference rule."""
    if not 0.5 <= damping < 1.0:
        raise ValueError(f"damping must be in [0.5, 1), got {damping}")
    if isinstance(preference, str) and preference not in ("median", "min"):
        raise ValueError(f"preference must be 'median', 'min' or a number, got {preference!r}")


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
