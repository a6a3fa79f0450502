"""Search by an outside photo: rank the library against a photo that is not in it.

The photo is decoded and fitted in memory, exactly as it would be when added (same
working size, same featurizer, same seed), and nothing about it is stored.  It is then
compared with the library the way the index compares library photos:

- a *sparse* index (a large library) keeps each photo's embedding with its candidate
  lists (:class:`leitmotiv.store.Neighbours`): the query is embedded the same way, its
  ``wide`` nearest embeddings are re-ranked by the cheap estimate of the divergence
  down to ``k`` candidates, and those get the exact divergence, as in
  :mod:`leitmotiv.candidates`;
- a *dense* index (every pair) gets the exact divergence to every indexed photo.

The embeddings of a large library are read once per process and kept (see
:class:`EmbeddingCache`), so that a server answers later searches from memory.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import peewee as pw

from leitmotiv import queries, store
from leitmotiv.context import Context
from leitmotiv.mixture import Mixture
from leitmotiv.queries import Photo

__all__ = ["EmbeddingCache", "fit_image", "rank"]


def fit_image(ctx: Context, rgb: np.ndarray) -> Mixture:
    """The photo's model, fitted as :mod:`leitmotiv.ingest` fits a photo it adds.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        The photo decoded at :data:`leitmotiv.ingest.FIT_LONG_SIDE`.
    """
    from leitmotiv.ingest import FIT_SEED

    return ctx.featurizer.model(rgb, seed=FIT_SEED)


def _search_parameters(ctx: Context, top: int):
    from leitmotiv import sparse_index

    k = max(int(ctx.settings.neighbours), int(top))
    return sparse_index.SearchParameters(k=k, wide=sparse_index.wide_for(k))


def _search_id(ctx: Context) -> int | None:
    """Id of the key of the stored candidate lists, None if there are none (looked up
    without inserting: a search never writes)."""
    from leitmotiv import sparse_index

    params = sparse_index.SearchParameters(
        k=ctx.settings.neighbours, wide=sparse_index.wide_for(ctx.settings.neighbours)
    )
    with store.bound(ctx.db):
        row = store.ImplementationKey.get_or_none(
            store.ImplementationKey.key == params.key(ctx.divergence)
        )
    return None if row is None else row.id


class EmbeddingCache:
    """The stored embeddings of a sparse index, read once and kept while they match.

    The stored set is recognised by its row count and largest photo id (one indexed
    query), so an index rebuilt by another process is read again.  That query reads an
    index entry per photo (tens of milliseconds at 100,000 photos), so a connection
    asks it again only once the database has changed
    (:func:`leitmotiv.store.change_marker`).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._key: tuple[Any, ...] | None = None
        self._value: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        # Per connection, the key the stored set last matched.
        self._checked = store.KeptUntilChanged()

    def get(
        self, ctx: Context, featurizer_id: int, search_id: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Photo ids (ascending), their embeddings (N, D) float32 and the embeddings'
        squared norms (N,) float32."""
        marker = store.change_marker(ctx.db)
        tag = (str(ctx.folder), featurizer_id, search_id)
        with self._lock:
            if self._key is not None and self._checked.get(marker, tag) == self._key:
                return self._value
        n = store.Neighbours
        where = (n.featurizer == featurizer_id) & (n.search == search_id)
        with store.bound(ctx.db):
            count, top = (
                n.select(pw.fn.COUNT(n.photo), pw.fn.MAX(n.photo))
                .where(where)
                .scalar(as_tuple=True)
            )
        key = (str(ctx.folder), featurizer_id, search_id, count, top)
        with self._lock:
            if key != self._key:
                rows = sorted(store.neighbour_embeddings(ctx.db, featurizer_id, search_id))
                ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
                blob = b"".join(r[1] for r in rows)
                dim = len(rows[0][1]) // 4 if rows else 0
                embeddings = np.frombuffer(blob, dtype="<f4").reshape(len(rows), dim)
                norms = np.einsum("nd,nd->n", embeddings, embeddings)
                self._key, self._value = key, (ids, embeddings, norms)
            self._checked.put(marker, tag, key)
            return self._value


def _mixtures(ctx: Context, ids: np.ndarray) -> tuple[np.ndarray, list[Mixture]]:
    """The models of ``ids`` for the current featurizer (photos without one left out)."""
    blobs = store.model_blobs(ctx.db, ctx.key_ids()[0], ids.tolist())
    kept = np.array([i for i in ids.tolist() if i in blobs], dtype=np.int64)
    return kept, [Mixture.from_bytes(blobs[i]) for i in kept.tolist()]


def _sparse_candidates(
    ctx: Context, query: Mixture, top: int, search_id: int, cache: EmbeddingCache
) -> tuple[np.ndarray, list[Mixture]]:
    """The query's candidates from the stored embeddings and the cheap estimate."""
    from leitmotiv import candidates, sparse_index

    params = _search_parameters(ctx, top)
    ids, embeddings, norms = cache.get(ctx, ctx.key_ids()[0], search_id)
    if len(ids) == 0:
        return ids, []
    q = ctx.divergence.embedding([query])
    # The index's own search (its maps and gaps), against the kept embeddings.
    nearest, _ = candidates.nearest(
        q,
        embeddings,
        min(params.wide, len(ids)),
        maps=ctx.divergence.embedding_maps(q.shape[1]),
        gaps=ctx.divergence.embedding_gaps,
        base_sq=norms,
    )
    wide_ids, wide_models = _mixtures(ctx, ids[nearest[0]])
    if len(wide_ids) <= params.k:
        return wide_ids, wide_models
    cheap = ctx.divergence.estimator()
    # The sample sets the index kept with each photo: drawing them again would cost
    # most of the search.
    sparse_index._restore_samples(ctx.db, cheap, wide_ids, wide_models, ctx.key_ids()[0], search_id)
    estimate = cheap.cross([query], wide_models)[0]
    order = np.lexsort((wide_ids, estimate))[: params.k]
    return wide_ids[order], [wide_models[i] for i in order]


def rank(
    ctx: Context, query: Mixture, top: int, cache: EmbeddingCache | None = None
) -> list[tuple[Photo, float]]:
    """The library's photos nearest to an outside photo's model, nearest first.

    Parameters
    ----------
    ctx : Context
    query : Mixture
        The outside photo's model (:func:`fit_image`).
    top : int
        How many photos to return.
    cache : EmbeddingCache, optional
        Where a long-running process keeps a sparse index's embeddings between
        searches; without it they are read for this search only.

    Returns
    -------
    list of (Photo, float)
        At most ``top`` indexed photos and their distance to the query.
    """
    from leitmotiv.index import indexed_models

    search_id = _search_id(ctx)
    if search_id is not None:
        ids, models = _sparse_candidates(ctx, query, top, search_id, cache or EmbeddingCache())
    else:
        ids, models = indexed_models(ctx, ctx.key_ids()[0])
        ids = np.asarray(ids, dtype=np.int64)
    if len(ids) == 0:
        return []
    values = ctx.divergence.cross([query], models)[0]
    order = np.lexsort((ids, values))[: int(top)]
    found = queries.photos_by_id(ctx, ids[order].tolist())
    return [(found[int(ids[j])], float(values[j])) for j in order if int(ids[j]) in found]
