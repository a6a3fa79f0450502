"""Quality measures on small hand-checked cases."""

import numpy as np
import pytest

from leitmotiv.evaluation import (
    adjusted_rand,
    mean_average_precision,
    ns_score,
    pair_distances,
    precision_at_1,
)


def block_distances(labels, noise=0.0, seed=0):
    labels = np.asarray(labels)
    d = np.where(labels[:, None] == labels[None, :], 0.1, 1.0)
    d = d + noise * np.random.default_rng(seed).random(d.shape)
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0)
    return d


def test_perfect_ranking_scores_the_maximum():
    labels = np.repeat(np.arange(5), 4)
    d = block_distances(labels)
    assert ns_score(d, labels) == 4.0
    assert mean_average_precision(d, labels) == 1.0
    assert precision_at_1(d, labels) == 1.0
    assert adjusted_rand(labels, labels) == 1.0


def test_hand_computed_ranking():
    labels = np.array([0, 0, 1, 1])
    # item 0's nearest is item 2 (wrong), then item 1 (right)
    d = np.array([[0, 0.5, 0.2, 0.9], [0.5, 0, 0.9, 0.9], [0.2, 0.9, 0, 0.1],
                  [0.9, 0.9, 0.1, 0]])
    assert precision_at_1(d, labels) == pytest.approx(3 / 4)
    # AP: item 0 -> 1/2; item 1 -> 1; item 2 -> 1; item 3 -> 1
    assert mean_average_precision(d, labels) == pytest.approx((0.5 + 3) / 4)
    assert ns_score(d, labels, top=1) == pytest.approx(1 + 3 / 4)


def test_random_distances_score_low():
    labels = np.repeat(np.arange(20), 4)
    rng = np.random.default_rng(1)
    d = rng.random((80, 80))
    d = d + d.T
    np.fill_diagonal(d, 0)
    assert ns_score(d, labels) < 1.5


def test_pair_distances_split():
    labels = np.array([0, 0, 1])
    same, other = pair_distances(block_distances(labels), labels)
    assert same.tolist() == [0.1] and other.tolist() == [1.0, 1.0]
