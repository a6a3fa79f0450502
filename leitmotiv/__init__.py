"""leitmotiv: find the recurring motifs in a photo collection.

The public Python API::

    from leitmotiv import fit_mixture, js_divergence, js_matrix
    mixture = fit_mixture(X, max_components=50, seed=0)     # (n, d) samples -> Mixture
    js_divergence(p, q, n_samples=1000, seed=0)             # nats, in [0, ln 2]

Names are imported on first use, so ``import leitmotiv`` (and the command line's
``--help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "fit_mixture": "leitmotiv.vbgmm",
    "Mixture": "leitmotiv.mixture",
    "average_mixture": "leitmotiv.mixture",
    "FeatureTransform": "leitmotiv.transform",
    "js_divergence": "leitmotiv.divergence",
    "js_divergence_with_error": "leitmotiv.divergence",
    "js_matrix": "leitmotiv.divergence",
    "js_cross": "leitmotiv.divergence",
    "js_one_to_many": "leitmotiv.divergence",
    "sample_features": "leitmotiv.features",
    "decode": "leitmotiv.imaging",
    "Library": "leitmotiv.library",
    "find_motifs": "leitmotiv.motifs",
    "hookimpl": "leitmotiv.hookspecs",
}

__all__ = [
    "FeatureTransform",
    "Library",
    "Mixture",
    "__version__",
    "average_mixture",
    "decode",
    "find_motifs",
    "fit_mixture",
    "hookimpl",
    "js_cross",
    "js_divergence",
    "js_divergence_with_error",
    "js_matrix",
    "js_one_to_many",
    "sample_features",
]

if TYPE_CHECKING:
    from leitmotiv.divergence import (
        js_cross,
        js_divergence,
        js_divergence_with_error,
        js_matrix,
        js_one_to_many,
    )
    from leitmotiv.features import sample_features
    from leitmotiv.hookspecs import hookimpl
    from leitmotiv.imaging import decode
    from leitmotiv.library import Library
    from leitmotiv.mixture import Mixture, average_mixture
    from leitmotiv.motifs import find_motifs
    from leitmotiv.transform import FeatureTransform
    from leitmotiv.vbgmm import fit_mixture


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'leitmotiv' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
