"""The candidate graph of a large library, stored per photo and brought up to date.

Above a few thousand photos, :meth:`leitmotiv.library.Library.build_index` computes the
exact divergence only between each photo and its candidates (:mod:`leitmotiv.candidates`):
the ``wide`` nearest photos in a closed-form embedding of the models, re-ranked by a
cheap Monte Carlo estimate of the divergence down to ``k``.  The lists are stored with
each photo (:class:`leitmotiv.store.Neighbours`), which gives

- incremental updates: photos added to an indexed library are searched against all,
  and an old photo's lists change only where an added photo enters them
  (:func:`~leitmotiv.candidates.candidates_for`, :func:`~leitmotiv.candidates.refine_added`);
- resumable builds: the photos without lists are taken in batches, each batch committed
  in one transaction together with every old list it changed, so a killed build
  resumes at the batch it was in, and the lists equal those of an uninterrupted build.

The first build is the same code: every photo is new, taken batch by batch.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import peewee as pw

from leitmotiv import candidates, store
from leitmotiv.implementation import Divergence
from leitmotiv.mixture import Mixture

__all__ = ["BATCH", "CandidateGraph", "SearchParameters", "positions_in", "update_candidates"]

#: Photos per committed batch of a candidate update, at least; an update takes at most
#: :data:`MAX_BATCHES` batches, since each batch rewrites the old lists it changed
#: (nearly all of them when a batch is large).
BATCH = 4096
MAX_BATCHES = 8


@dataclass(frozen=True)
class SearchParameters:
    """How candidates are chosen.

    Parameters
    ----------
    k : int
        Candidates per photo that get the exact divergence.  50 recalled 0.95 or more
        of the exact top 10 in ``benchmarks/scale.py``, where each photo has dozens of
        near-copies; 30 was not enough there.
    wide : int
        Embedding neighbours per photo re-ranked by the cheap estimate.
    n_samples : int
        Monte Carlo samples of the cheap estimate.
    batch : int
        Photos per committed batch (the unit of resumption), at least; not part of
        the result.
    """

    k: int = 50
    wide: int = 100
    n_samples: int = 128
    batch: int = BATCH

    def __post_init__(self) -> None:
        for name in ("k", "wide", "n_samples", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def key(self, divergence: Divergence) -> str:
        """What the stored lists depend on: the divergence and the search settings."""
        return "candidates" + json.dumps(
            {
                "divergence": divergence.key(),
                "k": int(self.k),
                "wide": int(max(self.wide, self.k)),
                "n_samples": int(self.n_samples),
                "probes": dataclasses.asdict(candidates.Probes()),
            },
            sort_keys=True,
        )


@dataclass(frozen=True)
class CandidateGraph:
    """The candidate lists of a library.

    Attributes
    ----------
    indices : ndarray, shape (N, k), int64
        Each photo's candidates as positions in the photo id array the graph was built
        for; -1 pads a short list.
    embeddings : ndarray, shape (N, D), float32
        The photos' embeddings (:func:`leitmotiv.candidates.embed`).
    new : int
        Photos that had no stored lists before this update.
    changed : int
        Photos already indexed whose lists changed.
    """

    indices: np.ndarray
    embeddings: np.ndarray
    new: int
    changed: int


def _pack(ids: np.ndarray, values: np.ndarray) -> bytes:
    return np.asarray(ids, dtype="<i8").tobytes() + np.asarray(values, dtype="<f8").tobytes()


def _unpack(blob: bytes) -> tuple[np.ndarray, np.ndarray]:
    blob = bytes(blob)
    half = len(blob) // 2
    return np.frombuffer(blob[:half], dtype="<i8"), np.frombuffer(blob[half:], dtype="<f8")


def positions_in(ids: np.ndarray, photo_ids: np.ndarray) -> np.ndarray:
    """Positions of ``photo_ids`` in the ascending array ``ids``; -1 where absent."""
    photo_ids = np.asarray(photo_ids, dtype=np.int64)
    if len(ids) == 0:
        return np.full(photo_ids.shape, -1, dtype=np.int64)
    pos = np.searchsorted(ids, photo_ids).clip(0, len(ids) - 1)
    return np.where(ids[pos] == photo_ids, pos, -1)


def _table(blobs: list[bytes], ids: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored lists as (positions into ``ids``, values), ``width`` wide, each row re-sorted
    so that photos no longer indexed (now padding: -1, inf) go last."""
    pos = np.full((len(blobs), width), -1, dtype=np.int64)
    val = np.full((len(blobs), width), np.inf)
    for r, blob in enumerate(blobs):
        photo_ids, values = _unpack(blob)
        m = min(len(photo_ids), width)
        pos[r, :m], val[r, :m] = positions_in(ids, photo_ids[:m]), values[:m]
    val[pos < 0] = np.inf
    order = np.argsort(val, axis=1, kind="stable")
    return np.take_along_axis(pos, order, 1), np.take_along_axis(val, order, 1)


def _stored(featurizer_id: int, search_id: int, ids: np.ndarray, width: tuple[int, int]):
    """The stored lists of ``ids`` (ascending): positions with lists, their embeddings,
    and the wide and the re-ranked tables (see :func:`_table`)."""
    query = (
        store.Neighbours.select(
            store.Neighbours.photo,
            store.Neighbours.embedding,
            store.Neighbours.wide,
            store.Neighbours.candidates,
        )
        .where(
            (store.Neighbours.featurizer == featurizer_id) & (store.Neighbours.search == search_id)
        )
        .tuples()
    )
    found, embeddings, wide, cands = [], [], [], []
    for photo_id, embedding, wide_blob, cand_blob in query.iterator():
        p = int(positions_in(ids, np.asarray(photo_id)))
        if p < 0:
            continue  # a photo without a current model
        found.append(p)
        embeddings.append(np.frombuffer(bytes(embedding), dtype="<f4"))
        wide.append(wide_blob)
        cands.append(cand_blob)
    dim = 2 * (candidates.Probes().n_spatial + candidates.Probes().n_colour)
    emb = np.stack(embeddings) if embeddings else np.zeros((0, dim), dtype=np.float32)
    return (
        np.asarray(found, dtype=np.int64),
        emb,
        _table(wide, ids, width[0]),
        _table(cands, ids, width[1]),
    )


def _write(
    db: pw.Database,
    rows: np.ndarray,
    photo_ids: np.ndarray,
    embeddings: np.ndarray,
    wide: tuple[np.ndarray, np.ndarray],
    cands: tuple[np.ndarray, np.ndarray],
    featurizer_id: int,
    search_id: int,
) -> None:
    """Replace the stored lists of local ``rows`` in one transaction."""

    def ids_of(local: np.ndarray) -> np.ndarray:
        return np.where(local < 0, -1, photo_ids[np.maximum(local, 0)])

    records = [
        (
            int(photo_ids[r]),
            featurizer_id,
            search_id,
            embeddings[r].astype("<f4").tobytes(),
            _pack(ids_of(wide[0][r]), wide[1][r]),
            _pack(ids_of(cands[0][r]), cands[1][r]),
        )
        for r in rows
    ]
    fields = [
        store.Neighbours.photo,
        store.Neighbours.featurizer,
        store.Neighbours.search,
        store.Neighbours.embedding,
        store.Neighbours.wide,
        store.Neighbours.candidates,
    ]
    this_search = (store.Neighbours.featurizer == featurizer_id) & (
        store.Neighbours.search == search_id
    )
    with db.atomic():
        for s in range(0, len(records), store.INSERT_CHUNK):
            chunk = records[s : s + store.INSERT_CHUNK]
            store.Neighbours.delete().where(
                this_search & store.Neighbours.photo.in_([r[0] for r in chunk])
            ).execute()
            store.Neighbours.insert_many(chunk, fields=fields).execute()


def update_candidates(
    db: pw.Database,
    ids: np.ndarray,
    mixtures: Sequence[Mixture],
    divergence: Divergence,
    featurizer_id: int,
    params: SearchParameters,
    *,
    n_jobs: int = -1,
    progress: bool = False,
) -> CandidateGraph:
    """Bring the stored candidate lists of a library up to date and return them.

    Parameters
    ----------
    db : peewee.Database
        The library's database (the store's models must be bound to it).
    ids : ndarray of int64, ascending
        Photo ids of the indexed photos.
    mixtures : sequence of Mixture
        Their models, in the order of ``ids``.
    divergence : Divergence
        The divergence the candidates are for (its cheap estimate re-ranks them).
    featurizer_id : int
        Store key of the featurizer the models came from.
    params : SearchParameters
    n_jobs : int
        Threads; -1 for all cores.
    progress : bool
        Progress bars with the time left on standard error.

    Returns
    -------
    CandidateGraph
    """
    from tqdm import tqdm

    ids = np.asarray(ids, dtype=np.int64)
    n = len(ids)
    wide_k = max(params.wide, params.k)
    with db.atomic():
        search_id = store.key_id(params.key(divergence))
    old_pos, old_emb, old_wide, old_cand = _stored(
        featurizer_id, search_id, ids, (wide_k, params.k)
    )
    new_pos = np.setdiff1d(np.arange(n), old_pos)
    # Local order: photos with stored lists first, then the new ones.
    order = np.concatenate([old_pos, new_pos]).astype(np.int64)
    local_of = np.empty(n, dtype=np.int64)
    local_of[order] = np.arange(n)

    def to_local(pos: np.ndarray) -> np.ndarray:
        return np.where(pos < 0, -1, local_of[np.maximum(pos, 0)])

    local_mixtures = [mixtures[p] for p in order]
    local_ids = ids[order]
    embeddings = np.empty((n, old_emb.shape[1]), dtype=np.float32)
    embeddings[: len(old_pos)] = old_emb
    with tqdm(total=len(new_pos), desc="embedding", unit="photo", disable=not progress) as bar:
        for s in range(len(old_pos), n, 1024):
            stop = min(s + 1024, n)
            embeddings[s:stop] = candidates.embed(local_mixtures[s:stop])
            bar.update(stop - s)
    wide = (to_local(old_wide[0]), old_wide[1])
    cand = (to_local(old_cand[0]), old_cand[1])
    changed = np.zeros(n, dtype=bool)
    n_cur = len(old_pos)
    batch = max(params.batch, -(-len(new_pos) // MAX_BATCHES))
    bars = [
        tqdm(total=len(new_pos), desc=desc, unit="photo", disable=not progress)
        for desc in ("candidate search", "re-ranking")
    ]
    try:
        while n_cur < n:
            stop = min(n_cur + batch, n)

            def searched(done: int, total: int, start: int = n_cur) -> None:
                bars[0].update(start + done - len(old_pos) - bars[0].n)

            def ranked(done: int, total: int, start: int = n_cur, size: int = stop - n_cur):
                bars[1].update(start + size * done / max(total, 1) - len(old_pos) - bars[1].n)

            w_idx, w_dist, w_changed = candidates.candidates_for(
                embeddings[n_cur:stop],
                embeddings[:n_cur],
                wide[0],
                wide[1],
                wide_k,
                progress=searched,
            )
            c_idx, c_est, c_changed = candidates.refine_added(
                local_mixtures[:stop],
                w_idx,
                cand[0],
                cand[1],
                n_cur,
                params.k,
                divergence,
                n_samples=params.n_samples,
                n_jobs=n_jobs,
                progress=ranked,
            )
            touched = np.union1d(np.arange(n_cur, stop), np.union1d(w_changed, c_changed))
            _write(
                db,
                touched,
                local_ids,
                embeddings,
                (w_idx, w_dist),
                (c_idx, c_est),
                featurizer_id,
                search_id,
            )
            changed[w_changed] = changed[c_changed] = True
            wide, cand = (w_idx, w_dist), (c_idx, c_est)
            bars[1].update(stop - len(old_pos) - bars[1].n)
            n_cur = stop
    finally:
        for bar in bars:
            bar.close()
    # Back to the positions of ``ids``.
    indices = np.full((n, params.k), -1, dtype=np.int64)
    width = min(cand[0].shape[1], params.k) if cand[0].ndim == 2 else 0
    local_table = cand[0][:, :width]
    indices[order, :width] = np.where(local_table < 0, -1, order[np.maximum(local_table, 0)])
    return CandidateGraph(
        indices=indices,
        embeddings=embeddings[local_of],
        new=len(new_pos),
        changed=int(changed[: len(old_pos)].sum()),
    )
