"""The divergence's fast path: the generic characteristic-function embedding, the
default estimator, and the default divergence's own embedding and estimator."""

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from leitmotiv.embedding import characteristic, fourier_embedding, gaussian_frequencies
from leitmotiv.interfaces import Divergence
from leitmotiv.jensen_shannon import PALETTE_EMBEDDING_GAIN, JensenShannon
from leitmotiv.mixture import Mixture


def _random_mixture(rng: np.random.Generator, d: int, k: int) -> Mixture:
    a = rng.normal(0, 0.2, (k, d, d))
    covs = a @ a.transpose(0, 2, 1) + 0.01 * np.eye(d)
    w = rng.random(k) + 0.1
    return Mixture(w / w.sum(), rng.normal(0, 0.5, (k, d)), covs)


@pytest.mark.parametrize("d", [1, 3, 5, 7])
def test_characteristic_function_is_the_expectation_over_samples(d):
    rng = np.random.default_rng(d)
    mixture = _random_mixture(rng, d, 4)
    omega = gaussian_frequencies(16, d, 0.5, rng)
    closed = characteristic([mixture], omega)[0] * np.sqrt(16)
    x = mixture.sample(200_000, seed=1)
    phase = x @ omega.T
    mc = np.concatenate([np.cos(phase).mean(axis=0), np.sin(phase).mean(axis=0)])
    np.testing.assert_allclose(closed, mc, atol=6e-3)


def test_generic_embedding_serves_any_dimension_and_refuses_mixed_ones():
    rng = np.random.default_rng(0)
    three = [_random_mixture(rng, 3, 5) for _ in range(4)]
    emb = fourier_embedding(three)
    assert emb.shape == (4, 384) and emb.dtype == np.float32 and np.all(np.isfinite(emb))
    np.testing.assert_array_equal(fourier_embedding(three[2:3])[0], emb[2])  # per model
    # Nearer mixtures embed nearer: a slightly moved copy is the nearest of the others.
    moved = three[0].transformed(np.eye(3), np.full(3, 0.02))
    dist = np.linalg.norm(emb - fourier_embedding([moved])[0], axis=1)
    assert np.argmin(dist) == 0
    with pytest.raises(ValueError, match=r"different dimensions \[3, 5\]"):
        fourier_embedding([three[0], _random_mixture(rng, 5, 2)])
    assert Divergence.embedding(JensenShannon(), three).shape == (4, 384)


@dataclass(frozen=True)
class _Sampled(Divergence):
    name: ClassVar[str] = "sampled"
    n_samples: int = 800


@dataclass(frozen=True)
class _Exact(Divergence):
    name: ClassVar[str] = "exact"
    order: int = 2


def test_default_estimator_takes_an_eighth_of_the_samples_or_is_the_divergence():
    assert _Sampled().estimator() == _Sampled(n_samples=100)
    assert _Sampled(n_samples=10).estimator() == _Sampled(n_samples=10)  # never more
    assert _Exact().estimator() == _Exact()
    assert _Exact().sparse_unavailable_reason() is None


def test_js_estimator_and_palette_weight_follow_its_parameters(photos_dir):
    from leitmotiv.features import GmmFeaturizer
    from leitmotiv.imaging import decode

    assert JensenShannon().estimator() == JensenShannon(n_samples=128, luma_samples=128)
    assert JensenShannon(n_samples=64, luma_samples=64).estimator() == JensenShannon(
        n_samples=64, luma_samples=64
    )
    assert JensenShannon(palette_samples=100).estimator().palette_samples == 100
    model = GmmFeaturizer(n_samples=1000).model(
        decode(photos_dir / "dahlia_0.jpg", target_long_side=128).rgb
    )
    base = JensenShannon().embedding([model])[0]
    assert base.shape == (513,)  # spatial 256, palette 128, luminance 128, colour share
    half = JensenShannon(colour_weight=0.4).embedding([model])[0]
    np.testing.assert_array_equal(half[:256], base[:256])
    np.testing.assert_array_equal(half[384:], base[384:])
    weight = JensenShannon().colour_weight
    np.testing.assert_allclose(half[256:384], (0.4 / weight) * base[256:384], rtol=1e-5)
    assert not JensenShannon(colour_weight=0.0).embedding([model])[0][256:384].any()
    assert PALETTE_EMBEDDING_GAIN * JensenShannon().colour_weight == pytest.approx(1.0)
