"""The candidate graph of a large library, stored per photo and brought up to date.

Above a few thousand photos, :meth:`leitmotiv.library.Library.build_index` computes the
exact divergence only between each photo and its candidates (:mod:`leitmotiv.candidates`):
the ``wide`` nearest photos in the divergence's embedding of the models, re-ranked by
its cheap estimate down to ``k`` (both supplied by the divergence, see
:class:`leitmotiv.implementation.Divergence`).  The lists are stored with
each photo (:class:`leitmotiv.store.Neighbours`), which gives

- incremental updates that cost what the added photos cost: they are searched against
  all photos, and an old photo's list changes only where an added photo whose wide list
  holds it beats its candidates (:func:`~leitmotiv.candidates.refine_added`).  Only the
  added photos' pairs are estimated, and the sample sets the estimate draws are kept
  with each photo (``Neighbours.samples``), so the old photos involved are read back,
  not drawn again;
- resumable builds: the photos without lists are taken in batches, each batch committed
  in one transaction together with every old list it changed, so a killed build
  resumes at the batch it was in, and the lists equal those of an uninterrupted build.

The first build is the same code: every photo is new, taken batch by batch.

Admitting an added photo only from its own side (rather than also searching every old
photo's embedding neighbours again) was measured on ``benchmarks/scale.py``'s library:
see the README's "Large libraries" for recall at 10,000 and 100,000 photos.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import peewee as pw

from leitmotiv import candidates, store
from leitmotiv.interfaces import Divergence
from leitmotiv.mixture import Mixture

__all__ = [
    "BATCH",
    "CandidateGraph",
    "SearchParameters",
    "positions_in",
    "update_candidates",
    "wide_for",
]


def wide_for(k: int) -> int:
    """Embedding neighbours re-ranked for ``k`` exact candidates: ``max(600, 12 k)``.

    On a library of distinct photos (``benchmarks/recall.py``'s diverse library, 2,500
    photos, 150 queries) the re-ranking by the cheap estimate lost nothing down to
    ``k`` = 50: every miss was in the embedding's list.  The default divergence's
    embedding held 0.95 of the exact top 10 in 450 neighbours and 0.97 in 600 (palette
    weight 2.5; with the earlier 1.5, 0.86 in 300 and 0.92 in 600).  At 10,000 diverse
    photos 600 neighbours ordered by the embedding gaps (a shortlist of 2,400, see
    :mod:`leitmotiv.candidates`) hold 0.981 of it and their 50 best cheap estimates
    0.964 (the Euclidean 600: 0.941 and 0.927).
    """
    return max(600, 12 * int(k))


#: Photos per committed batch of a candidate update, at least; an update takes at most
#: :data:`MAX_BATCHES` batches of a library's size, so that a first build's early
#: batches are searched among enough photos.
BATCH = 4096
MAX_BATCHES = 8


@dataclass(frozen=True)
class SearchParameters:
    """How candidates are chosen.

    Parameters
    ----------
    k : int
        Candidates per photo that get the exact divergence.
    wide : int
        Embedding neighbours per photo re-ranked by the cheap estimate.  Where photos
        have hundreds of near-copies (``benchmarks/scale.py`` at 100,000 photos) the
        exact top 10 lies further down the embedding's order than the cheap estimate's:
        on 5,000 models of two scenes (the density of 100,000), the estimate lost
        nothing keeping 50 of 300, while 300 embedding neighbours held 0.96 of the
        exact top 10 and 100 only 0.86 (see :mod:`leitmotiv.candidates`).
    batch : int
        Photos per committed batch (the unit of resumption), at least; not part of
        the result.
    """

    k: int = 50
    wide: int = 600
    batch: int = BATCH

    def __post_init__(self) -> None:
        for name in ("k", "wide", "batch"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")

    def key(self, divergence: Divergence) -> str:
        """What the stored lists depend on: the divergence (whose key determines its
        embedding), its cheap estimator and the search settings."""
        return "candidates" + json.dumps(
            {
                "divergence": divergence.key(),
                "estimator": divergence.estimator().key(),
                "k": int(self.k),
                "wide": int(max(self.wide, self.k)),
                # 2: added photos enter old lists from their own wide lists only;
                # 3: the embedding and the estimator come from the divergence;
                # 4: a shortlist ordered by the divergence's embedding gaps.
                "lists": 4,
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
        The photos' embeddings (:meth:`leitmotiv.implementation.Divergence.embedding`).
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


def positions_in(ids: np.ndarray, photo_ids: np.ndarray) -> np.ndarray:
    """Positions of ``photo_ids`` in the ascending array ``ids``; -1 where absent."""
    photo_ids = np.asarray(photo_ids, dtype=np.int64)
    if len(ids) == 0:
        return np.full(photo_ids.shape, -1, dtype=np.int64)
    pos = np.searchsorted(ids, photo_ids).clip(0, len(ids) - 1)
    return np.where(ids[pos] == photo_ids, pos, -1)


def _table(blobs: list[bytes], ids: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored lists as (positions into ``ids``, values), ``width`` wide; a row that
    names photos no longer indexed (now padding: -1, inf) is re-sorted to put them last.

    All rows are decoded together (one buffer, one id lookup): a large library reads
    hundreds of thousands of lists on every update.
    """
    pos = np.full((len(blobs), width), -1, dtype=np.int64)
    val = np.full((len(blobs), width), np.inf)
    if not blobs:
        return pos, val
    # Each blob is its n photo ids (int64) then its n values (float64).
    lengths = np.fromiter((len(b) // 16 for b in blobs), dtype=np.int64, count=len(blobs))
    words = np.frombuffer(b"".join(bytes(b) for b in blobs), dtype="<i8")
    starts = 2 * (np.cumsum(lengths) - lengths)
    kept = np.minimum(lengths, width)
    row = np.repeat(np.arange(len(blobs)), kept)
    col = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
    at = starts[row] + col
    found = positions_in(ids, words[at])
    pos[row, col] = found
    val[row, col] = words.view("<f8")[at + lengths[row]]
    stale = np.unique(row[found < 0])
    if stale.size:
        val[pos < 0] = np.inf
        order = np.argsort(val[stale], axis=1, kind="stable")
        pos[stale] = np.take_along_axis(pos[stale], order, 1)
        val[stale] = np.take_along_axis(val[stale], order, 1)
    return pos, val


def _stored(db: pw.Database, featurizer_id: int, search_id: int, ids: np.ndarray, width: int):
    """The stored lists of ``ids`` (ascending): positions with lists, their embeddings,
    and their lists (see :func:`_table`)."""
    found, embeddings, cands = [], [], []
    for photo_id, embedding, cand_blob in store.neighbour_lists(db, featurizer_id, search_id):
        found.append(photo_id)
        embeddings.append(embedding)
        cands.append(cand_blob)
    pos = positions_in(ids, np.asarray(found, dtype=np.int64))
    keep = np.flatnonzero(pos >= 0)  # others are photos without a current model
    # Every list of one search key was embedded by one divergence: one length.
    dim = len(embeddings[0]) // 4 if embeddings else 0
    emb = np.frombuffer(b"".join(embeddings), dtype="<f4").reshape(len(found), dim)[keep]
    return pos[keep], emb, _table([cands[i] for i in keep], ids, width)


def _embedded(divergence: Divergence, mixtures: Sequence[Mixture]) -> np.ndarray:
    """``divergence.embedding(mixtures)``, checked: float32, one finite row per model."""
    emb = np.asarray(divergence.embedding(mixtures))
    if emb.ndim != 2 or len(emb) != len(mixtures) or not np.all(np.isfinite(emb)):
        raise ValueError(
            f"the divergence {divergence.name!r} gave an embedding of shape {emb.shape} "
            f"for {len(mixtures)} models; it must be (models, length) and finite"
        )
    return emb.astype(np.float32, copy=False)


def _restore_samples(
    db: pw.Database,
    cheap: Divergence,
    photo_ids: np.ndarray,
    models: Sequence[Mixture],
    featurizer_id: int,
    search_id: int,
) -> None:
    """Hand the stored sample sets of ``photo_ids`` back to the cheap estimate."""
    model_of = dict(zip(photo_ids.tolist(), models, strict=True))
    rows = store.kept_samples(db, featurizer_id, search_id, model_of)
    # A chunk at a time: the sets of 100,000 photos would hold over a gigabyte at once.
    while part := list(itertools.islice(rows, store.INSERT_CHUNK)):
        cheap.load_prepared([model_of[p] for p, _ in part], [blob for _, blob in part])


def _write(
    db: pw.Database,
    changed: np.ndarray,
    added: range,
    photo_ids: np.ndarray,
    embeddings: np.ndarray,
    cands: tuple[np.ndarray, np.ndarray],
    samples: list[bytes | None],
    featurizer_id: int,
    search_id: int,
) -> None:
    """Store a batch in one transaction: the ``added`` rows are inserted with their
    embeddings and sample sets, the ``changed`` stored rows get their new list."""

    def packed(r: int) -> bytes:
        idx = cands[0][r]
        return _pack(np.where(idx < 0, -1, photo_ids[np.maximum(idx, 0)]), cands[1][r])

    store.write_neighbours(
        db,
        featurizer_id,
        search_id,
        ((int(photo_ids[r]), packed(r)) for r in np.asarray(changed, dtype=np.int64)),
        (
            (
                int(photo_ids[r]),
                embeddings[r].astype("<f4").tobytes(),
                packed(r),
                samples[r - added.start],
            )
            for r in added
        ),
    )


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
        The library's database, read and written through :mod:`leitmotiv.store`.
    ids : ndarray of int64, ascending
        Photo ids of the indexed photos.
    mixtures : sequence of Mixture
        Their models, in the order of ``ids``.
    divergence : Divergence
        The divergence the candidates are for (its embedding is searched, its cheap
        estimator re-ranks them).
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
    cheap = divergence.estimator()
    search_id = store.search_key_id(db, params.key(divergence))
    old_pos, old_emb, old_cand = _stored(db, featurizer_id, search_id, ids, params.k)
    new_pos = np.setdiff1d(np.arange(n), old_pos)
    # Local order: photos with stored lists first, then the new ones.
    order = np.concatenate([old_pos, new_pos]).astype(np.int64)
    local_of = np.empty(n, dtype=np.int64)
    local_of[order] = np.arange(n)
    local_mixtures = [mixtures[p] for p in order]
    local_ids = ids[order]
    parts = [old_emb]
    with tqdm(total=len(new_pos), desc="embedding", unit="photo", disable=not progress) as bar:
        for s in range(len(old_pos), n, 1024):
            stop = min(s + 1024, n)
            parts.append(_embedded(divergence, local_mixtures[s:stop]))
            bar.update(stop - s)
    widths = {p.shape[1] for p in parts if len(p)}
    if len(widths) > 1:
        raise ValueError(
            f"the divergence {divergence.name!r} gave embeddings of lengths {sorted(widths)}"
            " for the models of one library"
        )
    embeddings = np.concatenate([p for p in parts if len(p)] or [np.zeros((0, 0))])
    embeddings = embeddings.astype(np.float32, copy=False)
    cand_idx = np.where(old_cand[0] < 0, -1, local_of[np.maximum(old_cand[0], 0)])
    cand = (cand_idx, old_cand[1])
    changed = np.zeros(n, dtype=bool)
    # Rows whose cheap sample sets this run has drawn or read back.
    in_memory = np.zeros(n, dtype=bool)
    n_cur = len(old_pos)
    # Batches follow from the library's size alone, so a resumed build takes the same.
    batch = max(params.batch, -(-n // MAX_BATCHES))
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

            wide, _ = candidates.candidate_pairs(
                embeddings[:stop],
                wide_k,
                maps=divergence.embedding_maps(embeddings.shape[1]),
                gaps=divergence.embedding_gaps,
                start=n_cur,
                progress=searched,
            )
            involved = np.unique(wide[(wide >= 0) & (wide < n_cur)])
            involved = involved[~in_memory[involved]]
            _restore_samples(
                db,
                cheap,
                local_ids[involved],
                [local_mixtures[r] for r in involved],
                featurizer_id,
                search_id,
            )
            in_memory[involved] = True
            c_idx, c_est, c_changed = candidates.refine_added(
                local_mixtures[:stop],
                wide,
                cand[0],
                cand[1],
                params.k,
                divergence,
                n_jobs=n_jobs,
                progress=ranked,
            )
            in_memory[n_cur:stop] = True
            _write(
                db,
                c_changed,
                range(n_cur, stop),
                local_ids,
                embeddings,
                (c_idx, c_est),
                cheap.dump_prepared(local_mixtures[n_cur:stop]),
                featurizer_id,
                search_id,
            )
            changed[c_changed] = True
            cand = (c_idx, c_est)
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
