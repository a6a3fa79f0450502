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

Per-mixture preparations are here too, for many mixtures per call and in parallel over
them: the coefficients ``theta`` from the covariances and the whitened colour marginals
of photo models (the sample sets themselves are drawn by ``mixture.pyx``).  Per mixture
these are small loops, where the cost of a NumPy call each would dominate.  The linear
algebra is shared with the other kernels (``linalg.pxd``), and so is the log-sum-exp
(``logsumexp.h``).

Every public function checks its inputs (shapes, index ranges, finiteness) with the
GIL before its parallel loops trust them, and raises MemoryError when a work buffer
cannot be allocated.
"""

from cython.parallel cimport parallel, prange
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc

from linalg cimport (
    cholesky,
    cholesky_jittered,
    features,
    gemm_tile,
    log_counts,
    log_density_row,
    lower_inverse,
)
from linalg cimport n_features as feature_count
from logsumexp cimport lm_lse_columns

import numpy as np


cdef double FLOOR_GAP = 45.0


include "checks.pxi"


def n_features(Py_ssize_t d):
    """Number of quadratic features for dimension ``d``: 1 + d + d (d + 1) / 2."""
    return feature_count(d)


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
    _check_offsets(offsets, Ktot)
    _check_threads(n_threads)
    if F != feature_count(d):
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
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc(bs * (Ktot + C + 1) * sizeof(double))
        if phi == NULL or g == NULL:
            no_memory_p[0] = 1
        lq = g + bs * Ktot
        mx = lq + bs * C
        for b in prange(nblocks, schedule="dynamic"):
            if phi == NULL or g == NULL:
                continue
            s0 = b * bs
            s1 = s0 + bs
            if s1 > S:
                s1 = S
            for i in range(s0, s1):
                features(&X[i, 0], d, phi + (i - s0) * F)
            gemm_tile(&theta[0, 0], Ktot, Ktot, phi, F, s1 - s0, g, bs)
            lm_lse_columns(g, bs, s1 - s0, &offsets[0], 0, C, log_k, NULL, 0.0, mx, lq,
                           NULL, NULL)
            for i in range(s1 - s0):
                for c in range(C):
                    out[s0 + i, c] = lq[c * bs + i]
        free(g)
        free(phi)
    if no_memory:
        _raise_no_memory("log_density_matrix")
    return out_arr


def js_half_sums(const double[:, ::1] X, const double[::1] own, Py_ssize_t n,
                 const double[:, ::1] theta, const Py_ssize_t[::1] offsets,
                 int n_threads=1, Py_ssize_t block_samples=64,
                 Py_ssize_t block_components=512, variants=None):
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
    variants : ndarray of intp, shape (R, C), optional
        A column per pair: ``theta`` and ``offsets`` then hold ``V`` variants of each
        of the ``C`` columns (variant ``v`` of column ``c`` is mixture ``v C + c``, with
        as many components as variant 0), and row ``r`` meets variant
        ``variants[r, c]`` of column ``c``.

    Returns
    -------
    sums, sumsq : ndarray, shape (R, C)
    """
    cdef Py_ssize_t S = X.shape[0], d = X.shape[1], F = theta.shape[0]
    cdef Py_ssize_t Ktot = theta.shape[1], C = offsets.shape[0] - 1
    cdef Py_ssize_t V = 1, v
    if n <= 0 or S % n != 0 or own.shape[0] != S:
        raise ValueError("samples must come in equal groups of n per row mixture")
    _check_offsets(offsets, Ktot)
    _check_threads(n_threads)
    if F != feature_count(d):
        raise ValueError("inconsistent shapes in js_half_sums")
    if block_samples < 1 or block_components < 1:
        raise ValueError("block sizes must be positive")
    cdef Py_ssize_t R = S // n
    cdef const Py_ssize_t[:, ::1] chosen
    cdef bint by_pair = variants is not None
    if by_pair:
        chosen = variants
        if chosen.shape[0] != R or chosen.shape[1] < 1 or C % chosen.shape[1] != 0:
            raise ValueError("variants must have a row per row mixture and divide the columns")
        V = C // chosen.shape[1]
        C = chosen.shape[1]
        counts = np.diff(np.asarray(offsets)).reshape(V, C)
        if not (counts == counts[0]).all():
            raise ValueError("the variants of a column must have its number of components")
        if R and (np.asarray(chosen).min() < 0 or np.asarray(chosen).max() >= V):
            raise ValueError(f"variants must lie in [0, {V})")
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
    cdef Py_ssize_t f, a, count
    cdef double *phi
    cdef double *g
    cdef double *ts
    cdef double *tq
    cdef double *lqs
    cdef double *mx
    cdef double *picked
    cdef const double *tile_theta
    cdef Py_ssize_t tile_ld
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        phi = <double *> malloc(bs * F * sizeof(double))
        g = <double *> malloc((bs * (kbuf + cmax + 2) + 2 * cmax + F * kbuf) * sizeof(double))
        if phi == NULL or g == NULL:
            no_memory_p[0] = 1
        picked = g + bs * (kbuf + cmax + 2) + 2 * cmax
        lqs = g + bs * kbuf
        mx = lqs + bs * cmax
        ts = mx + bs
        tq = ts + cmax
        for task in prange(ntasks, schedule="dynamic"):
            if phi == NULL or g == NULL:
                continue
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
            tile_theta = &theta[0, k0]
            tile_ld = Ktot
            if by_pair:
                # This row's variant of each column, gathered into one contiguous tile
                # laid out like variant 0 (whose offsets the log-sum-exp reads).
                for cc in range(c1 - c0):
                    v = chosen[r, c0 + cc]
                    a = offsets[v * C + c0 + cc]
                    count = offsets[c0 + cc + 1] - offsets[c0 + cc]
                    for f in range(F):
                        for i in range(count):
                            picked[f * kb + offsets[c0 + cc] - k0 + i] = theta[f, a + i]
                tile_theta = picked
                tile_ld = kb
            for s in range((n + bs - 1) // bs):
                s0 = r * n + s * bs
                s1 = s0 + bs
                if s1 > (r + 1) * n:
                    s1 = (r + 1) * n
                ns = s1 - s0
                for i in range(ns):
                    features(&X[s0 + i, 0], d, phi + i * F)
                gemm_tile(tile_theta, tile_ld, kb, phi, F, ns, g, bs)
                lm_lse_columns(g, bs, ns, &offsets[0], c0, c1, log_k, &own[s0], FLOOR_GAP, mx,
                               lqs, ts, tq)
            for cc in range(c1 - c0):
                sums[r, c0 + cc] = ts[cc]
                sumsq[r, c0 + cc] = tq[cc]
        free(g)
        free(phi)
    if no_memory:
        _raise_no_memory("js_half_sums")
    return sums_arr, sumsq_arr


# ------------------------------------------------------- per-mixture preparations

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
    cdef Py_ssize_t K = means.shape[0], d = means.shape[1], F = feature_count(d)
    if covariances.shape[0] != K or covariances.shape[1] != d or covariances.shape[2] != d \
            or weights.shape[0] != K:
        raise ValueError("inconsistent shapes in coefficient_rows")
    _check_threads(n_threads)
    rows_arr = np.empty((K, F), dtype=np.float64)
    failed_arr = np.zeros(K, dtype=np.uint8)
    if K == 0:
        return rows_arr
    cdef double[:, ::1] rows = rows_arr
    cdef unsigned char[::1] failed = failed_arr
    cdef Py_ssize_t k
    cdef double *L
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        # L, then the scratch of log_density_row; +1 so that d = 0 allocates too.
        L = <double *> malloc((3 * d * d + 1) * sizeof(double))
        if L == NULL:
            no_memory_p[0] = 1
        for k in prange(K, schedule="static"):
            if L == NULL:
                continue
            if cholesky_jittered(&covariances[k, 0, 0], d, L) == 0:
                log_density_row(L, &means[k, 0], weights[k], d, L + d * d, &rows[k, 0])
            else:
                failed[k] = 1
        free(L)
    if no_memory:
        _raise_no_memory("coefficient_rows")
    _raise_not_positive_definite(failed_arr)
    return rows_arr


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
            or weights.shape[0] != K or not 0 <= start < stop <= d:
        raise ValueError("inconsistent shapes in whitened_marginals")
    _check_offsets(offsets, K)
    _check_threads(n_threads)
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
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    with nogil, parallel(num_threads=n_threads):
        buf = <double *> malloc((m + 4 * m * m) * sizeof(double))
        if buf == NULL:
            no_memory_p[0] = 1
        mean = buf
        S = mean + m
        L = S + m * m
        W = L + m * m
        T = W + m * m
        for c in prange(C, schedule="static"):
            if buf == NULL:
                continue
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
            if cholesky(S, m, 0.0, L) != 0:
                failed[c] = 1
            else:
                lower_inverse(L, m, W)
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
    if no_memory:
        _raise_no_memory("whitened_marginals")
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
