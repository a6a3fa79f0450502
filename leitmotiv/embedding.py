"""Characteristic-function embeddings of Gaussian mixtures, for nearest-neighbour search.

A large library compares each photo exactly with a few candidates only, found as
nearest neighbours among fixed-length vectors, one per model.  This module makes such
vectors for Gaussian mixtures of any dimension: the real and imaginary parts of the
mixture's characteristic function at a fixed set of frequencies (a random-Fourier-
feature *kernel mean embedding*)::

    e(p)_j = sum_k w_k exp(-1/2 omega_j' Sigma_k omega_j) [cos(omega_j' mu_k), sin(omega_j' mu_k)]

scaled by ``1 / sqrt(M)``, with ``omega_j ~ N(0, I / h^2)``.  Then ``|e(p) - e(q)|^2``
estimates the maximum mean discrepancy of ``p`` and ``q`` under a Gaussian kernel of
width ``h``: a metric between distributions, zero only when they are equal, sensitive,
like the Jensen–Shannon divergence, to where the mass of a model lies.  For a Gaussian
mixture the expectation is closed form, so the embedding is exact for the chosen
frequencies (nothing is sampled), and the frequencies depend only on their parameters,
so a model added later is embedded exactly as if it had been there from the start.

:func:`fourier_embedding` is what :meth:`leitmotiv.implementation.Divergence.embedding`
gives by default, for any model dimension ``d``: :data:`DEFAULT_FREQUENCIES`
frequencies drawn for ``d`` (seeded by ``d``) with width ``h = DEFAULT_WIDTH *
sqrt(d / 5)``.  The width assumes model coordinates of order one, as leitmotiv's
featurizers give (positions scaled by the long side, colour by a fixed scale); it grows
with ``sqrt(d)`` so that ``omega' Sigma omega``, hence the damping of a component of a
given spread, does not depend on the dimension.  A divergence that knows its models
better (the default one adds a palette term) supplies its own embedding.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from leitmotiv.mixture import Mixture

__all__ = [
    "DEFAULT_FREQUENCIES",
    "DEFAULT_WIDTH",
    "characteristic",
    "fourier_embedding",
    "gaussian_frequencies",
]

#: Frequencies of the default embedding (each gives a cosine and a sine: 384 floats).
DEFAULT_FREQUENCIES = 192

#: Kernel width of the default embedding for 5-D models, in model units; the default
#: js divergence's spatial part uses the same (chosen on the shared photos, see
#: :mod:`leitmotiv.candidates`).
DEFAULT_WIDTH = 0.15

#: Mixtures evaluated together (bounds the (components, frequencies) temporaries).
_BLOCK = 1024


def gaussian_frequencies(n: int, dim: int, width: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` frequencies ``omega ~ N(0, I / width^2)`` in ``dim`` dimensions, shape (n, dim)."""
    if n < 1 or dim < 1 or not width > 0:
        raise ValueError(f"need n >= 1, dim >= 1 and width > 0, got {n}, {dim}, {width}")
    return rng.standard_normal((int(n), int(dim))) / float(width)


def characteristic(mixtures: Sequence[Mixture], omega: np.ndarray) -> np.ndarray:
    """``[Re, Im]`` of each mixture's characteristic function at ``omega``, / sqrt(M).

    Parameters
    ----------
    mixtures : sequence of Mixture
        All of dimension ``omega.shape[1]``.
    omega : ndarray, shape (M, d)
        The frequencies.

    Returns
    -------
    ndarray, shape (len(mixtures), 2 M), float64

    Raises
    ------
    ValueError
        If a mixture's dimension is not ``d``.
    """
    mixtures = list(mixtures)
    m, d = omega.shape
    out = np.empty((len(mixtures), 2 * m))
    for index, x in enumerate(mixtures):
        if x.dim != d:
            raise ValueError(
                f"mixture {index} has dimension {x.dim}, the embedding's frequencies {d}"
            )
    outer = (omega[:, :, None] * omega[:, None, :]).reshape(m, d * d)
    for start in range(0, len(mixtures), _BLOCK):
        chunk = mixtures[start : start + _BLOCK]
        weights = np.concatenate([x.weights / x.weights.sum() for x in chunk])
        means = np.concatenate([x.means for x in chunk])
        covs = np.concatenate([x.covariances.reshape(-1, d * d) for x in chunk])
        starts = np.cumsum([0] + [x.n_components for x in chunk[:-1]])
        # omega' Sigma_k omega for all components and frequencies as one matrix product.
        damp = weights[:, None] * np.exp(-0.5 * (covs @ outer.T))
        phase = means @ omega.T
        rows = slice(start, start + len(chunk))
        out[rows, :m] = np.add.reduceat(damp * np.cos(phase), starts, axis=0)
        out[rows, m:] = np.add.reduceat(damp * np.sin(phase), starts, axis=0)
    return out / np.sqrt(m)


@functools.cache
def _default_frequencies(dim: int) -> np.ndarray:
    rng = np.random.default_rng(dim)
    omega = gaussian_frequencies(DEFAULT_FREQUENCIES, dim, DEFAULT_WIDTH * np.sqrt(dim / 5), rng)
    omega.flags.writeable = False
    return omega


def fourier_embedding(mixtures: Sequence[Mixture]) -> np.ndarray:
    """The generic embedding of models of one dimension (see the module docstring).

    Parameters
    ----------
    mixtures : sequence of Mixture
        Models of one common dimension ``d``.

    Returns
    -------
    ndarray, shape (N, 2 * DEFAULT_FREQUENCIES), float32

    Raises
    ------
    ValueError
        If the models do not all have the same dimension.
    """
    mixtures = list(mixtures)
    if not mixtures:
        return np.zeros((0, 2 * DEFAULT_FREQUENCIES), dtype=np.float32)
    dims = sorted({m.dim for m in mixtures})
    if len(dims) > 1:
        raise ValueError(f"models of different dimensions {dims} cannot share one embedding")
    return characteristic(mixtures, _default_frequencies(dims[0])).astype(np.float32)
