"""Exact distances of many photo pairs, in chunks: the unit of work of build-index.

A chunk is an array of photo-id pairs ``(a, b)`` with ``a < b``.  Computing a chunk
needs only the models of its photos, and storing it is one transaction, so an
interrupted build keeps every finished chunk and the same chunk can run in this process
or on a Dask worker (:mod:`leitmotiv.distributed`).  Reading the models and storing the
values is the store's (:func:`leitmotiv.store.model_blobs`,
:func:`leitmotiv.store.save_distances`); this module only plans and computes.

The default divergence caches each model's Monte Carlo samples within a fixed memory
budget (:data:`leitmotiv.divergence.PREPARED_BUDGET`), least recently used first out;
:func:`plan_chunks` orders the pairs so that consecutive chunks cover one neighbourhood
of the embedding, and a model's samples are mostly still cached when it comes again.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from leitmotiv.candidates import sparse_distances
from leitmotiv.interfaces import Divergence
from leitmotiv.mixture import Mixture

__all__ = ["compute_chunk", "plan_chunks"]

#: Pairs per chunk: a few seconds of work, a few thousand cached models at most.
CHUNK_PAIRS = 16384


def plan_chunks(
    pairs: np.ndarray,
    positions: np.ndarray | None = None,
    embeddings: np.ndarray | None = None,
    size: int = CHUNK_PAIRS,
    seed: int = 0,
) -> list[np.ndarray]:
    """Split photo pairs into chunks of at most ``size``, neighbourhood by neighbourhood.

    Parameters
    ----------
    pairs : ndarray, shape (M, 2), int64
        Photo-id pairs.
    positions : ndarray, shape (M, 2), optional
        The pairs' rows in ``embeddings``.
    embeddings : ndarray, shape (N, D), optional
        Photo embeddings.  With them, photos are bucketed by the nearest of
        ``N / 2048`` random landmark photos and the pairs are ordered by the bucket of
        their first photo, so a chunk's photos mostly share a neighbourhood; without,
        pairs keep their order.
    size : int
    seed : int
        Seed of the landmarks.

    Returns
    -------
    list of ndarray, shape (m, 2)
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    if embeddings is not None and positions is not None and len(pairs):
        emb = np.asarray(embeddings, dtype=np.float32)
        rng = np.random.default_rng(seed)
        n_landmarks = max(1, len(emb) // 2048)
        marks = emb[rng.choice(len(emb), size=n_landmarks, replace=False)]
        bucket = np.empty(len(emb), dtype=np.int64)
        marks_sq = np.einsum("ld,ld->l", marks, marks)
        for s in range(0, len(emb), 8192):
            block = emb[s : s + 8192]
            bucket[s : s + 8192] = np.argmin(marks_sq[None, :] - 2.0 * block @ marks.T, axis=1)
        first = np.asarray(positions, dtype=np.int64).reshape(-1, 2)[:, 0]
        order = np.lexsort((pairs[:, 1], pairs[:, 0], bucket[first]))
        pairs = pairs[order]
    return [pairs[s : s + size] for s in range(0, len(pairs), max(1, int(size)))]


def compute_chunk(
    pairs: np.ndarray,
    models: Mapping[int, Mixture],
    divergence: Divergence,
    n_jobs: int = -1,
) -> tuple[np.ndarray, np.ndarray]:
    """The divergence of every pair of a chunk.

    Parameters
    ----------
    pairs : ndarray, shape (m, 2)
        Photo-id pairs, ``a < b``, each once.
    models : mapping of photo id to Mixture
    divergence : Divergence
    n_jobs : int
        Threads; -1 for all cores.

    Returns
    -------
    pairs : ndarray, shape (m, 2)
        The same pairs, sorted.
    values : ndarray, shape (m,)
    """
    pairs = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    photos = np.unique(pairs)
    local = [models[int(p)] for p in photos]
    rows, cols, values = sparse_distances(
        local,
        (np.searchsorted(photos, pairs[:, 0]), np.searchsorted(photos, pairs[:, 1])),
        divergence,
        n_jobs=n_jobs,
    )
    a, b = photos[np.minimum(rows, cols)], photos[np.maximum(rows, cols)]
    order = np.lexsort((b, a))
    return np.stack([a[order], b[order]], axis=1), values[order]
