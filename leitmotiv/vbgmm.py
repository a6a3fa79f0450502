"""Variational-Bayes Gaussian mixture fit (Bishop, PRML 2006, section 10.2).

The model is a mixture of ``K`` full-covariance Gaussians with a symmetric Dirichlet
prior on the weights and a Gaussian-Wishart prior on each component's mean and precision.
The mean-field posterior ``q(pi) q(mu, Lambda)`` is fitted by coordinate ascent on the
evidence lower bound (ELBO).  A small concentration ``alpha0`` makes the posterior switch
superfluous components off; those whose expected count collapses are pruned so that later
iterations are cheaper.

Conventions
-----------
* The fit runs in standardized coordinates ``z = (x - mean) / scale`` (per column; a
  constant column gets the typical scale of the other columns) and is mapped back, so the
  result is equivariant under per-column affine changes of units and ``reg_covar`` is
  relative to each column's variance.
* Initialization: k-means++ seeding and three Lloyd steps give hard responsibilities
  and the first M-step.  Two such starts race for 10 iterations; the better ELBO goes on.
* Iteration ``t`` is: E-step with the current posterior (giving the ELBO), then M-step
  from the new responsibilities, then pruning of components with ``N_k`` below the
  threshold.  ``n_iter`` counts E-steps of the returned run.
* The returned :class:`~leitmotiv.mixture.Mixture` holds the posterior expectations:
  ``weights = alpha_k / sum(alpha)``, ``means = m_k`` and
  ``covariances = E[Lambda_k]^{-1} = (nu_k W_k)^{-1}`` (the same point estimate as
  scikit-learn's ``BayesianGaussianMixture``).  ``lower_bound`` is the last ELBO per
  sample, in the caller's coordinates.
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln

from leitmotiv._ext import vbgmm as _kernels
from leitmotiv.mixture import Mixture

__all__ = ["fit_mixture"]

# Fixed number of sample chunks in the E-step kernel: results do not depend on the
# thread count.  16 keeps a few cores busy, and chunks of a few hundred samples let the
# kernel's matrix products run on full 128-sample tiles (15 % faster than 64 chunks at
# n = 5000).
_N_CHUNKS = 16
# Lloyd iterations refining the k-means++ seeds before the first M-step.
_LLOYD_STEPS = 3
# Independent k-means++ starts; the fit with the highest final ELBO is returned.  The VB
# optimum reached depends strongly on the start (held-out log-likelihood spreads by ~0.1
# nats per sample across seeds on photo features) and the ELBO tracks held-out quality, so
# a second start buys more than the same time spent iterating one start to a tighter tol.
# Racing the starts for 10 iterations picks nearly as well as running both to the end.
_N_STARTS = 2
# Iterations each start runs before all but the best are abandoned.
_RACE_ITER = 10
_LN_2PI = float(np.log(2.0 * np.pi))


def _n_threads() -> int:
    """OpenMP threads for the E-step kernel.

    OpenMP's own default: all cores, or ``OMP_NUM_THREADS`` (the ingest workers set it
    to 1, since they already run one process per core).  Results do not depend on the
    thread count, so this choice never changes a fit.
    """
    return max(1, int(_kernels.max_threads()))


# --------------------------------------------------------------------------------------
# Input handling and standardization
# --------------------------------------------------------------------------------------


def _validate(X) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(
            f"X must be a 2-D array of shape (n_samples, n_features), got ndim={X.ndim}"
        )
    if X.shape[0] == 0:
        raise ValueError("X is empty: it has no samples")
    if X.shape[1] == 0:
        raise ValueError("X is empty: it has no features")
    if not np.issubdtype(X.dtype, np.number) or np.issubdtype(X.dtype, np.complexfloating):
        raise ValueError(f"X must hold real numbers, got dtype {X.dtype}")
    X = np.ascontiguousarray(X, dtype=np.float64)
    if not np.all(np.isfinite(X)):
        raise ValueError("X contains non-finite values (nan or inf)")
    return X


def _standardize(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(Z, offset, scale)`` with ``Z = (X - offset) / scale``.

    A column with zero spread would make the data covariance singular; giving it the
    typical scale of the others (or 1) keeps its regularized variance in proportion to the
    rest of the data instead of an absolute ``reg_covar`` that is meaningless at 1e6 or
    1e-6.
    """
    offset = X.mean(axis=0)
    spread = X.std(axis=0)
    # Spreads at rounding level of the column's magnitude are really constant columns.
    live = spread > 1e-12 * np.maximum(np.abs(offset), np.finfo(np.float64).tiny)
    if np.any(live):
        typical = float(np.exp(np.mean(np.log(spread[live]))))
    else:
        typical = float(np.max(np.abs(offset))) or 1.0
    scale = np.where(live, spread, typical)
    Z = np.ascontiguousarray((X - offset) / scale)
    return Z, offset, scale


# --------------------------------------------------------------------------------------
# Initialization
# --------------------------------------------------------------------------------------


def _kmeans_plusplus(Z: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Greedy k-means++ seeding (Arthur & Vassilvitskii 2007), returns centre indices.

    Stops early when every sample coincides with a centre (fewer distinct points than
    ``k``), so duplicates never produce two identical seeds.
    """
    n = Z.shape[0]
    trials = 2 + int(np.log(k))
    sq_norms = np.einsum("ij,ij->i", Z, Z)
    chosen = [int(rng.integers(n))]
    closest = np.maximum(sq_norms - 2.0 * Z @ Z[chosen[0]] + sq_norms[chosen[0]], 0.0)
    # Work arrays reused by every round (fresh ones cost more than the arithmetic);
    # candidate = min(closest, max(||z||^2 - 2 Z[picks] Z^T + ||z_pick||^2, 0)).
    candidate = np.empty((trials, n))
    cumulative = np.empty(n)
    for _ in range(1, k):
        potential = closest.sum()
        if not potential > 0.0:
            break
        np.cumsum(closest, out=cumulative)
        picks = np.searchsorted(cumulative, rng.random(trials) * potential)
        picks = np.minimum(picks, n - 1)
        np.matmul(Z[picks], Z.T, out=candidate)
        candidate *= 2.0
        np.subtract(sq_norms[None, :], candidate, out=candidate)
        candidate += sq_norms[picks, None]
        np.maximum(candidate, 0.0, out=candidate)
        np.minimum(closest[None, :], candidate, out=candidate)
        best = int(np.argmin(candidate.sum(axis=1)))
        chosen.append(int(picks[best]))
        closest = candidate[best].copy()
    return np.asarray(chosen)


def _lloyd(Z: np.ndarray, centres: np.ndarray, steps: int) -> np.ndarray:
    """A few Lloyd iterations from ``centres``; returns the final labels."""
    k = centres.shape[0]
    centres = centres.copy()
    # Buffers reused across the steps: a fresh (n, k) array each step costs page faults.
    dist = np.empty((Z.shape[0], k))
    columns = np.ascontiguousarray(Z.T)
    for step in range(steps + 1):
        # ||z||^2 is the same for every centre, so it does not affect the argmin.
        np.matmul(Z, centres.T, out=dist)
        dist *= -2.0
        dist += np.einsum("ij,ij->i", centres, centres)
        labels = np.argmin(dist, axis=1)
        if step == steps:
            break
        counts = np.bincount(labels, minlength=k)
        # bincount per column is much faster than np.add.at for the cluster sums.
        sums = np.column_stack(
            [np.bincount(labels, weights=column, minlength=k) for column in columns]
        )
        filled = counts > 0
        # An emptied cluster keeps its old centre; the fit prunes it if it stays empty.
        centres[filled] = sums[filled] / counts[filled, None]
    return labels


def _initial_resp(Z: np.ndarray, k: int, seed) -> np.ndarray:
    """Hard responsibilities from k-means++ seeds refined by a few Lloyd steps."""
    rng = np.random.default_rng(seed)
    centres = Z[_kmeans_plusplus(Z, k, rng)]
    labels = _lloyd(Z, centres, _LLOYD_STEPS)
    resp = np.zeros((Z.shape[0], centres.shape[0]))
    resp[np.arange(Z.shape[0]), labels] = 1.0
    return resp


# --------------------------------------------------------------------------------------
# Variational updates
# --------------------------------------------------------------------------------------


class _Prior:
    """Hyper-parameters of the Dirichlet and Gaussian-Wishart priors (standardized)."""

    def __init__(self, Z, scale, weight_concentration, mean_precision, degrees_of_freedom,
                 covariance_prior, reg_covar):
        n, d = Z.shape
        self.d = d
        self.alpha0 = float(weight_concentration)
        self.beta0 = float(mean_precision)
        self.nu0 = float(d if degrees_of_freedom is None else degrees_of_freedom)
        self.reg_covar = float(reg_covar)
        if not self.alpha0 > 0 or not self.beta0 > 0:
            raise ValueError("weight_concentration and mean_precision must be positive")
        if not self.nu0 > d - 1:
            raise ValueError(f"degrees_of_freedom must exceed n_features - 1 = {d - 1}")
        if self.reg_covar < 0:
            raise ValueError("reg_covar must be non-negative")
        self.m0 = Z.mean(axis=0)
        if covariance_prior is None:
            cov = np.atleast_2d(np.cov(Z, rowvar=False, bias=True)) if n > 1 else np.zeros((d, d))
        else:
            cov = np.atleast_2d(np.asarray(covariance_prior, dtype=np.float64))
            if cov.shape != (d, d) or not np.all(np.isfinite(cov)):
                raise ValueError(f"covariance_prior must be a finite ({d}, {d}) matrix")
            cov = cov / np.outer(scale, scale)
        # W0^{-1}; the ridge keeps it invertible for duplicates and constant columns.
        self.W0_inv = 0.5 * (cov + cov.T) + max(self.reg_covar, 1e-10) * np.eye(d)
        try:
            chol = np.linalg.cholesky(self.W0_inv)
        except np.linalg.LinAlgError:
            raise ValueError("covariance_prior must be symmetric positive definite") from None
        logdet_W0 = -2.0 * np.sum(np.log(np.diag(chol)))
        self.log_B0 = _log_wishart_norm(logdet_W0, self.nu0, d)


def _log_wishart_norm(logdet_W, nu, d):
    """ln B(W, nu) of the Wishart normaliser (PRML B.79), vectorized over nu."""
    i = np.arange(1, d + 1)
    nu = np.asarray(nu, dtype=np.float64)
    return (
        -0.5 * nu * logdet_W
        - 0.5 * nu * d * np.log(2.0)
        - 0.25 * d * (d - 1) * np.log(np.pi)
        - np.sum(gammaln(0.5 * (nu[..., None] + 1.0 - i)), axis=-1)
    )


class _Posterior:
    """q(pi) q(mu, Lambda) for the surviving components, plus what the E-step needs."""

    def __init__(self, prior: _Prior, N, xbar, NS):
        d = prior.d
        self.N = N
        self.alpha = prior.alpha0 + N
        self.beta = prior.beta0 + N
        self.nu = prior.nu0 + N
        self.m = (prior.beta0 * prior.m0 + N[:, None] * xbar) / self.beta[:, None]
        dm = xbar - prior.m0
        shrink = prior.beta0 * N / self.beta
        W_inv = prior.W0_inv + NS + shrink[:, None, None] * dm[:, :, None] * dm[:, None, :]
        W_inv = 0.5 * (W_inv + np.swapaxes(W_inv, 1, 2))
        # W = P^T P with P = chol(W^{-1})^{-1}, lower triangular.
        self.P = np.empty_like(W_inv)
        logdet_W = np.empty(W_inv.shape[0])
        if not _kernels.cholesky_inverse(W_inv, self.P, logdet_W):
            raise np.linalg.LinAlgError("Matrix is not positive definite")
        self.W_inv = W_inv
        i = np.arange(1, d + 1)
        self.E_logdet = (
            np.sum(digamma(0.5 * (self.nu[:, None] + 1.0 - i)), axis=1) + d * np.log(2.0) + logdet_W
        )
        self.E_logpi = digamma(self.alpha) - digamma(self.alpha.sum())
        self.log_const = np.ascontiguousarray(
            self.E_logpi + 0.5 * self.E_logdet - 0.5 * d * _LN_2PI - 0.5 * d / self.beta
        )
        self.kl = self._prior_terms(prior, logdet_W)

    def _prior_terms(self, prior: _Prior, logdet_W) -> float:
        """ELBO terms that do not involve the data: E[ln p(pi, mu, Lambda) / q(...)].

        With responsibilities optimal for this posterior, the remaining ELBO terms
        E[ln p(X, Z | ...)] - E[ln q(Z)] sum to sum_n log sum_k rho_nk, which the
        E-step kernel returns.
        """
        d = prior.d
        k = self.alpha.size
        a0, b0, nu0 = prior.alpha0, prior.beta0, prior.nu0
        log_c0 = gammaln(k * a0) - k * gammaln(a0)
        log_c = gammaln(self.alpha.sum()) - np.sum(gammaln(self.alpha))
        weights_term = log_c0 - log_c + np.sum((a0 - self.alpha) * self.E_logpi)
        dm0 = np.einsum("kij,kj->ki", self.P, self.m - prior.m0)
        quad0 = np.einsum("ki,ki->k", dm0, dm0)
        trace = np.einsum("kij,jl,kil->k", self.P, prior.W0_inv, self.P)
        log_B = _log_wishart_norm(logdet_W, self.nu, d)
        comp_terms = (
            0.5 * d * np.log(b0 / self.beta)
            - 0.5 * d * b0 / self.beta
            + 0.5 * d
            - 0.5 * b0 * self.nu * quad0
            - 0.5 * self.nu * trace
            + 0.5 * (nu0 - self.nu) * self.E_logdet
            + prior.log_B0
            - log_B
            + 0.5 * self.nu * d
        )
        return float(weights_term + np.sum(comp_terms))


def _m_step(prior: _Prior, N, first, second, centres, n, prune_threshold):
    """Posterior from the (centred) statistics, after pruning collapsed components.

    ``first`` and ``second`` are sums of ``r (x - c)`` and ``r (x - c)(x - c)^T`` about
    ``centres``; centring on the previous means avoids cancellation in the covariance.
    """
    keep = N >= prune_threshold * n
    if not np.any(keep):
        keep[np.argmax(N)] = True
    N, first, second, centres = N[keep], first[keep], second[keep], centres[keep]
    d = prior.d
    safe_N = np.maximum(N, 10.0 * np.finfo(np.float64).eps)
    mean_dev = first / safe_N[:, None]
    xbar = centres + mean_dev
    NS = second - N[:, None, None] * mean_dev[:, :, None] * mean_dev[:, None, :]
    NS = NS + (N * prior.reg_covar)[:, None, None] * np.eye(d)
    return _Posterior(prior, N, xbar, NS)


def _stats_from_resp(Z, resp):
    """Sufficient statistics of a responsibility matrix, centred on the origin."""
    N = resp.sum(axis=0)
    first = resp.T @ Z
    # One (K, n) x (n, d*d) product through BLAS; einsum's generic loop is far slower.
    n, d = Z.shape
    second = (resp.T @ (Z[:, :, None] * Z[:, None, :]).reshape(n, d * d)).reshape(-1, d, d)
    return N, first, second, np.zeros((resp.shape[1], Z.shape[1]))


def _quadratic_features(Z: np.ndarray) -> np.ndarray:
    """``phi(z) = [1, z_a, z_a z_b (a <= b, row-major)]`` of every sample, shape (n, F)."""
    n, d = Z.shape
    upper_a, upper_b = np.triu_indices(d)
    phi = np.empty((n, _kernels.n_features(d)))
    phi[:, 0] = 1.0
    phi[:, 1:1 + d] = Z
    np.multiply(Z[:, upper_a], Z[:, upper_b], out=phi[:, 1 + d:])
    return phi


class _Workspace:
    """Kernel buffers (reallocated only when the number of components changes) and the
    quadratic features of the samples, which stay the same for the whole fit.

    The kernel writes ln rho_nk as the quadratic form ``phi(z_n) . theta_k`` and returns
    the raw statistics ``sum_n r_nk phi(z_n)`` (moments about the origin, accurate here
    because the data are standardized: mean 0, unit spread per column).
    """

    def __init__(self, Z):
        n, d = Z.shape
        self.n_chunks = min(_N_CHUNKS, n)
        self.d = d
        self.k = -1
        self.phi = _quadratic_features(Z)

    def run(self, post: _Posterior):
        k = post.m.shape[0]
        d, n_features = self.d, self.phi.shape[1]
        if k != self.k:
            self.theta = np.empty((k, n_features))
            self.stats = np.empty((self.n_chunks, k, n_features))
            self.log_norm = np.empty(self.n_chunks)
            self.k = k
        counts, first, second = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
        log_norm = _kernels.estep_stats(
            self.phi, post.P, np.ascontiguousarray(post.m), np.ascontiguousarray(post.nu),
            post.log_const, self.theta, self.stats, self.log_norm, counts, first, second,
            _n_threads(),
        )
        return log_norm, counts, first, second, np.zeros((k, d))


class _Run:
    """One coordinate-ascent run, advanced an iteration at a time.

    Iteration: E-step with the current posterior (its ELBO is recorded), M-step from the
    new statistics with pruning, then the convergence test.
    """

    def __init__(self, Z, resp, prior: _Prior, tol, max_iter, prune_threshold):
        self.Z, self.prior, self.tol, self.max_iter = Z, prior, tol, max_iter
        self.prune_threshold = prune_threshold
        self.post = _m_step(prior, *_stats_from_resp(Z, resp), Z.shape[0], prune_threshold)
        self.work = _Workspace(Z)
        self.trace: list[float] = []
        self.previous_k = -1
        self.done = False

    def step(self) -> None:
        n = self.Z.shape[0]
        k = self.post.m.shape[0]
        log_norm, N, first, second, centres = self.work.run(self.post)
        elbo = (log_norm + self.post.kl) / n
        # Only compare bounds of the same model size: pruning changes the prior's K.
        converged = (
            k == self.previous_k
            and len(self.trace) > 0
            and abs(elbo - self.trace[-1]) <= self.tol * abs(elbo)
        )
        self.trace.append(elbo)
        self.previous_k = k
        self.post = _m_step(self.prior, N, first, second, centres, n, self.prune_threshold)
        self.done = converged or len(self.trace) >= self.max_iter

    def run(self, max_steps=None) -> _Run:
        steps = 0
        while not self.done and (max_steps is None or steps < max_steps):
            self.step()
            steps += 1
        return self


def _to_mixture(post: _Posterior, offset, scale, trace) -> Mixture:
    weights = post.alpha / post.alpha.sum()
    means = post.m * scale + offset
    cov = post.W_inv / post.nu[:, None, None]
    cov = cov * np.outer(scale, scale)
    cov = 0.5 * (cov + np.swapaxes(cov, 1, 2))
    # Density in x = density in z divided by the Jacobian prod(scale).
    lower_bound = float(trace[-1] - np.sum(np.log(scale))) if trace.size else float("nan")
    return Mixture(weights, means, cov, lower_bound=lower_bound, n_iter=int(trace.size))


def _prepare(X, max_components, weight_concentration, mean_precision, degrees_of_freedom,
             covariance_prior, tol, max_iter, prune_threshold, reg_covar):
    X = _validate(X)
    if int(max_components) < 1:
        raise ValueError("max_components must be at least 1")
    if not tol >= 0 or int(max_iter) < 1:
        raise ValueError("tol must be non-negative and max_iter at least 1")
    if not 0 <= prune_threshold < 1:
        raise ValueError("prune_threshold must be in [0, 1)")
    Z, offset, scale = _standardize(X)
    prior = _Prior(Z, scale, weight_concentration, mean_precision, degrees_of_freedom,
                   covariance_prior, reg_covar)
    return Z, offset, scale, prior


def fit_mixture(
    X,
    max_components: int = 50,
    seed=0,
    *,
    weight_concentration: float = 0.01,
    mean_precision: float = 1.0,
    degrees_of_freedom: float | None = None,
    covariance_prior=None,
    tol: float = 1e-3,
    max_iter: int = 200,
    prune_threshold: float = 1e-3,
    reg_covar: float = 1e-6,
) -> Mixture:
    """Fit a variational-Bayes Gaussian mixture with full covariances.

    Parameters
    ----------
    X : array_like, shape (n, d)
        Finite samples.
    max_components : int
        Upper bound K on the number of components (capped at the number of distinct
        samples, since k-means++ cannot seed more).
    seed : int or sequence of int
        Entropy of the k-means++ initializations: a :class:`numpy.random.SeedSequence`
        spawns one child per start (two starts), both run 10 iterations and only the one
        with the higher ELBO is continued.  The fit is deterministic given the seed (and
        independent of the number of threads).
    weight_concentration : float
        alpha0 of the symmetric Dirichlet prior on the weights; small values favour few
        components.
    mean_precision : float
        beta0, the prior precision of the means relative to the component precision.
    degrees_of_freedom : float, optional
        nu0 of the Wishart prior, default ``d``.
    covariance_prior : array_like, shape (d, d), optional
        W0^{-1} in the caller's units; default the data covariance (regularized).
    tol : float
        Stop when ``|ELBO_t - ELBO_{t-1}| <= tol |ELBO_t|`` for the per-sample ELBO in
        standardized coordinates (so the criterion does not depend on units), checked only
        between iterations with the same number of components.
    max_iter : int
        Maximum number of E-steps.
    prune_threshold : float
        Components whose expected count ``N_k`` falls below ``prune_threshold * n`` are
        dropped (the largest one is always kept).  Default 1e-3, i.e. a weight of 0.1 %.
    reg_covar : float
        Added to the diagonal of each component's scatter, relative to the per-column
        variance of X (the fit runs on standardized data).

    Returns
    -------
    Mixture
        Posterior expected weights ``alpha_k / sum(alpha)``, means ``m_k`` and
        covariances ``(nu_k W_k)^{-1}`` in the caller's coordinates; ``lower_bound`` is
        the final ELBO per sample and ``n_iter`` the number of iterations.

    Raises
    ------
    ValueError
        If X is not 2-D, is empty or has non-finite values, or a parameter is invalid.
    """
    Z, offset, scale, prior = _prepare(
        X, max_components, weight_concentration, mean_precision, degrees_of_freedom,
        covariance_prior, tol, max_iter, prune_threshold, reg_covar,
    )
    k = min(int(max_components), Z.shape[0])
    # Child seeds of one SeedSequence: independent starts, all determined by ``seed``.
    # All starts race for a few iterations; only the one with the best ELBO goes on.
    runs = [
        _Run(Z, _initial_resp(Z, k, child), prior, tol, int(max_iter), prune_threshold)
        for child in np.random.SeedSequence(seed).spawn(_N_STARTS)
    ]
    best = max((r.run(_RACE_ITER) for r in runs), key=lambda r: r.trace[-1])
    best.run()
    return _to_mixture(best.post, offset, scale, np.asarray(best.trace))


def _fit_from_resp(
    X,
    resp,
    *,
    weight_concentration: float = 0.01,
    mean_precision: float = 1.0,
    degrees_of_freedom: float | None = None,
    covariance_prior=None,
    tol: float = 1e-3,
    max_iter: int = 200,
    prune_threshold: float = 1e-3,
    reg_covar: float = 1e-6,
) -> tuple[Mixture, np.ndarray]:
    """Run the fit from given initial responsibilities; also return the ELBO trace.

    For testing against the reference implementation: ``resp`` (n, K) replaces the
    k-means++ initialization, and the returned trace holds the per-sample ELBO (in
    standardized coordinates) of every iteration.
    """
    Z, offset, scale, prior = _prepare(
        X, resp.shape[1], weight_concentration, mean_precision, degrees_of_freedom,
        covariance_prior, tol, max_iter, prune_threshold, reg_covar,
    )
    resp = np.asarray(resp, dtype=np.float64)
    if resp.shape[0] != Z.shape[0]:
        raise ValueError("resp must have one row per sample")
    run = _Run(Z, resp, prior, tol, int(max_iter), prune_threshold).run()
    trace = np.asarray(run.trace)
    return _to_mixture(run.post, offset, scale, trace), trace
