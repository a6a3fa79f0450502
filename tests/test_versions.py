"""Implementation versions in stored keys: what an older version of the featurizer or
the divergence stored is computed again, never compared with new results."""

from __future__ import annotations

import shutil

import pytest

from leitmotiv import store
from leitmotiv.config import Settings
from leitmotiv.features import GmmFeaturizer
from leitmotiv.jensen_shannon import JensenShannon
from leitmotiv.library import Library

FAST_PARAMS = {"featurizer": {"gmm": {"n_samples": 2000}}}


@pytest.fixture
def three_photos(tmp_path, photos_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("coffee_0.jpg", "coffee_1.jpg", "rocket_0.jpg"):
        shutil.copy2(photos_dir / name, folder / name)
    return folder


def test_an_older_version_is_recomputed(tmp_path, three_photos, monkeypatch):
    settings = Settings(library=tmp_path / "library", params=FAST_PARAMS)
    # What version 3 of the divergence (no frame maps) stored.
    monkeypatch.setattr(JensenShannon, "version", 3)
    with Library.open(settings) as lib:
        lib.add([three_photos], progress=False)
        old = lib.build_index(progress=False)
        assert old.pairs_computed == 3
    monkeypatch.undo()

    with Library.open(settings) as lib:
        # The new divergence finds none of the old distances: all pairs again.
        new = lib.build_index(progress=False)
        assert new.pairs_computed == 3
        assert lib.build_index(progress=False).pairs_computed == 0
        with store.bound(lib.db):
            keys = {k.key for k in store.ImplementationKey.select()}
        assert any(k.startswith("divergence:js@3:") for k in keys)
        assert any(k.startswith("divergence:js@4:") for k in keys)

    # A new featurizer version refits every photo rather than reusing old models.
    monkeypatch.setattr(GmmFeaturizer, "version", 2)
    with Library.open(settings) as lib:
        report = lib.add([three_photos], progress=False)
        assert report.failed == 0
        with store.bound(lib.db):
            assert store.Model.select().count() == 6  # three old, three new
        assert lib.build_index(progress=False).pairs_computed == 3
