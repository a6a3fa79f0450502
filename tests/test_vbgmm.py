"""Tests of the variational-Bayes Gaussian mixture fit."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from leitmotiv import vbgmm
from leitmotiv.mixture import Mixture
from leitmotiv.vbgmm import _fit_from_resp, _initial_resp, _standardize, fit_mixture

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import reference_vbgmm
from _photo_features import photo_features


def blobs(n=600, d=3, seed=1):
    """Three well separated Gaussian clusters with different shapes."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=6.0, size=(3, d))
    labels = rng.integers(0, 3, size=n)
    mixing = rng.normal(size=(3, d, d)) * 0.6 + np.eye(d)
    return centres[labels] + np.einsum("nij,nj->ni", mixing[labels], rng.normal(size=(n, d)))


def mean_log_likelihood(mixture: Mixture, X) -> float:
    """Held-out mean log density per sample, computed independently with SciPy."""
    per_component = [
        np.log(w) + multivariate_normal(m, c).logpdf(X)
        for w, m, c in zip(mixture.weights, mixture.means, mixture.covariances, strict=True)
    ]
    return float(logsumexp(np.column_stack(per_component), axis=1).mean())


def assert_valid(mixture: Mixture, d: int):
    assert mixture.means.shape[1] == d
    for array in (mixture.weights, mixture.means, mixture.covariances):
        assert np.all(np.isfinite(array))
    assert np.isfinite(mixture.lower_bound)
    assert np.all(mixture.weights > 0)
    assert mixture.weights.sum() == pytest.approx(1.0, abs=1e-12)
    cov = mixture.covariances
    np.testing.assert_allclose(cov, np.swapaxes(cov, 1, 2), rtol=1e-12, atol=0)
    for c in cov:
        np.linalg.cholesky(c)  # raises unless positive definite


# --------------------------------------------------------------------------------------
# Same updates as the plain NumPy reference, iteration by iteration
# --------------------------------------------------------------------------------------


def compare_with_reference(X, k, seed=0, **kwargs):
    resp = _initial_resp(_standardize(np.asarray(X, float))[0], k, seed)
    mixture, trace = _fit_from_resp(X, resp, **kwargs)
    weights, means, covariances, ref_trace = reference_vbgmm.fit_from_resp(X, resp, **kwargs)
    assert trace.shape == ref_trace.shape
    np.testing.assert_allclose(trace, ref_trace, rtol=1e-8, atol=1e-12)
    assert mixture.n_components == weights.size
    assert mixture.n_iter == trace.size
    np.testing.assert_allclose(mixture.weights, weights, rtol=1e-8, atol=1e-14)
    scale = np.abs(means).max() + np.sqrt(np.abs(covariances).max())
    np.testing.assert_allclose(mixture.means, means, rtol=1e-8, atol=1e-10 * scale)
    np.testing.assert_allclose(
        mixture.covariances, covariances, rtol=1e-8, atol=1e-10 * np.abs(covariances).max()
    )
    return mixture, trace


def test_matches_reference_on_photo_features(photos_dir):
    train, _ = photo_features("dahlia_0.jpg", n=800, seed=3, photo_dir=photos_dir)
    _, trace = compare_with_reference(train, 25)
    assert trace.size > 3


def test_matches_reference_with_pruning():
    X = blobs()
    # Twenty starting components on three clusters: most must be pruned on the way.
    mixture, _ = compare_with_reference(X, 20, prune_threshold=2e-2, tol=1e-6)
    assert mixture.n_components < 20


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight_concentration": 1.0, "mean_precision": 0.1, "degrees_of_freedom": 7.5},
        {"covariance_prior": np.diag([4.0, 1.0, 0.25]), "reg_covar": 1e-3},
    ],
)
def test_matches_reference_with_other_priors(kwargs):
    X = blobs(n=300, seed=4) * np.array([1.0, 100.0, 1e-3]) + np.array([0.0, -5.0, 7.0])
    compare_with_reference(X, 8, seed=2, **kwargs)


def test_matches_reference_degenerate_columns():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.normal(size=200), np.full(200, 3.0)])
    X[:50] = X[0]  # a block of exact duplicates
    compare_with_reference(X, 6)
    compare_with_reference(rng.normal(size=(150, 1)), 5)


def test_elbo_never_decreases_without_regularization_or_pruning():
    # reg_covar and pruning are the only departures from exact coordinate ascent.
    X = blobs(n=400, d=2, seed=7)
    resp = _initial_resp(_standardize(X)[0], 10, 0)
    _, trace = _fit_from_resp(X, resp, reg_covar=0.0, prune_threshold=0.0, tol=1e-9)
    assert trace.size > 5
    assert np.all(np.diff(trace) >= -1e-10 * np.abs(trace[1:]))


def test_recovers_separated_clusters():
    X = blobs(n=900, d=2, seed=11)
    centres = np.random.default_rng(11).normal(scale=6.0, size=(3, 2))  # as in blobs()
    mixture = fit_mixture(X, max_components=15, tol=1e-6)
    # Small alpha0 switches superfluous components off: three carry nearly all weight,
    # and they sit on the true cluster centres.
    top = np.argsort(mixture.weights)[-3:]
    assert mixture.weights[top].sum() > 0.97
    distance = np.linalg.norm(mixture.means[top][:, None] - centres[None], axis=2)
    assert np.all(distance.min(axis=0) < 0.3)
    assert mixture.lower_bound < mean_log_likelihood(mixture, X)


def test_thread_count_does_not_change_the_result(monkeypatch):
    X = blobs(n=1000, d=4, seed=2)
    monkeypatch.setattr(vbgmm, "_n_threads", lambda: 1)
    one = fit_mixture(X, max_components=12)
    monkeypatch.setattr(vbgmm, "_n_threads", lambda: 2)
    two = fit_mixture(X, max_components=12)
    np.testing.assert_array_equal(one.means, two.means)
    np.testing.assert_array_equal(one.covariances, two.covariances)
    assert one.lower_bound == two.lower_bound


def test_equivariant_under_change_of_units():
    X = blobs(n=500, d=3, seed=9)
    scale = np.array([1e6, 1e-6, 3.0])
    shift = np.array([-2e7, 5e-6, 1.0])
    a = fit_mixture(X, max_components=10)
    b = fit_mixture(X * scale + shift, max_components=10)
    # Compare in units of each column's scale: offsets like -2e7 cost absolute digits.
    np.testing.assert_allclose((b.means - shift) / scale, a.means, rtol=1e-7, atol=1e-7)
    np.testing.assert_allclose(
        b.covariances, a.covariances * np.outer(scale, scale), rtol=1e-6, atol=0
    )
    assert b.lower_bound == pytest.approx(a.lower_bound - np.log(scale).sum(), rel=1e-9)


# --------------------------------------------------------------------------------------
# Kernels against direct NumPy
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "d", "k", "chunks"), [(500, 3, 7, 16), (37, 5, 4, 16), (9, 1, 3, 9)])
def test_estep_kernel_matches_direct_computation(n, d, k, chunks):
    from leitmotiv._ext import vbgmm as kernels

    rng = np.random.default_rng(n + d + k)
    Z = rng.normal(size=(n, d))
    P = np.tril(rng.normal(size=(k, d, d)))
    P[:, np.arange(d), np.arange(d)] = rng.uniform(0.5, 2.0, size=(k, d))
    m = rng.normal(size=(k, d))
    nu = rng.uniform(d, 50.0, size=k)
    log_const = rng.normal(size=k)
    # Direct: ln rho = log_const - nu ||P (z - m)||^2 / 2, normalized row by row.
    y = np.einsum("kab,nkb->nka", P, Z[:, None, :] - m[None])
    log_rho = log_const - 0.5 * nu * np.einsum("nka,nka->nk", y, y)
    norm = logsumexp(log_rho, axis=1)
    resp = np.exp(log_rho - norm[:, None])
    resp[resp < 1e-16] = 0.0

    phi = vbgmm._quadratic_features(Z)
    features = phi.shape[1]
    results = []
    for threads in (1, 2):
        counts, first, second = np.empty(k), np.empty((k, d)), np.empty((k, d, d))
        total = kernels.estep_stats(
            phi, P, m, nu, log_const, np.empty((k, features)), np.empty((chunks, k, features)),
            np.empty(chunks), counts, first, second, threads,
        )
        results.append((total, counts, first, second))
    total, counts, first, second = results[0]
    assert total == pytest.approx(norm.sum(), rel=1e-12)
    np.testing.assert_allclose(counts, resp.sum(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(first, resp.T @ Z, rtol=1e-11, atol=1e-11)
    np.testing.assert_allclose(
        second, np.einsum("nk,na,nb->kab", resp, Z, Z), rtol=1e-11, atol=1e-11
    )
    for a, b in zip(results[0], results[1], strict=True):
        np.testing.assert_array_equal(a, b)


def test_cholesky_inverse_matches_numpy():
    from leitmotiv._ext import vbgmm as kernels

    rng = np.random.default_rng(3)
    for d in (1, 2, 5):
        M = rng.normal(size=(6, d, d))
        A = M @ np.swapaxes(M, 1, 2) + 0.1 * np.eye(d)
        P, logdet = np.empty_like(A), np.empty(6)
        assert kernels.cholesky_inverse(A, P, logdet)
        np.testing.assert_allclose(P, np.linalg.inv(np.linalg.cholesky(A)), rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(logdet, -np.linalg.slogdet(A)[1], rtol=1e-12, atol=1e-13)
    not_definite = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    assert not kernels.cholesky_inverse(not_definite, np.empty_like(not_definite), np.empty(1))


# --------------------------------------------------------------------------------------
# Against scikit-learn on real photo features
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["dahlia_0.jpg", "misty_pier_0.jpg"])
def test_held_out_likelihood_matches_sklearn(name, photos_dir):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import BayesianGaussianMixture
    from threadpoolctl import threadpool_limits

    train, held_out = photo_features(name, n=5000, seed=0, photo_dir=photos_dir)
    ours = fit_mixture(train, max_components=50, seed=0)
    theirs = BayesianGaussianMixture(
        n_components=50,
        weight_concentration_prior_type="dirichlet_distribution",
        weight_concentration_prior=0.01,
        covariance_type="full",
        tol=1e-3,
        max_iter=100,
        random_state=0,
    )
    # One BLAS thread: on a loaded machine oversubscription only makes sklearn slower.
    with warnings.catch_warnings(), threadpool_limits(1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        theirs.fit(train)
    assert_valid(ours, 5)
    # Same estimator for both: the plug-in density of the posterior point estimates
    # (sklearn's own score() is an expected log-likelihood and would be lower).
    theirs_mixture = Mixture(theirs.weights_, theirs.means_, theirs.covariances_)
    ours_ll = mean_log_likelihood(ours, held_out)
    assert ours_ll >= mean_log_likelihood(theirs_mixture, held_out) - 0.05


# --------------------------------------------------------------------------------------
# Degenerate inputs
# --------------------------------------------------------------------------------------


def test_single_sample():
    mixture = fit_mixture(np.array([[1.0, 2.0, 3.0]]))
    assert mixture.n_components == 1
    assert_valid(mixture, 3)
    np.testing.assert_allclose(mixture.means[0], [1.0, 2.0, 3.0])


def test_all_samples_identical():
    mixture = fit_mixture(np.full((40, 5), 0.25), max_components=10)
    assert mixture.n_components == 1
    assert_valid(mixture, 5)


def test_single_colour_image():
    # Positions vary, colour is the same everywhere (as in a flat grey photo).
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 640, 3000), rng.uniform(0, 480, 3000)])
    X = np.column_stack([X, np.tile([50.0, 0.0, 0.0], (3000, 1))])
    mixture = fit_mixture(X)
    assert_valid(mixture, 5)
    grey = np.tile([50.0, 0.0, 0.0], (mixture.n_components, 1))
    np.testing.assert_allclose(mixture.means[:, 2:], grey, atol=1e-9)


def test_fewer_samples_than_components():
    X = np.random.default_rng(1).normal(size=(7, 2))
    mixture = fit_mixture(X, max_components=50)
    assert mixture.n_components <= 7
    assert_valid(mixture, 2)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        (np.empty((0, 3)), "empty"),
        (np.empty((4, 0)), "empty"),
        (np.array([1.0, 2.0, 3.0]), "2-D"),
        (np.zeros((2, 2, 2)), "2-D"),
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "non-finite"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), "non-finite"),
    ],
)
def test_rejects_bad_input(X, message):
    with pytest.raises(ValueError, match=message):
        fit_mixture(X)


@st.composite
def awkward_data(draw):
    n = draw(st.integers(1, 40))
    d = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    if draw(st.booleans()):  # exact duplicates
        X = X[rng.integers(0, max(1, n // 3), size=n)]
    if d > 1 and draw(st.booleans()):  # a constant column
        X[:, draw(st.integers(0, d - 1))] = draw(st.floats(-1e3, 1e3))
    if draw(st.booleans()):  # a few distinct values only
        X = np.round(X)
    scale = 10.0 ** np.array(draw(st.lists(st.floats(-6, 6), min_size=d, max_size=d)))
    offset = np.array(draw(st.lists(st.floats(-1e6, 1e6), min_size=d, max_size=d)))
    return X * scale + offset


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(X=awkward_data(), k=st.integers(1, 12), seed=st.integers(0, 3))
def test_awkward_inputs_give_valid_deterministic_mixtures(X, k, seed):
    mixture = fit_mixture(X, max_components=k, seed=seed)
    assert_valid(mixture, X.shape[1])
    assert mixture.n_components <= min(k, X.shape[0])
    again = fit_mixture(X, max_components=k, seed=seed)
    np.testing.assert_array_equal(mixture.weights, again.weights)
    np.testing.assert_array_equal(mixture.means, again.means)
    np.testing.assert_array_equal(mixture.covariances, again.covariances)
    assert mixture.lower_bound == again.lower_bound
