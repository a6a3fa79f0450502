"""The default divergence: how leitmotiv compares two photo models.

The distance between photos ``p`` and ``q`` is::

    d(p, q) = min_g sqrt(JS(p, g q))  +  w * sqrt(JS(colour(p), colour(q)))

- ``JS`` is the Monte Carlo Jensen–Shannon divergence of :mod:`leitmotiv.divergence`;
  its square root is a metric.
- ``g`` runs over the *symmetries*: the identity, and optionally the left-right mirror
  and the two quarter turns of the frame, applied to the position part of the model
  (cheap for a Gaussian mixture: the means and covariances are transformed, nothing
  is refitted).  A photo turned on its side or flipped then still finds its original.
- ``colour(p)`` is the photo's colour palette: the marginal of the mixture over the
  three colour coordinates, whitened by its own mean and covariance.  Whitening makes
  it blind to exposure, white-balance and contrast changes (affine changes of colour),
  and the marginal is blind to reframing, so this term finds the same scene after a
  crop or a colour grade, where the spatial term alone is thrown off.  ``w`` is its
  weight (``colour_weight``).

The weight and the symmetries were chosen with ``benchmarks/quality.py`` on the
shared photo sets (see README.md): the colour term lifts the N-S score of the hard
set from 3.0 to about 3.6; its weight 0.2 is the one a two-fold leave-scenes-out
split picks in three folds of four.  The symmetries add a few hundredths at the cost
of one more spatial comparison each, so they are off by default.

Mixtures that do not model photos (no 5-D feature transform, e.g. a colour-only
featurizer's) are compared by plain ``sqrt(JS)``.

The fast path of a large library (see :class:`leitmotiv.implementation.Divergence`)
follows the two terms: the embedding is the spatial model's characteristic function
followed by the palette's, the latter weighed in proportion to ``colour_weight``
(:data:`PALETTE_EMBEDDING_GAIN`), and the cheap estimate is this distance with 128
spatial Monte Carlo samples instead of 1000.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import struct
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from leitmotiv._ext import divergence as _kernels
from leitmotiv.divergence import (
    adopt,
    js_cross,
    js_matrix,
    js_matrix_moved,
    prepare_many,
    prepared,
)
from leitmotiv.embedding import characteristic, gaussian_frequencies
from leitmotiv.interfaces import Divergence
from leitmotiv.mixture import Mixture

#: Linear maps of the (x, y) model coordinates, centred on the image centre.
_IDENTITY = np.eye(2)
_MIRROR = np.diag([-1.0, 1.0])
_TURN = np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn; its inverse is _TURN.T
SYMMETRIES = {
    "none": (_IDENTITY,),
    "mirror": (_IDENTITY, _MIRROR),
    "dihedral": (_IDENTITY, _MIRROR, _TURN, _TURN.T),
}

_PHOTO_DIM = 5
_COLOUR = slice(2, 5)
# Leads the blob of kept sample sets (version 1 of its layout).
_KEPT_MAGIC = b"LMS1"
_COLOUR_RIDGE = 1e-6
# Mixtures whose colour views are computed by one kernel call (a few MB of parameters).
_VIEW_CHUNK = 1024

#: Spatial Monte Carlo samples of the cheap estimate that re-ranks a large library's
#: candidates: on the shared photos a wide list of 100 re-ranked with 128 samples kept
#: 0.97 of the exact top 10 (64 samples: 0.94; see :mod:`leitmotiv.candidates`).
ESTIMATE_SAMPLES = 128

#: The embedding's palette part is weighed ``colour_weight * PALETTE_EMBEDDING_GAIN``
#: against its spatial part, so that ``colour_weight = 0`` drops it there too.  The gain
#: is not the conversion between the two scales: per unit of embedding distance,
#: sqrt(JS) grows about 1.2 times as fast for palettes as for spatial models (2.4 and
#: 2.0 at the median of 20,000 pairs of the diverse library of ``benchmarks/recall.py``,
#: 3.3 and 2.8 over its nearest tenth), which would make the matched gain 1.2.  But the
#: exact nearest photos of a distinct photo lie in the flat tail, where the spatial term
#: has saturated near its maximum and the palette term orders them, so the search must
#: weigh the palette more than the distance does: on that library (2,500 photos, 150
#: queries) the embedding's 300 nearest held 0.73 of the exact top 10 at weight 0, 0.86
#: at 1.5 (the earlier weight, chosen on near-copies), 0.93 at 3 and 0.92 on the palette
#: alone; in 600, 0.92 at 1.5, 0.967 at 2.5, 0.970 at 3.  Near-copies prefer less (on
#: 5,000 copies of two scenes, 400 nearest: 0.98 at 1.5, 0.92 at 3), hence 2.5.
PALETTE_EMBEDDING_GAIN = 12.5


@functools.cache
def _embedding_frequencies() -> tuple[np.ndarray, np.ndarray]:
    """Frequencies of the spatial (128 x 5, width 0.15) and palette (64 x 3, width 0.7
    on the whitened palette) parts of :meth:`JensenShannon.embedding`."""
    rng = np.random.default_rng(0)
    spatial = gaussian_frequencies(128, _PHOTO_DIM, 0.15, rng)
    palette = gaussian_frequencies(64, 3, 0.7, rng)
    for omega in (spatial, palette):
        omega.flags.writeable = False
    return spatial, palette


_colour_views: weakref.WeakKeyDictionary[Mixture, Mixture] = weakref.WeakKeyDictionary()
_moved: weakref.WeakKeyDictionary[Mixture, dict[bytes, Mixture]] = weakref.WeakKeyDictionary()


def is_photo_model(mixture: Mixture) -> bool:
    """True for a mixture over (x, y, c1, c2, c3) samples of a photo."""
    return mixture.transform is not None and mixture.dim == _PHOTO_DIM


def colour_view(mixture: Mixture) -> Mixture:
    """The whitened colour marginal of a photo model (cached per mixture).

    The marginal of a Gaussian mixture over some coordinates keeps the weights and
    takes the matching blocks of the means and covariances.  It is then mapped by the
    affine transform that gives it zero mean and identity covariance (a ridge of 1e-6
    of each variance, with a tiny floor, keeps a single-colour palette invertible).
    """
    return colour_views([mixture])[0]


def colour_views(mixtures: Sequence[Mixture]) -> list[Mixture]:
    """:func:`colour_view` of each of ``mixtures``, the missing ones computed together.

    One kernel call per chunk of mixtures; a view is the same, bit for bit, whether
    computed alone or in a batch (its parameters seed its sample set).
    """
    mixtures = list(mixtures)
    fresh = [m for m in dict.fromkeys(mixtures) if m not in _colour_views]
    for start in range(0, len(fresh), _VIEW_CHUNK):
        chunk = fresh[start : start + _VIEW_CHUNK]
        offsets = np.zeros(len(chunk) + 1, dtype=np.intp)
        offsets[1:] = np.cumsum([m.n_components for m in chunk])
        means, covs = _kernels.whitened_marginals(
            np.concatenate([m.weights for m in chunk]),
            np.concatenate([m.means for m in chunk]),
            np.concatenate([m.covariances for m in chunk]),
            offsets,
            _COLOUR.start,
            _COLOUR.stop,
            _COLOUR_RIDGE,
            1e-12,
        )
        for m, (a, b) in zip(chunk, itertools.pairwise(offsets.tolist()), strict=True):
            # Copies, so that each view owns its arrays (and frees them with itself).
            _colour_views[m] = Mixture(m.weights.copy(), means[a:b].copy(), covs[a:b].copy())
    return [_colour_views[m] for m in mixtures]


def moved(mixture: Mixture, position_map: np.ndarray) -> Mixture:
    """The photo model with its (x, y) coordinates mapped by ``position_map`` (cached)."""
    per = _moved.setdefault(mixture, {})
    key = position_map.tobytes()
    result = per.get(key)
    if result is None:
        A = np.eye(mixture.dim)
        A[:2, :2] = position_map
        result = mixture.transformed(A, update_transform=False)
        per[key] = result
    return result


@dataclass(frozen=True)
class JensenShannon(Divergence):
    """Jensen–Shannon distance of photo models, with a palette term and symmetries.

    Parameters
    ----------
    n_samples : int
        Monte Carlo samples per mixture.
    seed : int
        Seed of the samples (common random numbers: each mixture is sampled once).
    colour_weight : float
        Weight ``w`` of the whitened palette term; 0 compares the spatial models only.
    palette_samples : int
        Monte Carlo samples per palette; the palette term carries a small weight, so
        it tolerates a noisier estimate than the spatial one.
    symmetries : {"none", "mirror", "dihedral"}
        Frame symmetries the spatial term is minimized over: none; the left-right
        mirror; or the mirror and both quarter turns.
    """

    name: ClassVar[str] = "js"
    #: Distances below this are near-duplicates (same photo, mildly edited), for the
    #: default parameters: the 0.1th percentile of unrelated pairs on the shared
    #: mild-edit set, rounded down (``benchmarks/quality.py``).
    NEAR_DUPLICATE: ClassVar[float] = 0.90

    n_samples: int = 1000
    seed: int = 0
    colour_weight: float = 0.2
    symmetries: str = "none"
    palette_samples: int = 250

    def __post_init__(self) -> None:
        if int(self.n_samples) < 10:
            raise ValueError(f"n_samples must be at least 10, got {self.n_samples}")
        if int(self.palette_samples) < 10:
            raise ValueError(f"palette_samples must be at least 10, got {self.palette_samples}")
        if not self.colour_weight >= 0:
            raise ValueError(f"colour_weight must be >= 0, got {self.colour_weight}")
        if self.symmetries not in SYMMETRIES:
            raise ValueError(
                f"symmetries must be one of {', '.join(SYMMETRIES)}, got {self.symmetries!r}"
            )

    def near_duplicate_threshold(self) -> float | None:
        """Distance below which two photos are near-duplicates, if calibrated."""
        return self.NEAR_DUPLICATE if self == JensenShannon() else None

    def embedding(self, mixtures: Sequence[Mixture]) -> np.ndarray:
        """The spatial models' characteristic function, then the palettes', weighed.

        Photo models get 384 floats: 128 spatial frequencies (cosine and sine) and 64
        palette ones times ``colour_weight * PALETTE_EMBEDDING_GAIN`` (2.5 by default);
        other models
        the generic embedding of :class:`~leitmotiv.implementation.Divergence`, which
        has the same length.
        """
        mixtures = list(mixtures)
        if not mixtures or not all(is_photo_model(m) for m in mixtures):
            return super().embedding(mixtures)
        spatial, palette = _embedding_frequencies()
        out = np.empty((len(mixtures), 2 * (len(spatial) + len(palette))), dtype=np.float32)
        split = 2 * len(spatial)
        for start in range(0, len(mixtures), _VIEW_CHUNK):
            chunk = mixtures[start : start + _VIEW_CHUNK]
            rows = slice(start, start + len(chunk))
            out[rows, :split] = characteristic(chunk, spatial)
            gain = self.colour_weight * PALETTE_EMBEDDING_GAIN
            out[rows, split:] = gain * characteristic(colour_views(chunk), palette)
        return out

    def estimator(self) -> JensenShannon:
        """This distance with :data:`ESTIMATE_SAMPLES` spatial samples (if fewer)."""
        return dataclasses.replace(self, n_samples=min(int(self.n_samples), ESTIMATE_SAMPLES))

    def _kept(self, mixture: Mixture) -> list[tuple[Mixture, int]]:
        """The models and sample counts whose sets :meth:`dump_prepared` keeps: the
        spatial model, and the palette when it is weighed.  Symmetries are drawn anew."""
        kept = [(mixture, int(self.n_samples))]
        if self.colour_weight > 0 and is_photo_model(mixture):
            kept.append((colour_view(mixture), int(self.palette_samples)))
        return kept

    def _views(self, mixtures: list[Mixture]) -> None:
        """Compute the palettes :meth:`_kept` will ask for in one batched pass."""
        if self.colour_weight > 0:
            colour_views([m for m in mixtures if is_photo_model(m)])

    def dump_prepared(self, mixtures: Sequence[Mixture]) -> list[bytes | None]:
        """The sample sets drawn for each model (exact float64 copies); None where one
        of them is not in the cache."""
        mixtures = list(mixtures)
        self._views(mixtures)
        return [self._dump(m) for m in mixtures]

    def _dump(self, mixture: Mixture) -> bytes | None:
        parts = [_KEPT_MAGIC]
        for model, n in self._kept(mixture):
            found = prepared(model, n, self.seed)
            if found is None:
                return None
            parts += [
                struct.pack("<II", *found.samples.shape),
                found.samples.astype("<f8").tobytes(),
                found.own_log_pdf.astype("<f8").tobytes(),
            ]
        return b"".join(parts)

    def load_prepared(self, mixtures: Sequence[Mixture], blobs: Sequence[bytes]) -> list[bool]:
        """Cache the sample sets of :meth:`dump_prepared`; False where they do not fit."""
        mixtures = list(mixtures)
        self._views(mixtures)
        return [self._load(m, blob) for m, blob in zip(mixtures, blobs, strict=True)]

    def _load(self, mixture: Mixture, blob: bytes) -> bool:
        blob = bytes(blob)
        if not blob.startswith(_KEPT_MAGIC):
            return False
        at, found = len(_KEPT_MAGIC), []
        for model, n in self._kept(mixture):
            if at + 8 > len(blob) or struct.unpack_from("<II", blob, at) != (n, model.dim):
                return False
            at += 8
            size = n * (model.dim + 1)
            if at + 8 * size > len(blob):
                return False
            values = np.frombuffer(blob, dtype="<f8", count=size, offset=at)
            found.append((model, values[: n * model.dim].reshape(n, model.dim), values[-n:]))
            at += 8 * size
        if at != len(blob):
            return False
        for model, samples, own in found:
            adopt(model, samples, own, self.seed)
        return True

    def cross(
        self, rows: Sequence[Mixture], cols: Sequence[Mixture], n_jobs: int = -1
    ) -> np.ndarray:
        """Distances between every row and every column model, shape (R, C)."""
        rows, cols = list(rows), list(cols)
        if not rows or not cols:
            return np.zeros((len(rows), len(cols)))
        photos = all(is_photo_model(m) for m in rows + cols)
        maps = SYMMETRIES[self.symmetries] if photos else SYMMETRIES["none"]
        spatial = None
        for position_map in maps:
            moved_cols = cols if position_map is maps[0] else [moved(m, position_map) for m in cols]
            js = js_cross(rows, moved_cols, self.n_samples, self.seed, n_jobs)
            spatial = js if spatial is None else np.minimum(spatial, js)
        distance = np.sqrt(spatial)
        if photos and self.colour_weight > 0:
            palette = js_cross(
                [colour_view(m) for m in rows],
                [colour_view(m) for m in cols],
                self.palette_samples,
                self.seed,
                n_jobs,
            )
            distance = distance + self.colour_weight * np.sqrt(palette)
        return distance

    def warm(self, mixtures: Sequence[Mixture]) -> None:
        """Draw the sample sets of many models in one batched pass (see
        :func:`leitmotiv.divergence.prepare_many`)."""
        mixtures = list(mixtures)
        if self.colour_weight > 0 and all(is_photo_model(m) for m in mixtures):
            # Each model beside its palette: the palettes' generator calls then overlap
            # the larger spatial sets' kernels.
            pairs = zip(mixtures, colour_views(mixtures), strict=True)
            sizes = [self.n_samples, self.palette_samples] * len(mixtures)
            prepare_many([m for pair in pairs for m in pair], sizes, self.seed)
        else:
            prepare_many(mixtures, self.n_samples, self.seed)

    def pairwise(self, mixtures: Sequence[Mixture], n_jobs: int = -1) -> np.ndarray:
        """Symmetric distance matrix, shape (N, N), zero diagonal.

        Cheaper than :meth:`cross` of the list with itself: every term is estimated
        from one sample set per mixture and symmetry (see
        :func:`leitmotiv.divergence.js_matrix_moved`).
        """
        mixtures = list(mixtures)
        photos = bool(mixtures) and all(is_photo_model(m) for m in mixtures)
        n, seed = self.n_samples, self.seed
        spatial = js_matrix(mixtures, n, seed, n_jobs)
        if photos and self.symmetries != "none":
            mirrored = [moved(m, _MIRROR) for m in mixtures]
            spatial = np.minimum(
                spatial, js_matrix_moved(mixtures, mirrored, None, n, seed, n_jobs)
            )
        if photos and self.symmetries == "dihedral":
            turned = [moved(m, _TURN) for m in mixtures]
            back = [moved(m, _TURN.T) for m in mixtures]
            quarter = js_matrix_moved(mixtures, turned, back, n, seed, n_jobs)
            spatial = np.minimum(spatial, np.minimum(quarter, quarter.T))
        distance = np.sqrt(spatial)
        if photos and self.colour_weight > 0:
            palette = js_matrix(
                [colour_view(m) for m in mixtures], self.palette_samples, seed, n_jobs
            )
            distance = distance + self.colour_weight * np.sqrt(palette)
        np.fill_diagonal(distance, 0.0)
        return distance
