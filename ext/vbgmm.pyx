# cython: boundscheck=False, wraparound=False, cdivision=True, language_level=3
"""Hot loop of the variational-Bayes Gaussian mixture fit.

One pass over the samples does the E-step (Bishop, PRML 2006, eq. 10.46-10.49) and
accumulates the M-step sufficient statistics (eq. 10.51-10.53) of the responsibilities it
has just computed, so the ``(n, K)`` responsibility matrix is never stored.

The samples are cut into a fixed number of contiguous chunks; each chunk owns its own
accumulators and the caller sums them in chunk order afterwards.  The result therefore does
not depend on how many threads ran the chunks, which keeps fits bit-for-bit reproducible
from one machine to the next, and no locks or atomics are needed.
"""

cimport openmp
from cython.parallel cimport prange
from libc.math cimport exp, log

# Responsibilities with exp(log rho - max) below this are treated as zero: their
# contribution to the log normaliser and to the statistics is below double rounding.
cdef double _NEGLIGIBLE_LOG = -36.8
cdef double _NEGLIGIBLE = 1e-16


def estep_stats(
    const double[:, ::1] X,
    const double[:, ::1] centres,
    const double[:, :, ::1] prec_chol,
    const double[:, ::1] prec_centre,
    const double[::1] log_const,
    const double[::1] nu,
    double[:, ::1] counts,
    double[:, :, ::1] first,
    double[:, :, :, ::1] second,
    double[::1] log_norm,
    double[:, ::1] scratch,
    double[:, ::1] dev,
    int n_threads,
):
    """Fused E-step and sufficient statistics, parallel over chunks of samples.

    Parameters
    ----------
    X : (n, d) float64
        Samples (in the fit's standardized coordinates).
    centres : (K, d) float64
        Posterior means m_k; the statistics are centred on them for accuracy.
    prec_chol : (K, d, d) float64
        Lower-triangular P_k with W_k = P_k^T P_k, so that
        (x - m_k)^T W_k (x - m_k) = ||P_k (x - m_k)||^2.  Only the lower triangle is read.
    prec_centre : (K, d) float64
        P_k m_k (lower triangle of P_k only).
    log_const : (K,) float64
        E[ln pi_k] + E[ln|Lambda_k|]/2 - d ln(2 pi)/2 - d/(2 beta_k).
    nu : (K,) float64
        Degrees of freedom nu_k.
    counts : (C, K) float64, output
        Per chunk: sum_n r_nk.
    first : (C, K, d) float64, output
        Per chunk: sum_n r_nk (x_n - m_k).
    second : (C, K, d, d) float64, output
        Per chunk: sum_n r_nk (x_n - m_k)(x_n - m_k)^T, lower triangle only.
    log_norm : (C,) float64, output
        Per chunk: sum_n log sum_k rho_nk.  Responsibilities below 1e-16 are left out of the
        statistics (they change them by less than rounding).
    scratch : (C, K) float64
        Work space for ln rho of the current sample.
    dev : (C, d) float64
        Work space for x_n - m_k.
    n_threads : int
        OpenMP threads.
    """
    cdef Py_ssize_t n = X.shape[0]
    cdef Py_ssize_t d = X.shape[1]
    cdef Py_ssize_t K = centres.shape[0]
    cdef Py_ssize_t C = counts.shape[0]
    cdef Py_ssize_t chunk = (n + C - 1) // C
    cdef Py_ssize_t c, i, k, a, b, start, stop
    cdef double maha, y, best, total, inv_total, r, dev_a

    if d > 64:
        raise ValueError("estep_stats supports at most 64 dimensions")

    counts[:, :] = 0.0
    first[:, :, :] = 0.0
    second[:, :, :, :] = 0.0
    log_norm[:] = 0.0

    for c in prange(C, nogil=True, schedule="static", num_threads=n_threads):
        start = c * chunk
        stop = start + chunk
        if stop > n:
            stop = n
        for i in range(start, stop):
            # ln rho_nk (eq. 10.46) with the Mahalanobis term as a triangular product.
            best = -1e300
            for k in range(K):
                # P_k (x - m_k) = P_k x - P_k m_k saves a subtraction per matrix entry.
                maha = 0.0
                for a in range(d):
                    y = -prec_centre[k, a]
                    for b in range(a + 1):
                        y = y + prec_chol[k, a, b] * X[i, b]
                    maha = maha + y * y
                r = log_const[k] - 0.5 * nu[k] * maha
                scratch[c, k] = r
                if r > best:
                    best = r
            # Log-sum-exp; scratch now holds exp(ln rho - max), one exp per pair.
            total = 0.0
            for k in range(K):
                r = scratch[c, k] - best
                if r > _NEGLIGIBLE_LOG:
                    r = exp(r)
                else:
                    r = 0.0
                scratch[c, k] = r
                total = total + r
            log_norm[c] += best + log(total)
            inv_total = 1.0 / total
            # Normalized responsibilities (eq. 10.49) straight into the statistics.
            for k in range(K):
                r = scratch[c, k] * inv_total
                if r < _NEGLIGIBLE:
                    continue
                counts[c, k] += r
                for a in range(d):
                    dev[c, a] = X[i, a] - centres[k, a]
                for a in range(d):
                    dev_a = dev[c, a]
                    first[c, k, a] += r * dev_a
                    dev_a = r * dev_a
                    for b in range(a + 1):
                        second[c, k, a, b] += dev_a * dev[c, b]


def max_threads():
    """OpenMP's thread count for a parallel region (honours ``OMP_NUM_THREADS``)."""
    return openmp.omp_get_max_threads()
