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

cdef extern from *:
    """
    #include <math.h>
    #include <stdint.h>
    #include <string.h>

    /* Log-sum-exp of segments of a row of component terms, the hot loop.

       exp is evaluated by our own branch-free routine so that the loops vectorize;
       libm's exp is a scalar call and was most of the run time.  It expects x <= 0
       (terms shifted by their maximum) and clamps at -60, since exp(-60) ~ 9e-27 is far
       below the rounding of a sum whose largest term is 1.  Cody-Waite reduction
       x = k ln2 + r with |r| <= ln2/2, the degree-13 Taylor polynomial of exp(r)
       (truncation error < 1e-17 relative) and a scale by 2^k assembled from the
       exponent bits; accuracy is a few ulp.  The max and sum reductions use OpenMP simd
       pragmas, which allow vectorizing them without -ffast-math.  On GCC/x86-64/Linux
       the function is also compiled for AVX2 and AVX-512 and the best version is picked
       when the module loads. */
    #if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
    #define LM_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
    #else
    #define LM_CLONES
    #endif

    static inline double lm_exp_nonpositive(double xin) {
        const double log2e = 1.4426950408889634;
        const double ln2_hi = 6.93147180369123816490e-01;
        const double ln2_lo = 1.90821492927058770002e-10;
        const double shifter = 6755399441055744.0;  /* 1.5 * 2^52: adding it rounds */
        const uint64_t clamp_bits = 0xC04E000000000000ULL;  /* -60.0 */
        int64_t shifter_bits;
        memcpy(&shifter_bits, &shifter, sizeof shifter_bits);
        /* Clamp on the bit pattern: for non-positive doubles a larger unsigned pattern
           is a more negative number (-inf the largest).  A floating-point select here
           stopped GCC from vectorizing. */
        uint64_t xb;
        double x;
        memcpy(&xb, &xin, sizeof xb);
        xb = xb > clamp_bits ? clamp_bits : xb;
        memcpy(&x, &xb, sizeof x);
        double t = x * log2e + shifter;
        double k = t - shifter;
        double r = (x - k * ln2_hi) - k * ln2_lo;
        double p = 1.0 / 6227020800.0;
        p = p * r + 1.0 / 479001600.0;
        p = p * r + 1.0 / 39916800.0;
        p = p * r + 1.0 / 3628800.0;
        p = p * r + 1.0 / 362880.0;
        p = p * r + 1.0 / 40320.0;
        p = p * r + 1.0 / 5040.0;
        p = p * r + 1.0 / 720.0;
        p = p * r + 1.0 / 120.0;
        p = p * r + 1.0 / 24.0;
        p = p * r + 1.0 / 6.0;
        p = p * r + 0.5;
        p = p * r + 1.0;
        p = p * r + 1.0;
        int64_t tb;
        memcpy(&tb, &t, sizeof tb);
        int64_t sb = (tb - shifter_bits + 1023) << 52;
        double scale;
        memcpy(&scale, &sb, sizeof scale);
        return p * scale;
    }

    /* out[c - c0] = log(sum(exp(row[offsets[c] - offsets[c0] : offsets[c+1] - offsets[c0]])))
       for c0 <= c < c1; rows of all -inf give -inf. */
    LM_CLONES
    static void lm_lse_segments(const double *row, const Py_ssize_t *offsets,
                                Py_ssize_t c0, Py_ssize_t c1, double *out) {
        const Py_ssize_t k0 = offsets[c0];
        for (Py_ssize_t c = c0; c < c1; c++) {
            const Py_ssize_t a = offsets[c] - k0, b = offsets[c + 1] - k0;
            double m = -INFINITY;
            #pragma omp simd reduction(max:m)
            for (Py_ssize_t j = a; j < b; j++) {
                m = row[j] > m ? row[j] : m;
            }
            if (!(m > -INFINITY && m < INFINITY)) {
                out[c - c0] = m;  /* nothing finite to shift by: -inf, inf or nan */
                continue;
            }
            double s = 0.0;
            #pragma omp simd reduction(+:s)
            for (Py_ssize_t j = a; j < b; j++) {
                s += lm_exp_nonpositive(row[j] - m);
            }
            out[c - c0] = m + log(s);
        }
    }
    """
    void lm_lse_segments(const double *row, const Py_ssize_t *offsets, Py_ssize_t c0,
                         Py_ssize_t c1, double *out) noexcept nogil

cdef double LN2 = 0.6931471805599453

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
                lm_lse_segments(g + i * Ktot, &offsets[0], 0, C, &out[s0 + i, 0])
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
    cdef double *lqs
    cdef double lq, lp, t, dlt, sp
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc(bs * kbuf * sizeof(double))
        ts = <double *> malloc(3 * C * sizeof(double))
        tq = ts + C
        lqs = tq + C
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
                    lm_lse_segments(g + i * kb, &offsets[0], c0, c1, lqs)
                    for cc in range(c0, c1):
                        lq = lqs[cc - c0]
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
