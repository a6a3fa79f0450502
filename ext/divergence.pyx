# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Kernels for Monte Carlo Jensen–Shannon divergences between Gaussian mixtures.

A weighted Gaussian log-density is a quadratic form in ``x``: with the quadratic
features ``phi(x) = [1, x_i, x_i x_j (i <= j)]`` every component's
``log(w_k N(x | mu_k, Sigma_k))`` equals ``phi(x) . theta_k``.  So the terms of all
components of many mixtures at a block of samples are one matrix product, done here by
BLAS ``dgemm`` on cache-sized tiles from ``nogil`` code, each thread on its own tile,
followed by a per-mixture log-sum-exp.  The tiles are consumed at once (folded into
per-pair sums), so memory stays bounded whatever the number of mixtures.

The tiles are component-major (one row per component, samples along the row), so the
log-sum-exp and the Jensen–Shannon terms are plain loops along the samples that the
compiler vectorizes; the exponential and logarithm inside them are our own branch-free
routines (below) because libm's are scalar calls.  Profiling showed libm exp at over
half of the time before this, the matrix product and the vectorized log-sum-exp now
share most of it about equally.
"""

from cython.parallel cimport parallel, prange
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm

import numpy as np

cdef extern from *:
    """
    #include "fastmath.h"

    /* Log-sum-exp per mixture over a tile laid out component-major: row j of the tile
       holds component (offsets[c0] + j)'s terms at `ns` samples, rows `ld` apart.  All
       loops run along the samples, so they vectorize fully with no horizontal
       reductions or scalar tails (a mixture has only tens of components, but a tile has
       a hundred-odd samples).

       Without `own` (NULL): out[(c - c0) * ld + s] = log(sum_j exp(tile[j][s])) over
       mixture c's rows, for c0 <= c < c1 and every sample s.

       With `own` (ln p at the samples): the log-densities ln q are not stored but folded
       into the Jensen-Shannon half-sums, tsum[c - c0] += sum_s t and
       tsq[c - c0] += sum_s t^2 with t = ln 2 - softplus(ln q - ln p).  If for every sample
       of the tile even the upper bound max + log K_c (log_k[c] = log K_c) is below
       ln p - gap, the exponentials are skipped and the bound stands in for ln q; with
       gap = 45, softplus < 3e-20 there, below half an ulp of ln 2, so t is the same.
       `out` is then scratch for ld doubles per mixture, `mx` for ns doubles.  Terms must
       be finite (or -inf with a finite term per mixture), as the Python side ensures. */
    LM_CLONES
    static void lm_lse_columns(const double *tile, Py_ssize_t ld, Py_ssize_t ns,
                               const Py_ssize_t *offsets, Py_ssize_t c0, Py_ssize_t c1,
                               const double *log_k, const double *own, double gap,
                               double *mx, double *out, double *tsum, double *tsq) {
        const double ln2 = 0.6931471805599453;
        const Py_ssize_t k0 = offsets[c0];
        for (Py_ssize_t c = c0; c < c1; c++) {
            const Py_ssize_t a = offsets[c] - k0, b = offsets[c + 1] - k0;
            double *o = out + (c - c0) * ld;
            const double *row = tile + a * ld;
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) mx[s] = row[s];
            for (Py_ssize_t j = a + 1; j < b; j++) {
                row = tile + j * ld;
                #pragma omp simd
                for (Py_ssize_t s = 0; s < ns; s++) mx[s] = row[s] > mx[s] ? row[s] : mx[s];
            }
            int below = own != NULL;
            for (Py_ssize_t s = 0; s < ns && below; s++) {
                below = mx[s] + log_k[c] < own[s] - gap;
            }
            if (below) {
                #pragma omp simd
                for (Py_ssize_t s = 0; s < ns; s++) o[s] = mx[s] + log_k[c];
            } else {
                #pragma omp simd
                for (Py_ssize_t s = 0; s < ns; s++) o[s] = 0.0;
                for (Py_ssize_t j = a; j < b; j++) {
                    row = tile + j * ld;
                    #pragma omp simd
                    for (Py_ssize_t s = 0; s < ns; s++) {
                        o[s] += lm_exp_nonpositive(row[s] - mx[s]);
                    }
                }
                #pragma omp simd
                for (Py_ssize_t s = 0; s < ns; s++) o[s] = mx[s] + lm_log_positive(o[s]);
            }
            if (own != NULL) {
                double st = 0.0, sq = 0.0;
                #pragma omp simd reduction(+:st, sq)
                for (Py_ssize_t s = 0; s < ns; s++) {
                    /* softplus(d) = max(d, 0) + log1p(exp(-|d|)), log1p via the
                       compensated log(1 + y) + (y - ((1 + y) - 1)) / (1 + y). */
                    const double d = o[s] - own[s];
                    const double y = lm_exp_nonpositive(-fabs(d));
                    const double u = 1.0 + y;
                    const double l1p = lm_log_positive(u) + (y - (u - 1.0)) / u;
                    const double t = ln2 - ((d > 0.0 ? d : 0.0) + l1p);
                    st += t;
                    sq += t * t;
                }
                tsum[c - c0] += st;
                tsq[c - c0] += sq;
            }
        }
    }
    """
    void lm_lse_columns(const double *tile, Py_ssize_t ld, Py_ssize_t ns,
                        const Py_ssize_t *offsets, Py_ssize_t c0, Py_ssize_t c1,
                        const double *log_k, const double *own, double gap, double *mx,
                        double *out, double *tsum, double *tsq) noexcept nogil

cdef double FLOOR_GAP = 45.0


cdef double[::1] _log_counts(const Py_ssize_t[::1] offsets):
    """log K_c of every mixture (at least one component each)."""
    counts = np.diff(np.asarray(offsets)).astype(np.float64)
    if counts.size and counts.min() < 1:
        raise ValueError("every mixture needs at least one component")
    return np.log(counts)

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
                            const double *phi, Py_ssize_t nf, Py_ssize_t ns, double *out,
                            Py_ssize_t ld_out) noexcept nogil:
    """``out[j, s] = theta[:, j] . phi[s, :]``: a component-major tile, rows ``ld_out`` apart.

    In BLAS's column-major terms ``out`` is the (ns x kb) matrix ``phi theta``; ``phi``
    (row-major ns x F) and ``theta`` (row-major F x Ktot) are both read transposed.
    """
    cdef int m = <int> ns, n = <int> kb, k = <int> nf
    cdef int lda = <int> nf, ldb = <int> ld_theta, ldc = <int> ld_out
    cdef double one = 1.0, zero = 0.0
    cdef char trans = b"T"
    dgemm(&trans, &trans, &m, &n, &k, &one, <double *> phi, &lda, <double *> theta, &ldb,
          &zero, out, &ldc)


def _check_finite(a, what):
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be finite")


def log_density_matrix(const double[:, ::1] X, const double[:, ::1] theta,
                       const Py_ssize_t[::1] offsets, int n_threads=1):
    """Log-densities of several mixtures at several samples.

    Parameters
    ----------
    X : ndarray, shape (S, d)
        Finite.
    theta : ndarray, shape (F, Ktot)
        Finite quadratic coefficients of all components, mixture ``c`` owning columns
        ``offsets[c]:offsets[c + 1]`` (at least one each).
    offsets : ndarray of intp, shape (C + 1,)
    n_threads : int

    Returns
    -------
    ndarray, shape (S, C)
    """
    cdef Py_ssize_t S = X.shape[0], d = X.shape[1], F = theta.shape[0]
    cdef Py_ssize_t Ktot = theta.shape[1], C = offsets.shape[0] - 1
    if F != n_features(d) or offsets[C] != Ktot or offsets[0] != 0:
        raise ValueError("inconsistent shapes in log_density_matrix")
    out_arr = np.empty((S, C), dtype=np.float64)
    if S == 0 or C == 0:
        return out_arr
    _check_finite(np.asarray(X), "samples")
    _check_finite(np.asarray(theta), "coefficients")
    cdef double[:, ::1] out = out_arr
    cdef double[::1] log_k_arr = _log_counts(offsets)
    cdef const double *log_k = &log_k_arr[0]
    cdef Py_ssize_t bs = 64, nblocks = (S + bs - 1) // bs
    cdef Py_ssize_t b, s0, s1, i, c
    cdef double *phi
    cdef double *g
    cdef double *lq
    cdef double *mx
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc(bs * (Ktot + C + 1) * sizeof(double))
        lq = g + bs * Ktot
        mx = lq + bs * C
        for b in prange(nblocks, schedule="dynamic"):
            s0 = b * bs
            s1 = s0 + bs
            if s1 > S:
                s1 = S
            for i in range(s0, s1):
                _features(&X[i, 0], d, phi + (i - s0) * F)
            _gemm_tile(&theta[0, 0], Ktot, Ktot, phi, F, s1 - s0, g, bs)
            lm_lse_columns(g, bs, s1 - s0, &offsets[0], 0, C, log_k, NULL, 0.0, mx, lq,
                           NULL, NULL)
            for i in range(s1 - s0):
                for c in range(C):
                    out[s0 + i, c] = lq[c * bs + i]
        free(g)
        free(phi)
    return out_arr


def js_half_sums(const double[:, ::1] X, const double[::1] own, Py_ssize_t n,
                 const double[:, ::1] theta, const Py_ssize_t[::1] offsets,
                 int n_threads=1, Py_ssize_t block_samples=64,
                 Py_ssize_t block_components=512):
    """Per-pair sums of one half of the Jensen–Shannon integrand.

    Row mixture ``r`` owns the samples ``X[r n:(r + 1) n]`` drawn from it, with its own
    log-density ``own``.  For every row ``r`` and column mixture ``c`` this accumulates
    over those samples ``t = ln p_r - ln m = ln 2 - softplus(ln p_c - ln p_r)``, with
    ``m = (p_r + p_c) / 2``, and ``t**2`` (for the standard error).

    Parameters
    ----------
    X : ndarray, shape (R n, d)
        Finite.
    own : ndarray, shape (R n,)
    n : int
        Samples per row mixture.
    theta : ndarray, shape (F, Ktot)
        Finite.
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
    if F != n_features(d) or offsets[C] != Ktot or offsets[0] != 0:
        raise ValueError("inconsistent shapes in js_half_sums")
    if block_samples < 1 or block_components < 1:
        raise ValueError("block sizes must be positive")
    cdef Py_ssize_t R = S // n
    sums_arr = np.zeros((R, C), dtype=np.float64)
    sumsq_arr = np.zeros((R, C), dtype=np.float64)
    if R == 0 or C == 0:
        return sums_arr, sumsq_arr
    _check_finite(np.asarray(X), "samples")
    _check_finite(np.asarray(own), "own log-densities")
    _check_finite(np.asarray(theta), "coefficients")
    cdef double[:, ::1] sums = sums_arr
    cdef double[:, ::1] sumsq = sumsq_arr
    cdef double[::1] log_k_arr = _log_counts(offsets)
    cdef const double *log_k = &log_k_arr[0]

    # Column blocks: consecutive mixtures with about block_components components in all.
    cblocks = [0]
    cdef Py_ssize_t c, acc = 0, kbuf = 0, cmax = 0
    for c in range(C):
        if acc > 0 and acc + offsets[c + 1] - offsets[c] > block_components:
            cblocks.append(c)
            acc = 0
        acc += offsets[c + 1] - offsets[c]
    cblocks.append(C)
    cdef Py_ssize_t[::1] cb = np.asarray(cblocks, dtype=np.intp)
    cdef Py_ssize_t ncb = cb.shape[0] - 1
    for c in range(ncb):
        kbuf = max(kbuf, offsets[cb[c + 1]] - offsets[cb[c]])
        cmax = max(cmax, cb[c + 1] - cb[c])
    cdef Py_ssize_t bs = block_samples if block_samples < n else n
    cdef Py_ssize_t ntasks = R * ncb

    cdef Py_ssize_t task, r, jb, c0, c1, k0, kb, s, s0, s1, ns, i, cc
    cdef double *phi
    cdef double *g
    cdef double *ts
    cdef double *tq
    cdef double *lqs
    cdef double *mx
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc((bs * (kbuf + cmax + 2) + 2 * cmax) * sizeof(double))
        lqs = g + bs * kbuf
        mx = lqs + bs * cmax
        ts = mx + bs
        tq = ts + cmax
        for task in prange(ntasks, schedule="dynamic"):
            # Task = (row mixture, column block); tasks write disjoint output entries.
            r = task // ncb
            jb = task % ncb
            c0 = cb[jb]
            c1 = cb[jb + 1]
            k0 = offsets[c0]
            kb = offsets[c1] - k0
            for cc in range(c1 - c0):
                ts[cc] = 0.0
                tq[cc] = 0.0
            for s in range((n + bs - 1) // bs):
                s0 = r * n + s * bs
                s1 = s0 + bs
                if s1 > (r + 1) * n:
                    s1 = (r + 1) * n
                ns = s1 - s0
                for i in range(ns):
                    _features(&X[s0 + i, 0], d, phi + i * F)
                _gemm_tile(&theta[0, k0], Ktot, kb, phi, F, ns, g, bs)
                lm_lse_columns(g, bs, ns, &offsets[0], c0, c1, log_k, &own[s0], FLOOR_GAP, mx,
                               lqs, ts, tq)
            for cc in range(c1 - c0):
                sums[r, c0 + cc] = ts[cc]
                sumsq[r, c0 + cc] = tq[cc]
        free(g)
        free(phi)
    return sums_arr, sumsq_arr
