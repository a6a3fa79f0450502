"""Helpers shared by several test modules (import with ``from helpers import ...``)."""

from __future__ import annotations

import numpy as np
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from leitmotiv.mixture import Mixture


def random_mixture(rng, k, d, scale=1.0, ridge=0.05):
    """A random ``k``-component mixture in ``d`` dimensions, well conditioned by ``ridge``."""
    a = rng.standard_normal((k, d, d)) * 0.5
    covs = a @ a.transpose(0, 2, 1) + ridge * np.eye(d)
    w = rng.random(k) + 0.1
    return Mixture(w / w.sum(), scale * rng.standard_normal((k, d)), covs)


def scipy_log_pdf(m: Mixture, X: np.ndarray) -> np.ndarray:
    """``ln p(x)`` of every row of ``X``, computed directly with SciPy."""
    terms = [
        np.log(m.weights[k]) + multivariate_normal(m.means[k], m.covariances[k]).logpdf(X)
        for k in range(m.n_components)
    ]
    return logsumexp(np.reshape(terms, (m.n_components, -1)), axis=0)
