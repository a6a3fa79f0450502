"""Tests of the Monte Carlo Jensen–Shannon divergence and its kernels."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from helpers import random_mixture, scipy_log_pdf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.stats import multivariate_normal, norm

import leitmotiv.divergence as divergence_module
from leitmotiv._ext import divergence as kernels
from leitmotiv._ext import mixture as sampling
from leitmotiv.divergence import (
    LN2,
    js_cross,
    js_cross_chosen,
    js_distance_matrix,
    js_divergence,
    js_divergence_with_error,
    js_matrix,
    js_matrix_chosen,
    js_matrix_moved,
    js_one_to_many,
    log_density_matrix,
    prepare,
    quadratic_coefficients,
)
from leitmotiv.mixture import Mixture


def brute_force_js(p, q, n, seed):
    """Plain NumPy/SciPy Monte Carlo estimate with its standard error."""
    halves = []
    for a, b, s in ((p, q, seed), (q, p, seed + 1)):
        x = a.sample(n, s)
        la, lb = scipy_log_pdf(a, x), scipy_log_pdf(b, x)
        halves.append(la - (np.logaddexp(la, lb) - np.log(2)))
    value = 0.5 * (halves[0].mean() + halves[1].mean())
    se = 0.5 * np.sqrt(halves[0].var(ddof=1) / n + halves[1].var(ddof=1) / n)
    return value, se


def exact_js_1d(p, q):
    def f(x, a, b):
        pa, pb = a.pdf(x), b.pdf(x)
        m = 0.5 * (pa + pb)
        return pa * (np.log(pa) - np.log(m)) if pa > 0 else 0.0

    lo = min(p.ppf(1e-15), q.ppf(1e-15))
    hi = max(p.isf(1e-15), q.isf(1e-15))
    kp = integrate.quad(f, lo, hi, args=(p, q), epsabs=1e-13, epsrel=1e-12, limit=500)[0]
    kq = integrate.quad(f, lo, hi, args=(q, p), epsabs=1e-13, epsrel=1e-12, limit=500)[0]
    return 0.5 * (kp + kq)


@pytest.fixture(scope="module")
def mixtures():
    rng = np.random.default_rng(42)
    return [random_mixture(rng, k, 5) for k in (1, 3, 8, 5, 12, 2, 7)]


# ---------------------------------------------------------------------- kernels


def test_quadratic_form_matches_direct_density(mixtures):
    rng = np.random.default_rng(0)
    X = 2.0 * rng.standard_normal((700, 5))  # not a multiple of the tile size
    L = log_density_matrix(X, mixtures)
    assert L.shape == (700, len(mixtures))
    for j, m in enumerate(mixtures):
        np.testing.assert_allclose(L[:, j], m.log_pdf(X), rtol=1e-11, atol=1e-10)
        np.testing.assert_allclose(L[:, j], scipy_log_pdf(m, X), rtol=1e-10, atol=1e-9)


def test_quadratic_coefficients_shape_and_features():
    m = random_mixture(np.random.default_rng(1), 4, 3)
    theta = quadratic_coefficients(m)
    assert theta.shape == (kernels.n_features(3), 4) == (10, 4)
    x = np.array([0.3, -1.2, 2.0])
    phi = np.concatenate([[1.0], x, [x[i] * x[j] for i in range(3) for j in range(i, 3)]])
    comp = [np.log(m.weights[k]) + multivariate_normal(m.means[k], m.covariances[k]).logpdf(x)
            for k in range(4)]
    np.testing.assert_allclose(phi @ theta, comp, rtol=1e-12)


def test_half_sums_independent_of_tiling(mixtures):
    preps = [prepare(m, 300, 3) for m in mixtures]
    X = np.concatenate([p.samples for p in preps])
    own = np.concatenate([p.own_log_pdf for p in preps])
    theta = np.concatenate([quadratic_coefficients(m) for m in mixtures], axis=1)
    offsets = np.concatenate([[0], np.cumsum([m.n_components for m in mixtures])])
    offsets = offsets.astype(np.intp)
    ref = kernels.js_half_sums(X, own, 300, theta, offsets, 1)
    for threads, bs, bc in [(2, 7, 3), (1, 300, 10_000), (2, 64, 13), (2, 1, 1)]:
        got = kernels.js_half_sums(X, own, 300, theta, offsets, threads, bs, bc)
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-12, atol=1e-10)
        np.testing.assert_allclose(got[1], ref[1], rtol=1e-12, atol=1e-10)
    # Direct evaluation of the same sums.
    L = np.column_stack([m.log_pdf(X) for m in mixtures])
    t = np.log(2) - np.logaddexp(0.0, L - own[:, None])
    direct = t.reshape(len(mixtures), 300, len(mixtures)).sum(axis=1)
    np.testing.assert_allclose(ref[0], direct, rtol=1e-9, atol=1e-8)


@settings(max_examples=30, deadline=None)
@given(
    k=st.integers(1, 4), d=st.integers(1, 4), seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.05, 5.0),
)
def test_kernels_property(k, d, seed, scale):
    rng = np.random.default_rng(seed)
    p = random_mixture(rng, k, d, scale=scale, ridge=0.02)
    q = random_mixture(rng, max(1, k - 1), d, scale=scale, ridge=0.02)
    X = scale * rng.standard_normal((37, d))
    L = log_density_matrix(X, [p, q], n_jobs=2)
    np.testing.assert_allclose(L[:, 0], scipy_log_pdf(p, X), rtol=1e-9, atol=1e-8)
    np.testing.assert_allclose(L[:, 1], scipy_log_pdf(q, X), rtol=1e-9, atol=1e-8)
    est = js_divergence_with_error(p, q, n_samples=200, seed=seed % 1000)
    assert 0.0 <= est.value <= LN2 and np.isfinite(est.standard_error)
    assert est.value == js_divergence_with_error(q, p, 200, seed % 1000).value
    assert js_divergence(p, p, 200) == 0.0


# ----------------------------------------------------------------- divergences


def test_self_divergence_is_zero(mixtures):
    for m in mixtures:
        assert js_divergence(m, m) == 0.0
        twin = Mixture(m.weights, m.means, m.covariances)  # equal but another object
        assert abs(js_divergence(m, twin)) < 1e-12
    np.testing.assert_array_equal(np.diag(js_matrix(mixtures, 200)), 0.0)


def test_symmetric_and_bounded(mixtures):
    for p in mixtures[:4]:
        for q in mixtures[2:]:
            a, b = js_divergence(p, q, 500, 1), js_divergence(q, p, 500, 1)
            assert a == pytest.approx(b, abs=1e-15)
            assert 0.0 <= a <= LN2


def test_far_apart_mixtures_reach_ln2():
    p = Mixture(np.ones(1), np.zeros((1, 2)), np.eye(2)[None])
    q = Mixture(np.ones(1), np.full((1, 2), 100.0), np.eye(2)[None])
    est = js_divergence_with_error(p, q, 1000)
    assert est.value == pytest.approx(LN2, abs=1e-12)
    assert est.value <= LN2


def test_agrees_with_brute_force_scipy_estimate():
    rng = np.random.default_rng(11)
    p = random_mixture(rng, 4, 3)
    q = random_mixture(rng, 3, 3)
    est = js_divergence_with_error(p, q, n_samples=4000, seed=2)
    ref, ref_se = brute_force_js(p, q, 200_000, 5)
    assert 0 < est.standard_error < 0.02
    assert abs(est.value - ref) < 3 * np.hypot(est.standard_error, ref_se)


@pytest.mark.parametrize(("mu", "s1", "s2"), [(0.0, 1.0, 1.0), (1.5, 1.0, 0.5), (0.3, 0.2, 3.0)])
def test_single_gaussians_1d_against_quadrature(mu, s1, s2):
    p = Mixture(np.ones(1), np.zeros((1, 1)), np.full((1, 1, 1), s1**2))
    q = Mixture(np.ones(1), np.full((1, 1), mu), np.full((1, 1, 1), s2**2))
    exact = exact_js_1d(norm(0.0, s1), norm(mu, s2))
    est = js_divergence_with_error(p, q, n_samples=20_000, seed=3)
    if exact == 0.0:
        assert est.value < 1e-12
    else:
        assert abs(est.value - exact) < 4 * est.standard_error
        assert abs(est.value - exact) < 0.01


def test_two_gaussian_mixtures_1d_against_quadrature():
    p = Mixture(np.array([0.3, 0.7]), np.array([[-1.0], [1.0]]), np.array([[[0.3]], [[0.5]]]))
    q = Mixture(np.array([0.5, 0.5]), np.array([[-0.5], [2.0]]), np.array([[[1.0]], [[0.2]]]))

    class Pdf:
        def __init__(self, m):
            self.m = m

        def pdf(self, x):
            sd = np.sqrt(self.m.covariances[:, 0, 0])
            return float(self.m.weights @ norm.pdf(x, self.m.means[:, 0], sd))

        def ppf(self, _):
            return -12.0

        def isf(self, _):
            return 12.0

    exact = exact_js_1d(Pdf(p), Pdf(q))
    est = js_divergence_with_error(p, q, n_samples=20_000, seed=4)
    assert abs(est.value - exact) < 4 * est.standard_error


def test_single_gaussians_2d_against_quadrature():
    cp = np.array([[1.0, 0.3], [0.3, 0.5]])
    cq = np.array([[0.6, -0.2], [-0.2, 1.2]])
    mp, mq = np.array([0.0, 0.0]), np.array([0.8, -0.4])
    p = Mixture(np.ones(1), mp[None], cp[None])
    q = Mixture(np.ones(1), mq[None], cq[None])
    dp, dq = multivariate_normal(mp, cp), multivariate_normal(mq, cq)

    def integrand(y, x):
        lp, lq = dp.logpdf([x, y]), dq.logpdf([x, y])
        lm = np.logaddexp(lp, lq) - np.log(2)
        return 0.5 * (np.exp(lp) * (lp - lm) + np.exp(lq) * (lq - lm))

    exact = integrate.dblquad(integrand, -8, 8, -8, 8, epsabs=1e-9, epsrel=1e-7)[0]
    est = js_divergence_with_error(p, q, n_samples=20_000, seed=5)
    assert abs(est.value - exact) < 4 * est.standard_error
    assert abs(est.value - exact) < 0.01


def test_standard_error_shrinks_with_samples():
    rng = np.random.default_rng(9)
    p, q = random_mixture(rng, 3, 2), random_mixture(rng, 3, 2)
    small = js_divergence_with_error(p, q, 500).standard_error
    large = js_divergence_with_error(p, q, 8000).standard_error
    assert large < small / 2.5


def test_matrix_equals_pairwise(mixtures):
    J = js_matrix(mixtures, n_samples=400, seed=7)
    n = len(mixtures)
    assert J.shape == (n, n)
    np.testing.assert_array_equal(J, J.T)
    for i in range(n):
        for j in range(n):
            np.testing.assert_allclose(
                J[i, j], js_divergence(mixtures[i], mixtures[j], 400, 7), rtol=1e-12, atol=1e-14
            )
    np.testing.assert_allclose(js_distance_matrix(mixtures, 400, 7), np.sqrt(J), rtol=1e-15)
    np.testing.assert_allclose(js_matrix(mixtures, 400, 7, n_jobs=1), J, rtol=1e-12, atol=1e-14)


def test_cross_and_one_to_many_consistent_with_matrix(mixtures):
    J = js_matrix(mixtures, n_samples=300, seed=1)
    rows, cols = mixtures[:3], mixtures[2:]
    C = js_cross(rows, cols, n_samples=300, seed=1)
    assert C.shape == (3, len(cols))
    np.testing.assert_allclose(C, J[:3, 2:], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(
        js_one_to_many(mixtures[4], mixtures, n_samples=300, seed=1), J[4], rtol=1e-12,
        atol=1e-14,
    )
    assert js_cross([], cols).shape == (0, len(cols))


def test_different_dimensions_refused():
    rng = np.random.default_rng(0)
    p, q = random_mixture(rng, 2, 2), random_mixture(rng, 2, 3)
    with pytest.raises(ValueError, match="dimension"):
        js_divergence(p, q)
    with pytest.raises(ValueError, match="dimension"):
        js_matrix([p, q])
    with pytest.raises(ValueError, match="dimension"):
        js_cross([p], [q])


def test_near_singular_covariances_give_finite_results():
    rng = np.random.default_rng(4)
    d = 5
    q_, _ = np.linalg.qr(rng.standard_normal((d, d)))
    thin = q_ @ np.diag([1.0, 0.3, 1e-4, 1e-6, 1e-8]) @ q_.T
    p = Mixture(np.array([0.5, 0.5]), rng.standard_normal((2, d)), np.stack([thin, np.eye(d)]))
    q = random_mixture(rng, 3, d)
    J = js_matrix([p, q, Mixture(np.ones(1), np.zeros((1, d)), thin[None])], 500)
    assert np.all(np.isfinite(J)) and np.all((J >= 0) & (J <= LN2))
    # The quadratic form stays accurate enough against the Cholesky evaluation.
    X = p.sample(500, 0)
    np.testing.assert_allclose(log_density_matrix(X, [p])[:, 0], p.log_pdf(X), rtol=1e-6,
                               atol=1e-5)


def test_zero_weight_component_no_nan():
    p = Mixture(np.array([1.0, 0.0]), np.array([[0.0], [1.0]]), np.ones((2, 1, 1)))
    q = Mixture(np.ones(1), np.ones((1, 1)), np.ones((1, 1, 1)))
    v = js_divergence(p, q, 1000)
    exact = exact_js_1d(norm(0, 1), norm(1, 1))
    assert np.isfinite(v) and abs(v - exact) < 0.02


def test_kernel_exp_and_log_are_accurate():
    """Closed form for a two-component 1-D mixture, across every shift in [-60, 0].

    The kernels use their own vectorized exponential and logarithm; an error as small
    as 1e-12 in them must show here.
    """
    mu = 3.0
    m = Mixture(np.array([0.3, 0.7]), np.array([[0.0], [mu]]), np.ones((2, 1, 1)))
    x = np.linspace(-25.0, 28.0, 4001)[:, None]
    exact = np.logaddexp(np.log(0.3) + norm.logpdf(x[:, 0], 0.0, 1.0),
                         np.log(0.7) + norm.logpdf(x[:, 0], mu, 1.0))
    got = log_density_matrix(x, [m])[:, 0]
    np.testing.assert_allclose(got, exact, rtol=4e-15, atol=3e-13)
    # A spread of magnitudes for the logarithm: sums of many equal components.
    for k in (1, 2, 3, 7, 50, 333):
        flat = Mixture(np.full(k, 1.0 / k), np.zeros((k, 1)), np.ones((k, 1, 1)))
        got = log_density_matrix(x[::40], [flat])[:, 0]
        np.testing.assert_allclose(got, norm.logpdf(x[::40, 0]), rtol=4e-15, atol=3e-13)


def test_sample_caches_stay_within_the_budget_and_evictions_redraw_the_same(monkeypatch):
    rng = np.random.default_rng(7)
    mixtures = [random_mixture(rng, k=3, d=5) for _ in range(40)]
    reference = js_matrix(mixtures[:6], n_samples=500)
    one_set = 500 * 5 * 8 + 500 * 8
    monkeypatch.setattr(divergence_module, "PREPARED_BUDGET", 10 * one_set)
    for m in mixtures:
        divergence_module.prepare(m, 500)
    live = [m for m in mixtures if (500, 0) in divergence_module._PREPARED.get(m, {})]
    assert len(live) <= 10
    assert divergence_module._RECENT_BYTES[0] <= 10 * one_set
    # The first six were evicted; drawn again they give exactly the same divergences.
    assert not any(m in live for m in mixtures[:6])
    np.testing.assert_array_equal(js_matrix(mixtures[:6], n_samples=500), reference)


def test_prepare_many_draws_exactly_what_prepare_draws(monkeypatch):
    from leitmotiv.divergence import prepare_many

    rng = np.random.default_rng(11)
    batch = [random_mixture(rng, k, 5) for k in (1, 4, 9, 2)] + [random_mixture(rng, 3, 2)]
    alone = [Mixture(m.weights, m.means, m.covariances) for m in batch]  # same parameters
    sizes = [300, 120, 300, 300, 120]
    # Small chunks, so that random numbers are drawn ahead of the worker thread.
    monkeypatch.setattr(divergence_module, "_DRAW_CHUNK_SAMPLES", 600)
    prepare_many(batch + batch[:2], sizes + sizes[:2], seed=3)  # duplicates are drawn once
    for m, twin, n in zip(batch, alone, sizes, strict=True):
        got, want = prepare(m, n, seed=3), prepare(twin, n, seed=3)
        np.testing.assert_array_equal(got.samples, want.samples)
        np.testing.assert_array_equal(got.own_log_pdf, want.own_log_pdf)
        np.testing.assert_array_equal(divergence_module._THETA[m], quadratic_coefficients(twin))
    with pytest.raises(ValueError, match="sample counts"):
        prepare_many(batch, sizes[:2])
    with pytest.raises(ValueError, match="at least 1"):
        prepare_many(batch, 0)


def test_preparation_kernels_do_not_depend_on_the_threads():
    rng = np.random.default_rng(14)
    mixtures = [random_mixture(rng, k, 5) for k in (1, 6, 3, 9)]
    inputs = divergence_module._draw_inputs(mixtures, (70, 2))
    one, two = sampling.draw_samples(*inputs, 1), sampling.draw_samples(*inputs, 2)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)
    weights, means, covariances, offsets = inputs[:4]
    np.testing.assert_array_equal(
        kernels.coefficient_rows(covariances, means, weights, 1),
        kernels.coefficient_rows(covariances, means, weights, 2),
    )
    views = [
        kernels.whitened_marginals(weights, means, covariances, offsets, 2, 5, 1e-6, 1e-12, t)
        for t in (1, 2)
    ]
    for a, b in zip(*views, strict=True):
        np.testing.assert_array_equal(a, b)


def test_seed_words_are_those_of_numpy_seed_sequences():
    checksums = np.array([0, 1, 2**32 - 1, 123456789], dtype=np.uint32)
    for seed in (0, 3, 2**32 - 1, 2**32, 2**64 - 1):
        want = [
            np.random.SeedSequence([seed, int(c)]).generate_state(4, np.uint64) for c in checksums
        ]
        np.testing.assert_array_equal(kernels.seed_states(seed, checksums), want)


def _numpy_coefficients(m):
    """``theta`` by the textbook formula, from LAPACK's Cholesky factors."""
    d = m.dim
    chol_inv = np.linalg.solve(m.cholesky, np.broadcast_to(np.eye(d), m.cholesky.shape))
    prec = chol_inv.transpose(0, 2, 1) @ chol_inv
    lin = np.einsum("kij,kj->ki", prec, m.means)
    const = m.log_norm - 0.5 * np.einsum("ki,ki->k", m.means, lin)
    iu, ju = np.triu_indices(d)
    quad = np.where(iu == ju, -0.5, -1.0) * prec[:, iu, ju]
    theta = np.concatenate([const[:, None], lin, quad], axis=1)
    theta[~np.isfinite(const)] = 0.0
    theta[~np.isfinite(const), 0] = -1e300
    return theta.T


def test_coefficient_kernel_matches_numpy_formula():
    rng = np.random.default_rng(13)
    q_, _ = np.linalg.qr(rng.standard_normal((5, 5)))
    thin = q_ @ np.diag([1.0, 0.3, 1e-4, 1e-6, 1e-8]) @ q_.T
    near_singular = Mixture(
        np.array([0.5, 0.5]), rng.standard_normal((2, 5)), np.stack([thin, np.eye(5)])
    )
    zero_weight = Mixture(
        np.array([0.6, 0.0, 0.4]), rng.standard_normal((3, 2)), np.ones((3, 1, 1)) * np.eye(2)
    )
    # (mixture, condition number): the two computations agree to about eps times it.
    cases = [
        (random_mixture(rng, 7, 5), 1.0),
        (random_mixture(rng, 1, 5), 1.0),
        (random_mixture(rng, 4, 1), 1.0),
        (random_mixture(rng, 6, 3, scale=4.0), 1.0),
        (near_singular, 1e8),
        (zero_weight, 1.0),
    ]
    for m, condition in cases:
        got, want = quadratic_coefficients(m), _numpy_coefficients(m)
        assert got.shape == want.shape and np.all(np.isfinite(got))
        np.testing.assert_allclose(
            got, want, rtol=1e-12, atol=1e-14 * condition * np.abs(want[1:]).max()
        )
    assert np.all(quadratic_coefficients(zero_weight)[:, 1] == [-1e300] + [0.0] * 5)
    # Batched or alone, the same numbers.
    mixtures = [m for m, _ in cases if m.dim == 5]
    batch = divergence_module._coefficient_rows(mixtures)
    for m, theta in zip(mixtures, batch, strict=True):
        np.testing.assert_array_equal(theta, quadratic_coefficients(m))


def test_singular_covariances_get_the_jitter_and_others_are_refused():
    singular = Mixture(np.ones(1), np.zeros((1, 3)), np.ones((1, 3, 3)))  # rank one
    theta = quadratic_coefficients(singular)
    assert np.all(np.isfinite(theta))
    assert np.all(np.isfinite(prepare(singular, 50).own_log_pdf))
    negative = Mixture(np.ones(1), np.zeros((1, 2)), -np.eye(2)[None])
    with pytest.raises(ValueError, match="not positive definite"):
        quadratic_coefficients(negative)
    with pytest.raises(ValueError, match="not positive definite"):
        prepare(negative, 10)


def _mirrored(m):
    """The mixture mirrored in its first coordinate (an isometry, its own inverse)."""
    flip = np.ones(m.dim)
    flip[0] = -1.0
    return m.transformed(np.diag(flip))


def test_a_map_chosen_per_pair_is_the_map_applied_to_all(mixtures):
    """``js_cross_chosen`` with one map for every pair is that map's ``JS(p, g q)``
    from the two unmoved sample sets; a choice per pair takes each pair's from it."""
    rows, cols = mixtures[:3], mixtures[2:6]
    moved = [cols, [_mirrored(m) for m in cols]]
    back = [rows, [_mirrored(m) for m in rows]]
    identity = js_cross_chosen(rows, cols, moved, back, np.zeros((3, 4), int), 2000)
    np.testing.assert_array_equal(identity, js_cross(rows, cols, 2000))
    mirror = js_cross_chosen(rows, cols, moved, back, np.ones((3, 4), int), 2000)
    # Against the moved columns' own (other, equally valid) sample sets.
    np.testing.assert_allclose(mirror, js_cross(rows, moved[1], 2000), atol=0.02)
    assert np.abs(mirror - identity).max() > 0.1
    choice = np.random.default_rng(0).integers(0, 2, (3, 4))
    mixed = js_cross_chosen(rows, cols, moved, back, choice, 2000)
    np.testing.assert_array_equal(mixed, np.where(choice == 1, mirror, identity))


class _Recording(Sequence):
    """A sequence that records which items were read."""

    def __init__(self, items):
        self.items, self.read = list(items), set()

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        self.read.add(index)
        return self.items[index]


def test_only_the_chosen_variants_are_read(mixtures):
    """A pair's chosen map needs one variant of each side: ``js_cross_chosen`` reads
    no other (so a caller can move its views lazily), with the same values."""
    rows, cols = mixtures[:1], mixtures[1:6]
    moved = [cols, _Recording(_mirrored(m) for m in cols)]
    back = [rows, _Recording(_mirrored(m) for m in rows)]
    choice = np.array([[0, 1, 0, 0, 1]])
    lazy = js_cross_chosen(rows, cols, moved, back, choice, 500)
    assert moved[1].read == {1, 4}
    assert back[1].read == {0}
    eager = js_cross_chosen(rows, cols, [cols, moved[1].items], [rows, back[1].items], choice, 500)
    np.testing.assert_array_equal(lazy, eager)
    reference = np.where(choice == 1, js_cross_chosen(rows, cols, moved, back, 0 * choice + 1, 500),
                         js_cross(rows, cols, 500))
    np.testing.assert_array_equal(lazy, reference)


def test_a_map_chosen_per_pair_in_a_matrix(mixtures):
    ms = mixtures[:5]
    moved = [ms, [_mirrored(m) for m in ms]]
    ones = np.ones((5, 5), int)
    np.testing.assert_array_equal(
        js_matrix_chosen(ms, moved, [0, 1], 1 - np.eye(5, dtype=int), 300) * (1 - np.eye(5)),
        js_matrix_moved(ms, moved[1], None, 300) * (1 - np.eye(5)),
    )
    np.testing.assert_array_equal(js_matrix_chosen(ms, moved, [0, 1], 0 * ones, 300),
                                  js_matrix(ms, 300))
    choice = np.triu(ones, 1)
    with pytest.raises(ValueError, match="inverse map"):
        js_matrix_chosen(ms, moved, [0, 1], choice, 300)  # (i, j) mirrored, (j, i) not
    with pytest.raises(ValueError, match="index the 2 maps"):
        js_matrix_chosen(ms, moved, [0, 1], 2 * ones, 300)
    with pytest.raises(ValueError, match="variant of every"):
        js_cross_chosen(ms, ms, [ms, ms[:4]], [ms, ms], 0 * ones, 300)
