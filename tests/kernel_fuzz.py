"""Random inputs for every public kernel of ``leitmotiv._ext``: none may crash.

Not collected by itself (the name has no ``test_`` prefix): ``test_kernel_inputs.py``
runs this file with pytest in a subprocess, so that a crash of the interpreter (a
segmentation fault in a kernel whose loops run without bounds checking) fails that test
instead of killing the test run.

Each case builds mostly consistent inputs (the shapes one valid call would have) and
then, most of the time, spoils one of them: a wrong length, an index out of range, a
repeated index, a non-finite value, a zero thread count.  A kernel must return or raise
an exception; which exception is not the point here (the reference tests of the kernels
check the results of valid calls).
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leitmotiv._ext import divergence, mixture, vbgmm

FUZZ = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

#: Values a spoiled float array may hold.
ODD = [np.nan, np.inf, -np.inf, 0.0, -1.0, 1e308, -1e308, 1e-320]


def _floats(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.normal(size=shape)


def _spd(rng: np.random.Generator, k: int, d: int) -> np.ndarray:
    a = rng.normal(size=(k, d, d))
    return a @ a.transpose(0, 2, 1) + 0.1 * np.eye(d)


def _spoil(rng: np.random.Generator, arrays: dict[str, np.ndarray], how: int) -> None:
    """Spoil one array in place of the dict: its length, one value, or nothing."""
    if how == 0 or not arrays:
        return
    name = sorted(arrays)[int(rng.integers(len(arrays)))]
    a = arrays[name]
    if how == 1 and a.ndim:  # one entry too many or too few along the first axis
        extra = int(rng.choice([-1, 1]))
        if a.shape[0] + extra >= 0:
            shape = (a.shape[0] + extra, *a.shape[1:])
            arrays[name] = np.resize(a, shape).astype(a.dtype)
    elif how == 2 and a.size:  # one odd value
        flat = a.reshape(-1)
        i = int(rng.integers(flat.size))
        if a.dtype.kind == "f":
            flat[i] = ODD[int(rng.integers(len(ODD)))]
        else:
            flat[i] = int(rng.choice([-1, -(2**40), 2**40, flat[i] + 1, 0]))
    elif how == 3 and a.ndim >= 2:  # a wrong trailing axis
        arrays[name] = np.ascontiguousarray(a[..., :-1]) if a.shape[-1] else a


def _call(kernel, *args):
    try:
        kernel(*args)
    except (ValueError, TypeError, MemoryError, OverflowError, IndexError):
        pass


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 6), st.integers(0, 5), st.integers(0, 3))
def test_mixture_kernels(seed, k, d, how):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(0, 40))
    chol = np.linalg.cholesky(_spd(rng, k, d)) if d else np.zeros((k, 0, 0))
    a = {
        "X": _floats(rng, (n, d)),
        "means": _floats(rng, (k, d)),
        "chol": chol,
        "log_const": _floats(rng, k),
    }
    _spoil(rng, a, how)
    _call(mixture.log_pdf, a["X"], a["means"], a["chol"], a["log_const"])


@FUZZ
@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 4),
    st.integers(1, 5),
    st.integers(1, 30),
    st.integers(0, 3),
    st.booleans(),
)
def test_draw_samples(seed, c, d, n, how, bad_order):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=c)
    k = int(sizes.sum())
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    counts = np.concatenate(
        [rng.multinomial(n, np.full(s, 1 / s)) for s in sizes] or [np.zeros(0, int)]
    ).astype(np.intp)
    order = np.concatenate([rng.permutation(n) for _ in range(c)] or [np.zeros(0, int)])
    if bad_order and order.size:  # a repeated index: once a segmentation fault
        order[int(rng.integers(order.size))] = order[int(rng.integers(order.size))]
    a = {
        "weights": rng.uniform(0.1, 1, k),
        "means": _floats(rng, (k, d)),
        "covariances": _spd(rng, k, d),
        "offsets": offsets,
        "counts": counts,
        "z": _floats(rng, (c * n, d)),
        "order": order.astype(np.intp),
    }
    _spoil(rng, a, how)
    threads = int(rng.choice([0, 1, 2]))
    _call(
        mixture.draw_samples, a["weights"], a["means"], a["covariances"], a["offsets"],
        a["counts"], a["z"], a["order"], n, threads,
    )


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 4), st.integers(0, 4), st.integers(0, 3))
def test_divergence_kernels(seed, c, d, how):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 4, size=c)
    k = int(sizes.sum())
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.intp)
    f = divergence.n_features(d)
    n = int(rng.integers(1, 20))
    r = int(rng.integers(0, 3))
    a = {
        "X": _floats(rng, (r * n, d)),
        "own": _floats(rng, r * n),
        "theta": _floats(rng, (f, k)) * 0.1,
        "offsets": offsets,
        "weights": rng.uniform(0.1, 1, k),
        "means": _floats(rng, (k, d)),
        "covariances": _spd(rng, k, d),
    }
    _spoil(rng, a, how)
    threads = int(rng.choice([0, 1, 2]))
    _call(divergence.log_density_matrix, a["X"], a["theta"], a["offsets"], threads)
    _call(
        divergence.js_half_sums, a["X"], a["own"], n, a["theta"], a["offsets"], threads,
        int(rng.integers(0, 70)), int(rng.integers(0, 8)),
    )
    _call(divergence.coefficient_rows, a["covariances"], a["means"], a["weights"], threads)
    start, stop = sorted(rng.integers(-1, d + 2, size=2).tolist())
    _call(
        divergence.whitened_marginals, a["weights"], a["means"], a["covariances"],
        a["offsets"], start, stop, 1e-6, 1e-12, threads,
    )
    _call(divergence.seed_states, int(rng.integers(0, 2**63)), rng.integers(0, 2**32, 3, np.uint32))


@FUZZ
@given(st.integers(0, 2**32 - 1), st.integers(0, 5), st.integers(0, 5), st.integers(0, 3))
def test_vbgmm_kernels(seed, k, d, how):
    rng = np.random.default_rng(seed)
    f = vbgmm.n_features(d)
    n = int(rng.integers(0, 50))
    chunks = int(rng.integers(0, 5))
    p = np.tril(rng.normal(size=(k, d, d)))
    a = {
        "phi": _floats(rng, (n, f)),
        "prec_chol": p,
        "centres": _floats(rng, (k, d)),
        "nu": rng.uniform(d + 1, 20, k),
        "log_const": _floats(rng, k),
        "theta": np.empty((k, f)),
        "stats": np.empty((chunks, k, f)),
        "log_norm": np.empty(chunks),
        "counts": np.empty(k),
        "first": np.empty((k, d)),
        "second": np.empty((k, d, d)),
        "A": _spd(rng, k, d),
        "P": np.empty((k, d, d)),
        "logdet": np.empty(k),
    }
    _spoil(rng, a, how)
    threads = int(rng.choice([0, 1, 2]))
    _call(
        vbgmm.estep_stats, a["phi"], a["prec_chol"], a["centres"], a["nu"], a["log_const"],
        a["theta"], a["stats"], a["log_norm"], a["counts"], a["first"], a["second"], threads,
    )
    _call(vbgmm.cholesky_inverse, a["A"], a["P"], a["logdet"])
