"""Jensen–Shannon divergence between Gaussian mixtures, by Monte Carlo.

``JS(p, q) = 1/2 E_p[ln p - ln m] + 1/2 E_q[ln q - ln m]`` with ``m = (p + q) / 2``, in
nats, so ``0 <= JS <= ln 2``.  Its square root is a metric; the library stores
``sqrt(JS)``, which :func:`js_distance_matrix` returns (or take ``np.sqrt`` of
:func:`js_matrix` yourself).

Common random numbers
---------------------
Every mixture is sampled once per ``(n_samples, seed)``: the samples and the mixture's
own log-density at them are kept in a per-mixture cache (:class:`PreparedMixture`, see
:func:`prepare`), bounded in total by :data:`PREPARED_BUDGET` bytes (least recently
used sets go first, to be drawn again identically if needed).  A pair then costs only the two cross
log-densities, ``JS(p, p)`` is exactly zero, and every entry of :func:`js_matrix`
equals the corresponding :func:`js_divergence`.  The random stream of a mixture is
seeded by ``seed`` together with a checksum of the mixture's parameters, so it is
reproducible across processes and distinct mixtures get independent samples (which
the standard error assumes).  Drawing the sets of many mixtures at once
(:func:`prepare_many`) gives the same sets several times faster.

Sample sets
-----------
A set is not ``n`` independent draws: its component counts are stratified
(:func:`stratified_counts`) and its normals are a digitally shifted Sobol sequence
(:func:`shifted_normals`), randomized quasi-Monte Carlo.  The estimate stays unbiased
and, on the photo models of the shared sets, its error at the default's sample counts
is about 0.55–0.75 of what independent samples give per term, 0.67 for the distance
(``benchmarks/sampling_error.py``).

Speed
-----
All log-densities are evaluated as quadratic forms ``phi(x) . theta_k`` (see
:mod:`leitmotiv._ext.divergence`): one BLAS matrix product per tile of samples and
components, laid out component-major so that the per-mixture log-sum-exp, the
exponentials and logarithms (our own vectorizable routines, accurate to a few ulp) and
the Jensen–Shannon terms all run as SIMD loops along the samples.  Each tile is folded
into per-pair sums at once, so memory stays bounded, and tiles are spread over threads
(BLAS itself is kept single-threaded meanwhile).  A mixture whose density at a whole
tile of samples is below ``e^-45`` times the sampled mixture's contributes exactly
``ln 2`` per sample and skips its exponentials.  The expansion is evaluated in the
mixture's model coordinates, which are standardized for photo models; far from the
origin relative to component widths it loses a little precision compared with
:meth:`Mixture.log_pdf`.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
import zlib
from collections import OrderedDict, deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
from numpy.random.bit_generator import ISeedSequence
from scipy.special import ndtri
from threadpoolctl import ThreadpoolController

from leitmotiv._ext import divergence as _kernels
from leitmotiv._ext import mixture as _sampling
from leitmotiv.mixture import Mixture

LN2 = float(np.log(2.0))

__all__ = [
    "JSEstimate",
    "PreparedMixture",
    "adopt",
    "js_cross",
    "js_cross_chosen",
    "js_distance_matrix",
    "js_divergence",
    "js_divergence_with_error",
    "js_matrix",
    "js_matrix_chosen",
    "js_matrix_moved",
    "js_one_to_many",
    "log_density_matrix",
    "prepare",
    "prepare_many",
    "prepared",
    "quadratic_coefficients",
]


def quadratic_coefficients(mixture: Mixture) -> np.ndarray:
    """Coefficients ``theta``, shape (F, K), with ``log(w_k N(x|k)) = phi(x) . theta_k``.

    ``phi(x) = [1, x_i, x_i x_j (i <= j)]``.  With precision ``P = Sigma^{-1}``:
    constant ``log w - d/2 log 2 pi - 1/2 log det Sigma - 1/2 mu' P mu``, linear ``P mu``,
    square terms ``-P_ii / 2`` and cross terms ``-P_ij`` (``i < j``, counted once).
    Zero-weight components get the constant ``-1e300`` and zeros elsewhere.
    """
    return _coefficient_rows([mixture])[0]


def _coefficient_rows(mixtures: Sequence[Mixture]) -> list[np.ndarray]:
    """``theta`` of each of ``mixtures`` (all of one dimension) from one kernel call.

    The covariances are factorized in the kernel, as :attr:`Mixture.cholesky` does but
    without its per-mixture calls (the factors may differ from LAPACK's in the last
    bits).  One thread: a few microseconds per mixture, and the callers may be running
    in a thread pool already.
    """
    rows = _kernels.coefficient_rows(
        np.concatenate([m.covariances for m in mixtures]),
        np.concatenate([m.means for m in mixtures]),
        np.concatenate([m.weights for m in mixtures]),
    )
    bounds = np.cumsum([0] + [m.n_components for m in mixtures]).tolist()
    return [np.ascontiguousarray(rows[a:b].T) for a, b in itertools.pairwise(bounds)]


@cache
def _controller() -> ThreadpoolController:
    # Discovering the loaded BLAS libraries takes about a millisecond, far more than a
    # single pair costs, so it is done once; the scipy BLAS our kernels call is loaded
    # by the time this runs (the extension imports it).
    return ThreadpoolController()


def one_blas_thread():
    """Context keeping BLAS single-threaded: our own threads each run one tile."""
    return _controller().limit(limits=1, user_api="blas")


def n_threads(n_jobs: int) -> int:
    """Threads for ``n_jobs``: -1 all usable cores, -2 all but one, 0 or None one."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every platform
        cpus = os.cpu_count() or 1
    if n_jobs is None or n_jobs == 0:
        return 1
    if n_jobs < 0:
        return max(1, cpus + 1 + n_jobs)
    return int(n_jobs)


def _stack_theta(mixtures: Sequence[Mixture]) -> tuple[np.ndarray, np.ndarray]:
    """The cached ``theta`` of all ``mixtures`` side by side, shape (F, sum K), and the
    column offsets of each; missing ones are computed together first."""
    fresh = [m for m in dict.fromkeys(mixtures) if m not in _THETA]
    for d in {m.dim for m in fresh}:
        group = [m for m in fresh if m.dim == d]
        # Chunks bound the stacked covariances of a large batch.
        for start in range(0, len(group), _THETA_CHUNK):
            chunk = group[start : start + _THETA_CHUNK]
            for m, theta in zip(chunk, _coefficient_rows(chunk), strict=True):
                theta.flags.writeable = False
                _THETA[m] = theta
    thetas = [_THETA[m] for m in mixtures]
    offsets = np.zeros(len(thetas) + 1, dtype=np.intp)
    offsets[1:] = np.cumsum([t.shape[1] for t in thetas])
    return np.ascontiguousarray(np.concatenate(thetas, axis=1)), offsets


def log_density_matrix(X: np.ndarray, mixtures: Sequence[Mixture], n_jobs: int = -1) -> np.ndarray:
    """Log-densities of every mixture at every sample, shape (len(X), len(mixtures)).

    The same quadratic-form evaluation the divergences use; exposed for checking it
    against :meth:`Mixture.log_pdf`.
    """
    mixtures = list(mixtures)
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected samples of shape (n, d), got {X.shape}")
    _check_dims(mixtures, X.shape[1])
    if not mixtures:
        return np.empty((X.shape[0], 0))
    theta, offsets = _stack_theta(mixtures)
    with one_blas_thread():
        return _kernels.log_density_matrix(X, theta, offsets, n_threads(n_jobs))


@dataclass(frozen=True, eq=False)
class PreparedMixture:
    """A mixture's Monte Carlo sample set and its own log-density there.

    Attributes
    ----------
    samples : ndarray, shape (n_samples, d)
    own_log_pdf : ndarray, shape (n_samples,)
        Evaluated by the same quadratic-form kernel as the cross terms, so that a
        mixture compared with an identical one gives exactly zero.
    """

    samples: np.ndarray
    own_log_pdf: np.ndarray


# Per-mixture caches, dropped with the mixture.  Mixture has identity hashing (eq=False),
# so weak keys are exact.
_THETA: weakref.WeakKeyDictionary[Mixture, np.ndarray] = weakref.WeakKeyDictionary()
# Mixtures whose coefficients are computed by one kernel call (a few MB of covariances).
_THETA_CHUNK = 1024
# Samples drawn by one kernel call in prepare_many: small enough to balance the threads,
# large enough to make the per-call costs negligible.
_DRAW_CHUNK_SAMPLES = 1 << 14
_PREPARED: weakref.WeakKeyDictionary[Mixture, dict[tuple[int, int], PreparedMixture]] = (
    weakref.WeakKeyDictionary()
)
# Sample sets kept per mixture; a couple of (n_samples, seed) settings in use at once is
# plenty.
_PREPARED_PER_MIXTURE = 2


def _budget() -> int:
    """An eighth of the machine's memory, at least 1 GiB and at most 8 GiB."""
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not on every platform
        memory = 8 << 30
    return int(min(max(memory // 8, 1 << 30), 8 << 30))


#: Bytes of sample sets kept over all mixtures (about 48 kB per mixture at 1000 samples
#: in 5-D, 14 kB for the cheap estimate of candidate search).  A large library's index
#: touches every photo; this keeps its memory bounded, and as large as the machine
#: allows, since a set evicted and needed again is drawn again.
PREPARED_BUDGET = _budget()

# Least recently used order of the cached sets: (weak mixture, key) -> bytes.
_RECENT: OrderedDict[tuple[weakref.ref, tuple[int, int]], int] = OrderedDict()
_RECENT_BYTES = [0]
_RECENT_LOCK = threading.Lock()


def _remember(mixture: Mixture, key: tuple[int, int], nbytes: int) -> None:
    """Record a new cached set and evict the least recently used beyond the budget."""
    with _RECENT_LOCK:
        _RECENT[(weakref.ref(mixture), key)] = nbytes
        _RECENT_BYTES[0] += nbytes
        while _RECENT_BYTES[0] > PREPARED_BUDGET and len(_RECENT) > 1:
            (ref, old_key), size = _RECENT.popitem(last=False)
            _RECENT_BYTES[0] -= size
            owner = ref()
            if owner is not None:
                _PREPARED.get(owner, {}).pop(old_key, None)


def _forget(mixture: Mixture, key: tuple[int, int]) -> None:
    with _RECENT_LOCK:
        _RECENT_BYTES[0] -= _RECENT.pop((weakref.ref(mixture), key), 0)


def _touch(mixture: Mixture, key: tuple[int, int]) -> None:
    with _RECENT_LOCK:
        entry = (weakref.ref(mixture), key)
        if entry in _RECENT:
            _RECENT.move_to_end(entry)


def _checksum(mixture: Mixture) -> int:
    """CRC-32 of the mixture's parameters: with the seed, the entropy of its stream.

    The generator of ``mixture`` is ``np.random.default_rng([seed, _checksum(mixture)])``
    (see :func:`_random_numbers`), so that distinct mixtures get independent samples.
    """
    # The arrays are C-contiguous, so read in place: the same bytes as tobytes().
    digest = zlib.crc32(mixture.weights)
    digest = zlib.crc32(mixture.means, digest)
    return zlib.crc32(mixture.covariances, digest)


class _SeedWords(ISeedSequence):
    """A seed sequence whose words for a PCG64 were computed beforehand (by
    :func:`leitmotiv._ext.divergence.seed_states`, as ``SeedSequence`` would)."""

    __slots__ = ("words",)

    def __init__(self, words: np.ndarray) -> None:
        self.words = words

    def generate_state(self, n_words: int, dtype=np.uint32) -> np.ndarray:
        if n_words != 4 or dtype is not np.uint64:
            raise ValueError("only the seeding of a PCG64 was computed")
        return self.words


def prepare(mixture: Mixture, n_samples: int = 1000, seed: int = 0) -> PreparedMixture:
    """The cached sample set of ``mixture`` for ``(n_samples, seed)``, drawn on first use."""
    if n_samples < 1:
        raise ValueError("n_samples must be at least 1")
    key = (int(n_samples), int(seed))
    prepared = _PREPARED.get(mixture, {}).get(key)
    if prepared is not None:
        _touch(mixture, key)
        return prepared
    with one_blas_thread():
        drawn = _sampling.draw_samples(*_draw_inputs([mixture], key), 1)
    return _cache([mixture], key, drawn)[0]


def prepared(mixture: Mixture, n_samples: int, seed: int = 0) -> PreparedMixture | None:
    """The sample set of ``mixture`` for ``(n_samples, seed)`` if it is cached; never draws."""
    found = _PREPARED.get(mixture, {}).get((int(n_samples), int(seed)))
    if found is not None:
        _touch(mixture, (int(n_samples), int(seed)))
    return found


def adopt(mixture: Mixture, samples: np.ndarray, own_log_pdf: np.ndarray, seed: int = 0) -> None:
    """Cache a sample set of ``mixture`` kept from an earlier :func:`prepare` (for example
    stored with the photo), so that it is not drawn again.

    The caller vouches that the arrays are what :func:`prepare` returned for this
    mixture, ``len(samples)`` samples and ``seed``.  Writable arrays are copied;
    read-only float64 ones (e.g. views of a stored blob) are kept as they are.
    """

    def frozen(values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64, order="C")
        return values.copy() if values.flags.writeable else values

    samples, own = frozen(samples), frozen(own_log_pdf)
    if samples.ndim != 2 or samples.shape[1] != mixture.dim or own.shape != samples.shape[:1]:
        raise ValueError(
            f"a sample set of a {mixture.dim}-D mixture needs samples (n, {mixture.dim}) "
            f"and n own log-densities, got {samples.shape} and {own.shape}"
        )
    _store(mixture, (len(samples), int(seed)), PreparedMixture(samples, own))


def _store(mixture: Mixture, key: tuple[int, int], prepared: PreparedMixture) -> None:
    """Put a sample set into the per-mixture cache and the memory budget."""
    prepared.samples.flags.writeable = False
    prepared.own_log_pdf.flags.writeable = False
    per = _PREPARED.setdefault(mixture, {})
    if key in per:
        del per[key]
        _forget(mixture, key)
    while len(per) >= _PREPARED_PER_MIXTURE:
        old_key = next(iter(per))
        del per[old_key]
        _forget(mixture, old_key)
    per[key] = prepared
    _remember(mixture, key, prepared.samples.nbytes + prepared.own_log_pdf.nbytes)


#: Bits of the Sobol points' coordinates (scipy's default).
_SOBOL_BITS = 30


@lru_cache(maxsize=32)
def _sobol_points(d: int, n: int) -> np.ndarray:
    """The first ``n`` points of the unscrambled ``d``-dimensional Sobol sequence as
    integers below ``2**_SOBOL_BITS``, shape (n, d), read-only (cached: every sample
    set of that size and dimension shifts the same points; a library uses a handful of
    sizes, and the bound keeps odd requests from piling up)."""
    # Imported here: scipy.stats takes a good part of a second to import, which every
    # command would pay, and this runs once per dimension and size.
    from scipy.stats import qmc

    m = max(int(n - 1).bit_length(), 0)  # 2**m >= n points, a power of two as it wants
    points = qmc.Sobol(d, scramble=False, bits=_SOBOL_BITS).random_base2(m)[:n]
    integers = np.ldexp(points, _SOBOL_BITS).astype(np.uint64)
    integers.flags.writeable = False
    return integers


def stratified_counts(weights: np.ndarray, n: int, u: float) -> np.ndarray:
    """Samples per component by systematic sampling: the points ``(i + u) / n``, ``i <
    n``, counted in the intervals of the weights' cumulative sums.

    Each count is ``n w_k`` rounded down or up, with expectation exactly ``n w_k`` over
    a uniform ``u`` in [0, 1), so the estimator stays unbiased; a multinomial draw
    instead leaves each count a variance of ``n w_k (1 - w_k)``.
    """
    cumulative = np.cumsum(weights / weights.sum())
    cumulative[-1] = 1.0  # rounding must not lose the last sample
    ends = np.floor(n * cumulative + u).astype(np.intp)
    ends[-1] = n
    return np.diff(ends, prepend=0)


def shifted_normals(d: int, n: int, shift: np.ndarray) -> np.ndarray:
    """Standard normal numbers from the Sobol points digitally shifted by ``shift``
    (``d`` integers below ``2**_SOBOL_BITS``): randomized quasi-Monte Carlo.

    XOR with a uniform random shift keeps the points a net (as evenly spread as
    before) and makes each one uniform, so every estimate stays unbiased.  Each point
    is taken at the centre of its cell of side ``2**-_SOBOL_BITS``, so that the normal
    inverse CDF never sees 0; shape (n, d).
    """
    cells = _sobol_points(d, n) ^ shift
    return ndtri(np.ldexp(cells + 0.5, -_SOBOL_BITS))


def _random_numbers(
    mixtures: Sequence[Mixture], key: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The random numbers of the sample sets, for each mixture from its own stream:
    component counts (sum K,), standard normals (M n, d), permutations (M n,).

    The counts are stratified (:func:`stratified_counts`) and the normals are
    randomized quasi-Monte Carlo (:func:`shifted_normals`), taken in order: the first
    ``counts[0]`` for the first component, and so on.  Both cut the Monte Carlo error
    at the same number of samples (see ``benchmarks/sampling_error.py``) and keep
    the estimate unbiased.  The rows are then shuffled, as :meth:`Mixture.sample`
    does.  Each mixture's generator is ``default_rng([seed, _checksum(mixture)])``,
    seeded from words computed in C (a NumPy ``SeedSequence`` costs more than the
    draws of a small set); it draws the systematic offset, the ``d`` shifts and the
    permutation, in that order.
    """
    n, seed = key
    d = mixtures[0].dim
    checksums = np.array([_checksum(m) for m in mixtures], dtype=np.uint32)
    words = _kernels.seed_states(int(seed) & 0xFFFFFFFFFFFFFFFF, checksums)
    counts = np.empty(sum(m.n_components for m in mixtures), dtype=np.intp)
    z = np.empty((len(mixtures) * n, d))
    order = np.tile(np.arange(n, dtype=np.intp), len(mixtures))
    k = 0
    for j, m in enumerate(mixtures):
        rng = np.random.Generator(np.random.PCG64(_SeedWords(words[j])))
        counts[k : k + m.n_components] = stratified_counts(m.weights, n, rng.random())
        shift = rng.integers(0, 1 << _SOBOL_BITS, size=d, dtype=np.uint64)
        z[j * n : (j + 1) * n] = shifted_normals(d, n, shift)
        rng.shuffle(order[j * n : (j + 1) * n])  # what rng.permutation(n) draws
        k += m.n_components
    return counts, z, order


def _draw_inputs(mixtures: Sequence[Mixture], key: tuple[int, int]) -> tuple:
    """The arguments of :func:`leitmotiv._ext.mixture.draw_samples` for ``mixtures``
    (of one dimension), all but its thread count."""
    offsets = np.zeros(len(mixtures) + 1, dtype=np.intp)
    offsets[1:] = np.cumsum([m.n_components for m in mixtures])
    return (
        np.concatenate([m.weights for m in mixtures]),
        np.concatenate([m.means for m in mixtures]),
        np.concatenate([m.covariances for m in mixtures]),
        offsets,
        *_random_numbers(mixtures, key),
        key[0],
    )


def _cache(
    mixtures: Sequence[Mixture], key: tuple[int, int], drawn: tuple[np.ndarray, ...]
) -> list[PreparedMixture]:
    """Cache the sample sets (and missing coefficients) the kernel drew for ``mixtures``."""
    X, own, theta = drawn
    n, k = key[0], 0
    out = []
    for j, m in enumerate(mixtures):
        if m not in _THETA:
            mine = np.ascontiguousarray(theta[:, k : k + m.n_components])
            mine.flags.writeable = False
            _THETA[m] = mine
        k += m.n_components
        # Copies, so that evicting one set frees its memory.
        prepared = PreparedMixture(X[j * n : (j + 1) * n].copy(), own[j * n : (j + 1) * n].copy())
        _store(m, key, prepared)
        out.append(prepared)
    return out


def prepare_many(
    mixtures: Sequence[Mixture], n_samples: int | Sequence[int] = 1000, seed: int = 0
) -> None:
    """Fill the caches of many mixtures at once: the same sample sets as :func:`prepare`.

    Preparing one mixture is mostly fixed overhead of small operations; here the samples,
    their own log-densities and the density coefficients of a chunk of mixtures are one
    kernel call, under one BLAS setting (used before a large batch of pairs, e.g. by
    :meth:`leitmotiv.interfaces.Divergence.warm`).  The random numbers must come
    from one NumPy generator per mixture, calls that hold the GIL most of the time: this
    thread draws those of the next chunk while a worker thread runs the kernel (which
    releases the GIL) on the current one.  More Python threads would only fight over the
    GIL (measured slower).

    Parameters
    ----------
    mixtures : sequence of Mixture
    n_samples : int or sequence of int
        Samples per set, or per mixture.  Chunks are drawn in the order of their first
        mixture in ``mixtures``: interleaving mixtures of large and small sets (a photo
        model and its palette) keeps both threads busy.
    seed : int
    """
    mixtures = list(mixtures)
    sizes = [n_samples] * len(mixtures) if np.ndim(n_samples) == 0 else list(n_samples)
    if len(sizes) != len(mixtures):
        raise ValueError(f"{len(sizes)} sample counts for {len(mixtures)} mixtures")
    if min(sizes, default=1) < 1:
        raise ValueError("n_samples must be at least 1")
    # Position of the first request of each new set, by dimension and key.
    groups: dict[tuple[int, tuple[int, int]], dict[Mixture, int]] = {}
    for i, (m, n) in enumerate(zip(mixtures, sizes, strict=True)):
        key = (int(n), int(seed))
        if key not in _PREPARED.get(m, {}):
            groups.setdefault((m.dim, key), {}).setdefault(m, i)
    chunks = []
    for (_, key), todo in groups.items():
        size = max(1, _DRAW_CHUNK_SAMPLES // key[0])
        members = list(todo.items())
        for start in range(0, len(members), size):
            part = members[start : start + size]
            chunks.append((part[0][1], [m for m, _ in part], key))
    if not chunks:
        return
    chunks.sort(key=lambda chunk: chunk[0])
    drawing: deque[tuple[list[Mixture], tuple[int, int], Future]] = deque()

    def cache_oldest() -> None:
        chunk, key, future = drawing.popleft()
        _cache(chunk, key, future.result())

    with one_blas_thread(), ThreadPoolExecutor(1) as worker:
        for _, chunk, key in chunks:
            future = worker.submit(_sampling.draw_samples, *_draw_inputs(chunk, key), 1)
            drawing.append((chunk, key, future))
            if len(drawing) > 1:  # one chunk ahead at most, so memory stays bounded
                cache_oldest()
        while drawing:
            cache_oldest()


def _check_dims(mixtures: Sequence[Mixture], d: int | None = None) -> None:
    dims = {m.dim for m in mixtures}
    if d is not None:
        dims.add(d)
    if len(dims) > 1:
        raise ValueError(f"mixtures of different dimensions: {sorted(dims)}")


def _half(rows, cols, n_samples, seed, n_jobs, variants=None):
    """Sums and sums of squares of ``ln p_r - ln m_rc`` over the samples of each row
    (``cols`` holding every variant of each column when ``variants`` picks one per
    pair, see :func:`leitmotiv._ext.divergence.js_half_sums`)."""
    prepared = [prepare(m, n_samples, seed) for m in rows]
    X = np.ascontiguousarray(np.concatenate([p.samples for p in prepared]))
    own = np.ascontiguousarray(np.concatenate([p.own_log_pdf for p in prepared]))
    theta, offsets = _stack_theta(cols)
    # One BLAS thread per tile: the parallelism is across tiles, in our own threads.
    with one_blas_thread():
        return _kernels.js_half_sums(
            X, own, int(n_samples), theta, offsets, n_threads(n_jobs), variants=variants
        )


@dataclass(frozen=True)
class JSEstimate:
    """A Monte Carlo Jensen–Shannon estimate in nats.

    Attributes
    ----------
    value : float
        Clipped into ``[0, ln 2]``.
    standard_error : float
        Standard error of the unclipped estimate, from the per-sample variances of its
        two independent halves as if the samples were independent; the stratified,
        quasi-random sample sets usually err less than that.
    """

    value: float
    standard_error: float


def _combine(s_pq, q_pq, s_qp, q_qp, n):
    """JS values and standard errors from the two halves' sums (arrays, same shape)."""
    mean_p = s_pq / n
    mean_q = s_qp / n
    value = 0.5 * (mean_p + mean_q)
    if n > 1:
        var_p = np.maximum(q_pq - n * mean_p**2, 0.0) / (n - 1)
        var_q = np.maximum(q_qp - n * mean_q**2, 0.0) / (n - 1)
        se = 0.5 * np.sqrt((var_p + var_q) / n)
    else:
        se = np.full_like(value, np.inf)
    return np.clip(value, 0.0, LN2), se


def _js_cross_with_error(rows, cols, n_samples, seed, n_jobs):
    rows, cols = list(rows), list(cols)
    _check_dims(rows + cols)
    if not rows or not cols:
        z = np.zeros((len(rows), len(cols)))
        return z, z.copy()
    s_rc, q_rc = _half(rows, cols, n_samples, seed, n_jobs)
    s_cr, q_cr = _half(cols, rows, n_samples, seed, n_jobs)
    value, se = _combine(s_rc, q_rc, s_cr.T, q_cr.T, n_samples)
    # Identical objects: the estimator is exactly zero (m = p on both halves).
    same = np.array([[r is c for c in cols] for r in rows], dtype=bool)
    value[same] = 0.0
    se[same] = 0.0
    return value, se


def js_divergence_with_error(
    p: Mixture, q: Mixture, n_samples: int = 1000, seed: int = 0, n_jobs: int = 1
) -> JSEstimate:
    """Monte Carlo Jensen–Shannon divergence with its standard error.

    Parameters
    ----------
    p, q : Mixture
        Of the same dimension.
    n_samples : int
        Samples drawn from each mixture (cached, see :func:`prepare`).
    seed : int
    n_jobs : int
        Threads; -1 for all cores.

    Returns
    -------
    JSEstimate
    """
    value, se = _js_cross_with_error([p], [q], n_samples, seed, n_jobs)
    return JSEstimate(float(value[0, 0]), float(se[0, 0]))


def js_divergence(
    p: Mixture, q: Mixture, n_samples: int = 1000, seed: int = 0, n_jobs: int = 1
) -> float:
    """Monte Carlo Jensen–Shannon divergence in nats, in ``[0, ln 2]``.

    See :func:`js_divergence_with_error` for the parameters.
    """
    return js_divergence_with_error(p, q, n_samples, seed, n_jobs).value


def js_cross(
    rows: Sequence[Mixture],
    cols: Sequence[Mixture],
    n_samples: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> np.ndarray:
    """Jensen–Shannon divergences between every row and every column mixture.

    For incremental indexing: new photos (rows) against the library (columns).  Entries
    equal :func:`js_divergence` of the pair with the same ``n_samples`` and ``seed``.

    Returns
    -------
    ndarray, shape (len(rows), len(cols))
    """
    return _js_cross_with_error(rows, cols, n_samples, seed, n_jobs)[0]


def js_one_to_many(
    q: Mixture,
    mixtures: Sequence[Mixture],
    n_samples: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> np.ndarray:
    """Jensen–Shannon divergences of ``q`` against each of ``mixtures``, shape (M,)."""
    return js_cross([q], mixtures, n_samples, seed, n_jobs)[0]


def js_matrix(
    mixtures: Sequence[Mixture], n_samples: int = 1000, seed: int = 0, n_jobs: int = -1
) -> np.ndarray:
    """All pairwise Jensen–Shannon divergences, in nats.

    Returns
    -------
    ndarray, shape (N, N)
        Symmetric with a zero diagonal; entry ``(i, j)`` equals
        ``js_divergence(mixtures[i], mixtures[j], n_samples, seed)``.
    """
    mixtures = list(mixtures)
    _check_dims(mixtures)
    if not mixtures:
        return np.zeros((0, 0))
    return _symmetric(*_half(mixtures, mixtures, n_samples, seed, n_jobs), n_samples)


def _symmetric(s: np.ndarray, q: np.ndarray, n_samples: int) -> np.ndarray:
    """The JS matrix of a list with itself from its one half's sums (each row's samples
    against every column's mixture): the reversed pair's half is the transpose."""
    value, _ = _combine(s, q, s.T, q.T, n_samples)
    value = 0.5 * (value + value.T)  # exact already; this only removes any doubt
    np.fill_diagonal(value, 0.0)
    return value


def js_matrix_moved(
    mixtures: Sequence[Mixture],
    moved: Sequence[Mixture],
    moved_back: Sequence[Mixture] | None = None,
    n_samples: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> np.ndarray:
    """``JS(p_i, g p_j)`` for every pair, where ``g`` is an isometry of the space.

    Parameters
    ----------
    mixtures : sequence of Mixture
        The ``p_i``.
    moved : sequence of Mixture
        ``g p_j`` for each mixture.
    moved_back : sequence of Mixture, optional
        ``g^-1 p_j``; omit it when ``g`` is its own inverse (a mirror).

    Notes
    -----
    An isometry preserves densities, so the half of the estimate drawn from ``g p_j``
    equals in distribution the half drawn from ``p_j`` against ``g^-1 p_i``: both
    halves come from the row sums of the ``(p, g p)`` and ``(p, g^-1 p)`` sample
    sets, half the work of :func:`js_cross` on the same pair lists.

    Returns
    -------
    ndarray, shape (N, N)
    """
    mixtures, moved = list(mixtures), list(moved)
    back = moved if moved_back is None else list(moved_back)
    if not (len(mixtures) == len(moved) == len(back)):
        raise ValueError("mixtures, moved and moved_back must have the same length")
    _check_dims(mixtures + moved + back)
    if not mixtures:
        return np.zeros((0, 0))
    s_f, q_f = _half(mixtures, moved, n_samples, seed, n_jobs)
    s_b, q_b = (s_f, q_f) if moved_back is None else _half(mixtures, back, n_samples, seed, n_jobs)
    return _combine(s_f, q_f, s_b.T, q_b.T, n_samples)[0]


def js_distance_matrix(
    mixtures: Sequence[Mixture], n_samples: int = 1000, seed: int = 0, n_jobs: int = -1
) -> np.ndarray:
    """``sqrt`` of :func:`js_matrix`: the Jensen–Shannon distance, a metric."""
    return np.sqrt(js_matrix(mixtures, n_samples, seed, n_jobs))


def _variant_index(choice: np.ndarray, shape: tuple[int, int], n_variants: int) -> np.ndarray:
    """``choice`` as a C-contiguous intp array, checked against its pairs and maps."""
    choice = np.ascontiguousarray(choice, dtype=np.intp)
    if choice.shape != shape:
        raise ValueError(f"choice has shape {choice.shape}, expected {shape}")
    if choice.size and (choice.min() < 0 or choice.max() >= n_variants):
        raise ValueError(f"choice must index the {n_variants} maps")
    return choice


def _check_variants(moved: Sequence[Sequence[Mixture]], n: int, what: str) -> None:
    """Check that ``moved`` holds a variant of each of ``n`` mixtures under every map."""
    if len(moved) == 0 or any(len(v) != n for v in moved):
        raise ValueError(f"{what} needs, for at least one map, a variant of every mixture")


def _chosen_variants(
    moved: Sequence[Sequence[Mixture]], choice: np.ndarray
) -> tuple[list[Mixture], np.ndarray]:
    """The variants of the ``C`` mixtures that ``choice`` (shape (R, C)) picks, for the
    kernel: ``W`` slots of ``C`` mixtures, slot after slot (``W`` the most maps any
    one mixture is used under), and each pair's slot, shape (R, C).

    Only the chosen variants are read from ``moved`` (``moved[v][c]``), so a caller may
    move lazily; a slot a mixture does not need repeats one it does."""
    n_maps, n = len(moved), choice.shape[1]
    columns = np.arange(n)
    used = np.zeros((n_maps, n), dtype=bool)
    used[choice, columns[None, :]] = True
    slot_of = np.cumsum(used, axis=0) - 1  # slot of map v for mixture c, where used
    counts = used.sum(axis=0)
    # Each mixture's maps in slot order (used ones first, ascending); past its own
    # maps a slot repeats its first.
    by_slot = np.argsort(~used, axis=0, kind="stable")
    width = int(counts.max()) if n else 1
    flat = []
    for s in range(width):
        maps = np.where(s < counts, by_slot[min(s, n_maps - 1)], by_slot[0])
        flat += [moved[v][c] for c, v in enumerate(maps.tolist())]
    return flat, np.ascontiguousarray(slot_of[choice, columns[None, :]], dtype=np.intp)


def js_cross_chosen(
    rows: Sequence[Mixture],
    cols: Sequence[Mixture],
    moved_cols: Sequence[Sequence[Mixture]],
    moved_rows_back: Sequence[Sequence[Mixture]],
    choice: np.ndarray,
    n_samples: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> np.ndarray:
    """``JS(p_r, g q_c)`` for every pair, with the isometry ``g`` chosen per pair.

    Parameters
    ----------
    rows, cols : sequence of Mixture
        The ``p_r`` and ``q_c``.
    moved_cols : sequence of sequences of Mixture
        ``moved_cols[v][c]`` is ``g_v q_c`` (the ``q_c`` themselves for an identity).
        Only the variants some pair chooses are read, so the inner sequences may move
        their mixtures lazily, on indexing.
    moved_rows_back : sequence of sequences of Mixture
        ``moved_rows_back[v][r]`` is ``g_v^-1 p_r`` (read likewise).
    choice : ndarray of int, shape (R, C)
        The map ``v`` of each pair.

    Notes
    -----
    The cost of one :func:`js_cross`: each half evaluates one variant per pair (an
    isometry preserves densities, so the half drawn from ``g q`` is the half drawn
    from ``q`` against ``g^-1 p``).  A mixture against itself (the same object as its
    chosen variant) is exactly zero, as in :func:`js_cross`.

    Returns
    -------
    ndarray, shape (R, C)
    """
    rows, cols = list(rows), list(cols)
    _check_variants(moved_cols, len(cols), "moved_cols")
    _check_variants(moved_rows_back, len(rows), "moved_rows_back")
    if len(moved_cols) != len(moved_rows_back):
        raise ValueError("moved_cols and moved_rows_back must have the same maps")
    choice = _variant_index(choice, (len(rows), len(cols)), len(moved_cols))
    if not rows or not cols:
        return np.zeros(choice.shape)
    flat_cols, col_slots = _chosen_variants(moved_cols, choice)
    flat_back, row_slots = _chosen_variants(moved_rows_back, np.ascontiguousarray(choice.T))
    _check_dims(rows + cols + flat_cols + flat_back)
    s_rc, q_rc = _half(rows, flat_cols, n_samples, seed, n_jobs, col_slots)
    s_cr, q_cr = _half(cols, flat_back, n_samples, seed, n_jobs, row_slots)
    value, _ = _combine(s_rc, q_rc, s_cr.T, q_cr.T, n_samples)
    n = len(cols)
    same = np.array(
        [[r is flat_cols[s * n + c] for c, s in enumerate(slots)]
         for r, slots in zip(rows, col_slots.tolist(), strict=True)]
    )
    value[same] = 0.0
    return value


def js_matrix_chosen(
    mixtures: Sequence[Mixture],
    moved: Sequence[Sequence[Mixture]],
    inverse: Sequence[int],
    choice: np.ndarray,
    n_samples: int = 1000,
    seed: int = 0,
    n_jobs: int = -1,
) -> np.ndarray:
    """``JS(p_i, g p_j)`` for all pairs, with the isometry ``g`` chosen per pair.

    Parameters
    ----------
    mixtures : sequence of Mixture
        The ``p_i``.
    moved : sequence of sequences of Mixture
        ``moved[v][j]`` is ``g_v p_j``.
    inverse : sequence of int
        ``inverse[v]`` is the map ``g_v^-1`` among them.
    choice : ndarray of int, shape (N, N)
        The map of each pair, consistent: ``choice[j, i] == inverse[choice[i, j]]``.

    Notes
    -----
    Half the work of :func:`js_cross_chosen` of the list with itself: the half of
    ``JS(p_i, g p_j)`` drawn from ``g p_j`` is the half of ``JS(p_j, g^-1 p_i)`` drawn
    from ``p_j``, so one pass over the samples serves both (as in :func:`js_matrix`).

    Returns
    -------
    ndarray, shape (N, N)
        Symmetric, zero diagonal.
    """
    mixtures = list(mixtures)
    _check_variants(moved, len(mixtures), "moved")
    flat = [m for v in moved for m in v]
    n_maps = len(moved)
    inverse = np.asarray(inverse, dtype=np.intp)
    if inverse.shape != (n_maps,) or not np.array_equal(inverse[inverse], np.arange(n_maps)):
        raise ValueError("inverse must map each of the maps to its inverse among them")
    choice = _variant_index(choice, (len(mixtures), len(mixtures)), n_maps)
    if not np.array_equal(choice.T, inverse[choice]):
        raise ValueError("choice must pick the inverse map for the reversed pair")
    _check_dims(mixtures + flat)
    if not mixtures:
        return np.zeros((0, 0))
    return _symmetric(*_half(mixtures, flat, n_samples, seed, n_jobs, choice), n_samples)
