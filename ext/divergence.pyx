# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Kernels for Monte Carlo Jensen–Shannon divergences between Gaussian mixtures.

A weighted Gaussian log-density is a quadratic form in ``x``: with the quadratic
features ``phi(x) = [1, x_i, x_i x_j (i <= j)]`` every component's
``log(w_k N(x | mu_k, Sigma_k))`` equals ``phi(x) . theta_k``.  So the terms of all
components of many mixtures at a block of samples are one matrix product, done here by
BLAS ``dgemm`` on cache-sized tiles from ``nogil`` code, each thread on its own tile,
followed by a per-mixture log-sum-exp.  The tiles are consumed at once (folded into
per-pair sums), so memory stays bounded whatever the number of mixtures.
"""

from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, log, log1p
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm

import numpy as np

cdef double LN2 = 0.6931471805599453

# Component terms this far below the running maximum contribute less than
# exp(-50) ~ 2e-22 each to the normalized sum, far below double rounding, so their
# exponentials are skipped; this is where most of the time would otherwise go.
cdef double SKIP = 50.0


def n_features(Py_ssize_t d):
    """Number of quadratic features for dimension ``d``: 1 + d + d (d + 1) / 2."""
    return 1 + d + d * (d + 1) // 2


cdef inline void _features(const double *x, Py_ssize_t d, double *phi) noexcept nogil:
    """Write ``[1, x_i, x_i x_j (i <= j)]`` to ``phi``."""
    cdef Py_ssize_t i, j, f
    phi[0] = 1.0
    for i in range(d):
        phi[1 + i] = x[i]
    f = 1 + d
    for i in range(d):
        for j in range(i, d):
            phi[f] = x[i] * x[j]
            f += 1


cdef inline double _lse(const double *v, Py_ssize_t k) noexcept nogil:
    """log(sum(exp(v))) over ``k`` terms, skipping negligible terms."""
    cdef Py_ssize_t j
    cdef double m = -INFINITY, acc = 0.0
    for j in range(k):
        if v[j] > m:
            m = v[j]
    if m == -INFINITY:
        return -INFINITY
    for j in range(k):
        if v[j] > m - SKIP:
            acc += exp(v[j] - m)
    return m + log(acc)


cdef inline void _gemm_tile(const double *theta, Py_ssize_t ld_theta, Py_ssize_t kb,
                            const double *phi, Py_ssize_t nf, Py_ssize_t bs,
                            double *out) noexcept nogil:
    """``out[s, j] = phi[s, :] . theta[:, j]`` for a tile, row-major ``out`` (bs, kb).

    BLAS is column-major, so the row-major product ``phi @ theta`` is computed as its
    transpose ``theta^T phi^T`` which has exactly the row-major layout wanted.
    """
    cdef int m = <int> kb, n = <int> bs, k = <int> nf
    cdef int lda = <int> ld_theta, ldb = <int> nf, ldc = <int> kb
    cdef double one = 1.0, zero = 0.0
    cdef char trans = b"N"
    dgemm(&trans, &trans, &m, &n, &k, &one, <double *> theta, &lda, <double *> phi, &ldb,
          &zero, out, &ldc)


def log_density_matrix(const double[:, ::1] X, const double[:, ::1] theta,
                       const Py_ssize_t[::1] offsets, int n_threads=1):
    """Log-densities of several mixtures at several samples.

    Parameters
    ----------
    X : ndarray, shape (S, d)
    theta : ndarray, shape (F, Ktot)
        Quadratic coefficients of all components, mixture ``c`` owning columns
        ``offsets[c]:offsets[c + 1]``.
    offsets : ndarray of intp, shape (C + 1,)
    n_threads : int

    Returns
    -------
    ndarray, shape (S, C)
    """
    cdef Py_ssize_t S = X.shape[0], d = X.shape[1], F = theta.shape[0]
    cdef Py_ssize_t Ktot = theta.shape[1], C = offsets.shape[0] - 1
    if F != n_features(d) or offsets[C] != Ktot:
        raise ValueError("inconsistent shapes in log_density_matrix")
    out_arr = np.empty((S, C), dtype=np.float64)
    if S == 0 or C == 0:
        return out_arr
    cdef double[:, ::1] out = out_arr
    cdef Py_ssize_t bs = 64, nblocks = (S + bs - 1) // bs
    cdef Py_ssize_t b, s0, s1, i, c
    cdef double *phi
    cdef double *g
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc(bs * Ktot * sizeof(double))
        for b in prange(nblocks, schedule="dynamic"):
            s0 = b * bs
            s1 = s0 + bs
            if s1 > S:
                s1 = S
            for i in range(s0, s1):
                _features(&X[i, 0], d, phi + (i - s0) * F)
            _gemm_tile(&theta[0, 0], Ktot, Ktot, phi, F, s1 - s0, g)
            for i in range(s1 - s0):
                for c in range(C):
                    out[s0 + i, c] = _lse(g + i * Ktot + offsets[c], offsets[c + 1] - offsets[c])
        free(g)
        free(phi)
    return out_arr


def js_half_sums(const double[:, ::1] X, const double[::1] own, Py_ssize_t n,
                 const double[:, ::1] theta, const Py_ssize_t[::1] offsets,
                 int n_threads=1, Py_ssize_t block_samples=128,
                 Py_ssize_t block_components=1024):
    """Per-pair sums of one half of the Jensen–Shannon integrand.

    Row mixture ``r`` owns the samples ``X[r n:(r + 1) n]`` drawn from it, with its own
    log-density ``own``.  For every row ``r`` and column mixture ``c`` this accumulates
    over those samples ``t = ln p_r - ln m = ln 2 - softplus(ln p_c - ln p_r)``, with
    ``m = (p_r + p_c) / 2``, and ``t**2`` (for the standard error).

    Parameters
    ----------
    X : ndarray, shape (R n, d)
    own : ndarray, shape (R n,)
    n : int
        Samples per row mixture.
    theta : ndarray, shape (F, Ktot)
    offsets : ndarray of intp, shape (C + 1,)
    n_threads : int
    block_samples, block_components : int
        Tile sizes: samples of one row mixture, and (at least one mixture's worth of)
        components, per matrix product.

    Returns
    -------
    sums, sumsq : ndarray, shape (R, C)
    """
    cdef Py_ssize_t S = X.shape[0], d = X.shape[1], F = theta.shape[0]
    cdef Py_ssize_t Ktot = theta.shape[1], C = offsets.shape[0] - 1
    if n <= 0 or S % n != 0 or own.shape[0] != S:
        raise ValueError("samples must come in equal groups of n per row mixture")
    if F != n_features(d) or offsets[C] != Ktot:
        raise ValueError("inconsistent shapes in js_half_sums")
    cdef Py_ssize_t R = S // n
    sums_arr = np.zeros((R, C), dtype=np.float64)
    sumsq_arr = np.zeros((R, C), dtype=np.float64)
    if R == 0 or C == 0:
        return sums_arr, sumsq_arr
    cdef double[:, ::1] sums = sums_arr
    cdef double[:, ::1] sumsq = sumsq_arr

    # Column blocks: consecutive mixtures with about block_components components in all.
    cblocks = [0]
    cdef Py_ssize_t c, acc = 0, kmax = 0
    for c in range(C):
        if offsets[c + 1] - offsets[c] > kmax:
            kmax = offsets[c + 1] - offsets[c]
        if acc > 0 and acc + offsets[c + 1] - offsets[c] > block_components:
            cblocks.append(c)
            acc = 0
        acc += offsets[c + 1] - offsets[c]
    cblocks.append(C)
    cdef Py_ssize_t[::1] cb = np.asarray(cblocks, dtype=np.intp)
    cdef Py_ssize_t ncb = cb.shape[0] - 1
    cdef Py_ssize_t kbuf = block_components if block_components > kmax else kmax
    cdef Py_ssize_t bs = block_samples if block_samples < n else n
    cdef Py_ssize_t ntasks = R * ncb

    cdef Py_ssize_t task, r, jb, c0, c1, k0, kb, s, s0, s1, i, cc
    cdef double *phi
    cdef double *g
    cdef double *ts
    cdef double *tq
    cdef double lq, lp, t, dlt, sp
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc(bs * kbuf * sizeof(double))
        ts = <double *> malloc(2 * C * sizeof(double))
        tq = ts + C
        for task in prange(ntasks, schedule="dynamic"):
            # Task = (row mixture, column block); tasks write disjoint output entries.
            r = task // ncb
            jb = task % ncb
            c0 = cb[jb]
            c1 = cb[jb + 1]
            k0 = offsets[c0]
            kb = offsets[c1] - k0
            for cc in range(c0, c1):
                ts[cc] = 0.0
                tq[cc] = 0.0
            for s in range((n + bs - 1) // bs):
                s0 = r * n + s * bs
                s1 = s0 + bs
                if s1 > (r + 1) * n:
                    s1 = (r + 1) * n
                for i in range(s0, s1):
                    _features(&X[i, 0], d, phi + (i - s0) * F)
                _gemm_tile(&theta[0, k0], Ktot, kb, phi, F, s1 - s0, g)
                for i in range(s1 - s0):
                    lp = own[s0 + i]
                    for cc in range(c0, c1):
                        lq = _lse(g + i * kb + offsets[cc] - k0, offsets[cc + 1] - offsets[cc])
                        # ln 2 - softplus(lq - lp), evaluated stably on both sides.
                        dlt = lq - lp
                        if dlt > 0:
                            sp = dlt + log1p(exp(-dlt))
                        else:
                            sp = log1p(exp(dlt))
                        t = LN2 - sp
                        ts[cc] += t
                        tq[cc] += t * t
            for cc in range(c0, c1):
                sums[r, cc] = ts[cc]
                sumsq[r, cc] = tq[cc]
        free(ts)
        free(g)
        free(phi)
    return sums_arr, sumsq_arr
