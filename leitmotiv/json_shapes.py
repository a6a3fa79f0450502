"""The JSON shapes of the library's objects, as the web API and ``leitmotiv ... --json``
show them.

Plain functions of the objects' attributes, without the web framework, so that
:mod:`leitmotiv.summaries` can store a clustering's listings in these shapes ready to
serve (see :func:`leitmotiv.summaries.store_listings`).  :mod:`leitmotiv.web.app`
re-exports them under their old names.
"""

from __future__ import annotations

from typing import Any


def photo_json(photo) -> dict[str, Any]:
    """A photo as the JSON API and ``leitmotiv ... --json`` show it."""
    return {
        "id": photo.id,
        "path": photo.path,
        "taken": photo.taken.isoformat() if photo.taken is not None else None,
        "taken_source": photo.taken_source,
        "width": photo.width,
        "height": photo.height,
        "components": photo.components,
    }


def photo_ref(photo) -> dict[str, Any]:
    """The short form of a photo inside other objects: id and path."""
    return {"id": photo.id, "path": photo.path}


def duplicate_photo_json(photo) -> dict[str, Any]:
    """A photo in a group of near-duplicates: what deciding which to keep needs."""
    return {**photo_json(photo), "size": photo.size, "sharpness": photo.sharpness}


def duplicate_group_json(group) -> dict[str, Any]:
    """A group of near-duplicates as the JSON API and ``leitmotiv duplicates --json``
    show it: the keeper, why, and the other members with their distance to it."""
    return {
        "size": group.size,
        "keeper": duplicate_photo_json(group.keeper),
        "reason": group.reason,
        "members": [
            {**duplicate_photo_json(photo), "distance": distance}
            for photo, distance in group.members
        ],
    }


def cluster_json(cluster) -> dict[str, Any]:
    """A cluster: its id, exemplar and members (short photo forms)."""
    return {
        "id": cluster.id,
        "exemplar": photo_ref(cluster.exemplar),
        "members": [photo_ref(member) for member in cluster.members],
    }


def motif_json(motif, photos: dict[int, Any], average: str) -> dict[str, Any]:
    """A motif as ``/api/motifs`` and ``leitmotiv motifs --json`` show it.

    Parameters
    ----------
    motif : leitmotiv.motifs.Motif
    photos : dict
        Photos by id, at least the motif's members.
    average : str
        How to get the motif's average image (a URL here, a command in the CLI).
    """

    def dated(photo_id: int) -> dict[str, Any]:
        photo = photos[photo_id]
        taken = photo.taken.isoformat() if photo.taken is not None else None
        return {**photo_ref(photo), "taken": taken}

    return {
        "cluster_id": motif.cluster_id,
        "score": motif.score,
        "recurring": motif.recurring,
        "resolution": motif.resolution,
        "exemplar": photo_ref(photos[motif.exemplar_id]),
        "average": average,
        "occurrences": motif.n_occurrences,
        "periods": [
            {
                "label": period.label,
                "start": period.start.isoformat(),
                "photos": [dated(pid) for pid in period.photo_ids],
                "occurrences": len(period.occurrences),
            }
            for period in motif.periods
        ],
        "gaps_days": motif.gaps_days,
        "undated": [photo_ref(photos[pid]) for pid in motif.undated_ids],
        "members": [photo_ref(photos[pid]) for pid in motif.member_ids],
    }
