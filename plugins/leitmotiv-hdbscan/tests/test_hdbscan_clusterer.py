"""The HDBSCAN clusterer on synthetic libraries with known groups, and degenerate ones."""

from __future__ import annotations

import importlib.metadata

import numpy as np
import pytest
from leitmotiv_hdbscan import Hdbscan, medoids

from leitmotiv.interfaces import Clustering

GROUP_SIZES = (3, 5, 8, 2)


def blobs(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Distances of tight, far-apart groups plus two isolated photos.

    Returns the distance matrix and the true group of each item (-1 for the isolated).
    """
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
    points, truth = [], []
    for g, size in enumerate(GROUP_SIZES):
        points.append(centres[g] + 0.3 * rng.normal(size=(size, 2)))
        truth += [g] * size
    points.append(np.array([[30.0, -20.0], [-25.0, 35.0]]))
    truth += [-1, -1]
    x = np.vstack(points)
    order = rng.permutation(len(x))  # groups interleaved, as in a real library
    x, truth = x[order], np.asarray(truth)[order]
    return np.linalg.norm(x[:, None] - x[None], axis=-1), truth


def same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.array_equal(a[:, None] == a[None], b[:, None] == b[None]))


def check_valid(result: Clustering, distances: np.ndarray) -> None:
    n = len(distances)
    labels, exemplars = result.labels, result.exemplars
    assert labels.shape == (n,) and labels.dtype == np.int64
    n_clusters = len(exemplars)
    assert set(labels.tolist()) == set(range(n_clusters))
    assert np.array_equal(labels[exemplars], np.arange(n_clusters))


def test_finds_the_groups_and_isolates_outliers():
    distances, truth = blobs()
    result = Hdbscan().cluster(distances)
    check_valid(result, distances)
    # Each isolated photo is its own cluster: relabel them uniquely in the truth.
    expected = truth.copy()
    expected[truth == -1] = 100 + np.arange((truth == -1).sum())
    assert same_partition(result.labels, expected)
    assert len(result.exemplars) == len(GROUP_SIZES) + 2


def test_exemplars_are_medoids():
    distances, _ = blobs(1)
    result = Hdbscan().cluster(distances)
    for c, e in enumerate(result.exemplars):
        members = np.flatnonzero(result.labels == c)
        totals = distances[np.ix_(members, members)].sum(axis=1)
        assert distances[e, members].sum() == pytest.approx(totals.min())


def test_medoid_ties_go_to_the_first_member():
    distances = np.ones((3, 3)) - np.eye(3)
    assert medoids(distances, np.zeros(3, dtype=np.int64)).tolist() == [0]


def test_deterministic_and_independent_of_order():
    distances, _ = blobs(2)
    first = Hdbscan().cluster(distances)
    again = Hdbscan().cluster(distances.copy())
    assert np.array_equal(first.labels, again.labels)
    assert np.array_equal(first.exemplars, again.exemplars)
    order = np.random.default_rng(3).permutation(len(distances))
    permuted = Hdbscan().cluster(distances[np.ix_(order, order)])
    assert same_partition(permuted.labels, first.labels[order])


def test_labels_are_numbered_by_first_member():
    distances, _ = blobs(4)
    labels = Hdbscan().cluster(distances).labels
    firsts = [int(np.flatnonzero(labels == c)[0]) for c in range(labels.max() + 1)]
    clusters = [
        f for f, c in zip(firsts, range(len(firsts)), strict=True) if (labels == c).sum() > 1
    ]
    assert clusters == sorted(clusters)


def test_input_is_not_modified():
    distances, _ = blobs(5)
    before = distances.copy()
    Hdbscan().cluster(distances)
    assert np.array_equal(distances, before)


def test_other_settings_never_mix_groups():
    distances, truth = blobs(6)
    for clusterer in (
        Hdbscan(cluster_selection_method="leaf"),
        Hdbscan(min_samples=1),
    ):
        result = clusterer.cluster(distances)
        check_valid(result, distances)
        # However it splits, no cluster mixes two true groups.
        for c in range(len(result.exemplars)):
            assert len(set(truth[result.labels == c].tolist())) == 1


def test_epsilon_merges_or_names_the_upstream_bug():
    distances, truth = blobs(6)
    try:
        result = Hdbscan(cluster_selection_epsilon=1.0).cluster(distances)
    except RuntimeError as exc:
        assert "#33219" in str(exc)
        pytest.xfail("scikit-learn issue #33219 (HDBSCAN epsilon with NumPy >= 2.4)")
    check_valid(result, distances)
    for c in range(len(result.exemplars)):
        assert len(set(truth[result.labels == c].tolist())) == 1


@pytest.mark.parametrize("n", [0, 1, 2])
def test_tiny_libraries(n):
    distances = np.ones((n, n)) - np.eye(n)
    result = Hdbscan().cluster(distances)
    check_valid(result, distances)
    # Too few photos for a density-based cluster: every photo stands alone.
    assert result.labels.tolist() == list(range(n))
    assert result.exemplars.tolist() == list(range(n))


def test_single_cluster_when_allowed():
    # Four near-identical photos: one group, which HDBSCAN only reports when allowed.
    together = 0.1 * (np.ones((4, 4)) - np.eye(4))
    result = Hdbscan(allow_single_cluster=True).cluster(together)
    check_valid(result, together)
    assert result.labels.tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "params",
    [
        {"min_cluster_size": 1},
        {"min_cluster_size": 2.5},
        {"min_samples": 0},
        {"cluster_selection_epsilon": -1.0},
        {"cluster_selection_method": "median"},
        {"allow_single_cluster": "yes"},
    ],
)
def test_invalid_parameters_are_refused(params):
    with pytest.raises(ValueError):
        Hdbscan.from_params(params)


@pytest.mark.parametrize(
    "matrix",
    [np.zeros((2, 3)), np.array([[0.0, -1.0], [-1.0, 0.0]]), np.array([[0.0, np.nan], [1, 0]])],
)
def test_invalid_distances_are_refused(matrix):
    with pytest.raises(ValueError):
        Hdbscan().cluster(matrix)


def test_params_and_key():
    assert Hdbscan().params == {
        "min_cluster_size": 2,
        "min_samples": None,
        "cluster_selection_epsilon": 0.0,
        "cluster_selection_method": "eom",
        "allow_single_cluster": False,
    }
    assert Hdbscan().key().startswith("clusterer:hdbscan:")


def test_entry_point_is_declared():
    names = {ep.name: ep.value for ep in importlib.metadata.entry_points(group="leitmotiv")}
    assert names.get("hdbscan") == "leitmotiv_hdbscan"


def test_listed_by_leitmotiv():
    from leitmotiv.plugins import get_implementation, get_plugin_manager, implementations

    get_plugin_manager.cache_clear()
    try:
        found = implementations("clusterer")
        assert found["hdbscan"][:2] == (Hdbscan, "leitmotiv-hdbscan")
        assert get_implementation("clusterer", "hdbscan", {"min_cluster_size": 3}) == Hdbscan(3)
    finally:
        get_plugin_manager.cache_clear()
