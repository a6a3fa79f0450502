"""Images made from the models, cached as PNG files: a photo's render and a cluster's
average image.

A rendered image depends only on the featurizer's key and the content of the photos
(their SHA-256), so the cache file is named by a digest of those and never goes stale;
it lives in ``<library>/cache/``.  A library whose folder cannot be written still
renders, uncached.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from leitmotiv import queries
from leitmotiv.context import Context

log = logging.getLogger(__name__)

__all__ = ["average", "render"]


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _cached_png(folder: Path, name: str, make: Callable[[], np.ndarray]) -> bytes:
    """PNG bytes from ``<folder>/cache/<name>``, made and written on a miss."""
    cache = folder / "cache"
    path = cache / name
    try:
        return path.read_bytes()
    except OSError:
        pass
    data = _png(make())
    try:
        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)  # readers never see half a file
    except OSError as exc:  # a read-only library still renders, uncached
        log.warning("cannot write %s: %s", path, exc)
    return data


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def render(ctx: Context, photo_id: int, long_side: int = 256) -> bytes | None:
    """PNG of the photo's model rendered back to an image (long side in pixels), or
    None if the photo has no model.

    Raises
    ------
    ValueError
        If ``long_side`` is not positive.
    """
    if long_side <= 0:
        raise ValueError(f"long_side must be positive, got {long_side}")
    photo = queries.photo(ctx, photo_id)
    row = queries.model_row(ctx, photo_id)
    if photo is None or row is None:
        return None
    width, height = _fit_size(photo.width, photo.height, long_side)
    name = f"render-{_digest(ctx.featurizer.key(), row.photo.sha256)}-{long_side}.png"

    def make() -> np.ndarray:
        from leitmotiv.mixture import Mixture

        return Mixture.from_bytes(bytes(row.mixture)).render(width, height)

    return _cached_png(ctx.folder, name, make)


def average(ctx: Context, cluster_id: int, long_side: int = 256) -> bytes | None:
    """PNG of the average model of a cluster's members, rendered, or None if there is no
    such cluster in the current clustering.

    Raises
    ------
    ValueError
        If ``long_side`` is not positive.
    """
    if long_side <= 0:
        raise ValueError(f"long_side must be positive, got {long_side}")
    cluster = queries.cluster(ctx, cluster_id)
    if cluster is None:
        return None
    hashes = sorted(p.sha256 for p in cluster.members)
    name = f"average-{_digest(ctx.featurizer.key(), *hashes)}-{long_side}.png"

    def make() -> np.ndarray:
        from leitmotiv.mixture import average_mixture

        models = [queries.mixture(ctx, p.id) for p in cluster.members]
        mean = average_mixture([m for m in models if m is not None])
        if mean.transform is not None:
            width, height = _fit_size(mean.transform.width, mean.transform.height, long_side)
        else:
            width, height = _fit_size(cluster.exemplar.width, cluster.exemplar.height, long_side)
        return mean.render(width, height)

    return _cached_png(ctx.folder, name, make)
