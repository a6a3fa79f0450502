# cython: language_level=3
"""Declaration of the column log-sum-exp of ``logsumexp.h``, shared by the mixture
and divergence kernels."""

cdef extern from "logsumexp.h":
    void lm_lse_columns(const double *tile, Py_ssize_t ld, Py_ssize_t ns,
                        const Py_ssize_t *offsets, Py_ssize_t c0, Py_ssize_t c1,
                        const double *log_k, const double *own, double gap, double *mx,
                        double *out, double *tsum, double *tsq) noexcept nogil
