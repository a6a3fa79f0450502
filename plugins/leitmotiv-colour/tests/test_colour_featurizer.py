"""The colour featurizer on the test photos: blind to mirroring and rotation, not to scenes."""

from __future__ import annotations

import csv
import functools
import importlib.metadata
from pathlib import Path

import numpy as np
import pytest
from leitmotiv_colour import ColourFeaturizer

from leitmotiv.mixture import Mixture, average_mixture

# <repo>/plugins/leitmotiv-colour/tests/this file -> the corpus in <repo>/tests/data
PHOTOS_DIR = Path(__file__).resolve().parents[3] / "tests" / "data" / "photos"

js_divergence = pytest.importorskip("leitmotiv.divergence").js_divergence

# Jensen–Shannon (nats, at most ln 2 ~ 0.69) below which two models count as the same
# palette, and above which as different scenes.  Measured: mirrored and rotated copies
# give about 0.01-0.03, different scenes 0.3-0.69.
SAME = 0.08
DIFFERENT = 0.2


def photos_dir() -> Path:
    if not PHOTOS_DIR.is_dir():
        pytest.skip(f"test photos {PHOTOS_DIR} are missing (run the tests from a clone)")
    return PHOTOS_DIR


@functools.cache
def photo(name: str) -> np.ndarray:
    from leitmotiv.imaging import decode

    return decode(photos_dir() / name, target_long_side=512).rgb


@functools.cache
def model(name: str) -> Mixture:
    return ColourFeaturizer().model(photo(name))


def flipped_scenes() -> list[str]:
    """Scenes whose variant 3 is a plain horizontal flip of variant 0, per groups.csv."""
    with open(photos_dir() / "groups.csv", newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    return sorted(
        r["group"]
        for r in rows
        if r["file"].endswith("_3.jpg") and r["transform"].startswith("horizontal flip")
    )


def test_model_is_a_colour_only_mixture():
    m = model("astronaut_0.jpg")
    assert m.dim == 3
    assert 1 <= m.n_components <= ColourFeaturizer().max_components
    assert m.transform is None
    assert np.all(np.isfinite(m.means)) and np.all(np.isfinite(m.covariances))
    assert m.weights.sum() == pytest.approx(1.0)


@pytest.mark.parametrize(
    "move",
    [
        pytest.param(lambda im: im[:, ::-1], id="mirror"),
        pytest.param(lambda im: im[::-1], id="upside-down"),
        pytest.param(np.rot90, id="quarter-turn"),
        pytest.param(lambda im: np.rot90(im, 2), id="half-turn"),
    ],
)
def test_mirrored_or_rotated_copy_gives_the_same_model(move):
    original = photo("chelsea_cat_0.jpg")
    moved = ColourFeaturizer().model(np.ascontiguousarray(move(original)))
    assert js_divergence(model("chelsea_cat_0.jpg"), moved) < SAME


def test_flipped_files_are_nearest_to_their_own_scene():
    scenes = flipped_scenes()
    assert len(scenes) >= 5
    originals = [model(f"{s}_0.jpg") for s in scenes]
    for s in scenes:
        flipped = model(f"{s}_3.jpg")
        d = np.array([js_divergence(flipped, o) for o in originals])
        own = scenes.index(s)
        assert d[own] < SAME, (s, d[own])
        assert np.argmin(d) == own, (s, dict(zip(scenes, d.round(3), strict=True)))


def test_different_scenes_differ_more():
    names = ["astronaut_0.jpg", "chelsea_cat_0.jpg", "coffee_0.jpg", "cloud_sky_0.jpg"]
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert js_divergence(model(a), model(b)) > DIFFERENT, (a, b)


def test_deterministic_for_a_seed_and_stable_across_seeds():
    image = photo("coffee_0.jpg")
    first = ColourFeaturizer().model(image, seed=3)
    again = ColourFeaturizer().model(image, seed=3)
    assert first.to_bytes() == again.to_bytes()
    other = ColourFeaturizer().model(image, seed=4)
    assert js_divergence(first, other) < SAME


def test_sampled_colours_are_invariant_as_a_distribution():
    # Blurring commutes with flips (isotropic kernel, symmetric border), so a flipped
    # photo has exactly the same multiset of blurred colours.
    f = ColourFeaturizer(n_samples=200_000)
    image = photo("astronaut_0.jpg")
    a = f.colours(image, seed=0)
    b = f.colours(np.ascontiguousarray(image[:, ::-1]), seed=1)
    np.testing.assert_allclose(a.mean(axis=0), b.mean(axis=0), atol=0.01)
    np.testing.assert_allclose(np.cov(a.T), np.cov(b.T), atol=0.01)


def test_no_render_but_palette_and_average():
    f = ColourFeaturizer()
    m = model("coffee_0.jpg")
    with pytest.raises(ValueError, match="render"):
        m.render(32, 32)
    strip = f.palette(m, width=100, height=10)
    assert strip.shape == (10, 100, 3) and strip.dtype == np.uint8
    # Colour-only models share coordinates, so the pool of two is just their components.
    pooled = average_mixture([m, model("astronaut_0.jpg")])
    assert pooled.dim == 3 and pooled.weights.sum() == pytest.approx(1.0)


def test_palette_shows_the_colours_in_proportion():
    image = np.zeros((60, 80, 3), dtype=np.uint8)
    image[:, :20] = (220, 30, 30)  # a quarter red
    image[:, 20:] = (30, 30, 220)  # three quarters blue
    f = ColourFeaturizer(blur=0.0)
    strip = f.palette(f.model(image), width=200, height=1)[0].astype(int)
    red = np.sum((strip[:, 0] > 150) & (strip[:, 2] < 100))
    blue = np.sum((strip[:, 2] > 150) & (strip[:, 0] < 100))
    assert red == pytest.approx(50, abs=6)
    assert blue == pytest.approx(150, abs=6)


@pytest.mark.parametrize("shape", [(1, 1), (3, 200), (40, 40)])
def test_flat_and_tiny_images_give_valid_models(shape):
    image = np.full((*shape, 3), 90, dtype=np.uint8)
    m = ColourFeaturizer().model(image)
    assert m.dim == 3 and np.all(np.isfinite(m.means))
    assert np.all(np.linalg.eigvalsh(m.covariances) > 0)


@pytest.mark.parametrize("space", ["lab", "rgb", "yuv"])
def test_every_colour_space(space):
    f = ColourFeaturizer(colour_space=space, n_samples=500, max_components=5)
    m = f.model(photo("coffee_0.jpg"))
    assert m.dim == 3 and m.n_components <= 5
    assert f.palette(m).shape == (32, 256, 3)


@pytest.mark.parametrize(
    "params",
    [
        {"n_samples": 0},
        {"n_samples": 1.5},
        {"blur": -0.1},
        {"blur": "wide"},
        {"colour_space": "hsv"},
        {"max_components": 0},
        {"weight_concentration": 0.0},
        {"normalization": "whiten"},
    ],
)
def test_invalid_parameters_are_refused(params):
    with pytest.raises(ValueError):
        ColourFeaturizer.from_params(params)


def test_invalid_images_are_refused():
    with pytest.raises(ValueError):
        ColourFeaturizer().model(np.zeros((4, 4), dtype=np.uint8))


def test_params_and_key():
    assert ColourFeaturizer().params == {
        "n_samples": 3000,
        "blur": 0.02,
        "colour_space": "lab",
        "max_components": 20,
        "weight_concentration": 0.01,
    }
    assert ColourFeaturizer().key().startswith("featurizer:colour:")


def test_entry_point_is_declared():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="leitmotiv")}
    assert names.get("colour") == "leitmotiv_colour"


def test_listed_by_leitmotiv():
    from leitmotiv.plugins import get_implementation, get_plugin_manager, implementations

    get_plugin_manager.cache_clear()
    try:
        found = implementations("featurizer")
        assert found["colour"][:2] == (ColourFeaturizer, "leitmotiv-colour")
        got = get_implementation("featurizer", "colour", {"max_components": 8})
        assert got == ColourFeaturizer(max_components=8)
    finally:
        get_plugin_manager.cache_clear()
