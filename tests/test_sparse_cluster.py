"""Sparse affinity propagation: agreement with the dense clusterer, k-NN graphs, edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score

from leitmotiv.cluster import AffinityPropagation
from leitmotiv.sparse_cluster import SparseAffinityPropagation, knn_graph


def _blobs(
    n_groups: int, size: int, seed: int, spread: float = 0.5, scale: float = 6.0, grid=False
):
    rng = np.random.default_rng(seed)
    if grid:
        # Centres on a grid ``scale`` apart: separated by construction.
        side = int(np.ceil(np.sqrt(n_groups)))
        centres = scale * np.stack(np.divmod(np.arange(n_groups), side), axis=1).astype(float)
    else:
        centres = rng.normal(0.0, scale, (n_groups, 2))
    X = np.concatenate([c + rng.normal(0.0, spread, (size, 2)) for c in centres])
    D = np.sqrt(((X[:, None] - X[None]) ** 2).sum(-1))
    return D, np.repeat(np.arange(n_groups), size)


def _complete_graph(D: np.ndarray):
    rows, cols = np.triu_indices(len(D), 1)
    return rows, cols, D[rows, cols]


@pytest.mark.parametrize("seed", range(4))
def test_complete_graph_matches_dense(seed):
    D, _ = _blobs(6, 15, seed)
    dense = AffinityPropagation().cluster(D)
    sparse = SparseAffinityPropagation().cluster_graph(len(D), *_complete_graph(D))
    assert adjusted_rand_score(dense.labels, sparse.labels) >= 0.9
    assert len(sparse.exemplars) == len(dense.exemplars)


def test_complete_graph_identical_on_a_clear_problem():
    D, _ = _blobs(6, 15, 0)
    dense = AffinityPropagation().cluster(D)
    sparse = SparseAffinityPropagation().cluster_graph(len(D), *_complete_graph(D))
    np.testing.assert_array_equal(sparse.labels, dense.labels)
    np.testing.assert_array_equal(sparse.exemplars, dense.exemplars)


def test_knn_graph_recovers_separated_groups():
    # The median over a k-NN graph's edges is a within-group distance, which splits
    # groups; the median over all pairs (estimated from a sample in practice) does not.
    D, truth = _blobs(6, 15, 1, spread=0.4, scale=8.0, grid=True)
    preference = -float(np.median(D[np.triu_indices(len(D), 1)]))
    rows, cols, values = knn_graph(D, 10)
    ap = SparseAffinityPropagation(preference=preference)
    result = ap.cluster_graph(len(D), rows, cols, values)
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    # From a dense matrix the default takes that median itself.
    D, truth = _blobs(10, 8, 2, spread=0.4, scale=8.0, grid=True)
    result = SparseAffinityPropagation(n_neighbors=10).cluster(D)
    assert adjusted_rand_score(truth, result.labels) >= 0.9
    dense = AffinityPropagation().cluster(D)
    assert adjusted_rand_score(dense.labels, result.labels) >= 0.9


def test_labels_and_exemplars_are_consistent_and_deterministic():
    D, _ = _blobs(8, 10, 3)
    rows, cols, values = knn_graph(D, 8)
    ap = SparseAffinityPropagation()
    first = ap.cluster_graph(len(D), rows, cols, values)
    # Edge order and duplicated orientations do not matter.
    perm = np.random.default_rng(0).permutation(len(rows))
    second = ap.cluster_graph(
        len(D),
        np.concatenate([rows[perm], cols]),
        np.concatenate([cols[perm], rows]),
        np.concatenate([values[perm], values]),
    )
    np.testing.assert_array_equal(first.labels, second.labels)
    np.testing.assert_array_equal(first.exemplars, second.exemplars)
    assert np.array_equal(first.labels[first.exemplars], np.arange(len(first.exemplars)))
    assert first.labels.min() == 0 and first.labels.max() == len(first.exemplars) - 1


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_degenerate_sizes(n):
    D = np.abs(np.subtract.outer(np.arange(n), np.arange(n))).astype(float)
    result = SparseAffinityPropagation().cluster(D)
    assert result.labels.shape == (n,)
    if n:
        assert set(result.labels[result.exemplars]) == set(range(len(result.exemplars)))
    graph = SparseAffinityPropagation().cluster_graph(n, *_complete_graph(D))
    assert graph.labels.shape == (n,)


def test_isolated_items_stand_alone():
    result = SparseAffinityPropagation().cluster_graph(
        5, np.array([0]), np.array([1]), np.array([0.1])
    )
    assert result.labels.shape == (5,)
    assert len(set(result.labels[2:])) == 3
    assert result.labels[0] not in result.labels[2:]


def test_rejects_bad_input():
    with pytest.raises(ValueError):
        SparseAffinityPropagation(damping=0.2)
    with pytest.raises(ValueError):
        SparseAffinityPropagation(preference="mean")
    with pytest.raises(ValueError):
        SparseAffinityPropagation().cluster_graph(2, [0], [2], [1.0])
    with pytest.raises(ValueError):
        SparseAffinityPropagation().cluster_graph(2, [0], [1], [np.nan])
    with pytest.raises(ValueError):
        SparseAffinityPropagation().cluster(np.zeros((2, 3)))
