"""Every first-party featurizer and divergence indexes a library above ``dense_limit``.

2,100 small generated photos (crops of the shared photos, 64 px) make ``index = "auto"``
pick the sparse index, whose candidate search asks the divergence for its embedding and
cheap estimate.  For each featurizer (``gmm``, the ``colour`` plugin) and divergence
(``js``, the ``cauchy-schwarz`` plugin) the index is built through
:meth:`leitmotiv.library.Library.build_index` and ``similar`` is compared with the exact
nearest photos by the same divergence.  The fits are small (few samples and components),
so the whole module takes about a minute on two cores.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from PIL import Image

from leitmotiv.config import Settings
from leitmotiv.library import Library

N_PHOTOS = 2100
LONG_SIDE = 64
QUERIES = 30

PARAMS = {
    "featurizer": {
        "gmm": {"n_samples": 400, "max_components": 8},
        "colour": {"n_samples": 400, "max_components": 6},
    },
    "divergence": {"js": {"n_samples": 300, "palette_samples": 100}},
}


@pytest.fixture(scope="module")
def photo_files(tmp_path_factory, photos_dir):
    """2,100 JPEG files: random crops (60-100 % of each side) of the shared photos,
    64 px on the long side, with an exposure gain, mirrored half of the time."""
    sources = sorted(photos_dir.glob("*.jpg"))
    folder = tmp_path_factory.mktemp("generated")
    rng = np.random.default_rng(0)
    images = {}
    for i in range(N_PHOTOS):
        source = sources[int(rng.integers(len(sources)))]
        if source not in images:
            with Image.open(source) as im:
                im.draft("RGB", (4 * LONG_SIDE, 4 * LONG_SIDE))
                images[source] = im.convert("RGB")
        image = images[source]
        w, h = image.size
        cw, ch = (int(s * f) for s, f in zip((w, h), rng.uniform(0.6, 1.0, 2), strict=True))
        left, top = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = image.crop((left, top, left + cw, top + ch))
        crop.thumbnail((LONG_SIDE, LONG_SIDE))
        pixels = np.asarray(crop, dtype=np.float32) * rng.uniform(0.85, 1.15)
        crop = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
        if rng.random() < 0.5:
            crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        crop.save(folder / f"g{i:05d}.jpg", quality=90)
    return folder


@pytest.fixture(scope="module")
def library(photo_files, tmp_path_factory):
    """The generated photos added with the default featurizer (not indexed)."""
    settings = Settings(library=tmp_path_factory.mktemp("scale") / "lib", params=PARAMS)
    with Library.open(settings) as lib:
        report = lib.add([photo_files], progress=False)
    assert report.added == N_PHOTOS and report.failed == 0
    return settings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("featurizer", "divergence"),
    [("gmm", "js"), ("gmm", "cauchy-schwarz"), ("colour", "js"), ("colour", "cauchy-schwarz")],
)
def test_sparse_index_of_each_plugin_finds_the_exact_neighbours(library, featurizer, divergence):
    for module in ("leitmotiv_cauchy_schwarz", "leitmotiv_colour"):
        pytest.importorskip(module, reason="install the plugins: pip install plugins/*")
    settings = dataclasses.replace(library, featurizer=featurizer, divergence=divergence)
    with Library.open(settings) as lib:
        report = lib.build_index(progress=False)
        assert report.method == "sparse" and report.n_photos == N_PHOTOS
        assert report.new_lists == N_PHOTOS and report.failed == 0
        assert 0 < report.pairs_computed <= N_PHOTOS * settings.neighbours
        ids = np.array(sorted(p.id for p in lib.photos()))
        mixtures = [lib.mixture(int(i)) for i in ids]
        queries = np.random.default_rng(1).choice(len(ids), QUERIES, replace=False)
        exact = lib.divergence.cross([mixtures[q] for q in queries], mixtures)
        exact[np.arange(QUERIES), queries] = np.inf
        hits = []
        for q, row in zip(queries, exact, strict=True):
            true_top = set(ids[np.argsort(row, kind="stable")[:10]].tolist())
            found = [p.id for p, _ in lib.similar(int(ids[q]), top=10)]
            assert len(found) == 10
            hits.append(len(true_top & set(found)) / 10)
    assert np.mean(hits) >= 0.9, (featurizer, divergence, np.mean(hits))
