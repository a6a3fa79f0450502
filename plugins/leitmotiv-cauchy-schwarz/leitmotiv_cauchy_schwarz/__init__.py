"""The closed-form Cauchy–Schwarz divergence between Gaussian mixtures, as a leitmotiv plugin.

For densities ``p`` and ``q`` (Kampa, Hasanbelliu and Principe, 2011)::

    D_CS(p, q) = -ln ∫ p q  +  1/2 ln ∫ p²  +  1/2 ln ∫ q²

By the Cauchy–Schwarz inequality ``D_CS >= 0``, with equality exactly when ``p = q``.
For Gaussian mixtures every integral has a closed form, because the product of two
Gaussians integrates to a Gaussian density::

    ∫ N(x | a, A) N(x | b, B) dx = N(a | b, A + B)

so ``∫ p q = sum_ij w_i v_j N(a_i | b_j, A_i + B_j)``.  Nothing is sampled: the result
is deterministic and has no Monte Carlo error, unlike the built-in Jensen–Shannon
estimate.  The cost is one small Cholesky factorization per pair of components.

The divergence is reported as ``D_CS`` itself, in nats (not its square root): it is
symmetric, non-negative, zero for identical mixtures, unchanged when both mixtures go
through the same invertible affine map, and unchanged when a mixture's weights are
rescaled.  It is not a metric (no triangle inequality), and neither is its square root,
so nothing would be gained by reporting the root.  It is unbounded, whereas
Jensen–Shannon stays below ln 2: two photos with nothing in common get a large value
rather than a saturated one.

Select it with ``leitmotiv --divergence cauchy-schwarz ...`` or, in the configuration
file, ``divergence = "cauchy-schwarz"``.  It has no parameters.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from leitmotiv.hookspecs import hookimpl
from leitmotiv.interfaces import Divergence

if TYPE_CHECKING:
    from leitmotiv.mixture import Mixture

__all__ = ["CauchySchwarz", "leitmotiv_divergences", "log_overlap", "log_self_overlap"]
__version__ = "0.1.0"

_LOG_2PI = math.log(2.0 * math.pi)

# At most this many components of row mixtures (and, separately, of column mixtures)
# go into one block, so a block evaluates at most _BLOCK**2 component pairs.  Every
# intermediate is one float64 array of that many entries (128 KiB), and a 5-D block
# keeps about 25 of them alive, which fits a core's cache; larger blocks measured
# slower (memory-bound), smaller ones pay numpy's per-call overhead.
_BLOCK = 128

# Relative floor of a Cholesky pivot.  A sum of two covariances is positive definite in
# exact arithmetic; this only stops rounding from turning a nearly singular one into a
# NaN.
_PIVOT_FLOOR = 1e-12


@dataclass(frozen=True)
class _Packed:
    """The components of several mixtures stacked into flat arrays.

    Components of zero weight are dropped (they contribute nothing to any integral)
    and the weights are normalized per mixture, which changes no divergence, because
    ``D_CS`` is unchanged by rescaling either density, but keeps the logarithms tame.
    """

    log_weights: np.ndarray  # (n,)
    means: np.ndarray  # (n, d)
    covariances: np.ndarray  # (n, d, d)
    sizes: np.ndarray  # (M,) components of each mixture, all >= 1

    @property
    def starts(self) -> np.ndarray:
        """Index of each mixture's first component, shape (M,)."""
        return np.concatenate([[0], np.cumsum(self.sizes)[:-1]]).astype(np.intp)


def _pack(mixtures: Sequence[Mixture]) -> _Packed:
    log_w, means, covs, sizes = [], [], [], []
    for index, m in enumerate(mixtures):
        w = np.asarray(m.weights, dtype=np.float64)
        keep = w > 0
        if not np.all(np.isfinite(w)) or not keep.any():
            raise ValueError(f"mixture {index} has no positive, finite weights")
        w = w[keep]
        log_w.append(np.log(w / w.sum()))
        means.append(np.asarray(m.means, dtype=np.float64)[keep])
        cov = np.asarray(m.covariances, dtype=np.float64)[keep]
        covs.append(0.5 * (cov + cov.transpose(0, 2, 1)))
        sizes.append(int(keep.sum()))
    return _Packed(
        np.concatenate(log_w),
        np.concatenate(means),
        np.concatenate(covs),
        np.asarray(sizes, dtype=np.intp),
    )


def _select(packed: _Packed, first: int, stop: int) -> _Packed:
    """Mixtures ``first..stop-1`` of a packed set."""
    starts = packed.starts
    lo = int(starts[first])
    hi = int(starts[stop - 1] + packed.sizes[stop - 1])
    return _Packed(
        packed.log_weights[lo:hi],
        packed.means[lo:hi],
        packed.covariances[lo:hi],
        packed.sizes[first:stop],
    )


def _log_gauss_products(a: np.ndarray, A: np.ndarray, b: np.ndarray, B: np.ndarray) -> np.ndarray:
    """``ln N(a | b, A + B)`` for broadcast stacks of means and covariances.

    The factorization ``S = A + B = L D L^T`` and the forward substitution
    ``L z = a - b`` are written out entry by entry, each entry an array over all pairs.
    For the small dimensions of photo models (3 to 5) this vectorizes over the pairs,
    where LAPACK would be called once per tiny matrix, and it never materializes the
    stack of ``S`` matrices: each entry of ``S`` is formed by broadcasting when needed.

    Parameters
    ----------
    a, b : ndarray, shape (..., d)
        Means; their leading axes broadcast against each other.
    A, B : ndarray, shape (..., d, d)
        Covariances, with the same leading axes as ``a`` and ``b`` respectively.

    Returns
    -------
    ndarray
        The log-densities, shape of the broadcast leading axes.
    """
    d = a.shape[-1]
    # S = L D L^T with unit lower-triangular L (no square roots): then
    # ln |S| = sum ln D_jj and (a-b)^T S^-1 (a-b) = sum z_j^2 / D_jj with L z = a - b.
    unit: dict[tuple[int, int], np.ndarray] = {}  # L[i, j] for i > j
    scaled: dict[tuple[int, int], np.ndarray] = {}  # L[i, j] * D[j] for i > j
    z: list[np.ndarray] = []
    pivots: list[np.ndarray] = []  # D[j]
    maha = None
    for j in range(d):
        s_jj = A[..., j, j] + B[..., j, j]
        pivot = s_jj.copy()
        for k in range(j):
            pivot -= unit[j, k] * scaled[j, k]
        # The tiny term keeps a zero-variance input finite instead of dividing by 0.
        np.maximum(pivot, _PIVOT_FLOOR * s_jj + np.finfo(np.float64).tiny, out=pivot)
        pivots.append(pivot)
        inv_pivot = 1.0 / pivot
        for i in range(j + 1, d):
            s_ij = A[..., i, j] + B[..., i, j]
            for k in range(j):
                s_ij -= unit[i, k] * scaled[j, k]
            scaled[i, j] = s_ij
            unit[i, j] = s_ij * inv_pivot
        z_j = a[..., j] - b[..., j]
        for k in range(j):
            z_j -= unit[j, k] * z[k]
        z.append(z_j)
        term = z_j * z_j * inv_pivot
        maha = term if maha is None else maha + term
    # One logarithm of the product of the pivots instead of d logarithms: the product
    # stays within float64's range for any sensible covariances, and the rare pair
    # where it does not (extreme scales) falls back to the sum of logarithms.
    det = functools.reduce(np.multiply, pivots)
    with np.errstate(divide="ignore", over="ignore"):
        log_det = np.log(det)
    bad = ~np.isfinite(log_det)
    if bad.any():
        log_det[bad] = sum(np.log(np.broadcast_to(p, bad.shape)[bad]) for p in pivots)
    return -0.5 * d * _LOG_2PI - 0.5 * log_det - 0.5 * maha


def _log_overlap_block(rows: _Packed, cols: _Packed) -> np.ndarray:
    """``ln ∫ p q`` for every row mixture ``p`` and column mixture ``q`` of one block."""
    terms = _log_gauss_products(
        rows.means[:, None, :],
        rows.covariances[:, None, :, :],
        cols.means[None, :, :],
        cols.covariances[None, :, :, :],
    )
    terms += rows.log_weights[:, None] + cols.log_weights[None, :]
    # Log-sum-exp over each (row mixture, column mixture) tile of component pairs,
    # shifted by the tile's maximum so no term underflows to a zero total.
    r0, c0 = rows.starts, cols.starts
    peak = np.maximum.reduceat(np.maximum.reduceat(terms, r0, axis=0), c0, axis=1)
    rr = np.repeat(np.arange(len(r0)), rows.sizes)
    cc = np.repeat(np.arange(len(c0)), cols.sizes)
    terms -= peak[rr][:, cc]
    np.exp(terms, out=terms)
    total = np.add.reduceat(np.add.reduceat(terms, r0, axis=0), c0, axis=1)
    return peak + np.log(total)


def _log_self_block(packed: _Packed) -> np.ndarray:
    """``ln ∫ p²`` for every mixture of one block: only pairs within each mixture."""
    starts, sizes = packed.starts, packed.sizes
    # All (i, j) component pairs of each mixture, mixture after mixture.
    first = np.repeat(starts, sizes**2)
    local = np.arange(int((sizes**2).sum())) - np.repeat(np.cumsum(sizes**2) - sizes**2, sizes**2)
    k = np.repeat(sizes, sizes**2)
    i = first + local // k
    j = first + local % k
    terms = _log_gauss_products(
        packed.means[i], packed.covariances[i], packed.means[j], packed.covariances[j]
    )
    terms += packed.log_weights[i] + packed.log_weights[j]
    seg = np.concatenate([[0], np.cumsum(sizes**2)[:-1]]).astype(np.intp)
    peak = np.maximum.reduceat(terms, seg)
    total = np.add.reduceat(np.exp(terms - np.repeat(peak, sizes**2)), seg)
    return peak + np.log(total)


def _groups(sizes: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Split consecutive mixtures into runs of at most ``budget`` components.

    A mixture larger than the budget gets a run of its own rather than being split.
    """
    runs, first, count = [], 0, 0
    for index, size in enumerate(sizes):
        if count and count + size > budget:
            runs.append((first, index))
            first, count = index, 0
        count += int(size)
    if len(sizes):
        runs.append((first, len(sizes)))
    return runs


def _workers(n_jobs: int) -> int:
    """Threads for ``n_jobs`` in joblib's convention: -1 all cores, -2 all but one."""
    if n_jobs == 0:
        raise ValueError("n_jobs must be a positive number of threads or negative, not 0")
    cores = os.cpu_count() or 1
    return max(1, n_jobs if n_jobs > 0 else cores + 1 + n_jobs)


def _run(tasks: list, n_jobs: int) -> list:
    """Evaluate zero-argument callables, on a thread pool when that can help.

    The numpy operations of a block release the GIL and work on arrays of megabytes, so
    threads do run in parallel without copying the mixtures to other processes.
    """
    workers = min(_workers(n_jobs), len(tasks))
    if workers <= 1:
        return [task() for task in tasks]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda task: task(), tasks))


def _check_dims(mixtures: Sequence[Mixture]) -> int | None:
    dims = {int(np.asarray(m.means).shape[1]) for m in mixtures}
    if len(dims) > 1:
        raise ValueError(f"mixtures of different dimensions cannot be compared: {sorted(dims)}")
    return dims.pop() if dims else None


def log_self_overlap(mixtures: Sequence[Mixture], n_jobs: int = 1) -> np.ndarray:
    """``ln ∫ p(x)² dx`` of each mixture.

    Parameters
    ----------
    mixtures : sequence of Mixture, length M
        All of one dimension.
    n_jobs : int
        Threads: a positive count, or -1 for all cores.

    Returns
    -------
    ndarray, shape (M,)
        In nats, for the mixtures with their weights normalized to sum to one.
    """
    mixtures = list(mixtures)
    _check_dims(mixtures)
    if not mixtures:
        return np.zeros(0)
    packed = _pack(mixtures)
    # Self terms need K² pairs per mixture, so budget them by pairs, not components.
    tasks = [
        (lambda lo=lo, hi=hi: _log_self_block(_select(packed, lo, hi)))
        for lo, hi in _groups(packed.sizes**2, _BLOCK * _BLOCK // 4)
    ]
    return np.concatenate(_run(tasks, n_jobs))


def log_overlap(rows: Sequence[Mixture], cols: Sequence[Mixture], n_jobs: int = 1) -> np.ndarray:
    """``ln ∫ p(x) q(x) dx`` for every row mixture ``p`` and column mixture ``q``.

    Parameters
    ----------
    rows, cols : sequence of Mixture, lengths R and C
        All of one dimension.
    n_jobs : int
        Threads: a positive count, or -1 for all cores.

    Returns
    -------
    ndarray, shape (R, C)
        In nats, for the mixtures with their weights normalized to sum to one.

    Raises
    ------
    ValueError
        If the mixtures differ in dimension or one has no positive weight.
    """
    rows, cols = list(rows), list(cols)
    _check_dims(rows + cols)
    out = np.zeros((len(rows), len(cols)))
    if not rows or not cols:
        return out
    packed_r, packed_c = _pack(rows), _pack(cols)
    groups_r, groups_c = _groups(packed_r.sizes, _BLOCK), _groups(packed_c.sizes, _BLOCK)
    # The overlap is symmetric: for the same mixtures on both sides (pairwise) only the
    # blocks on and above the diagonal are computed, and mirrored.
    same = len(rows) == len(cols) and all(r is c for r, c in zip(rows, cols, strict=True))
    blocks = [
        (r, c)
        for ri, r in enumerate(groups_r)
        for ci, c in enumerate(groups_c)
        if not same or ri <= ci
    ]
    tasks = [
        (lambda r=r, c=c: _log_overlap_block(_select(packed_r, *r), _select(packed_c, *c)))
        for r, c in blocks
    ]
    for ((r0, r1), (c0, c1)), values in zip(blocks, _run(tasks, n_jobs), strict=True):
        out[r0:r1, c0:c1] = values
        if same:
            out[c0:c1, r0:r1] = values.T
    return out


@dataclass(frozen=True)
class CauchySchwarz(Divergence):
    """Closed-form Cauchy–Schwarz divergence between Gaussian mixtures.

    ``D_CS(p, q) = -ln ∫pq + ½ ln ∫p² + ½ ln ∫q²`` in nats, evaluated exactly (see the
    module docstring).  Reported as ``D_CS`` itself, not its square root: symmetric,
    non-negative (rounding below zero is clipped), zero for identical mixtures, and
    invariant under any invertible affine map applied to both mixtures.  Both mixtures
    must live in the same coordinates, as for every leitmotiv divergence.

    It has no parameters: there is no sample size or seed, since nothing is estimated.
    """

    name: ClassVar[str] = "cauchy-schwarz"

    def cross(
        self, rows: Sequence[Mixture], cols: Sequence[Mixture], n_jobs: int = -1
    ) -> np.ndarray:
        """Divergence between every row mixture and every column mixture.

        The self terms ``½ ln ∫p²`` are computed once per distinct mixture object, so
        ``cross(ms, ms)`` costs one pass over the component pairs of each pair of
        mixtures plus one over each mixture's own pairs.

        Parameters
        ----------
        rows, cols : sequence of Mixture, lengths R and C
            All of one dimension, in the same model coordinates.
        n_jobs : int
            Threads: a positive count, -1 for all cores (default), -2 all but one.

        Returns
        -------
        ndarray, shape (R, C), float64
            ``D_CS`` in nats, >= 0.

        Raises
        ------
        ValueError
            If the mixtures differ in dimension or one has no positive weight.
        """
        rows, cols = list(rows), list(cols)
        _check_dims(rows + cols)
        _workers(n_jobs)  # refuse n_jobs=0 even when there is nothing to compute
        if not rows or not cols:
            return np.zeros((len(rows), len(cols)))
        # Distinct mixtures by identity: pairwise() passes the same list twice.
        index: dict[int, int] = {}
        distinct: list[Mixture] = []
        for m in rows + cols:
            if id(m) not in index:
                index[id(m)] = len(distinct)
                distinct.append(m)
        self_terms = log_self_overlap(distinct, n_jobs=n_jobs)
        half_r = 0.5 * self_terms[[index[id(m)] for m in rows]]
        half_c = 0.5 * self_terms[[index[id(m)] for m in cols]]
        d = half_r[:, None] + half_c[None, :] - log_overlap(rows, cols, n_jobs=n_jobs)
        # Identical mixtures cancel to zero only up to rounding.
        return np.maximum(d, 0.0)


@hookimpl
def leitmotiv_divergences():
    """The ``cauchy-schwarz`` divergence."""
    return [CauchySchwarz]
