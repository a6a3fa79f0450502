"""Gaussian mixture models of photos."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leitmotiv.transform import FeatureTransform


@dataclass(frozen=True, eq=False)
class Mixture:
    """A Gaussian mixture in model coordinates.

    Attributes
    ----------
    weights : ndarray, shape (K,)
        Mixing weights, positive, summing to one.
    means : ndarray, shape (K, d)
    covariances : ndarray, shape (K, d, d)
        Symmetric positive definite.
    lower_bound : float
        Evidence lower bound per sample of the fit that produced it (nan if none).
    n_iter : int
        Iterations of that fit.
    transform : FeatureTransform or None
        Map from raw photo samples to the model's coordinates, when the mixture
        models a photo.
    """

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    lower_bound: float = float("nan")
    n_iter: int = 0
    transform: FeatureTransform | None = None

    def __post_init__(self) -> None:
        weights = np.ascontiguousarray(self.weights, dtype=np.float64)
        means = np.ascontiguousarray(self.means, dtype=np.float64)
        covariances = np.ascontiguousarray(self.covariances, dtype=np.float64)
        k, d = means.shape
        if weights.shape != (k,) or covariances.shape != (k, d, d):
            raise ValueError(
                f"inconsistent mixture shapes: weights {weights.shape}, means {means.shape}, "
                f"covariances {covariances.shape}"
            )
        object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "means", means)
        object.__setattr__(self, "covariances", covariances)

    @property
    def n_components(self) -> int:
        """Number of components K."""
        return self.weights.size

    @property
    def dim(self) -> int:
        """Dimension d of the modelled space."""
        return self.means.shape[1]
