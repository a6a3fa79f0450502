"""Plain NumPy/SciPy reference of the variational-Bayes GMM fit in ``leitmotiv.vbgmm``.

Written for clarity, not speed: it stores the full responsibility matrix, inverts W_k
explicitly and evaluates every term of the ELBO separately as in Bishop, PRML (2006),
eq. 10.70-10.77, instead of the shortcut (log normaliser + prior terms) used by the fast
implementation.  It follows the same conventions so the two can be compared iteration by
iteration from the same initial responsibilities:

* standardization: column mean, population standard deviation, constant columns get the
  geometric mean of the other columns' spreads (or the largest |mean|, or 1);
* prior: m0 = 0 (the standardized mean), W0^{-1} = data covariance + max(reg_covar, 1e-10) I,
  nu0 = d, beta0 = mean_precision, alpha0 = weight_concentration;
* M-step scatter S_k gets ``reg_covar`` added to its diagonal;
* after each M-step's statistics, components with N_k < prune_threshold * n are dropped
  (the largest is always kept);
* iteration: E-step, ELBO, M-step with pruning, stop if the number of components did not
  change and |ELBO_t - ELBO_{t-1}| <= tol |ELBO_t| (per sample, standardized).
"""

from __future__ import annotations

import numpy as np
from scipy.special import digamma, gammaln, logsumexp


def standardize(X):
    offset = X.mean(axis=0)
    spread = X.std(axis=0)
    live = spread > 1e-12 * np.maximum(np.abs(offset), np.finfo(float).tiny)
    if live.any():
        typical = np.exp(np.log(spread[live]).mean())
    else:
        typical = np.abs(offset).max() or 1.0
    scale = np.where(live, spread, typical)
    return (X - offset) / scale, offset, scale


def log_wishart_B(W, nu):
    """ln B(W, nu), PRML eq. B.79."""
    d = W.shape[0]
    return (
        -0.5 * nu * np.linalg.slogdet(W)[1]
        - 0.5 * nu * d * np.log(2)
        - 0.25 * d * (d - 1) * np.log(np.pi)
        - sum(gammaln(0.5 * (nu + 1 - i)) for i in range(1, d + 1))
    )


def log_dirichlet_C(alpha):
    """ln C(alpha), PRML eq. B.23."""
    return gammaln(alpha.sum()) - gammaln(alpha).sum()


class Reference:
    def __init__(self, X, weight_concentration=0.01, mean_precision=1.0,
                 degrees_of_freedom=None, covariance_prior=None, reg_covar=1e-6,
                 prune_threshold=1e-3):
        X = np.asarray(X, dtype=float)
        self.Z, self.offset, self.scale = standardize(X)
        n, d = self.Z.shape
        self.n, self.d = n, d
        self.alpha0 = weight_concentration
        self.beta0 = mean_precision
        self.nu0 = d if degrees_of_freedom is None else degrees_of_freedom
        self.m0 = self.Z.mean(axis=0)
        if covariance_prior is None:
            diffs = self.Z - self.m0
            cov = diffs.T @ diffs / n
        else:
            cov = np.asarray(covariance_prior, float) / np.outer(self.scale, self.scale)
        self.W0_inv = cov + max(reg_covar, 1e-10) * np.eye(d)
        self.W0 = np.linalg.inv(self.W0_inv)
        self.reg_covar = reg_covar
        self.prune_threshold = prune_threshold

    # -- M-step (PRML 10.51-10.63) ------------------------------------------------------
    def m_step(self, resp):
        Z, d = self.Z, self.d
        N = resp.sum(axis=0)
        keep = N >= self.prune_threshold * self.n
        if not keep.any():
            keep[np.argmax(N)] = True
        resp, N = resp[:, keep], N[keep]
        K = N.size
        xbar = np.empty((K, d))
        S = np.empty((K, d, d))
        for k in range(K):
            Nk = max(N[k], 10 * np.finfo(float).eps)
            xbar[k] = resp[:, k] @ Z / Nk
            dev = Z - xbar[k]
            S[k] = (resp[:, k, None] * dev).T @ dev / Nk + self.reg_covar * np.eye(d)
        self.alpha = self.alpha0 + N
        self.beta = self.beta0 + N
        self.nu = self.nu0 + N
        self.m = (self.beta0 * self.m0 + N[:, None] * xbar) / self.beta[:, None]
        self.W = np.empty((K, d, d))
        for k in range(K):
            dm = xbar[k] - self.m0
            W_inv = (
                self.W0_inv
                + N[k] * S[k]
                + self.beta0 * N[k] / (self.beta0 + N[k]) * np.outer(dm, dm)
            )
            self.W[k] = np.linalg.inv(W_inv)
        self.E_logpi = digamma(self.alpha) - digamma(self.alpha.sum())
        self.E_logdet = np.array([
            sum(digamma(0.5 * (self.nu[k] + 1 - i)) for i in range(1, d + 1))
            + d * np.log(2) + np.linalg.slogdet(self.W[k])[1]
            for k in range(K)
        ])

    # -- E-step (PRML 10.46-10.49) ------------------------------------------------------
    def e_step(self):
        Z, d = self.Z, self.d
        K = self.m.shape[0]
        self.maha = np.empty((self.n, K))
        for k in range(K):
            dev = Z - self.m[k]
            self.maha[:, k] = np.einsum("ni,ij,nj->n", dev, self.W[k], dev)
        E_loglik = (
            0.5 * self.E_logdet - 0.5 * d * np.log(2 * np.pi)
            - 0.5 * (d / self.beta + self.nu * self.maha)
        )
        log_rho = self.E_logpi + E_loglik
        log_resp = log_rho - logsumexp(log_rho, axis=1, keepdims=True)
        self.E_loglik = E_loglik
        return np.exp(log_resp)

    # -- ELBO, term by term (PRML 10.70-10.77) ------------------------------------------
    def elbo(self, resp):
        d, K = self.d, self.m.shape[0]
        a0, b0, nu0, m0 = self.alpha0, self.beta0, self.nu0, self.m0
        p_x = np.sum(resp * self.E_loglik)
        p_z = np.sum(resp * self.E_logpi)
        p_pi = log_dirichlet_C(np.full(K, a0)) + (a0 - 1) * self.E_logpi.sum()
        p_mulam = 0.0
        q_mulam = 0.0
        log_B0 = log_wishart_B(self.W0, nu0)
        for k in range(K):
            dm = self.m[k] - m0
            p_mulam += 0.5 * (
                d * np.log(b0 / (2 * np.pi)) + self.E_logdet[k] - d * b0 / self.beta[k]
                - b0 * self.nu[k] * dm @ self.W[k] @ dm
            )
            p_mulam += log_B0 + 0.5 * (nu0 - d - 1) * self.E_logdet[k]
            p_mulam -= 0.5 * self.nu[k] * np.trace(self.W0_inv @ self.W[k])
            entropy = (
                -log_wishart_B(self.W[k], self.nu[k])
                - 0.5 * (self.nu[k] - d - 1) * self.E_logdet[k]
                + 0.5 * self.nu[k] * d
            )
            q_mulam += (
                0.5 * self.E_logdet[k] + 0.5 * d * np.log(self.beta[k] / (2 * np.pi))
                - 0.5 * d - entropy
            )
        positive = resp > 0
        q_z = np.sum(resp[positive] * np.log(resp[positive]))
        q_pi = np.sum((self.alpha - 1) * self.E_logpi) + log_dirichlet_C(self.alpha)
        return (p_x + p_z + p_pi + p_mulam - q_z - q_pi - q_mulam) / self.n

    def fit(self, resp, tol=1e-3, max_iter=200):
        self.m_step(np.asarray(resp, float))
        trace = []
        previous_k = -1
        for _ in range(max_iter):
            K = self.m.shape[0]
            resp = self.e_step()
            value = self.elbo(resp)
            converged = (
                K == previous_k and trace and abs(value - trace[-1]) <= tol * abs(value)
            )
            trace.append(value)
            previous_k = K
            self.m_step(resp)
            if converged:
                break
        return np.asarray(trace)

    def parameters(self):
        """(weights, means, covariances) in the caller's coordinates."""
        weights = self.alpha / self.alpha.sum()
        means = self.m * self.scale + self.offset
        cov = np.linalg.inv(self.W) / self.nu[:, None, None]
        return weights, means, cov * np.outer(self.scale, self.scale)


def fit_from_resp(X, resp, *, tol=1e-3, max_iter=200, **prior):
    """Reference fit from initial responsibilities; returns (weights, means, covs, trace)."""
    ref = Reference(X, **prior)
    trace = ref.fit(resp, tol=tol, max_iter=max_iter)
    return (*ref.parameters(), trace)
