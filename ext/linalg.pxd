# cython: language_level=3
"""Small dense linear algebra shared by the kernels (vbgmm, mixture, divergence).

Every matrix is a row-major ``d x d`` block of doubles in a raw buffer, small enough
(a photo model is 5-D) that plain loops beat a LAPACK call per matrix.  Everything here
runs without the GIL and never allocates: callers own the buffers (and check their
allocation), so a kernel can call these from its parallel loops.

A Gaussian log-density, and the VB E-step's log-responsibility, are quadratic forms in
``x``: with the quadratic features ``phi(x) = [1, x_i, x_i x_j (i <= j)]`` each is
``phi(x) . theta`` (:func:`quadratic_row` gives ``theta`` but its constant), so the
terms of many components at many samples are one matrix product (:func:`gemm_tile`).
"""

from libc.float cimport DBL_MIN
from libc.math cimport INFINITY, log, sqrt
from scipy.linalg.cython_blas cimport dgemm


cdef inline Py_ssize_t n_features(Py_ssize_t d) noexcept nogil:
    """Number of quadratic features for dimension ``d``: 1 + d + d (d + 1) / 2."""
    return 1 + d + d * (d + 1) // 2


cdef inline void features(const double *x, Py_ssize_t d, double *phi) noexcept nogil:
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


cdef inline int cholesky(const double *a, Py_ssize_t d, double jitter, double *L) noexcept nogil:
    """Lower Cholesky factor of ``(A + A') / 2 + jitter I`` into ``L`` (zeros above).

    Returns 0, or -1 when a pivot is not positive and finite (or nan): not positive
    definite.
    """
    cdef Py_ssize_t i, j, k
    cdef double s, inv
    for j in range(d):
        for i in range(j):
            L[i * d + j] = 0.0
        s = a[j * d + j] + jitter
        for k in range(j):
            s = s - L[j * d + k] * L[j * d + k]
        if not s > 0.0 or s == INFINITY:
            return -1
        L[j * d + j] = sqrt(s)
        inv = 1.0 / L[j * d + j]  # one division per column, not one per entry
        for i in range(j + 1, d):
            s = 0.5 * (a[i * d + j] + a[j * d + i])
            for k in range(j):
                s = s - L[i * d + k] * L[j * d + k]
            L[i * d + j] = s * inv
    return 0


cdef inline int cholesky_jittered(const double *a, Py_ssize_t d, double *L) noexcept nogil:
    """:func:`cholesky`, retried with relative diagonal jitters 1e-14 .. 1e-8 of the mean
    variance (those of :func:`leitmotiv.mixture._cholesky`).

    A covariance that is positive definite in exact arithmetic can fail by rounding
    when it is nearly singular; a tiny diagonal jitter is then the least intrusive
    repair.  Returns 0, or -1 if every attempt failed.
    """
    cdef Py_ssize_t i
    cdef double scale = 0.0
    cdef double jitters[4]
    jitters[0], jitters[1], jitters[2], jitters[3] = 1e-14, 1e-12, 1e-10, 1e-8
    if cholesky(a, d, 0.0, L) == 0:
        return 0
    for i in range(d):
        scale = scale + a[i * d + i]
    scale = scale / d
    if scale < DBL_MIN:
        scale = DBL_MIN
    for i in range(4):
        if cholesky(a, d, jitters[i] * scale, L) == 0:
            return 0
    return -1


cdef inline void lower_inverse(const double *L, Py_ssize_t d, double *W) noexcept nogil:
    """``W = L^{-1}`` of a lower triangular ``L`` with a positive diagonal (forward
    substitution, column by column; zeros above the diagonal)."""
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


cdef inline double quadratic_row(const double *P, const double *mu, double scale, Py_ssize_t d,
                                 double *A, double *row) noexcept nogil:
    """The features' coefficients of ``-scale |P (x - mu)|^2 / 2`` but the constant.

    With ``A = scale P' P`` (``P`` lower triangular, only its lower triangle read) the
    form is ``-x' A x / 2 + (A mu) . x - scale |P mu|^2 / 2``.  Writes ``row[1:]``:
    ``A mu``, then ``-A_ii / 2`` and ``-A_ij`` (``i < j``) row by row, in the order of
    :func:`features`; returns ``|P mu|^2``, so the caller sets ``row[0]`` to its own
    constant minus ``scale |P mu|^2 / 2``.  ``A`` is scratch for ``d x d`` doubles.
    """
    cdef Py_ssize_t i, j, a, f
    cdef double acc, y, quad = 0.0
    for a in range(d):
        y = 0.0
        for j in range(a + 1):
            y = y + P[a * d + j] * mu[j]
        quad = quad + y * y
    for i in range(d):
        for j in range(i, d):
            acc = 0.0
            for a in range(j, d):
                acc = acc + P[a * d + i] * P[a * d + j]
            A[i * d + j] = scale * acc
            A[j * d + i] = scale * acc
    f = 1 + d
    for i in range(d):
        acc = 0.0
        for j in range(d):
            acc = acc + A[i * d + j] * mu[j]
        row[1 + i] = acc
        row[f] = -0.5 * A[i * d + i]
        f = f + 1
        for j in range(i + 1, d):
            row[f] = -A[i * d + j]
            f = f + 1
    return quad


cdef inline int log_density_row(const double *L, const double *mu, double w, Py_ssize_t d,
                                double *W, double *row) noexcept nogil:
    """``theta`` of ``log(w N(x | mu, L L'))`` from the Cholesky factor ``L``.

    ``W`` is scratch for ``2 d x d`` doubles.  A component whose constant is not finite
    (zero weight) gets ``-1e300`` and zeros instead, so that it drops out of every sum:
    a -inf coefficient would turn into nan in a matrix product.  Returns 0, or -1 for
    such a component.
    """
    cdef Py_ssize_t i
    cdef double half_logdet = 0.0, quad, const
    lower_inverse(L, d, W)
    for i in range(d):
        half_logdet = half_logdet + log(L[i * d + i])
    quad = quadratic_row(W, mu, 1.0, d, W + d * d, row)
    const = log(w) - 0.5 * d * 1.8378770664093453 - half_logdet - 0.5 * quad
    if const > -INFINITY and const < INFINITY:
        row[0] = const
        return 0
    for i in range(n_features(d)):
        row[i] = 0.0
    row[0] = -1e300
    return -1


cdef inline void gemm_tile(const double *theta, Py_ssize_t ld_theta, Py_ssize_t kb,
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


cdef inline int log_counts(const Py_ssize_t *offsets, Py_ssize_t C, double *out) noexcept nogil:
    """``out[c] = log K_c``, the log of mixture ``c``'s component count (offsets
    ``C + 1`` long); -1 if some mixture has no component."""
    cdef Py_ssize_t c
    for c in range(C):
        if offsets[c + 1] - offsets[c] < 1:
            return -1
        out[c] = log(<double> (offsets[c + 1] - offsets[c]))
    return 0


cdef inline bint all_finite(const double *a, Py_ssize_t n) noexcept nogil:
    """Whether the ``n`` doubles at ``a`` are all finite."""
    cdef Py_ssize_t i
    for i in range(n):
        if not (a[i] > -INFINITY and a[i] < INFINITY):
            return False
    return True
