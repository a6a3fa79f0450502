"""The sample sets of the Jensen–Shannon estimate: stratified component counts and
randomized quasi-Monte Carlo normals, checked against a plain NumPy/SciPy reference,
for unbiasedness and for the error they save over independent samples."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import random_mixture, scipy_log_pdf
from scipy import integrate
from scipy.stats import norm, qmc

import leitmotiv.divergence as divergence_module
from leitmotiv.divergence import LN2, js_divergence, prepare, stratified_counts
from leitmotiv.mixture import Mixture


def reference_sample_set(m: Mixture, n: int, seed: int) -> np.ndarray:
    """What a sample set should be, written out with NumPy and SciPy: from the
    mixture's own generator, the systematic offset, then a digital shift of the first
    ``n`` unscrambled Sobol points, then the permutation of the rows."""
    rng = np.random.default_rng([seed, divergence_module._checksum(m)])
    u = rng.random()
    cumulative = np.cumsum(m.weights / m.weights.sum())
    edges = [int(np.floor(n * c + u)) for c in cumulative[:-1]] + [n]
    counts = np.diff([0, *edges])
    shift = rng.integers(0, 2**30, size=m.dim, dtype=np.uint64)
    points = qmc.Sobol(m.dim, scramble=False).random_base2(int(np.ceil(np.log2(n))))[:n]
    cells = (points * 2**30).astype(np.uint64) ^ shift
    z = norm.ppf((cells + 0.5) / 2**30)
    labels = np.repeat(np.arange(m.n_components), counts)
    x = m.means[labels] + np.einsum("nij,nj->ni", m.cholesky[labels], z)
    return x[rng.permutation(n)]


@pytest.mark.parametrize(
    ("k", "d", "n"), [(1, 5, 1000), (9, 5, 333), (40, 5, 64), (3, 2, 65), (5, 1, 7), (4, 3, 1)]
)
def test_sample_sets_follow_the_numpy_reference(k, d, n):
    m = random_mixture(np.random.default_rng(12 + k + d + n), k, d)
    got = prepare(m, n, seed=4)
    # The kernel's own Cholesky factors may differ from LAPACK's in the last bits.
    np.testing.assert_allclose(got.samples, reference_sample_set(m, n, 4), rtol=1e-12, atol=1e-13)


def test_stratified_counts_round_each_share_and_are_right_on_average():
    weights = np.array([0.5, 0.2, 1e-12, 0.1999999999, 0.1, 0.0])
    for n in (1, 7, 750):
        offsets = (np.arange(4000) + 0.5) / 4000  # evenly over [0, 1)
        counts = np.array([stratified_counts(weights, n, u) for u in offsets])
        share = n * weights / weights.sum()
        assert np.all(counts.sum(axis=1) == n)
        assert np.all((counts >= np.floor(share)) & (counts <= np.ceil(share)))
        np.testing.assert_allclose(counts.mean(axis=0), share, atol=1e-3)


def two_components_1d():
    p = Mixture(np.array([0.3, 0.7]), np.array([[-1.0], [1.0]]), np.array([[[0.3]], [[0.5]]]))
    q = Mixture(np.array([0.5, 0.5]), np.array([[-0.5], [2.0]]), np.array([[[1.0]], [[0.2]]]))
    return p, q


def exact_js(p: Mixture, q: Mixture) -> float:
    """JS of two 1-D mixtures by quadrature."""

    def pdf(m, x):
        return float(m.weights @ norm.pdf(x, m.means[:, 0], np.sqrt(m.covariances[:, 0, 0])))

    def half(a, b):
        def f(x):
            pa, pb = pdf(a, x), pdf(b, x)
            return pa * (np.log(pa) - np.log(0.5 * (pa + pb))) if pa > 0 else 0.0

        return integrate.quad(f, -12, 12, epsabs=1e-13, epsrel=1e-12, limit=500)[0]

    return 0.5 * (half(p, q) + half(q, p))


def iid_estimate(p: Mixture, q: Mixture, n: int, seed: int) -> float:
    """The plain estimate from independent samples (Mixture.sample)."""
    halves = []
    for a, b, s in ((p, q, 2 * seed), (q, p, 2 * seed + 1)):
        x = a.sample(n, s)
        la, lb = scipy_log_pdf(a, x), scipy_log_pdf(b, x)
        halves.append(np.mean(la - (np.logaddexp(la, lb) - np.log(2))))
    return 0.5 * sum(halves)


def test_estimates_are_unbiased_and_more_accurate_than_independent_samples():
    p, q = two_components_1d()
    exact = exact_js(p, q)
    n, seeds = 48, range(60)
    ours = np.array([js_divergence(p, q, n, seed) for seed in seeds])
    plain = np.array([iid_estimate(p, q, n, seed) for seed in seeds])
    assert abs(ours.mean() - exact) < 4 * ours.std(ddof=1) / np.sqrt(len(ours))
    # Independent samples err about twice as much on this pair at this size.
    assert np.sqrt(np.mean((ours - exact) ** 2)) < 0.7 * np.sqrt(np.mean((plain - exact) ** 2))


def test_estimates_are_consistent_in_five_dimensions():
    rng = np.random.default_rng(31)
    p, q = random_mixture(rng, 6, 5), random_mixture(rng, 4, 5)
    reference = np.mean([iid_estimate(p, q, 20_000, seed) for seed in range(5)])
    ours = np.array([js_divergence(p, q, 500, seed) for seed in range(30)])
    # The reference's own error is about 0.001 here.
    assert abs(ours.mean() - reference) < 4 * ours.std(ddof=1) / np.sqrt(len(ours)) + 0.003


@pytest.mark.parametrize("n", [1, 2, 250])
def test_degenerate_mixtures(n):
    one = Mixture(np.ones(1), np.zeros((1, 5)), np.eye(5)[None])
    tiny = Mixture(
        np.array([1.0, 1e-12]),
        np.array([np.zeros(5), np.ones(5)]),
        np.stack([np.eye(5), 0.5 * np.eye(5)]),
    )
    twins = Mixture(np.array([0.5, 0.5]), np.zeros((2, 5)), np.stack([np.eye(5)] * 2))
    far = Mixture(np.ones(1), np.full((1, 5), 50.0), np.eye(5)[None])
    for m in (one, tiny, twins, far):
        assert np.all(np.isfinite(prepare(m, n, seed=1).samples))
        copy = Mixture(m.weights.copy(), m.means.copy(), m.covariances.copy())
        assert js_divergence(m, copy, n) == 0.0
    for a, b in ((one, tiny), (one, twins), (tiny, twins)):  # equal densities
        assert 0.0 <= js_divergence(a, b, n) < 1e-9
    assert js_divergence(one, far, n) == pytest.approx(LN2)
