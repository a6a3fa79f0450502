# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Log-density and sampling kernels of Gaussian mixtures.

:func:`log_pdf`: the Python side (:class:`leitmotiv.mixture.Mixture`) factorizes each
covariance once, ``Sigma_k = L_k L_k^T``, and hands over the factors together with the
per-component constant ``log w_k - d/2 log(2 pi) - sum(log diag L_k)``.  Here every
sample is whitened by forward substitution against each factor and the component terms
are combined with a max-shifted log-sum-exp, so nothing overflows and far-away
components underflow harmlessly to zero.

:func:`draw_samples`: the sample sets of many mixtures at once, from random numbers
NumPy drew for each (so the streams are NumPy's), with their own log-densities and the
quadratic coefficients the Jensen–Shannon kernels (``divergence.pyx``) compare them
with; it shares their linear algebra (``linalg.pxd``) and log-sum-exp
(``logsumexp.h``).

Every public function checks its inputs with the GIL before its loops (bounds checking
off) trust them, and raises MemoryError when a work buffer cannot be allocated.
"""

cimport openmp
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, log
from libc.stdlib cimport free, malloc

from linalg cimport cholesky_jittered, features, gemm_tile, log_counts, log_density_row
from linalg cimport n_features as feature_count
from logsumexp cimport lm_lse_columns

import numpy as np


include "checks.pxi"


def log_pdf(const double[:, ::1] X, const double[:, ::1] means,
            const double[:, :, ::1] chol, const double[::1] log_const):
    """Log-density of the mixture at each row of ``X``.

    Parameters
    ----------
    X : ndarray, shape (n, d)
    means : ndarray, shape (K, d)
    chol : ndarray, shape (K, d, d)
        Lower Cholesky factors of the covariances.
    log_const : ndarray, shape (K,)
        ``log w_k - d/2 log(2 pi) - log det L_k``; ``-inf`` for empty components.

    Returns
    -------
    ndarray, shape (n,)
    """
    cdef Py_ssize_t n = X.shape[0], d = X.shape[1], K = means.shape[0]
    if means.shape[1] != d or chol.shape[0] != K or chol.shape[1] != d or chol.shape[2] != d \
            or log_const.shape[0] != K:
        raise ValueError("inconsistent shapes in log_pdf")
    out_arr = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_arr
    cdef Py_ssize_t i, k, a, b
    cdef double *buf
    cdef double *y
    cdef double s, q, m, acc
    # Waking a thread team costs more than a few hundred samples take; stay serial
    # for small inputs (e.g. one point at a time from a quadrature routine).
    cdef int n_threads = 1 if n * K < 4096 else openmp.omp_get_max_threads()
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        # Per-thread scratch: K component terms and one whitened vector (+1: never 0).
        buf = <double *> malloc((K + d + 1) * sizeof(double))
        if buf == NULL:
            no_memory_p[0] = 1
        y = buf + K
        for i in prange(n, schedule="static"):
            if buf == NULL:
                continue
            m = -INFINITY
            for k in range(K):
                if log_const[k] == -INFINITY:
                    buf[k] = -INFINITY
                    continue
                # Forward substitution L y = x - mu; q = |y|^2 is the Mahalanobis term.
                q = 0.0
                for a in range(d):
                    s = X[i, a] - means[k, a]
                    for b in range(a):
                        s = s - chol[k, a, b] * y[b]
                    y[a] = s / chol[k, a, a]
                    q = q + y[a] * y[a]
                buf[k] = log_const[k] - 0.5 * q
                if buf[k] > m:
                    m = buf[k]
            if m == -INFINITY:
                out[i] = -INFINITY
            else:
                acc = 0.0
                for k in range(K):
                    acc = acc + exp(buf[k] - m)
                out[i] = m + log(acc)
        free(buf)
    if no_memory:
        _raise_no_memory("log_pdf")
    return out_arr


def draw_samples(const double[::1] weights, const double[:, ::1] means,
                 const double[:, :, ::1] covariances, const Py_ssize_t[::1] offsets,
                 const Py_ssize_t[::1] counts, const double[:, ::1] z,
                 const Py_ssize_t[::1] order, Py_ssize_t n, int n_threads=1):
    """Sample sets of several mixtures from their random numbers, with their own
    log-densities there and their coefficients ``theta``.

    What :meth:`leitmotiv.mixture.Mixture.sample` computes from the same numbers:
    mixture ``c`` owns components ``offsets[c]:offsets[c + 1]`` and rows
    ``c n:(c + 1) n`` of ``z``, ``order`` and the outputs.  Of its rows of ``z`` the
    first ``counts`` of its first component belong to that component, and so on; its
    sample ``i`` is ``mu_k + L_k z_s`` with ``s = order[c n + i]`` and ``k`` the
    component of row ``s``.  The coefficients are those of :func:`leitmotiv._ext.divergence.coefficient_rows`
    (the same numbers, transposed) and the log-densities those of
    :func:`leitmotiv._ext.divergence.log_density_matrix` for the mixture alone (the same tiles and products), so
    that a mixture compared with an identical one gives exactly zero.

    Parameters
    ----------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, d)
    covariances : ndarray, shape (K, d, d)
        Factorized as in :func:`leitmotiv._ext.divergence.coefficient_rows`.
    offsets : ndarray of intp, shape (C + 1,)
    counts : ndarray of intp, shape (K,)
        Samples per component, ``n`` per mixture in all.
    z : ndarray, shape (C n, d)
        Standard normal numbers.
    order : ndarray of intp, shape (C n,)
        A permutation of ``0 .. n - 1`` per mixture.
    n : int
        Samples per mixture.
    n_threads : int

    Returns
    -------
    samples : ndarray, shape (C n, d)
    own_log_pdf : ndarray, shape (C n,)
    theta : ndarray, shape (F, K)

    Raises
    ------
    ValueError
        If a covariance is not positive definite even with the jitter, or the samples
        are not finite.
    """
    cdef Py_ssize_t K = means.shape[0], d = means.shape[1], C = offsets.shape[0] - 1
    cdef Py_ssize_t F = feature_count(d), c, k, i, s, j, r, f, total, kmax = 1
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    _check_offsets(offsets, K)
    _check_threads(n_threads)
    if covariances.shape[0] != K or covariances.shape[1] != d or covariances.shape[2] != d \
            or weights.shape[0] != K or counts.shape[0] != K or z.shape[0] != C * n \
            or z.shape[1] != d or order.shape[0] != C * n:
        raise ValueError("inconsistent shapes in draw_samples")
    # Validated here, with the GIL, so that the parallel loop can trust every index.
    for c in range(C):
        total = 0
        for k in range(offsets[c], offsets[c + 1]):
            if counts[k] < 0:
                raise ValueError("negative component count")
            total += counts[k]
        if total != n:
            raise ValueError("component counts must add up to n per mixture")
        kmax = max(kmax, offsets[c + 1] - offsets[c])
    # Each mixture's slice of order must be a permutation: a repeated index would leave
    # some sample unwritten (and the scatter below reads every one).
    if C and not np.array_equal(
        np.sort(np.asarray(order).reshape(C, n), axis=1), np.broadcast_to(np.arange(n), (C, n))
    ):
        raise ValueError("order must be a permutation of 0 .. n - 1 for each mixture")
    samples_arr = np.empty((C * n, d), dtype=np.float64)
    own_arr = np.empty(C * n, dtype=np.float64)
    theta_arr = np.empty((F, K), dtype=np.float64)
    failed_arr = np.zeros(K, dtype=np.uint8)
    if C == 0:
        return samples_arr, own_arr, theta_arr
    cdef double[:, ::1] X = samples_arr
    cdef double[::1] own = own_arr
    cdef double[:, ::1] theta = theta_arr
    cdef unsigned char[::1] failed = failed_arr
    cdef double[::1] log_k_arr = _log_counts(offsets)
    cdef const double *log_k = &log_k_arr[0]
    cdef Py_ssize_t bs = 64, k0, kc, s0, ns
    cdef int bad
    cdef double acc
    cdef double *L
    cdef double *Lk
    cdef double *W
    cdef double *row
    cdef double *phi
    cdef double *g
    cdef double *lq
    cdef double *mx
    cdef Py_ssize_t *label
    cdef Py_ssize_t *inverse
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        L = <double *> malloc((kmax * d * d + 2 * d * d + F + bs * (F + kmax + 2)) * sizeof(double))
        W = L + kmax * d * d
        row = W + 2 * d * d
        phi = row + F
        g = phi + bs * F
        lq = g + bs * kmax
        mx = lq + bs
        label = <Py_ssize_t *> malloc(2 * n * sizeof(Py_ssize_t))
        inverse = label + n
        if L == NULL or label == NULL:
            no_memory_p[0] = 1
        for c in prange(C, schedule="dynamic"):
            if L == NULL or label == NULL:
                continue
            k0 = offsets[c]
            kc = offsets[c + 1] - k0
            bad = 0
            for k in range(kc):
                if cholesky_jittered(&covariances[k0 + k, 0, 0], d, L + k * d * d) != 0:
                    failed[k0 + k] = 1
                    bad = 1
            if bad:  # raised below
                continue
            s = 0
            for k in range(kc):
                log_density_row(L + k * d * d, &means[k0 + k, 0], weights[k0 + k], d, W, row)
                for f in range(F):
                    theta[f, k0 + k] = row[f]
                for j in range(counts[k0 + k]):
                    label[s + j] = k
                s = s + counts[k0 + k]
            # Row s of z becomes sample i with order[i] = s: reading z in order and
            # scattering the samples is faster than gathering the rows of z.
            for i in range(n):
                inverse[order[c * n + i]] = i
            for s in range(n):
                Lk = L + label[s] * d * d
                i = c * n + inverse[s]
                for r in range(d):
                    acc = 0.0
                    for j in range(r + 1):
                        acc = acc + Lk[r * d + j] * z[c * n + s, j]
                    X[i, r] = means[k0 + label[s], r] + acc
            s0 = 0
            while s0 < n:
                ns = min(bs, n - s0)
                for i in range(ns):
                    features(&X[c * n + s0 + i, 0], d, phi + i * F)
                gemm_tile(&theta[0, k0], K, kc, phi, F, ns, g, bs)
                lm_lse_columns(g, bs, ns, &offsets[0], c, c + 1, log_k, NULL, 0.0, mx, lq,
                               NULL, NULL)
                for i in range(ns):
                    own[c * n + s0 + i] = lq[i]
                s0 = s0 + bs
        free(label)
        free(L)
    if no_memory:
        _raise_no_memory("draw_samples")
    _raise_not_positive_definite(failed_arr)
    _check_finite(samples_arr, "samples")
    _check_finite(theta_arr, "coefficients")
    return samples_arr, own_arr, theta_arr
