"""The default clusterer on degenerate libraries: one photo, two, identical copies,
photos unrelated to each other.  No library warning may reach the terminal."""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest
from click.testing import CliRunner

from leitmotiv.cli import cli
from leitmotiv.cluster import AffinityPropagation

FAST_CONFIG = "[params.featurizer.gmm]\nn_samples = 2000\n"


def clusters_of(distances) -> list[set[int]]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        result = AffinityPropagation().cluster(np.asarray(distances, dtype=float))
    labels = result.labels
    groups = [set(np.flatnonzero(labels == c).tolist()) for c in range(len(result.exemplars))]
    for c, exemplar in enumerate(result.exemplars):
        assert result.labels[exemplar] == c  # each exemplar belongs to its own cluster
    return sorted(groups, key=min)


def unrelated(n: int, seed: int = 0) -> np.ndarray:
    """Distances of ``n`` unrelated photos: all near 0.96, as the shared sets measure."""
    d = np.random.default_rng(seed).uniform(0.93, 0.99, (n, n))
    d = (d + d.T) / 2
    np.fill_diagonal(d, 0.0)
    return d


@pytest.mark.parametrize(
    ("distances", "expected"),
    [
        (np.zeros((0, 0)), []),
        ([[0.0]], [{0}]),
        ([[0, 0.945], [0.945, 0]], [{0}, {1}]),  # two unrelated photos
        ([[0, 0], [0, 0]], [{0, 1}]),  # two identical photos
        (np.zeros((4, 4)), [{0, 1, 2, 3}]),  # a library of one photo copied
        ([[0, 1e-8, 0.95], [1e-8, 0, 0.95], [0.95, 0.95, 0]], [{0, 1}, {2}]),
        (np.full((3, 3), 0.7) - 0.7 * np.eye(3), [{0}, {1}, {2}]),  # equally distant
        (unrelated(5), [{i} for i in range(5)]),
        (unrelated(20, seed=1), [{i} for i in range(20)]),
        # A near pair and a photo unrelated to both: the pair, and the photo alone.
        ([[0, 0.3, 0.95], [0.3, 0, 0.95], [0.95, 0.95, 0]], [{0, 1}, {2}]),
        ([[0, 0.3, 0.951], [0.3, 0, 0.948], [0.951, 0.948, 0]], [{0, 1}, {2}]),
    ],
)
def test_degenerate_libraries(distances, expected):
    assert clusters_of(distances) == expected


def test_copies_of_a_photo_join_its_cluster_in_a_real_library():
    # Two scenes of three photos each, and a copy of photo 0: the copy is clustered
    # with photo 0, the scenes as before.
    rng = np.random.default_rng(2)
    points = np.concatenate([rng.normal(0, 0.05, (3, 2)), rng.normal(1, 0.05, (3, 2))])
    points = np.concatenate([points, points[:1]])
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    assert clusters_of(d) == [{0, 1, 2, 6}, {3, 4, 5}]


def _build(tmp_path, photos_dir, names: list[str]):
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, name in enumerate(names):
        shutil.copy2(photos_dir / name, folder / f"{i}_{name}")
    config = tmp_path / "config.toml"
    config.write_text(FAST_CONFIG, encoding="utf-8")
    base = ["-c", str(config), "--library", str(tmp_path / "library")]
    runner = CliRunner()
    for args in (["add-directory", "-j", "1", str(folder)], ["build-index", "-j", "1"]):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 0, result.output
        assert "warn" not in result.stderr.lower(), result.stderr
    result = runner.invoke(cli, [*base, "clusters", "--json"])
    found = result_json(result)
    return sorted(sorted(m["path"].rsplit("/", 1)[1] for m in c["members"]) for c in found)


def result_json(result):
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (["coffee_0.jpg", "rocket_0.jpg"], [["0_coffee_0.jpg"], ["1_rocket_0.jpg"]]),
        (["coffee_0.jpg", "coffee_0.jpg"], [["0_coffee_0.jpg", "1_coffee_0.jpg"]]),
        (["coffee_0.jpg", "coffee_1.jpg"], [["0_coffee_0.jpg", "1_coffee_1.jpg"]]),
        (["astronaut_0.jpg"], [["0_astronaut_0.jpg"]]),
    ],
)
def test_build_index_of_a_degenerate_library(tmp_path, photos_dir, names, expected):
    assert _build(tmp_path, photos_dir, names) == expected
