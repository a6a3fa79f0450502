# Checks at the Python boundary of the kernels, included by mixture.pyx and
# divergence.pyx: what the parallel loops (bounds checking off) trust is validated here,
# with the GIL, and a failed allocation of work space becomes a MemoryError.

cdef double[::1] _log_counts(const Py_ssize_t[::1] offsets):
    """log K_c of every mixture (at least one component each)."""
    out = np.empty(max(offsets.shape[0] - 1, 0), dtype=np.float64)
    cdef double[::1] view = out
    if out.size and log_counts(&offsets[0], out.size, &view[0]) != 0:
        raise ValueError("every mixture needs at least one component")
    return view


def _check_finite(a, what):
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{what} must be finite")


def _check_offsets(offsets, Py_ssize_t total):
    """Offsets of mixtures' components: from 0 to ``total``, never decreasing."""
    o = np.asarray(offsets)
    if o.size < 1 or o[0] != 0 or o[o.size - 1] != total or np.any(np.diff(o) < 0):
        raise ValueError(f"offsets must rise from 0 to {total}")


def _check_threads(int n_threads):
    if n_threads < 1:
        raise ValueError(f"n_threads must be at least 1, got {n_threads}")


def _raise_no_memory(what):
    raise MemoryError(f"cannot allocate the work space of {what}")


def _raise_not_positive_definite(failed):
    if failed.any():
        raise ValueError(
            f"covariance of component {int(np.flatnonzero(failed)[0])} is not positive definite"
        )
