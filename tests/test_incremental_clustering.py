"""Tests of :func:`leitmotiv.incremental_clustering.extend_clustering` on points in the plane."""

from __future__ import annotations

import numpy as np

from leitmotiv.incremental_clustering import extend_clustering
from leitmotiv.sparse_cluster import SparseAffinityPropagation


def _graph(points: np.ndarray, k: int):
    d = np.linalg.norm(points[:, None] - points[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nearest = np.argsort(d, axis=1)[:, :k]
    rows = np.repeat(np.arange(len(points)), k)
    cols = nearest.ravel()
    return rows, cols, d[rows, cols]


def test_added_points_join_the_nearest_exemplar_or_form_their_own_clusters():
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    old = np.concatenate([c + rng.normal(0, 0.5, (30, 2)) for c in centres])
    near = centres[[0, 1, 2, 0]] + rng.normal(0, 0.5, (4, 2))
    far = np.array([30.0, 30.0]) + rng.normal(0, 0.5, (5, 2))  # a new group
    points = np.concatenate([old, near, far])
    labels = np.repeat(np.arange(3), 30)
    exemplars = np.array([0, 30, 60])
    labels = np.concatenate([labels, np.full(9, -1)])
    calls = []

    def distance(pairs):
        calls.append(len(pairs))
        return np.linalg.norm(points[pairs[:, 0]] - points[pairs[:, 1]], axis=1)

    result = extend_clustering(
        labels, exemplars, _graph(points, 8), distance, 5.0, SparseAffinityPropagation()
    )
    np.testing.assert_array_equal(result.labels[:90], labels[:90])  # old ones kept
    np.testing.assert_array_equal(result.labels[90:94], [0, 1, 2, 0])
    assert len(set(result.labels[94:])) == 1 and result.labels[94] == 3  # one new cluster
    assert result.exemplars[:3].tolist() == [0, 30, 60] and result.exemplars[3] >= 94
    assert sum(calls) <= 9 * 3  # only exemplars of nearby clusters were measured


def test_nothing_added_changes_nothing():
    points = np.array([[0.0, 0], [0, 1], [5, 5], [5, 6]])
    labels, exemplars = np.array([0, 0, 1, 1]), np.array([0, 2])
    result = extend_clustering(
        labels,
        exemplars,
        _graph(points, 1),
        lambda p: np.zeros(len(p)),
        1.0,
        SparseAffinityPropagation(),
    )
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.exemplars, exemplars)
