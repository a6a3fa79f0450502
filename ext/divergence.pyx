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

The sample sets are prepared here too, for many mixtures per call and in parallel over
them: the coefficients ``theta`` from the covariances, the samples from random numbers
drawn per mixture by NumPy (so the streams are NumPy's) together with their own
log-densities, and the whitened colour marginals of photo models.  Per mixture these are
small loops, where the cost of a NumPy call each would dominate.
"""

from cython.parallel cimport parallel, prange
from libc.float cimport DBL_MIN
from libc.math cimport isfinite, log, sqrt
from libc.stdint cimport uint32_t, uint64_t
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
cdef double LOG_2PI = 1.8378770664093453
# Relative diagonal jitters tried, in turn, on a covariance whose factorization fails
# by rounding (see _cholesky_jittered).
cdef double[4] JITTERS = [1e-14, 1e-12, 1e-10, 1e-8]


cdef double[::1] _log_counts(const Py_ssize_t[::1] offsets):
    """log K_c of every mixture (at least one component each)."""
    counts = np.diff(np.asarray(offsets)).astype(np.float64)
    if counts.size and counts.min() < 1:
        raise ValueError("every mixture needs at least one component")
    return np.log(counts)

cpdef Py_ssize_t n_features(Py_ssize_t d) noexcept nogil:
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


# ---------------------------------------------------------------- sample sets

cdef int _cholesky(const double *a, Py_ssize_t d, double jitter, double *L) noexcept nogil:
    """Lower Cholesky factor of ``(A + A') / 2 + jitter I`` into ``L`` (row-major d x d).

    Returns 0, or -1 when a pivot is not positive (or nan): not positive definite.
    """
    cdef Py_ssize_t i, j, k
    cdef double s, inv
    for j in range(d):
        for i in range(j):
            L[i * d + j] = 0.0
        s = a[j * d + j] + jitter
        for k in range(j):
            s = s - L[j * d + k] * L[j * d + k]
        if not s > 0.0:
            return -1
        L[j * d + j] = sqrt(s)
        inv = 1.0 / L[j * d + j]  # one division per column, not one per entry
        for i in range(j + 1, d):
            s = 0.5 * (a[i * d + j] + a[j * d + i])
            for k in range(j):
                s = s - L[i * d + k] * L[j * d + k]
            L[i * d + j] = s * inv
    return 0


cdef int _cholesky_jittered(const double *a, Py_ssize_t d, double *L) noexcept nogil:
    """:func:`_cholesky`, retried with the jitters of :func:`leitmotiv.mixture._cholesky`.

    A covariance that is positive definite in exact arithmetic can fail by rounding
    when it is nearly singular; a diagonal jitter of a tiny fraction of its mean
    variance is then the least intrusive repair.
    """
    cdef Py_ssize_t i, r
    cdef double scale = 0.0
    if _cholesky(a, d, 0.0, L) == 0:
        return 0
    for i in range(d):
        scale = scale + a[i * d + i]
    scale = scale / d
    if scale < DBL_MIN:
        scale = DBL_MIN
    for r in range(4):
        if _cholesky(a, d, JITTERS[r] * scale, L) == 0:
            return 0
    return -1


cdef void _lower_inverse(const double *L, Py_ssize_t d, double *W) noexcept nogil:
    """``W = L^{-1}`` of a lower triangular ``L`` with a positive diagonal (forward
    substitution, column by column)."""
    cdef Py_ssize_t i, j, k
    cdef double s
    for i in range(d):
        W[i * d + i] = 1.0 / L[i * d + i]
    for j in range(d):
        for i in range(j):
            W[i * d + j] = 0.0
        for i in range(j + 1, d):
            s = 0.0
            for k in range(j, i):
                s = s + L[i * d + k] * W[k * d + j]
            W[i * d + j] = -s * W[i * d + i]


cdef void _coefficient_row(const double *L, const double *mu, double w, Py_ssize_t d,
                           double *W, double *row) noexcept nogil:
    """``theta`` of one component from its Cholesky factor ``L`` (``W`` is scratch, d x d).

    With ``P = L^{-T} L^{-1}``: ``[log w - d/2 log 2 pi - sum log L_ii - mu' P mu / 2,
    P mu, -P_ii / 2 and -P_ij (i < j) row by row]``.  A component whose constant is not
    finite (zero weight) gets ``-1e300`` and zeros instead: a -inf coefficient would
    turn into nan in the matrix product.
    """
    cdef Py_ssize_t i, j, k, f
    cdef double s, half_logdet = 0.0, mu_p_mu = 0.0, const
    _lower_inverse(L, d, W)
    for i in range(d):
        half_logdet = half_logdet + log(L[i * d + i])
    # Upper triangle of P first (into the square-term slots), then P mu from it.
    f = 1 + d
    for i in range(d):
        for j in range(i, d):
            s = 0.0
            for k in range(j, d):
                s = s + W[k * d + i] * W[k * d + j]
            row[f] = s
            f += 1
    for i in range(d):
        s = 0.0
        for j in range(d):
            s = s + row[_upper_slot(i, j, d)] * mu[j]
        row[1 + i] = s
        mu_p_mu = mu_p_mu + mu[i] * s
    f = 1 + d
    for i in range(d):
        for j in range(i, d):
            row[f] = (-0.5 if i == j else -1.0) * row[f]
            f += 1
    const = log(w) - 0.5 * d * LOG_2PI - half_logdet - 0.5 * mu_p_mu
    if isfinite(const):
        row[0] = const
    else:
        for f in range(n_features(d)):
            row[f] = 0.0
        row[0] = -1e300


cdef inline Py_ssize_t _upper_slot(Py_ssize_t i, Py_ssize_t j, Py_ssize_t d) noexcept nogil:
    """Index in ``phi`` of the feature ``x_i x_j`` (either order)."""
    if i > j:
        i, j = j, i
    return 1 + d + i * d - i * (i - 1) // 2 + (j - i)


def coefficient_rows(const double[:, :, ::1] covariances, const double[:, ::1] means,
                     const double[::1] weights, int n_threads=1):
    """Quadratic coefficients ``theta`` of stacked Gaussian components, one row each.

    ``log(w_k N(x | mu_k, Sigma_k)) = phi(x) . theta_k`` (see :func:`n_features`).

    Parameters
    ----------
    covariances : ndarray, shape (K, d, d)
        Symmetrized and factorized as :attr:`leitmotiv.mixture.Mixture.cholesky` does,
        with its last-resort jitter.
    means : ndarray, shape (K, d)
    weights : ndarray, shape (K,)
        Components of zero weight get the constant ``-1e300`` and zeros elsewhere, so
        that they drop out of every sum without turning it into nan.
    n_threads : int

    Returns
    -------
    ndarray, shape (K, F)

    Raises
    ------
    ValueError
        If a covariance is not positive definite even with the jitter.
    """
    cdef Py_ssize_t K = means.shape[0], d = means.shape[1], F = n_features(d)
    if covariances.shape[0] != K or covariances.shape[1] != d or covariances.shape[2] != d \
            or weights.shape[0] != K:
        raise ValueError("inconsistent shapes in coefficient_rows")
    rows_arr = np.empty((K, F), dtype=np.float64)
    failed_arr = np.zeros(K, dtype=np.uint8)
    if K == 0:
        return rows_arr
    cdef double[:, ::1] rows = rows_arr
    cdef unsigned char[::1] failed = failed_arr
    cdef Py_ssize_t k
    cdef double *L
    with nogil, parallel(num_threads=n_threads):
        L = <double *> malloc(2 * d * d * sizeof(double))
        for k in prange(K, schedule="static"):
            if _cholesky_jittered(&covariances[k, 0, 0], d, L) == 0:
                _coefficient_row(L, &means[k, 0], weights[k], d, L + d * d, &rows[k, 0])
            else:
                failed[k] = 1
        free(L)
    _raise_not_positive_definite(failed_arr)
    return rows_arr


def _raise_not_positive_definite(failed):
    if failed.any():
        raise ValueError(
            f"covariance of component {int(np.flatnonzero(failed)[0])} is not positive definite"
        )


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
    component of row ``s``.  The coefficients are those of :func:`coefficient_rows`
    (the same numbers, transposed) and the log-densities those of
    :func:`log_density_matrix` for the mixture alone (the same tiles and products), so
    that a mixture compared with an identical one gives exactly zero.

    Parameters
    ----------
    weights : ndarray, shape (K,)
    means : ndarray, shape (K, d)
    covariances : ndarray, shape (K, d, d)
        Factorized as in :func:`coefficient_rows`.
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
    cdef Py_ssize_t F = n_features(d), c, k, i, s, j, r, f, total, kmax = 1
    if covariances.shape[0] != K or covariances.shape[1] != d or covariances.shape[2] != d \
            or weights.shape[0] != K or counts.shape[0] != K or offsets[0] != 0 \
            or offsets[C] != K or z.shape[0] != C * n or z.shape[1] != d \
            or order.shape[0] != C * n or n < 1:
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
    for i in range(C * n):
        if order[i] < 0 or order[i] >= n:
            raise ValueError("order must index the samples of its mixture")
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
    with nogil, parallel(num_threads=n_threads):
        L = <double *> malloc((kmax * d * d + d * d + F + bs * (F + kmax + 2)) * sizeof(double))
        W = L + kmax * d * d
        row = W + d * d
        phi = row + F
        g = phi + bs * F
        lq = g + bs * kmax
        mx = lq + bs
        label = <Py_ssize_t *> malloc(2 * n * sizeof(Py_ssize_t))
        inverse = label + n
        for c in prange(C, schedule="dynamic"):
            k0 = offsets[c]
            kc = offsets[c + 1] - k0
            bad = 0
            for k in range(kc):
                if _cholesky_jittered(&covariances[k0 + k, 0, 0], d, L + k * d * d) != 0:
                    failed[k0 + k] = 1
                    bad = 1
            if bad:  # raised below
                continue
            s = 0
            for k in range(kc):
                _coefficient_row(L + k * d * d, &means[k0 + k, 0], weights[k0 + k], d, W, row)
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
                    _features(&X[c * n + s0 + i, 0], d, phi + i * F)
                _gemm_tile(&theta[0, k0], K, kc, phi, F, ns, g, bs)
                lm_lse_columns(g, bs, ns, &offsets[0], c, c + 1, log_k, NULL, 0.0, mx, lq,
                               NULL, NULL)
                for i in range(ns):
                    own[c * n + s0 + i] = lq[i]
                s0 = s0 + bs
        free(label)
        free(L)
    _raise_not_positive_definite(failed_arr)
    _check_finite(samples_arr, "samples")
    _check_finite(theta_arr, "coefficients")
    return samples_arr, own_arr, theta_arr


def whitened_marginals(const double[::1] weights, const double[:, ::1] means,
                       const double[:, :, ::1] covariances, const Py_ssize_t[::1] offsets,
                       Py_ssize_t start, Py_ssize_t stop, double ridge, double floor,
                       int n_threads=1):
    """Marginals of several mixtures over the coordinates ``start:stop``, each whitened.

    Mixture ``c`` owns components ``offsets[c]:offsets[c + 1]``.  Its marginal keeps
    the weights and the matching blocks of the means and covariances; with its mean
    ``m`` and covariance ``S`` (the moments of the whole marginal mixture) it is then
    mapped by ``y -> W (y - m)``, ``W = L^{-1}`` and ``L L' = S + diag(ridge diag(S) +
    floor)``, so that it has zero mean and (up to the ridge) identity covariance.

    Parameters
    ----------
    weights : ndarray, shape (K,)
        Positive; normalized per mixture here.
    means : ndarray, shape (K, d)
    covariances : ndarray, shape (K, d, d)
    offsets : ndarray of intp, shape (C + 1,)
    start, stop : int
        The kept coordinates, ``0 <= start < stop <= d``.
    ridge, floor : float
    n_threads : int

    Returns
    -------
    means : ndarray, shape (K, stop - start)
    covariances : ndarray, shape (K, stop - start, stop - start)
        Exactly symmetric.

    Raises
    ------
    ValueError
        If a ridged covariance is not positive definite (nan parameters).
    """
    cdef Py_ssize_t K = means.shape[0], d = means.shape[1], C = offsets.shape[0] - 1
    cdef Py_ssize_t m = stop - start, c, k, i, j, l
    if covariances.shape[0] != K or covariances.shape[1] != d or covariances.shape[2] != d \
            or weights.shape[0] != K or offsets[0] != 0 or offsets[C] != K \
            or not 0 <= start < stop <= d:
        raise ValueError("inconsistent shapes in whitened_marginals")
    for c in range(C):
        if offsets[c + 1] <= offsets[c]:
            raise ValueError("every mixture needs at least one component")
    means_arr = np.empty((K, m), dtype=np.float64)
    covs_arr = np.empty((K, m, m), dtype=np.float64)
    failed_arr = np.zeros(C, dtype=np.uint8)
    if C == 0:
        return means_arr, covs_arr
    cdef double[:, ::1] out_mu = means_arr
    cdef double[:, :, ::1] out_cov = covs_arr
    cdef unsigned char[::1] failed = failed_arr
    cdef double wsum, w, s
    cdef double *buf
    cdef double *mean
    cdef double *S
    cdef double *L
    cdef double *W
    cdef double *T
    with nogil, parallel(num_threads=n_threads):
        buf = <double *> malloc((m + 4 * m * m) * sizeof(double))
        mean = buf
        S = mean + m
        L = S + m * m
        W = L + m * m
        T = W + m * m
        for c in prange(C, schedule="static"):
            wsum = 0.0
            for k in range(offsets[c], offsets[c + 1]):
                wsum = wsum + weights[k]
            for i in range(m):
                mean[i] = 0.0
                for j in range(m):
                    S[i * m + j] = 0.0
            for k in range(offsets[c], offsets[c + 1]):
                w = weights[k] / wsum
                for i in range(m):
                    mean[i] = mean[i] + w * means[k, start + i]
            for k in range(offsets[c], offsets[c + 1]):
                w = weights[k] / wsum
                for i in range(m):
                    for j in range(i + 1):
                        S[i * m + j] = S[i * m + j] + w * (
                            covariances[k, start + i, start + j]
                            + (means[k, start + i] - mean[i]) * (means[k, start + j] - mean[j])
                        )
            for i in range(m):
                S[i * m + i] = S[i * m + i] + (ridge * S[i * m + i] + floor)
                for j in range(i):
                    S[j * m + i] = S[i * m + j]
            if _cholesky(S, m, 0.0, L) != 0:
                failed[c] = 1
            else:
                _lower_inverse(L, m, W)
                for k in range(offsets[c], offsets[c + 1]):
                    # W (mu - m), and W Sigma W' through T = W Sigma, upper half mirrored.
                    for i in range(m):
                        s = 0.0
                        for j in range(i + 1):
                            s = s + W[i * m + j] * (means[k, start + j] - mean[j])
                        out_mu[k, i] = s
                        for l in range(m):
                            s = 0.0
                            for j in range(i + 1):
                                s = s + W[i * m + j] * covariances[k, start + j, start + l]
                            T[i * m + l] = s
                    for i in range(m):
                        for j in range(i, m):
                            s = 0.0
                            for l in range(j + 1):
                                s = s + T[i * m + l] * W[j * m + l]
                            out_cov[k, i, j] = s
                            out_cov[k, j, i] = s
        free(buf)
    if failed_arr.any():
        raise ValueError(
            f"moments of mixture {int(np.flatnonzero(failed_arr)[0])} are not finite"
        )
    return means_arr, covs_arr


# ------------------------------------------------------------------- seeding

# Constants of NumPy's SeedSequence (numpy/random/bit_generator.pyx).
cdef uint32_t SS_INIT_A = 0x43b0d7e5, SS_MULT_A = 0x931e8875
cdef uint32_t SS_INIT_B = 0x8b51f9dd, SS_MULT_B = 0x58f38ded
cdef uint32_t SS_MIX_L = 0xca01f9dd, SS_MIX_R = 0x4973f715
cdef enum:
    SS_POOL = 4  # words of entropy pool (SeedSequence's default pool_size)


cdef inline uint32_t _hashmix(uint32_t value, uint32_t *hash_const) noexcept nogil:
    value ^= hash_const[0]
    hash_const[0] *= SS_MULT_A
    value *= hash_const[0]
    value ^= value >> 16
    return value


cdef inline uint32_t _mix(uint32_t x, uint32_t y) noexcept nogil:
    cdef uint32_t result = SS_MIX_L * x - SS_MIX_R * y
    result ^= result >> 16
    return result


def seed_states(seed, const uint32_t[::1] checksums):
    """``SeedSequence([seed, checksum]).generate_state(4, np.uint64)`` for many checksums.

    The words that seed a ``numpy.random.PCG64``: NumPy's SeedSequence algorithm (which
    NumPy keeps fixed, since every seeded stream depends on it), in C because building
    the Python objects costs several microseconds per mixture.

    Parameters
    ----------
    seed : int
        Non-negative, below ``2**64``.
    checksums : ndarray of uint32, shape (M,)

    Returns
    -------
    ndarray of uint64, shape (M, 4)
    """
    seed = int(seed)
    if not 0 <= seed < 2**64:
        raise ValueError("seed must be in [0, 2**64)")
    # The entropy words: the seed's 32-bit words, lowest first (one word for 0), then
    # the checksum.
    words = [seed & 0xFFFFFFFF] + ([seed >> 32] if seed >> 32 else [])
    cdef uint32_t[::1] entropy = np.array(words + [0], dtype=np.uint32)
    cdef Py_ssize_t L = entropy.shape[0], M = checksums.shape[0], c, i, j
    states_arr = np.empty((M, 4), dtype=np.uint64)
    cdef uint64_t[:, ::1] states = states_arr
    cdef uint32_t pool[SS_POOL]
    cdef uint32_t state[2 * 4]
    cdef uint32_t hash_const, value
    for c in range(M):
        entropy[L - 1] = checksums[c]
        # SeedSequence.mix_entropy
        hash_const = SS_INIT_A
        for i in range(SS_POOL):
            pool[i] = _hashmix(entropy[i] if i < L else 0, &hash_const)
        for i in range(SS_POOL):
            for j in range(SS_POOL):
                if i != j:
                    pool[j] = _mix(pool[j], _hashmix(pool[i], &hash_const))
        for i in range(SS_POOL, L):
            for j in range(SS_POOL):
                pool[j] = _mix(pool[j], _hashmix(entropy[i], &hash_const))
        # SeedSequence.generate_state(4, np.uint64): eight 32-bit words, little-endian
        # pairs.
        hash_const = SS_INIT_B
        for i in range(8):
            value = pool[i % SS_POOL] ^ hash_const
            hash_const *= SS_MULT_B
            value *= hash_const
            value ^= value >> 16
            state[i] = value
        for i in range(4):
            states[c, i] = state[2 * i] | (<uint64_t> state[2 * i + 1] << 32)
    return states_arr
