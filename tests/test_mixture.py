"""Tests of the mixture density, sampling, serialization, rendering and averaging."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from helpers import random_mixture, scipy_log_pdf
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import logsumexp

from leitmotiv import colour
from leitmotiv.mixture import Mixture, average_mixture
from leitmotiv.transform import FeatureTransform


@pytest.mark.parametrize(("k", "d"), [(1, 1), (1, 5), (3, 1), (7, 5), (20, 3)])
def test_log_pdf_matches_scipy(k, d):
    rng = np.random.default_rng(k * 10 + d)
    m = random_mixture(rng, k, d)
    X = 2.0 * rng.standard_normal((500, d))
    np.testing.assert_allclose(m.log_pdf(X), scipy_log_pdf(m, X), rtol=1e-10, atol=1e-10)


def test_log_pdf_near_singular_covariance():
    rng = np.random.default_rng(3)
    d = 5
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    cov1 = q @ np.diag([1.0, 0.5, 1e-3, 1e-6, 1e-9]) @ q.T
    cov2 = np.eye(d)
    m = Mixture(np.array([0.4, 0.6]), rng.standard_normal((2, d)), np.stack([cov1, cov2]))
    X = np.vstack([m.sample(300, 1), rng.standard_normal((200, d))])
    got = m.log_pdf(X)
    assert np.all(np.isfinite(got))
    ref = scipy_log_pdf(m, X)
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-6)


def test_log_pdf_far_away_is_finite_or_minus_inf_and_single_row():
    m = random_mixture(np.random.default_rng(0), 3, 2)
    out = m.log_pdf(np.array([[1e3, -1e3]]))
    assert out.shape == (1,) and out[0] < -1e4 and not np.isnan(out[0])
    assert m.log_pdf(np.zeros(2)).shape == (1,)
    with pytest.raises(ValueError, match="shape"):
        m.log_pdf(np.zeros((3, 3)))


def test_zero_weight_component_is_ignored():
    rng = np.random.default_rng(1)
    m = random_mixture(rng, 3, 2)
    w = m.weights.copy()
    w[1] = 0.0
    w /= w.sum()
    m0 = Mixture(w, m.means, m.covariances)
    m2 = Mixture(w[[0, 2]], m.means[[0, 2]], m.covariances[[0, 2]])
    X = rng.standard_normal((50, 2))
    np.testing.assert_allclose(m0.log_pdf(X), m2.log_pdf(X), rtol=1e-13)


def test_not_positive_definite_is_reported():
    cov = np.array([[[1.0, 2.0], [2.0, 1.0]]])
    m = Mixture(np.ones(1), np.zeros((1, 2)), cov)
    with pytest.raises(ValueError, match="positive definite"):
        m.log_pdf(np.zeros((1, 2)))


def test_sample_moments_converge():
    rng = np.random.default_rng(5)
    m = random_mixture(rng, 4, 3)
    X = m.sample(200_000, seed=1)
    mean, cov = m.moments()
    assert X.shape == (200_000, 3)
    np.testing.assert_allclose(X.mean(axis=0), mean, atol=0.02)
    np.testing.assert_allclose(np.cov(X.T), cov, atol=0.04)
    # Deterministic given the seed, and a different seed gives different samples.
    np.testing.assert_array_equal(m.sample(10, 3), m.sample(10, 3))
    assert not np.array_equal(m.sample(10, 3), m.sample(10, 4))


def test_sample_component_frequencies():
    m = Mixture(
        np.array([0.2, 0.8]),
        np.array([[-10.0], [10.0]]),
        np.ones((2, 1, 1)),
    )
    X = m.sample(50_000, seed=0)
    assert abs(np.mean(X[:, 0] < 0) - 0.2) < 0.01


def _transform(d=5, seed=0):
    rng = np.random.default_rng(seed)
    return FeatureTransform(
        rng.standard_normal(d), rng.standard_normal((d, d)) + 3 * np.eye(d), "lab", 640, 480
    )


@pytest.mark.parametrize("with_transform", [False, True])
def test_serialization_round_trip_is_exact(with_transform):
    rng = np.random.default_rng(2)
    m0 = random_mixture(rng, 6, 5)
    m = Mixture(
        m0.weights, m0.means, m0.covariances, lower_bound=-3.25, n_iter=17,
        transform=_transform() if with_transform else None,
    )
    b = m.to_bytes()
    r = Mixture.from_bytes(b)
    np.testing.assert_array_equal(r.weights, m.weights)
    np.testing.assert_array_equal(r.means, m.means)
    np.testing.assert_array_equal(r.covariances, m.covariances)
    assert r.lower_bound == m.lower_bound and r.n_iter == 17
    if with_transform:
        np.testing.assert_array_equal(r.transform.offset, m.transform.offset)
        np.testing.assert_array_equal(r.transform.matrix, m.transform.matrix)
        assert (r.transform.colour_space, r.transform.width, r.transform.height) == (
            "lab", 640, 480,
        )
    else:
        assert r.transform is None
    assert r.to_bytes() == b
    # Compact: little beyond the raw float64 payload.
    assert len(b) < 8 * (6 + 30 + 150) + 60 + (2000 if with_transform else 0)


def test_serialization_nan_lower_bound():
    m = random_mixture(np.random.default_rng(0), 2, 2)
    assert np.isnan(Mixture.from_bytes(m.to_bytes()).lower_bound)


def test_corrupt_bytes_are_refused():
    r = random_mixture(np.random.default_rng(0), 3, 5)
    m = Mixture(r.weights, r.means, r.covariances, transform=_transform())
    b = m.to_bytes()
    with pytest.raises(ValueError, match="magic"):
        Mixture.from_bytes(b"XXXX" + b[4:])
    with pytest.raises(ValueError):
        Mixture.from_bytes(b[:-7])
    with pytest.raises(ValueError):
        Mixture.from_bytes(b[:10])
    with pytest.raises(ValueError):
        Mixture.from_bytes(b"")
    flipped = bytearray(b)
    flipped[60] ^= 0x10
    with pytest.raises(ValueError, match="checksum"):
        Mixture.from_bytes(bytes(flipped))
    future = bytearray(b)
    struct.pack_into("<H", future, 4, 99)
    with pytest.raises(ValueError, match="version"):
        Mixture.from_bytes(bytes(future))


def test_models_with_the_same_transform_share_one_read_only_copy():
    rng = np.random.default_rng(5)
    blobs = [
        Mixture(r.weights, r.means, r.covariances, transform=_transform()).to_bytes()
        for r in (random_mixture(rng, 3, 5) for _ in range(2))
    ]
    a, b = (Mixture.from_bytes(blob) for blob in blobs)
    assert a.transform is b.transform
    with pytest.raises(ValueError, match="read-only"):
        a.transform.matrix[0, 0] = 2.0
    # A bad transform is still refused, every time it is met.
    body = bytearray(blobs[0][:-4])
    at = body.index(b'"width"')
    body[at : at + 7] = b'"wodth"'
    damaged = bytes(body) + struct.pack("<I", zlib.crc32(bytes(body)))
    for _ in range(2):
        with pytest.raises(ValueError, match="bad transform"):
            Mixture.from_bytes(damaged)


@settings(max_examples=40, deadline=None)
@given(
    k=st.integers(1, 5),
    d=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    scale=st.floats(0.1, 10.0),
)
def test_log_pdf_property(k, d, seed, scale):
    rng = np.random.default_rng(seed)
    m = random_mixture(rng, k, d, scale=scale, ridge=0.01)
    X = scale * rng.standard_normal((20, d))
    np.testing.assert_allclose(m.log_pdf(X), scipy_log_pdf(m, X), rtol=1e-9, atol=1e-9)
    assert Mixture.from_bytes(m.to_bytes()).log_pdf(X).tolist() == m.log_pdf(X).tolist()


def test_transformed_density_change_of_variables():
    rng = np.random.default_rng(4)
    m = random_mixture(rng, 3, 3)
    A = rng.standard_normal((3, 3)) + 2 * np.eye(3)
    b = rng.standard_normal(3)
    t = m.transformed(A, b)
    X = rng.standard_normal((40, 3))
    np.testing.assert_allclose(
        t.log_pdf(X @ A.T + b), m.log_pdf(X) - np.log(abs(np.linalg.det(A))), rtol=1e-10
    )


# ----------------------------------------------------------------------- render


def two_colour_mixture(matrix=None, width=80, height=60, seed=0):
    """A mixture fitted to a photo whose left half is red and right half blue."""
    from sklearn.mixture import GaussianMixture

    rgb = np.zeros((height, width, 3))
    rgb[:, : width // 2] = [1.0, 0.0, 0.0]
    rgb[:, width // 2 :] = [0.0, 0.0, 1.0]
    lab = colour.from_rgb(rgb, "lab")
    ys, xs = np.mgrid[0:height, 0:width]
    raw = np.column_stack([xs.ravel(), ys.ravel(), lab.reshape(-1, 3)])
    raw = raw + np.random.default_rng(seed).normal(0, 0.5, raw.shape)  # keep it non-singular
    offset = raw.mean(axis=0)
    if matrix is None:
        matrix = np.diag(1.0 / raw.std(axis=0))
    t = FeatureTransform(offset, matrix, "lab", width, height)
    gm = GaussianMixture(4, covariance_type="full", random_state=seed).fit(t.forward(raw))
    return Mixture(gm.weights_, gm.means_, gm.covariances_, transform=t)


def assert_red_left_blue_right(img):
    # A mixture blends the two colours smoothly across the edge, so judge the outer
    # 35 % on each side.
    w = img.shape[1]
    left = img[:, : int(w * 0.35)].reshape(-1, 3).astype(int)
    right = img[:, w - int(w * 0.35) :].reshape(-1, 3).astype(int)
    assert np.mean((left[:, 0] > 200) & (left[:, 0] - left[:, 2] > 150)) > 0.95
    assert np.mean((right[:, 2] > 200) & (right[:, 2] - right[:, 0] > 150)) > 0.95


def test_render_two_colour_image():
    m = two_colour_mixture()
    img = m.render(64, 48)
    assert img.shape == (48, 64, 3) and img.dtype == np.uint8
    assert_red_left_blue_right(img)


def test_render_with_transform_mixing_position_and_colour():
    rng = np.random.default_rng(7)
    # A dense transform: each model coordinate mixes position and colour.
    matrix = np.diag([1 / 23, 1 / 17, 1 / 20, 1 / 60, 1 / 80]) @ (
        np.eye(5) + 0.3 * rng.standard_normal((5, 5))
    )
    img = two_colour_mixture(matrix=matrix).render(64, 48)
    assert_red_left_blue_right(img)


def test_render_unchanged_by_change_of_model_coordinates():
    m = two_colour_mixture()
    rng = np.random.default_rng(1)
    A = rng.standard_normal((5, 5)) + 3 * np.eye(5)
    moved = m.transformed(A, rng.standard_normal(5))
    diff = np.abs(m.render(40, 30).astype(int) - moved.render(40, 30).astype(int))
    assert diff.max() <= 1


def test_render_large_is_vectorized_and_needs_transform():
    m = two_colour_mixture()
    img = m.render(512, 512)
    assert img.shape == (512, 512, 3)
    with pytest.raises(ValueError, match="transform"):
        Mixture(m.weights, m.means, m.covariances).render(10, 10)


# -------------------------------------------------------------------- averaging


def test_average_mixture_without_transforms():
    rng = np.random.default_rng(8)
    ms = [random_mixture(rng, k, 3) for k in (1, 2, 5)]
    avg = average_mixture(ms)
    assert avg.n_components == 8
    np.testing.assert_allclose(avg.weights.sum(), 1.0)
    X = rng.standard_normal((30, 3))
    expected = logsumexp([m.log_pdf(X) for m in ms], axis=0) - np.log(3)
    np.testing.assert_allclose(avg.log_pdf(X), expected, rtol=1e-10)
    with pytest.raises(ValueError, match="dimension"):
        average_mixture([ms[0], random_mixture(rng, 2, 2)])
    with pytest.raises(ValueError):
        average_mixture([])


def test_average_mixture_with_transforms_renders_like_inputs():
    m = two_colour_mixture()
    small = two_colour_mixture(width=40, height=30, seed=1)
    avg = average_mixture([m, small])
    assert avg.transform is not None and avg.n_components == 8
    np.testing.assert_allclose(avg.weights.sum(), 1.0)
    assert_red_left_blue_right(avg.render(64, 48))
    # The average of one mixture is that mixture in another frame: same picture.
    single = average_mixture([m])
    diff = np.abs(single.render(40, 30).astype(int) - m.render(40, 30).astype(int))
    assert diff.max() <= 1


def test_average_mixture_with_transforms_density_in_unit_frame():
    """In the unit frame (positions / size) the average density is the mean density."""
    a = two_colour_mixture()
    b = two_colour_mixture(width=40, height=30, seed=1)
    avg = average_mixture([a, b])
    rng = np.random.default_rng(0)
    u = np.column_stack([rng.random(20), rng.random(20), rng.normal(50, 20, (20, 3))])

    def unit_log_pdf(m):
        t = m.transform
        raw = u * np.array([t.width, t.height, 1, 1, 1])
        # density in unit coordinates = model density * |det M| * width * height
        return (
            m.log_pdf(t.forward(raw))
            + np.log(abs(np.linalg.det(t.matrix)))
            + np.log(t.width * t.height)
        )

    expected = np.logaddexp(unit_log_pdf(a), unit_log_pdf(b)) - np.log(2)
    np.testing.assert_allclose(unit_log_pdf(avg), expected, rtol=1e-8, atol=1e-8)


def test_average_mixture_mixed_transforms_refused():
    m = two_colour_mixture()
    with pytest.raises(ValueError, match="transform"):
        average_mixture([m, Mixture(m.weights, m.means, m.covariances)])


def test_projection_and_convolution_are_exact_views():
    rng = np.random.default_rng(3)
    A = rng.normal(size=(4, 4))
    m = Mixture(np.array([0.3, 0.7]), rng.normal(size=(2, 4)),
                np.stack([A @ A.T + np.eye(4), np.eye(4) * 0.5]))
    P = np.array([[1.0, 0, 0, 0], [0, 0, 2.0, 1.0]])
    view = m.projected(P, np.array([0.5, -1.0]))
    mean, cov = m.moments()
    view_mean, view_cov = view.moments()
    np.testing.assert_allclose(view_mean, P @ mean + [0.5, -1.0])
    np.testing.assert_allclose(view_cov, P @ cov @ P.T)
    # The image of the samples is distributed as the view: compare log-likelihoods.
    x = m.sample(4000, seed=0) @ P.T + [0.5, -1.0]
    y = view.sample(4000, seed=1)
    assert abs(view.log_pdf(x).mean() - view.log_pdf(y).mean()) < 0.1
    wide = m.convolved(0.25)
    np.testing.assert_allclose(wide.covariances, m.covariances + 0.25 * np.eye(4))
    np.testing.assert_array_equal(wide.means, m.means)
    with pytest.raises(ValueError, match="projection"):
        m.projected(np.eye(5))
    with pytest.raises(ValueError, match="variance"):
        m.convolved(-1.0)
