# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Hot loop of the variational-Bayes Gaussian mixture fit.

One pass over the samples does the E-step (Bishop, PRML 2006, eq. 10.46-10.49) and
accumulates the M-step sufficient statistics (eq. 10.51-10.53) of the responsibilities it
has just computed, so the ``(n, K)`` responsibility matrix is never stored.

Both halves are matrix products on tiles of samples.  With the quadratic features
``phi(x) = [1, x_a, x_a x_b (a <= b)]`` the log of the unnormalized responsibility,
``ln rho_nk = log_const_k - nu_k (x - m_k)^T W_k (x - m_k) / 2``, is ``phi(x_n) . theta_k``,
so all components at a tile of samples are one BLAS ``dgemm``; and the raw statistics
``sum_n r_nk phi(x_n)`` (count, first and second moments) of the tile are a second one.
In between, a log-sum-exp over the components runs along the samples (the tile is
component-major), so it vectorizes, with our own branch-free exponential because libm's is
a scalar call.

The samples are cut into a fixed number of contiguous chunks; each chunk owns its own
accumulators and the caller sums them in chunk order afterwards.  The result therefore does
not depend on how many threads ran the chunks, which keeps fits bit-for-bit reproducible
from one machine to the next, and no locks or atomics are needed.
"""

cimport openmp
from cython.parallel cimport parallel, prange
from libc.math cimport log
from libc.stdlib cimport free, malloc
from scipy.linalg.cython_blas cimport dgemm

from linalg cimport cholesky, lower_inverse, quadratic_row
from linalg cimport n_features as feature_count

cdef extern from *:
    """
    #include "fastmath.h"

    /* Responsibilities with exp(ln rho - max) at or below exp(VB_NEGLIGIBLE_LOG) count as
       zero in the normaliser, and normalized ones below VB_NEGLIGIBLE are left out of the
       statistics: both change the sums by less than rounding. */
    #define VB_NEGLIGIBLE_LOG (-36.8)
    #define VB_NEGLIGIBLE 1e-16

    /* exp(x) for x <= 0 where x > VB_NEGLIGIBLE_LOG, else 0 (also for NaN), branch-free
       so that the loops calling it vectorize: the cut is a mask built from the
       magnitude's bit pattern with an integer compare (a floating-point select kept GCC
       from vectorizing without -ffast-math). */
    static inline double vb_exp_negligible(double x) {
        const int64_t limit_bits = 0x4042666666666666LL;  /* -VB_NEGLIGIBLE_LOG = 36.8 */
        uint64_t xb;
        memcpy(&xb, &x, sizeof xb);
        const int64_t mag = (int64_t) (xb & 0x7FFFFFFFFFFFFFFFULL);
        const uint64_t keep = -(uint64_t) (mag < limit_bits);
        double e = lm_exp_nonpositive(-fabs(x));
        uint64_t eb;
        memcpy(&eb, &e, sizeof eb);
        eb &= keep;
        memcpy(&e, &eb, sizeof e);
        return e;
    }

    /* Turn a component-major tile of ln rho (row k = component k, `ns` samples, rows `ld`
       apart) into normalized responsibilities in place, negligible ones set to zero, and
       add sum_s log sum_k rho_ks to *log_norm (sample by sample, in order).  `mx` and `tot`
       are work space for `ns` doubles each. */
    LM_CLONES
    static void vb_normalize_tile(double *g, Py_ssize_t ld, Py_ssize_t ns, Py_ssize_t K,
                                  double *mx, double *tot, double *log_norm) {
        #pragma omp simd
        for (Py_ssize_t s = 0; s < ns; s++) {
            mx[s] = g[s];
            tot[s] = 0.0;
        }
        for (Py_ssize_t k = 1; k < K; k++) {
            const double *row = g + k * ld;
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) mx[s] = row[s] > mx[s] ? row[s] : mx[s];
        }
        for (Py_ssize_t k = 0; k < K; k++) {
            double *row = g + k * ld;
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) {
                const double v = vb_exp_negligible(row[s] - mx[s]);
                row[s] = v;
                tot[s] += v;
            }
        }
        double acc = *log_norm;
        for (Py_ssize_t s = 0; s < ns; s++) {
            acc += mx[s] + log(tot[s]);
        }
        *log_norm = acc;
        #pragma omp simd
        for (Py_ssize_t s = 0; s < ns; s++) tot[s] = 1.0 / tot[s];
        for (Py_ssize_t k = 0; k < K; k++) {
            double *row = g + k * ld;
            #pragma omp simd
            for (Py_ssize_t s = 0; s < ns; s++) {
                const double r = row[s] * tot[s];
                row[s] = r < VB_NEGLIGIBLE ? 0.0 : r;
            }
        }
    }
    """
    void vb_normalize_tile(double *g, Py_ssize_t ld, Py_ssize_t ns, Py_ssize_t K,
                           double *mx, double *tot, double *log_norm) noexcept nogil

# Samples per matrix product: the (K, tile) block of ln rho stays in L1/L2 cache.
cdef Py_ssize_t _TILE = 128


def n_features(Py_ssize_t d):
    """Number of quadratic features for dimension ``d``: 1 + d + d (d + 1) / 2."""
    return feature_count(d)


cdef void _coefficients(const double[:, :, ::1] P, const double[:, ::1] m,
                        const double[::1] nu, const double[::1] log_const,
                        double[:, ::1] theta) noexcept nogil:
    """theta_k with phi(x) . theta_k = log_const_k - nu_k ||P_k (x - m_k)||^2 / 2.

    The constant uses ||P m||^2 directly rather than m^T A m (see
    ``linalg.quadratic_row``).
    """
    cdef Py_ssize_t K = P.shape[0], d = P.shape[1], k
    cdef double quad
    cdef double A[64 * 64]
    for k in range(K):
        quad = quadratic_row(&P[k, 0, 0], &m[k, 0], nu[k], d, A, &theta[k, 0])
        theta[k, 0] = log_const[k] - 0.5 * nu[k] * quad


def estep_stats(
    const double[:, ::1] phi,
    const double[:, :, ::1] prec_chol,
    const double[:, ::1] centres,
    const double[::1] nu,
    const double[::1] log_const,
    double[:, ::1] theta,
    double[:, :, ::1] stats,
    double[::1] log_norm,
    double[::1] counts,
    double[:, ::1] first,
    double[:, :, ::1] second,
    int n_threads,
):
    """Fused E-step and raw sufficient statistics, parallel over chunks of samples.

    Parameters
    ----------
    phi : (n, F) float64
        Quadratic features ``[1, x_a, x_a x_b (a <= b, row-major order)]`` of the samples
        (in the fit's standardized coordinates), ``F = n_features(d)``.
    prec_chol : (K, d, d) float64
        Lower-triangular P_k with W_k = P_k^T P_k, so that
        (x - m_k)^T W_k (x - m_k) = ||P_k (x - m_k)||^2.  Only the lower triangle is read.
    centres : (K, d) float64
        Posterior means m_k.
    nu : (K,) float64
        Degrees of freedom nu_k.
    log_const : (K,) float64
        E[ln pi_k] + E[ln|Lambda_k|]/2 - d ln(2 pi)/2 - d/(2 beta_k).
    theta : (K, F) float64, output
        Coefficients with ``ln rho_nk = phi_n . theta_k`` (PRML eq. 10.46), i.e.
        ``log_const_k - nu_k ||P_k (x_n - m_k)||^2 / 2`` as a quadratic form in ``x_n``.
    stats : (C, K, F) float64, work space
        Per chunk: ``sum_n r_nk phi_n``.  Responsibilities below 1e-16 are left out (they
        change the sums by less than rounding).
    log_norm : (C,) float64, work space
        Per chunk: ``sum_n log sum_k rho_nk``.
    counts : (K,) float64, output
        ``sum_n r_nk``.
    first : (K, d) float64, output
        ``sum_n r_nk x_n``.
    second : (K, d, d) float64, output
        ``sum_n r_nk x_n x_n^T`` (both triangles).
    n_threads : int
        OpenMP threads.

    Returns
    -------
    float
        ``sum_n log sum_k rho_nk``.  All sums over chunks run in chunk order.
    """
    cdef Py_ssize_t n = phi.shape[0]
    cdef Py_ssize_t F = phi.shape[1]
    cdef Py_ssize_t K = prec_chol.shape[0]
    cdef Py_ssize_t d = prec_chol.shape[1]
    cdef Py_ssize_t C = stats.shape[0]
    if d > 64 or F != 1 + d + d * (d + 1) // 2 or prec_chol.shape[2] != d:
        raise ValueError("inconsistent shapes in estep_stats")
    if (centres.shape[0] != K or centres.shape[1] != d or nu.shape[0] != K
            or log_const.shape[0] != K or theta.shape[0] != K or theta.shape[1] != F
            or stats.shape[1] != K or stats.shape[2] != F or log_norm.shape[0] != C
            or counts.shape[0] != K or first.shape[0] != K or first.shape[1] != d
            or second.shape[0] != K or second.shape[1] != d or second.shape[2] != d
            or C < 1 or K < 1):
        raise ValueError("inconsistent shapes in estep_stats")
    cdef Py_ssize_t chunk = (n + C - 1) // C
    cdef Py_ssize_t tile = _TILE if chunk > _TILE else chunk
    cdef Py_ssize_t c, s0, start, stop, ns, k, a, b, f
    cdef double *g
    cdef double one = 1.0, zero = 0.0, total = 0.0, v
    cdef char trans = b"T"
    cdef char notrans = b"N"
    cdef int bm, bn, bk, lda, ldb, ldc

    with nogil:
        _coefficients(prec_chol, centres, nu, log_const, theta)
        stats[:, :, :] = 0.0
        log_norm[:] = 0.0

    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")
    cdef int no_memory = 0
    cdef int *no_memory_p = &no_memory
    if n > 0:
        with nogil, parallel(num_threads=n_threads):
            g = <double *> malloc((K + 2) * tile * sizeof(double))
            if g == NULL:
                no_memory_p[0] = 1
            for c in prange(C, schedule="static"):
                if g == NULL:
                    continue
                start = c * chunk
                stop = start + chunk
                if stop > n:
                    stop = n
                s0 = start
                while s0 < stop:
                    ns = stop - s0
                    if ns > tile:
                        ns = tile
                    # Column-major view: (ns x K) ln rho = phi_tile (ns x F) theta^T
                    # (F x K), stored as the row-major component-major (K, tile) block g.
                    bm = <int> ns
                    bn = <int> K
                    bk = <int> F
                    lda = <int> F
                    ldb = <int> F
                    ldc = <int> tile
                    dgemm(&trans, &notrans, &bm, &bn, &bk, &one, <double *> &phi[s0, 0],
                          &lda, &theta[0, 0], &ldb, &zero, g, &ldc)
                    vb_normalize_tile(g, tile, ns, K, g + K * tile, g + (K + 1) * tile,
                                      &log_norm[c])
                    # Column-major view: stats_c^T (F x K) += phi_tile^T (F x ns) R^T (ns x K).
                    bm = <int> F
                    bn = <int> K
                    bk = <int> ns
                    lda = <int> F
                    ldb = <int> tile
                    ldc = <int> F
                    dgemm(&notrans, &notrans, &bm, &bn, &bk, &one, <double *> &phi[s0, 0],
                          &lda, g, &ldb, &one, &stats[c, 0, 0], &ldc)
                    s0 = s0 + ns
            free(g)
    if no_memory:
        raise MemoryError("cannot allocate the work space of estep_stats")

    with nogil:
        # Chunk sums in chunk order, then unpacked into counts, first and second moments.
        for c in range(1, C):
            log_norm[0] += log_norm[c]
            for k in range(K):
                for f in range(F):
                    stats[0, k, f] += stats[c, k, f]
        total = log_norm[0]
        for k in range(K):
            counts[k] = stats[0, k, 0]
            for a in range(d):
                first[k, a] = stats[0, k, 1 + a]
            f = 1 + d
            for a in range(d):
                for b in range(a, d):
                    v = stats[0, k, f]
                    second[k, a, b] = v
                    second[k, b, a] = v
                    f = f + 1
    return total


def cholesky_inverse(const double[:, :, ::1] A, double[:, :, ::1] P, double[::1] logdet):
    """Inverse Cholesky factors of a stack of small symmetric positive definite matrices.

    For each ``A_k = L_k L_k^T`` (its symmetric part is factorized) writes the
    lower-triangular ``P_k = L_k^{-1}`` (zeros above the diagonal), so that
    ``A_k^{-1} = P_k^T P_k``, and ``logdet[k] = ln |A_k^{-1}| = -2 sum_j ln L_k[j, j]``.
    One call replaces NumPy's batched Cholesky and inverse, whose per-call overhead
    dominates for a few dozen 5 x 5 matrices.

    Returns False (leaving the outputs partly written) if some ``A_k`` is not numerically
    positive definite.
    """
    cdef Py_ssize_t K = A.shape[0], d = A.shape[1]
    cdef Py_ssize_t k, j
    cdef double diag_sum
    cdef double L[64 * 64]
    cdef bint ok = True
    if d > 64 or A.shape[2] != d or P.shape[0] != K or P.shape[1] != d or P.shape[2] != d:
        raise ValueError("inconsistent shapes in cholesky_inverse")
    if logdet.shape[0] != K:
        raise ValueError("inconsistent shapes in cholesky_inverse")
    if d == 0:
        logdet[:] = 0.0
        return True
    with nogil:
        for k in range(K):
            if cholesky(&A[k, 0, 0], d, 0.0, L) != 0:
                ok = False
                break
            diag_sum = 0.0
            for j in range(d):
                diag_sum = diag_sum + log(L[j * d + j])
            logdet[k] = -2.0 * diag_sum
            lower_inverse(L, d, &P[k, 0, 0])
    return ok


def max_threads():
    """OpenMP's thread count for a parallel region (honours ``OMP_NUM_THREADS``)."""
    return openmp.omp_get_max_threads()
