"""Tests of leitmotiv.features: sampling, normalization and the default featurizer."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leitmotiv.colour import SPACES, to_rgb
from leitmotiv.features import (
    COLOUR_NORMALIZATION,
    DEFAULT_COLOUR_SPACE,
    NORMALIZATIONS,
    Features,
    GmmFeaturizer,
    sample_features,
)
from leitmotiv.imaging import decode
from leitmotiv.transform import FeatureTransform

PHOTOS = ("coffee_0.jpg", "astronaut_0.jpg", "hubble_deep_field_0.jpg", "misty_pier_0.jpg")


@pytest.fixture(scope="module")
def photo(photos_dir: Path) -> np.ndarray:
    return decode(photos_dir / "coffee_0.jpg", target_long_side=512).rgb


def _assert_sane(features: Features, n: int) -> None:
    assert features.X.shape == (n, 5) and features.X.dtype == np.float64
    assert features.raw.shape == (n, 5)
    assert np.all(np.isfinite(features.X))
    matrix = features.transform.matrix
    assert np.all(np.isfinite(matrix))
    assert np.linalg.cond(matrix) < 1e8
    back = features.transform.inverse(features.X)
    np.testing.assert_allclose(back, features.raw, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("name", PHOTOS)
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_real_photos(photos_dir: Path, name: str, normalization: str) -> None:
    rgb = decode(photos_dir / name, target_long_side=512).rgb
    features = sample_features(rgb, n_samples=3000, normalization=normalization, seed=3)
    _assert_sane(features, 3000)
    transform = features.transform
    assert (transform.height, transform.width) == rgb.shape[:2]
    assert transform.colour_space == DEFAULT_COLOUR_SPACE
    np.testing.assert_array_equal(features.X, transform.forward(features.raw))


def test_deterministic_for_a_seed(photo: np.ndarray) -> None:
    a = sample_features(photo, seed=7)
    b = sample_features(photo, seed=7)
    np.testing.assert_array_equal(a.X, b.X)
    np.testing.assert_array_equal(a.transform.matrix, b.transform.matrix)
    c = sample_features(photo, seed=8)
    assert not np.array_equal(a.X, c.X)


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_transform_round_trip(photo: np.ndarray, space: str, normalization: str) -> None:
    features = sample_features(
        photo, n_samples=500, colour_space=space, normalization=normalization
    )
    transform = features.transform
    np.testing.assert_allclose(
        transform.inverse(transform.forward(features.raw)), features.raw, atol=1e-9
    )
    restored = FeatureTransform.from_dict(transform.to_dict())
    np.testing.assert_allclose(restored.forward(features.raw), features.X)


@pytest.mark.parametrize("shape", [(300, 500), (500, 300), (3, 2000), (1, 1)])
def test_common_positions_in_unit_box(shape: tuple[int, int]) -> None:
    height, width = shape
    rgb = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
    features = sample_features(rgb, n_samples=4000, normalization="common")
    xy = features.X[:, :2]
    assert np.all(np.abs(xy) <= 0.5)
    long_side = max(shape)
    # Aspect ratio preserved: the short axis only spans its share of the long side.
    assert np.all(np.abs(xy[:, 0]) <= 0.5 * width / long_side + 1e-12)
    assert np.all(np.abs(xy[:, 1]) <= 0.5 * height / long_side + 1e-12)
    # Uniform over the image, centred on its centre.
    assert abs(xy[:, 0].mean()) < 0.05 and abs(xy[:, 1].mean()) < 0.05
    assert np.ptp(xy[:, 0]) > 0.9 * width / long_side


def test_common_keeps_absolute_colour() -> None:
    grey = np.full((40, 60, 3), 119, dtype=np.uint8)  # Lab L ~ 50, a = b = 0
    red = np.zeros((40, 60, 3), dtype=np.uint8)
    red[..., 0] = 220
    z_grey = sample_features(grey, n_samples=200, colour_space="lab").X[:, 2:]
    z_red = sample_features(red, n_samples=200, colour_space="lab").X[:, 2:]
    assert np.all(np.abs(z_grey) < 0.02)
    assert z_red[:, 1].mean() > 0.5  # a* of a strong red is ~+80, i.e. ~1 unit


def test_common_colour_scale_comparable_to_position(photos_dir: Path) -> None:
    """Over a collection, colour channels spread about as much as positions."""
    names = sorted(p.name for p in photos_dir.glob("*_0.jpg"))[::4]
    colour = []
    for name in names:
        rgb = decode(photos_dir / name, target_long_side=128).rgb
        colour.append(sample_features(rgb, n_samples=500, seed=1).X[:, 2:])
    spread = np.concatenate(colour).std(axis=0)
    assert np.all((spread > 0.29 / 2) & (spread < 0.29 * 2)), spread


def test_colour_lookup_exact_without_blur() -> None:
    rgb = np.zeros((2, 2, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[1, 0] = (0, 0, 255)
    rgb[1, 1] = (255, 255, 255)
    features = sample_features(rgb, n_samples=2000, blur=0.0, colour_space="rgb")
    raw = features.raw
    assert np.all((raw[:, :2] >= 0) & (raw[:, :2] <= 2))
    # Bilinear interpolation between pixel centres; near a pixel centre, that pixel.
    near = np.all(np.abs(raw[:, :2] - 0.5) < 0.05, axis=1)
    assert near.any()
    np.testing.assert_allclose(raw[near, 2:], [[1.0, 0.0, 0.0]] * near.sum(), atol=0.1)
    colours = to_rgb(raw[:, 2:], "rgb")
    assert np.all((colours >= 0) & (colours <= 1))


def test_samples_are_continuous_on_tiny_images() -> None:
    rgb = np.full((2, 3, 3), 50, dtype=np.uint8)
    features = sample_features(rgb, n_samples=5000)
    assert np.unique(features.raw[:, :2], axis=0).shape[0] == 5000


DEGENERATE = {
    "single_colour": np.full((120, 80, 3), (30, 140, 200), dtype=np.uint8),
    "black": np.zeros((64, 64, 3), dtype=np.uint8),
    "one_pixel": np.array([[[200, 10, 10]]], dtype=np.uint8),
    "tall_3x2000": np.random.default_rng(2).integers(0, 256, (2000, 3, 3), dtype=np.uint8),
    "wide_2000x1": np.random.default_rng(3).integers(0, 256, (1, 2000, 3), dtype=np.uint8),
}


@pytest.mark.parametrize("name", sorted(DEGENERATE))
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
@pytest.mark.parametrize("space", SPACES)
def test_degenerate_inputs(name: str, normalization: str, space: str) -> None:
    features = sample_features(
        DEGENERATE[name], n_samples=1000, colour_space=space, normalization=normalization
    )
    _assert_sane(features, 1000)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_near_grey_photo(photos_dir: Path, normalization: str) -> None:
    rgb = decode(photos_dir / "misty_pier_0.jpg").rgb
    _assert_sane(sample_features(rgb, normalization=normalization), 5000)


def test_bad_corpus_images(bad_dir: Path) -> None:
    for name in ("one_pixel.png", "tall_3x2000.png", "grayscale.jpg", "rgba_transparent.png"):
        rgb = decode(bad_dir / name).rgb
        for normalization in NORMALIZATIONS:
            _assert_sane(sample_features(rgb, n_samples=800, normalization=normalization), 800)


def test_whitening_identity_covariance(photo: np.ndarray) -> None:
    # Lab: its nominal channel ranges match the spreads the ridge floor is scaled to.
    features = sample_features(photo, normalization="whiten", colour_space="lab")
    np.testing.assert_allclose(features.X.mean(axis=0), 0.0, atol=1e-9)
    np.testing.assert_allclose(np.cov(features.X.T), np.eye(5), atol=1e-3)
    assert np.allclose(features.transform.matrix, np.tril(features.transform.matrix))


def test_whitening_single_colour_is_invertible() -> None:
    features = sample_features(DEGENERATE["single_colour"], normalization="whiten")
    assert np.all(np.abs(features.X[:, 2:]) < 1e-3)
    assert abs(np.linalg.det(features.transform.matrix)) > 0


def test_blur_smooths_and_tiny_blur_is_skipped() -> None:
    rgb = np.random.default_rng(4).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    sharp = sample_features(rgb, n_samples=2000, blur=0.0, colour_space="rgb").raw[:, 2:]
    soft = sample_features(rgb, n_samples=2000, blur=0.05, colour_space="rgb").raw[:, 2:]
    assert soft.std(axis=0).max() < 0.2 * sharp.std(axis=0).min()
    # 0.001 x 200 px = 0.2 px < 0.3 px: no blur at all.
    tiny = sample_features(rgb, n_samples=2000, blur=0.001, colour_space="rgb").raw
    np.testing.assert_array_equal(
        tiny, sample_features(rgb, n_samples=2000, blur=0.0, colour_space="rgb").raw
    )


def test_float_input_accepted(photo: np.ndarray) -> None:
    a = sample_features(photo, n_samples=300)
    b = sample_features(photo.astype(np.float64) / 255.0, n_samples=300)
    np.testing.assert_allclose(a.X, b.X, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"n_samples": 0}, "n_samples"),
        ({"n_samples": 2.5}, "n_samples"),
        ({"n_samples": True}, "n_samples"),
        ({"blur": -0.1}, "blur"),
        ({"blur": float("nan")}, "blur"),
        ({"blur": "a lot"}, "blur"),
        ({"colour_space": "hsv"}, "colour_space"),
        ({"normalization": "global"}, "normalization"),
    ],
)
def test_invalid_sampling_parameters(photo: np.ndarray, kwargs: dict, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        sample_features(photo, **kwargs)
    with pytest.raises(ValueError, match=param):
        GmmFeaturizer(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"max_components": 0}, "max_components"),
        ({"max_components": 3.0}, "max_components"),
        ({"weight_concentration": 0.0}, "weight_concentration"),
        ({"weight_concentration": float("inf")}, "weight_concentration"),
    ],
)
def test_invalid_featurizer_parameters(kwargs: dict, param: str) -> None:
    with pytest.raises(ValueError, match=param):
        GmmFeaturizer(**kwargs)


def test_invalid_images() -> None:
    with pytest.raises(ValueError, match="image"):
        sample_features(np.zeros((0, 5, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match="image"):
        sample_features(np.zeros((5, 5), dtype=np.uint8))


def test_featurizer_identity_and_params() -> None:
    featurizer = GmmFeaturizer()
    assert featurizer.name == "gmm" and featurizer.kind == "featurizer"
    assert featurizer.params == {
        "n_samples": 5000,
        "blur": 0.01,
        "colour_space": DEFAULT_COLOUR_SPACE,
        "normalization": "common",
        "max_components": 50,
        "weight_concentration": 0.01,
    }
    assert GmmFeaturizer.from_params({"normalization": "whiten"}).normalization == "whiten"
    with pytest.raises(ValueError, match="unknown parameter"):
        GmmFeaturizer.from_params({"sigma": 3})
    with pytest.raises(dataclasses.FrozenInstanceError):
        featurizer.blur = 0.5  # type: ignore[misc]


def test_featurizer_features_match_sample_features(photo: np.ndarray) -> None:
    featurizer = GmmFeaturizer(n_samples=700, colour_space="yuv", normalization="whiten")
    a = featurizer.features(photo, seed=5)
    b = sample_features(photo, 700, 0.01, "yuv", "whiten", seed=5)
    np.testing.assert_array_equal(a.X, b.X)


def test_colour_normalization_table() -> None:
    assert set(COLOUR_NORMALIZATION) == set(SPACES)
    for reference, scales in COLOUR_NORMALIZATION.values():
        assert len(reference) == 3 and len(scales) == 3
        assert all(s > 0 for s in scales)


@settings(max_examples=40, deadline=None)
@given(
    height=st.integers(1, 40),
    width=st.integers(1, 40),
    level=st.integers(0, 255),
    noise=st.booleans(),
    normalization=st.sampled_from(NORMALIZATIONS),
    space=st.sampled_from(SPACES),
    seed=st.integers(0, 2**32 - 1),
)
def test_any_small_image_gives_finite_features(
    height: int, width: int, level: int, noise: bool, normalization: str, space: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    if noise:
        rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    else:
        rgb = np.full((height, width, 3), level, dtype=np.uint8)
    features = sample_features(
        rgb, n_samples=200, colour_space=space, normalization=normalization, seed=seed
    )
    _assert_sane(features, 200)


def test_model_returns_mixture_with_transform(photo: np.ndarray) -> None:
    pytest.importorskip("leitmotiv.vbgmm")
    from leitmotiv.mixture import Mixture

    featurizer = GmmFeaturizer(n_samples=2000, max_components=20)
    mixture = featurizer.model(photo, seed=0)
    assert isinstance(mixture, Mixture)
    assert isinstance(mixture.transform, FeatureTransform)
    assert mixture.dim == 5 and 1 <= mixture.n_components <= 20
    assert np.isclose(mixture.weights.sum(), 1.0)
    assert (mixture.transform.width, mixture.transform.height) == (photo.shape[1], photo.shape[0])
    again = featurizer.model(photo, seed=0)
    np.testing.assert_array_equal(mixture.means, again.means)
