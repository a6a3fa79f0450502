"""Retrieval and clustering quality against known groups of photos.

Used by the quality benchmark and the end-to-end tests, and by the calibration of
the near-duplicate threshold.  All functions take a distance matrix ``(N, N)`` and
integer or string group labels ``(N,)``.
"""

from __future__ import annotations

import numpy as np


def _ranking(distances: np.ndarray) -> np.ndarray:
    """For each row, the other items from nearest to farthest (self excluded).

    Ties are broken by index, so the ranking is deterministic.
    """
    d = np.array(distances, dtype=np.float64)
    n = len(d)
    np.fill_diagonal(d, np.inf)
    order = np.argsort(d, axis=1, kind="stable")
    return order[:, : n - 1]


def ns_score(distances: np.ndarray, labels: np.ndarray, top: int = 3) -> float:
    """Mean N-S score: 1 for the photo itself plus its group-mates among its ``top``.

    With groups of four and ``top=3`` the best score is 4.
    """
    labels = np.asarray(labels)
    ranked = _ranking(distances)[:, :top]
    hits = (labels[ranked] == labels[:, None]).sum(axis=1)
    return float(np.mean(1 + hits))


def mean_average_precision(distances: np.ndarray, labels: np.ndarray) -> float:
    """Mean over queries of the average precision of the ranking of group-mates."""
    labels = np.asarray(labels)
    ranked = _ranking(distances)
    relevant = labels[ranked] == labels[:, None]
    precisions = []
    for row in relevant:
        positions = np.flatnonzero(row)
        if positions.size == 0:
            continue
        precisions.append(np.mean(np.arange(1, positions.size + 1) / (positions + 1)))
    return float(np.mean(precisions)) if precisions else 0.0


def precision_at_1(distances: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of queries whose nearest other photo is a group-mate."""
    labels = np.asarray(labels)
    nearest = _ranking(distances)[:, 0]
    return float(np.mean(labels[nearest] == labels))


def adjusted_rand(predicted: np.ndarray, labels: np.ndarray) -> float:
    """Adjusted Rand index of predicted cluster labels against the groups."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(np.asarray(labels), np.asarray(predicted)))


def pair_distances(distances: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distances of group-mate pairs and of unrelated pairs (each pair once)."""
    labels = np.asarray(labels)
    i, j = np.triu_indices(len(labels), k=1)
    same = labels[i] == labels[j]
    d = np.asarray(distances)[i, j]
    return d[same], d[~same]
