# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Log-density of a Gaussian mixture from per-component Cholesky factors.

The Python side (:class:`leitmotiv.mixture.Mixture`) factorizes each covariance once,
``Sigma_k = L_k L_k^T``, and hands over the factors together with the per-component
constant ``log w_k - d/2 log(2 pi) - sum(log diag L_k)``.  Here every sample is
whitened by forward substitution against each factor and the component terms are
combined with a max-shifted log-sum-exp, so nothing overflows and far-away
components underflow harmlessly to zero.
"""

cimport openmp
from cython.parallel cimport parallel, prange
from libc.math cimport INFINITY, exp, log
from libc.stdlib cimport free, malloc

import numpy as np


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
    if means.shape[1] != d or chol.shape[0] != K or log_const.shape[0] != K:
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
    with nogil, parallel(num_threads=n_threads):
        # Per-thread scratch: K component terms and one whitened vector.
        buf = <double *> malloc((K + d) * sizeof(double))
        y = buf + K
        for i in prange(n, schedule="static"):
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
    return out_arr
