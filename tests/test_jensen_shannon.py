"""The default divergence: convolved model, palette, luminance view, colour share."""

import dataclasses

import numpy as np
import pytest

from leitmotiv.features import GmmFeaturizer
from leitmotiv.imaging import decode
from leitmotiv.jensen_shannon import JensenShannon, colour_view, colour_views, is_photo_model
from leitmotiv.mixture import Mixture

FEATURIZER = GmmFeaturizer(n_samples=2000)


@pytest.fixture(scope="module")
def images(photos_dir):
    names = ["dahlia_0.jpg", "coffee_0.jpg", "misty_pier_0.jpg"]
    return {n: decode(photos_dir / n, target_long_side=256).rgb for n in names}


@pytest.fixture(scope="module")
def models(images):
    dahlia = images["dahlia_0.jpg"]
    brighter = np.clip(dahlia.astype(np.float64) * 1.3 + 10, 0, 255).astype(np.uint8)
    variants = {
        "dahlia": dahlia,
        "mirrored": dahlia[:, ::-1],
        "turned": np.rot90(dahlia).copy(),
        "brighter": brighter,
        "coffee": images["coffee_0.jpg"],
        "misty": images["misty_pier_0.jpg"],
    }
    return {k: FEATURIZER.model(v, seed=0) for k, v in variants.items()}


def test_palette_view_is_whitened(models):
    view = colour_view(models["dahlia"])
    mean, cov = view.moments()
    np.testing.assert_allclose(mean, 0, atol=1e-9)
    np.testing.assert_allclose(cov, np.eye(3), atol=1e-4)
    assert colour_view(models["dahlia"]) is view  # cached per mixture


def _twin(m):
    """A model with the same parameters but no cached views or sample sets."""
    return Mixture(m.weights, m.means, m.covariances, transform=m.transform)


def _formula_colour_view(m):
    """The whitened colour marginal by the textbook formula, with LAPACK."""
    marginal = Mixture(m.weights, m.means[:, 2:], m.covariances[:, 2:, 2:])
    mean, cov = marginal.moments()
    cov = cov + np.diag(1e-6 * np.diag(cov) + 1e-12)
    whitening = np.linalg.inv(np.linalg.cholesky(cov))
    return marginal.transformed(whitening, -whitening @ mean)


def test_colour_views_batched_alone_and_by_formula(models):
    batch = [_twin(m) for m in models.values()]
    views = colour_views(batch + batch[:1])
    assert views[-1] is views[0] and colour_view(batch[0]) is views[0]
    for m, view in zip(batch, views[:-1], strict=True):
        alone = colour_view(_twin(m))
        # Bit for bit, since the view's parameters seed its sample set.
        for name in ("weights", "means", "covariances"):
            np.testing.assert_array_equal(getattr(view, name), getattr(alone, name))
        formula = _formula_colour_view(m)
        np.testing.assert_allclose(view.means, formula.means, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(view.covariances, formula.covariances, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n_samples", [128, 1000])
def test_warm_draws_what_the_distances_draw(models, n_samples):
    from leitmotiv.divergence import prepare, prepared

    divergence = dataclasses.replace(JensenShannon(), n_samples=n_samples)
    batch = [_twin(m) for m in models.values()]
    divergence.warm(batch)
    for m in batch:
        twin = _twin(m)
        kept = divergence._kept(m)
        assert len(kept) == 3  # convolved model, palette, luminance view
        for (model, n), (other, _) in zip(kept, divergence._kept(twin), strict=True):
            got, want = prepared(model, n), prepare(other, n)
            np.testing.assert_array_equal(got.samples, want.samples)
            np.testing.assert_array_equal(got.own_log_pdf, want.own_log_pdf)


def test_single_colour_photos_give_finite_distances():
    flat = [FEATURIZER.model(np.full((48, 64, 3), grey, np.uint8), seed=0) for grey in (30, 128)]
    view = colour_view(flat[0])
    assert np.all(np.isfinite(view.means)) and np.all(np.isfinite(view.covariances))
    divergence = JensenShannon(n_samples=128)
    divergence.warm(flat)
    d = divergence.pairwise(flat)
    assert np.all(np.isfinite(d)) and d[0, 1] > 0
    np.testing.assert_allclose(divergence.cross(flat, flat), d, atol=1e-12)
    # A flat photo has a centred luma only: its pose signature is finite too.
    from leitmotiv.jensen_shannon import pose_signatures

    assert np.all(np.isfinite(pose_signatures(divergence._luma(flat))))


def test_palette_term_ignores_exposure(models):
    palette_only = JensenShannon(colour_weight=1.0, luma_gain=0.0)
    spatial_only = JensenShannon(colour_weight=0.0, luma_gain=0.0)
    a, b = models["dahlia"], models["brighter"]
    other = models["coffee"]
    palette = palette_only.cross([a], [b, other])[0] - spatial_only.cross([a], [b, other])[0]
    spatial = spatial_only.cross([a], [b])[0, 0]
    # The brightened copy's palette matches far better than another scene's, and better
    # than its own spatial model does, which sees the shifted lightness.
    assert palette[0] < 0.5 * palette[1]
    assert palette[0] < spatial


@pytest.mark.parametrize(("variant", "symmetries"), [("mirrored", "mirror"),
                                                      ("turned", "dihedral")])
def test_symmetries_find_flipped_and_turned_copies(models, variant, symmetries):
    plain = JensenShannon(colour_weight=0.0, luma_gain=0.0, symmetries="none")
    invariant = JensenShannon(colour_weight=0.0, luma_gain=0.0, symmetries=symmetries)
    a, b = models["dahlia"], models[variant]
    assert invariant.cross([a], [b])[0, 0] < 0.6 * plain.cross([a], [b])[0, 0]
    d = invariant.pairwise([a, b, models["coffee"]])
    assert d[0, 1] < d[0, 2]


@pytest.mark.parametrize(
    ("symmetries", "map_choice"),
    [("none", "signature"), ("mirror", "signature"), ("dihedral", "signature"),
     ("mirror", "minimum"), ("dihedral", "minimum")],
)
def test_pairwise_agrees_with_cross(models, symmetries, map_choice):
    mixtures = list(models.values())
    divergence = JensenShannon(symmetries=symmetries, map_choice=map_choice)
    d = divergence.pairwise(mixtures)
    c = divergence.cross(mixtures, mixtures)
    assert np.all(np.isfinite(d)) and np.all(d >= 0)
    np.testing.assert_array_equal(d, d.T)
    np.testing.assert_array_equal(np.diag(d), 0)
    # Same estimator, different (equally valid) sample sets for the moved models.
    np.testing.assert_allclose(d, 0.5 * (c + c.T) * (1 - np.eye(len(d))), rtol=0.04, atol=0.05)
    if map_choice == "signature":
        # One map per pair: both draw from the unmoved views only, the same sets.
        np.testing.assert_allclose(d, 0.5 * (c + c.T) * (1 - np.eye(len(d))), atol=1e-9)


def test_the_default_finds_mirrored_and_turned_copies(models):
    """The default's frame maps: a mirrored or turned copy is near its original, far
    nearer than without the maps and than another scene."""
    from leitmotiv.jensen_shannon import SYMMETRIES

    default = JensenShannon()
    assert default.symmetries == "dihedral"
    plain = JensenShannon(symmetries="none")
    a = models["dahlia"]
    photos = [models["mirrored"], models["turned"], models["coffee"], models["misty"]]
    d, before = default.cross([a], photos)[0], plain.cross([a], photos)[0]
    assert d[0] < 0.5 * before[0] and d[1] < 0.5 * before[1]
    assert max(d[:2]) < 0.5 * min(d[2:])
    maps = SYMMETRIES["dihedral"]
    chosen = default.chosen_maps([a], photos[:2])[0]
    np.testing.assert_array_equal(maps[chosen[0]], np.diag([-1.0, 1.0]))
    assert chosen[1] in (2, 3)  # a quarter turn, either way


def test_a_mirrored_model_is_at_zero_from_its_original(models):
    from leitmotiv.jensen_shannon import is_photo_model, moved

    a = models["coffee"]
    mirrored = moved(a, np.diag([-1.0, 1.0]))
    assert is_photo_model(mirrored)
    default = JensenShannon()
    assert default.cross([a], [mirrored])[0, 0] < 1e-4
    assert default.pairwise([a, mirrored, models["misty"]])[0, 1] < 1e-4
    assert JensenShannon(symmetries="none").cross([a], [mirrored])[0, 0] > 0.1


def test_chosen_maps_are_inverse_for_the_reversed_pair(models):
    from leitmotiv.jensen_shannon import SYMMETRIES

    mixtures = list(models.values())
    choice = JensenShannon().chosen_maps(mixtures, mixtures)
    maps = SYMMETRIES["dihedral"]
    for i, j in zip(*np.triu_indices(len(mixtures), 1), strict=True):
        np.testing.assert_array_equal(maps[choice[j, i]], maps[choice[i, j]].T)
    np.testing.assert_array_equal(np.diag(choice), 0)


def test_models_that_are_not_photos_use_plain_js():
    rng = np.random.default_rng(0)
    mixtures = [Mixture(np.array([1.0]), rng.normal(size=(1, 3)), np.eye(3)[None])
                for _ in range(3)]
    assert not any(is_photo_model(m) for m in mixtures)
    from leitmotiv.divergence import js_matrix

    plain = np.sqrt(js_matrix(mixtures, JensenShannon().n_samples))
    np.testing.assert_allclose(JensenShannon().pairwise(mixtures), plain)


def test_parameters_are_validated():
    with pytest.raises(ValueError, match="symmetries"):
        JensenShannon(symmetries="upside-down")
    with pytest.raises(ValueError, match="map_choice"):
        JensenShannon(map_choice="best")
    with pytest.raises(ValueError, match="colour_weight"):
        JensenShannon(colour_weight=-1)
    with pytest.raises(ValueError, match="n_samples"):
        JensenShannon(n_samples=1)
    assert JensenShannon().near_duplicate_threshold() is not None
    assert JensenShannon(colour_weight=0.0).near_duplicate_threshold() is None


def _grey(rgb):
    """Black and white by BT.601 luma, all three channels equal."""
    luma = np.round(rgb.astype(np.float64) @ [0.299, 0.587, 0.114]).astype(np.uint8)
    return np.repeat(luma[:, :, None], 3, axis=2)


def _sepia(rgb):
    """A sepia toning: the colour is a function of the luma."""
    luma = rgb.astype(np.float64) @ [0.299, 0.587, 0.114]
    return np.clip(luma[:, :, None] * [1.07, 0.74, 0.43] + [20, 10, 0], 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def toned(images):
    dahlia = images["dahlia_0.jpg"]
    return {
        "grey": FEATURIZER.model(_grey(dahlia), seed=0),
        "sepia": FEATURIZER.model(_sepia(dahlia), seed=0),
        "grey coffee": FEATURIZER.model(_grey(images["coffee_0.jpg"]), seed=0),
    }


def test_colourfulness_tells_grey_toned_and_colour_apart(models, toned):
    from leitmotiv.jensen_shannon import GREY_COLOURFULNESS, colour_shares, colourfulness

    grey, sepia, colour = (colourfulness(m) for m in (toned["grey"], toned["sepia"],
                                                       models["dahlia"]))
    assert grey < GREY_COLOURFULNESS < sepia < colour
    tone = JensenShannon().tone
    shares = colour_shares([models["dahlia"]], [models["coffee"], toned["grey"]], tone)
    assert shares[0, 0] > 0.9 and shares[0, 1] == 0.0


def test_a_black_and_white_or_sepia_copy_finds_its_original(models, toned):
    """The colour original is the nearest photo of its grey and sepia copies, far below
    the ceiling the previous default gave them (its colour terms saw another photo)."""
    photos = [models["dahlia"], models["coffee"], models["misty"], toned["grey coffee"]]
    new = JensenShannon()
    previous = JensenShannon(colour_weight=0.2, spread=0.0, luma_gain=0.0, symmetries="none")
    for name in ("grey", "sepia"):
        d = new.cross([toned[name]], photos)[0]
        assert np.argmin(d) == 0, (name, d)
        assert d[0] < 0.6 * np.sort(d)[1]
        old = previous.cross([toned[name]], photos)[0]
        assert d[0] < 0.5 * old[0]


def test_luma_view_is_the_standardized_luminance_marginal(models):
    from leitmotiv.jensen_shannon import luma_view

    m = models["dahlia"]
    view = luma_view(m, 0.5, 0.0)
    assert view.dim == 3 and luma_view(m, 0.5, 0.0) is view  # cached
    mean, cov = view.moments()
    assert abs(mean[2]) < 1e-12 and cov[2, 2] == pytest.approx(0.25)
    # The same as mapping the model's samples to (x, y, luma) by hand: positions of
    # the common space, YUV luma standardized.
    raw = m.transform.inverse(m.sample(20000, seed=1))
    t = m.transform
    x = (raw[:, 0] - t.width / 2) / max(t.width, t.height)
    luma = raw[:, 2]
    assert np.mean(x) == pytest.approx(mean[0], abs=0.01)
    np.testing.assert_allclose(np.corrcoef(x, luma)[0, 1], cov[0, 2] / np.sqrt(cov[0, 0] * 0.25),
                               atol=0.03)
    blurred = luma_view(m, 0.5, 0.1)
    np.testing.assert_allclose(blurred.covariances, view.covariances + 0.01 * np.eye(3))


def test_versioned_key():
    assert JensenShannon.version == 4
    assert JensenShannon().key().startswith("divergence:js@4:")
    assert GmmFeaturizer().key().startswith("featurizer:gmm:{")  # version 1: unchanged form


def test_relations_follow_the_calibrated_thresholds():
    js = JensenShannon()
    near, unrelated = js.near_duplicate_threshold(), js.unrelated_threshold()
    assert 0 < near < unrelated
    assert js.relation(near - 1e-6) == "near-duplicate"
    assert js.relation(near) == "similar"
    assert js.relation(unrelated) == "unrelated"
    uncalibrated = JensenShannon(spread=0.05)
    assert uncalibrated.unrelated_threshold() is None
    assert uncalibrated.relation(10.0) == "similar"
