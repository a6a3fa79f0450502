"""Images made from the models, cached as PNG files: a photo's render and a cluster's
average image.

A rendered image depends only on the featurizer's key and the content of the photos
(their SHA-256), so the cache file is named by a digest of those and never goes stale;
it lives in ``<library>/cache/``, written by a library opened to write.  A library
opened read-only (the web view, the read commands) keeps what it renders in memory
(:class:`PngCache`), and a library whose folder cannot be written still renders,
uncached.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import logging
import os
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from leitmotiv import queries
from leitmotiv.context import Context

log = logging.getLogger(__name__)

__all__ = ["MEMORY_BUDGET", "PngCache", "average", "render"]

#: Bytes of PNGs a read-only library keeps in memory (a 256-px render is 50-150 kB).
MEMORY_BUDGET = 64 * 2**20


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgb, dtype=np.uint8), "RGB").save(buf, format="PNG")
    return buf.getvalue()


def _fit_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(width, height, 1)
    return max(1, round(width * scale)), max(1, round(height * scale))


class PngCache:
    """Where rendered PNGs are kept.

    Files in ``<library>/cache/`` are read first.  A miss is made and, for a library
    opened to write, written there (atomically); for a library opened read-only it is
    kept in memory instead, the most recently used first, up to ``budget`` bytes, so
    reading never writes.

    Parameters
    ----------
    folder : Path
        The library folder.
    writable : bool
        Write misses to ``<folder>/cache/``.
    budget : int
        Bytes of PNGs kept in memory when not writable.
    """

    def __init__(self, folder: Path, writable: bool, budget: int = MEMORY_BUDGET) -> None:
        self.folder = Path(folder)
        self.writable = writable
        self.budget = budget
        self._memory: OrderedDict[str, bytes] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # the web server's threads share one cache

    def get(self, name: str, make: Callable[[], np.ndarray]) -> bytes:
        """The PNG called ``name``, made by ``make()`` (an RGB array) on a miss."""
        path = self.folder / "cache" / name
        try:
            return path.read_bytes()
        except OSError:
            pass
        with self._lock:
            if name in self._memory:
                self._memory.move_to_end(name)
                return self._memory[name]
        data = _png(make())
        if self.writable:
            self._write(path, data)
        else:
            self._keep(name, data)
        return data

    def _write(self, path: Path, data: bytes) -> None:
        tmp = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # A file of its own per writer (the web view renders in several threads).
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            os.replace(tmp, path)  # readers never see half a file
        except OSError as exc:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)  # a full disk leaves no half-written file behind
            # A read-only disk renders uncached, as expected; anything else is news.
            expected = exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM)
            level = logging.DEBUG if expected else logging.WARNING
            log.log(level, "cannot write %s: %s", path, exc)

    def _keep(self, name: str, data: bytes) -> None:
        with self._lock:
            if name not in self._memory:
                self._memory[name] = data
                self._size += len(data)
            while self._size > self.budget and self._memory:
                _, dropped = self._memory.popitem(last=False)
                self._size -= len(dropped)


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:24]


def render(ctx: Context, cache: PngCache, photo_id: int, long_side: int = 256) -> bytes | None:
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
    blob = queries.model_blob(ctx, photo_id)
    if photo is None or blob is None:
        return None
    width, height = _fit_size(photo.width, photo.height, long_side)
    name = f"render-{_digest(ctx.featurizer.key(), photo.sha256)}-{long_side}.png"

    def make() -> np.ndarray:
        from leitmotiv.mixture import Mixture

        return Mixture.from_bytes(blob).render(width, height)

    return cache.get(name, make)


def average(ctx: Context, cache: PngCache, cluster_id: int, long_side: int = 256) -> bytes | None:
    """PNG of the average model of a cluster's members, rendered, or None if there is no
    such cluster in the current clustering.

    Raises
    ------
    ValueError
        If ``long_side`` is not positive, or the clustering changed while the image
        was being made.
    """
    if long_side <= 0:
        raise ValueError(f"long_side must be positive, got {long_side}")
    # The name needs the members' hashes only; their photos and models are read when
    # the image is not cached.
    hashes = queries.member_hashes(ctx, cluster_id)
    if hashes is None:
        return None
    name = f"average-{_digest(ctx.featurizer.key(), *sorted(hashes))}-{long_side}.png"

    def make() -> np.ndarray:
        from leitmotiv.mixture import average_mixture

        cluster = queries.cluster(ctx, cluster_id)
        if cluster is None:  # a build-index replaced the clustering meanwhile
            raise ValueError(f"cluster {cluster_id} is no longer in the clustering")
        models = [queries.mixture(ctx, p.id) for p in cluster.members]
        mean = average_mixture([m for m in models if m is not None])
        if mean.transform is not None:
            width, height = _fit_size(mean.transform.width, mean.transform.height, long_side)
        else:
            width, height = _fit_size(cluster.exemplar.width, cluster.exemplar.height, long_side)
        return mean.render(width, height)

    return cache.get(name, make)
