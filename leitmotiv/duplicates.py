"""Groups of near-duplicates, each with a suggested keeper, for review.

Two photos are near-duplicates when their stored distance is below the divergence's
calibrated threshold (:meth:`~leitmotiv.interfaces.Divergence.near_duplicate_threshold`).
Linking every such pair (connected components) would let a chain of small steps join
two clearly different photos, so groups are made around keepers instead: photos are
taken best first (most pixels, then sharpest, then earliest capture, then lowest id);
the best photo not yet in a group becomes a keeper, and every photo not yet in a group
within the threshold of that keeper joins it.  Every member is thus a near-duplicate
of its keeper itself, never only through others.

The choice depends only on the near-duplicate pairs of a photo's connected component,
so adding photos changes only the groups they touch.  :func:`update` (run by
``build-index``) stores the groups and rewrites only the rows that changed;
:func:`groups` reads them.  Nothing here deletes or moves a photo.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import peewee as pw

from leitmotiv import queries, store
from leitmotiv.context import Context
from leitmotiv.queries import Photo
from leitmotiv.sharpness import laplacian_variance

__all__ = ["DuplicateGroup", "count", "fill_sharpness", "group_pairs", "groups", "update"]

#: Photos measured per transaction when filling in missing sharpness values.
SHARPNESS_BATCH = 500


@dataclasses.dataclass(frozen=True)
class DuplicateGroup:
    """A group of near-duplicates.

    Attributes
    ----------
    keeper : Photo
        The suggested photo to keep.
    reason : str
        Why it is the keeper rather than the next best member: ``"most pixels"``,
        ``"sharpest"``, ``"earliest capture"`` or ``"lowest id"`` (nothing else tells
        them apart).
    members : list of (Photo, float)
        Every other member with its distance to the keeper, nearest first.
    """

    keeper: Photo
    reason: str
    members: list[tuple[Photo, float]]

    @property
    def size(self) -> int:
        """Photos in the group, keeper included."""
        return 1 + len(self.members)


def _rank(width: int, height: int, sharpness: float | None, taken: Any, photo_id: int) -> tuple:
    """Sort key of a photo as a keeper: smaller is better."""
    return (
        -width * height,
        -(sharpness if sharpness is not None else float("-inf")),
        taken is None,
        str(taken) if taken is not None else "",
        photo_id,
    )


_REASONS = ("most pixels", "sharpest", "earliest capture", "lowest id")


def _reason(keeper: tuple, runner_up: tuple) -> str:
    """The first criterion of :func:`_rank` on which the keeper beats the runner-up."""
    if keeper[0] != runner_up[0]:
        return _REASONS[0]
    if keeper[1] != runner_up[1]:
        return _REASONS[1]
    if keeper[2:4] != runner_up[2:4]:
        return _REASONS[2]
    return _REASONS[3]


def group_pairs(
    ranks: dict[int, tuple], pairs: Iterable[tuple[int, int, float]]
) -> dict[int, tuple[int, float]]:
    """Group photos around keepers from their near-duplicate pairs.

    Parameters
    ----------
    ranks : dict
        Each photo's sort key as a keeper (smaller is better); must cover every photo
        of ``pairs``.
    pairs : iterable of (int, int, float)
        The near-duplicate pairs and their distances.

    Returns
    -------
    dict
        ``{photo: (keeper, distance to the keeper)}`` for every photo in a group of two
        or more; a keeper maps to itself at distance 0.
    """
    near: dict[int, dict[int, float]] = defaultdict(dict)
    for a, b, value in pairs:
        near[int(a)][int(b)] = float(value)
        near[int(b)][int(a)] = float(value)
    placed: dict[int, tuple[int, float]] = {}
    for photo in sorted(near, key=ranks.__getitem__):
        if photo in placed:
            continue
        joining = {other: d for other, d in near[photo].items() if other not in placed}
        if not joining:
            continue  # its near-duplicates all went to better keepers
        placed[photo] = (photo, 0.0)
        for other, d in joining.items():
            placed[other] = (photo, d)
    return placed


def fill_sharpness(ctx: Context) -> int:
    """Measure the photos stored without a sharpness (added before it was measured).

    Each batch is its own transaction; a thumbnail that cannot be read leaves the
    value empty (such a photo ranks last on sharpness) without stopping the others.

    Returns
    -------
    int
        Photos measured.
    """
    measured = 0
    skipped: set[int] = set()
    with store.bound(ctx.db):
        while True:
            query = (
                store.Photo.select(store.Photo.id, store.Photo.thumbnail)
                .where(
                    store.Photo.sharpness.is_null()
                    & store.Photo.thumbnail.is_null(False)
                    & store.Photo.id.not_in(list(skipped) or [0])
                )
                .limit(SHARPNESS_BATCH)
            )
            rows = list(store.raw_rows(ctx.db, query))
            if not rows:
                return measured
            values = []
            for photo_id, thumbnail in rows:
                try:
                    values.append((photo_id, laplacian_variance(bytes(thumbnail))))
                except ValueError:
                    skipped.add(photo_id)
            with ctx.db.atomic():
                for photo_id, value in values:
                    store.Photo.update(sharpness=value).where(store.Photo.id == photo_id).execute()
            measured += len(values)


def _near_pairs(ctx: Context, threshold: float) -> list[tuple[int, int, float]]:
    featurizer_id, divergence_id, _ = ctx.key_ids()
    d = store.Distance
    query = d.select(d.photo_a, d.photo_b, d.value).where(
        (d.featurizer == featurizer_id) & (d.divergence == divergence_id) & (d.value < threshold)
    )
    with store.bound(ctx.db):
        return list(store.raw_rows(ctx.db, query))


def _ranks(ctx: Context, ids: Iterable[int]) -> dict[int, tuple]:
    p = store.Photo
    ids = list(ids)
    ranks: dict[int, tuple] = {}
    with store.bound(ctx.db):
        for start in range(0, len(ids), store.INSERT_CHUNK):
            query = p.select(p.id, p.width, p.height, p.sharpness, p.taken).where(
                p.id.in_(ids[start : start + store.INSERT_CHUNK])
            )
            for photo_id, width, height, sharpness, taken in store.raw_rows(ctx.db, query):
                ranks[photo_id] = _rank(width, height, sharpness, taken, photo_id)
    return ranks


def _compute(ctx: Context, threshold: float) -> dict[int, tuple[int, float]]:
    pairs = _near_pairs(ctx, threshold)
    ranks = _ranks(ctx, {i for a, b, _ in pairs for i in (a, b)})
    return group_pairs(ranks, pairs)


def _stored(ctx: Context) -> dict[int, tuple[int, float]]:
    featurizer_id, divergence_id, _ = ctx.key_ids()
    m = store.DuplicateMember
    query = m.select(m.photo, m.keeper, m.distance).where(
        (m.featurizer == featurizer_id) & (m.divergence == divergence_id)
    )
    with store.bound(ctx.db):
        return {photo: (keeper, d) for photo, keeper, d in store.raw_rows(ctx.db, query)}


def update(ctx: Context) -> int:
    """Store the groups of the current distances, rewriting only the rows that changed.

    Missing sharpness values are measured first (:func:`fill_sharpness`).  With a
    divergence that has no calibrated threshold no group is stored.  One transaction:
    readers see the old groups or the new ones, never a mix.

    Returns
    -------
    int
        Photos whose group (keeper or distance) changed, joined or left one.
    """
    fill_sharpness(ctx)
    threshold = ctx.divergence.near_duplicate_threshold()
    new = {} if threshold is None else _compute(ctx, threshold)
    old = _stored(ctx)
    gone = [photo for photo, place in old.items() if new.get(photo) != place]
    fresh = [(photo, place) for photo, place in new.items() if old.get(photo) != place]
    if not gone and not fresh:
        return 0
    featurizer_id, divergence_id, _ = ctx.key_ids()
    m = store.DuplicateMember
    keys = (m.featurizer == featurizer_id) & (m.divergence == divergence_id)
    with store.bound(ctx.db), ctx.db.atomic():
        for start in range(0, len(gone), store.INSERT_CHUNK):
            m.delete().where(keys & m.photo.in_(gone[start : start + store.INSERT_CHUNK])).execute()
        rows = [(photo, featurizer_id, divergence_id, keeper, d) for photo, (keeper, d) in fresh]
        for start in range(0, len(rows), store.INSERT_CHUNK):
            m.insert_many(
                rows[start : start + store.INSERT_CHUNK],
                fields=[m.photo, m.featurizer, m.divergence, m.keeper, m.distance],
            ).execute()
    return len(set(gone) | {photo for photo, _ in fresh})


def count(ctx: Context) -> int:
    """Number of stored groups."""
    featurizer_id, divergence_id, _ = ctx.key_ids()
    m = store.DuplicateMember
    with store.bound(ctx.db):
        return (
            m.select(pw.fn.COUNT(m.keeper.distinct()))
            .where((m.featurizer == featurizer_id) & (m.divergence == divergence_id))
            .scalar()
        )


def groups(
    ctx: Context, threshold: float | None = None, offset: int = 0, limit: int | None = None
) -> list[DuplicateGroup]:
    """The groups of near-duplicates, largest first (then by keeper id).

    Parameters
    ----------
    ctx : Context
    threshold : float, optional
        Group by this distance instead of the divergence's calibrated threshold: the
        groups are then made from the stored distances on the spot, not read.
    offset, limit : int, optional
        A page of that order (only its photos are read).

    Returns
    -------
    list of DuplicateGroup
        Empty before ``build-index``, or without a threshold at all.

    Raises
    ------
    ValueError
        If ``threshold`` is not a positive finite number.
    """
    if threshold is not None and not (math.isfinite(threshold) and threshold > 0):
        raise ValueError(f"the threshold must be a positive finite distance, got {threshold}")
    placed = _stored(ctx) if threshold is None else _compute(ctx, threshold)
    by_keeper: dict[int, list[tuple[int, float]]] = defaultdict(list)
    for photo_id, (keeper, d) in placed.items():
        if photo_id != keeper:
            by_keeper[keeper].append((photo_id, d))
    order = sorted(by_keeper, key=lambda keeper: (-len(by_keeper[keeper]), keeper))
    shown = order[offset:] if limit is None else order[offset : offset + limit]
    found = queries.photos_by_id(
        ctx, [i for keeper in shown for i in (keeper, *(p for p, _ in by_keeper[keeper]))]
    )
    out = []
    for keeper_id in shown:
        members = [(found[p], d) for p, d in by_keeper[keeper_id] if p in found]
        if keeper_id not in found or not members:
            continue  # a photo removed since
        members.sort(key=lambda member: (member[1], member[0].id))
        keeper = found[keeper_id]
        best_other = min(members, key=lambda member: _photo_rank(member[0]))[0]
        reason = _reason(_photo_rank(keeper), _photo_rank(best_other))
        out.append(DuplicateGroup(keeper, reason, members))
    return out


def _photo_rank(photo: Photo) -> tuple:
    taken = None if photo.taken is None else photo.taken.replace(tzinfo=None)
    return _rank(photo.width, photo.height, photo.sharpness, taken, photo.id)
