"""The default divergence: how leitmotiv compares two photo models.

Every view below derives from the one stored model of a photo in closed form (a
Gaussian mixture's marginals, affine images and convolutions are Gaussian mixtures);
nothing is refitted.  The distance between photos ``p`` and ``q`` is::

    d(p, q) = s · [√JS(p ∗ G, q ∗ G) + w · √JS(palette(p), palette(q))]
              + (1 − s) · a · √JS(luma(p), luma(q))

- ``JS`` is the Monte Carlo Jensen–Shannon divergence of :mod:`leitmotiv.divergence`.
- ``p ∗ G`` is the photo model convolved with an isotropic Gaussian of standard
  deviation ``spread`` (model units; the frame is 1 wide): a coarser scale of the
  same model, so that two photos of different things still overlap a little and
  their distance stays graded instead of sitting at the ceiling ``√ln 2``.
- ``palette(p)`` is the colour marginal whitened by its own mean and covariance,
  blind to exposure, white balance and reframing; ``w`` is ``colour_weight``.
- ``luma(p)`` is the luminance structure: the (x, y, luma) image of the model, with
  luma standardized per photo (zero mean, standard deviation ``luma_scale``) and
  convolved by ``luma_spread``.  It is blind to colour, toning and linear contrast, so
  a black-and-white or sepia copy finds its colour original.
- ``s`` is the *colour share* of the pair, ``r / (r + tone)`` with ``r`` the smaller
  colourfulness of the two photos (:func:`colourfulness`: the variance of the colour
  left once luma is known).  A greyscale photo (a single-channel file, or equal
  channels) has no colour at all, ``r`` below 1e-9 (its samples' chroma is exactly
  zero, so the fitted model's is of order 1e-11), and ``s`` is 0: it is compared by
  its luminance structure only.  A toned photo has little colour beside its luma and
  leans on the luminance structure too; two colourful photos are compared by the
  full model and the palette.
- ``a`` (``luma_gain``) puts the luminance term on the scale of the colour terms:
  it is the ratio of their typical values on colour photos of the benchmark sets, so
  that one set of relation thresholds serves every pair.

``benchmarks/quality.py`` chose ``spread``, ``colour_weight``, ``tone`` and
``luma_gain`` on half of the scenes of the shared sets and scored them on the other
half (see README.md).

The spatial and luminance terms compare ``p`` with ``g q`` for a frame map ``g`` (the
identity, the left-right mirror or a quarter turn: ``symmetries``), so that a mirrored
or turned copy finds its original.  By default one map serves each pair, the one under
which the two luminance views' *pose signatures* agree best (:func:`pose_signatures`:
characteristic functions at frequencies that the square's symmetries permute, so every
map's signature is a permutation of the photo's own), and each term is estimated once,
at that map: the choice costs a dot product per pair and map instead of a Monte Carlo
estimate per map (``map_choice="minimum"`` takes each term's minimum over the maps'
estimates instead).

Mixtures that do not model photos (no 5-D feature transform, e.g. a colour-only
featurizer's) are compared by plain ``sqrt(JS)``.

The fast path of a large library (see :class:`leitmotiv.implementation.Divergence`)
follows the terms: the embedding is the spatial model's characteristic function and
the palette's, both times the photo's colour share, followed by the luminance view's,
and the cheap estimate is this distance with :data:`ESTIMATE_SAMPLES` Monte Carlo
samples for the spatial and luminance terms (under the same frame maps).  The
positional parts of the embedding are taken at frequencies that the frame maps permute,
so the search takes each pair's nearest map too (:meth:`JensenShannon.embedding_maps`).
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
from leitmotiv.colour import LUMA
from leitmotiv.divergence import (
    adopt,
    js_cross,
    js_cross_chosen,
    js_matrix,
    js_matrix_chosen,
    js_matrix_moved,
    prepare_many,
    prepared,
)
from leitmotiv.embedding import characteristic, gaussian_frequencies
from leitmotiv.interfaces import Divergence
from leitmotiv.mixture import Mixture
from leitmotiv.parameters import parameter

#: Linear maps of the (x, y) model coordinates, centred on the image centre.
_IDENTITY = np.eye(2)
_MIRROR = np.diag([-1.0, 1.0])
_TURN = np.array([[0.0, -1.0], [1.0, 0.0]])  # a quarter turn; its inverse is _TURN.T
SYMMETRIES = {
    "none": (_IDENTITY,),
    "mirror": (_IDENTITY, _MIRROR),
    "dihedral": (_IDENTITY, _MIRROR, _TURN, _TURN.T),
}
#: The square's eight symmetries (its dihedral group), holding every map above.
_SQUARE = tuple(
    np.linalg.matrix_power(_TURN, k) @ flip for flip in (_IDENTITY, _MIRROR) for k in range(4)
)
#: Base frequencies of the pose signature, and their width on the luminance view.
POSE_FREQUENCIES = 8
POSE_WIDTH = 0.15

_PHOTO_DIM = 5
_COLOUR = slice(2, 5)
# Leads the blob of kept sample sets (version 2 of its layout: the convolved model,
# the palette, the luminance view).
_KEPT_MAGIC = b"LMS2"
_COLOUR_RIDGE = 1e-6
# Mixtures whose colour views are computed by one kernel call (a few MB of parameters).
_VIEW_CHUNK = 1024

#: Spatial Monte Carlo samples of the cheap estimate that re-ranks a large library's
#: candidates: on the shared photos a wide list of 100 re-ranked with 128 samples kept
#: 0.97 of the exact top 10 (64 samples: 0.94; see :mod:`leitmotiv.candidates`).
ESTIMATE_SAMPLES = 128

#: The embedding's palette part is weighed ``colour_weight * PALETTE_EMBEDDING_GAIN``
#: against its spatial part, and its luminance part :data:`LUMA_EMBEDDING_GAIN`.  The
#: gains convert between two scales: the distance adds square roots of Jensen–Shannon
#: divergences, the embedding kernel discrepancies, which are small in absolute terms
#: for whitened palettes and standardized luminance views beside those of spatial
#: models at the same divergence.  Chosen by recall on the 480 photos of the three
#: shared sets mixed (the share of each photo's exact 10 nearest among its 100 nearest
#: embeddings): a palette part of gain 1 and a luminance part of gain 4 recall 0.959
#: (0.979 of the mild edits' neighbours, 0.903 of the hard re-shoots', 0.994 of the
#: monochrome versions'; luminance gain 3: 0.965, 0.985 of the monochrome ones';
#: 5: 0.950).  With a luminance gain of 1 it was 0.666 (0.400 of the monochrome
#: versions'), with a palette gain of 6, 0.630 (both measured with the weights 0.8 and
#: 2.75 tried before the default's).  Linking the palette gain to the weight makes
#: ``colour_weight = 0`` drop the palette from the embedding too; at the default weight
#: (0.6) the palette part keeps the gain 1 measured.  With the default of version 3
#: (weights 0.9 and 2.45) the same gains recall 0.955 (0.973 / 0.898 / 0.996; luminance
#: gain 3: 0.963, 0.988 of the monochrome versions'; 5: 0.945).  With version 4 (frame
#: maps in the distance) the same embedding recalled 0.910 (0.945 / 0.847 / 0.938): a
#: mirrored or turned copy the distance puts near was far in the embedding.  Its
#: positional frequencies are now orbits under the square's symmetries (16 and 8 random
#: ones, each under the 8 symmetries) and the search takes each pair's nearest map
#: (:meth:`JensenShannon.embedding_maps`): 0.979 (0.992 / 0.950 / 0.995; 0.939 with
#: these frequencies and a plain search).
PALETTE_EMBEDDING_GAIN = 1.0 / 0.6
LUMA_EMBEDDING_GAIN = 4.0

#: The embedding's last column is the photo's colour share times this: small, so that
#: it hardly moves Euclidean distances, and read back by
#: :meth:`JensenShannon.embedding_gaps`.
SHARE_COLUMN = 1e-3

#: Weights of :meth:`JensenShannon.embedding_gaps`, which add the parts' distances as
#: the distance adds its terms: the palette part's (as embedded, so it follows
#: ``colour_weight``) times :data:`GAP_PALETTE`, the luminance part's times
#: ``luma_gain * GAP_LUMA`` on the scale of a plain characteristic function.  Chosen on
#: 10,000 diverse photos (``benchmarks/recall.py``'s library; 150 queries, checked on
#: 150 others): the share of the exact top 10 among the 600 nearest by the gaps was
#: 0.98-0.99 for palette weights 0.8-1.0 and luminance weights 3-4 (here 0.8 and
#: 3.5), 0.93-0.95 beyond; the Euclidean distance of the same embedding held 0.931.
GAP_PALETTE = 0.8
GAP_LUMA = 3.5 / 2.23

#: Colourfulness below which a photo is greyscale: exactly grey samples give a model
#: whose chroma variance is of order 1e-11; the least colourful toned photo of the
#: shared sets has 1e-5.
GREY_COLOURFULNESS = 1e-9


@functools.cache
def _embedding_frequencies() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frequencies of the spatial (128 x 5, width 0.15: 16 under the square's 8
    symmetries), palette (64 x 3, width 0.7 on the whitened palette) and luminance
    (64 x 3, width 0.15: 8 under the 8 symmetries) parts of
    :meth:`JensenShannon.embedding`.  The positional parts' frequencies are orbits
    (:func:`_orbits`), so the frame maps only permute those parts."""
    rng = np.random.default_rng(0)
    spatial = _orbits(gaussian_frequencies(16, _PHOTO_DIM, 0.15, rng))
    palette = gaussian_frequencies(64, 3, 0.7, rng)
    luma = _orbits(gaussian_frequencies(8, 3, 0.15, rng))
    for omega in (spatial, palette, luma):
        omega.flags.writeable = False
    return spatial, palette, luma


@functools.cache
def _embedding_edges() -> tuple[int, int, int, int]:
    """Where the spatial, palette and luminance parts of the embedding start, and where
    the last ends (the colour share's column)."""
    spatial, palette, luma = _embedding_frequencies()
    edges = np.cumsum([0, 2 * len(spatial), 2 * len(palette), 2 * len(luma)])
    return tuple(int(e) for e in edges)


def _positional_permutations(g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Columns of the embedding's spatial and luminance parts (each counted from its
    start) that give those of the photo moved by the frame map ``g``."""
    spatial, _, luma = _embedding_frequencies()
    return (
        _orbit_permutation(g.tobytes(), len(spatial) // len(_SQUARE)),
        _orbit_permutation(g.tobytes(), len(luma) // len(_SQUARE)),
    )


def _orbits(base: np.ndarray) -> np.ndarray:
    """Each of the ``B`` frequencies ``base`` under every symmetry ``h`` of the square,
    ``(h w_xy, w_rest)``, shape (8 B, d): block ``k`` is ``_SQUARE[k]``'s."""
    blocks = []
    for h in _SQUARE:
        block = base.copy()
        block[:, :2] = base[:, :2] @ h.T
        blocks.append(block)
    return np.concatenate(blocks)


@functools.cache
def _orbit_permutation(key: bytes, n_base: int) -> np.ndarray:
    """Columns of ``[Re, Im]`` of a characteristic function at :func:`_orbits` of
    ``n_base`` frequencies that give those of the model moved by ``g`` (the 2 x 2 map
    whose bytes are ``key``).

    ``E[exp(i w . g x)] = E[exp(i (g' w) . x)]`` and ``g' h`` is again a symmetry of the
    square, so the moved model's value at ``(h w, ...)`` is the model's own at
    ``(g' h w, ...)``: a permutation of blocks, applied alike to cosines and sines.
    """
    g = np.frombuffer(key).reshape(2, 2)
    order = np.concatenate([np.arange(n_base) + n_base * _square_index(g.T @ h) for h in _SQUARE])
    return np.concatenate([order, order + len(order)])


_colour_views: weakref.WeakKeyDictionary[Mixture, Mixture] = weakref.WeakKeyDictionary()
_moved: weakref.WeakKeyDictionary[Mixture, dict[bytes, Mixture]] = weakref.WeakKeyDictionary()
# Per mixture: its convolved and luminance views, keyed by their parameters.
_scaled: weakref.WeakKeyDictionary[Mixture, dict[tuple, Mixture]] = weakref.WeakKeyDictionary()
_colourfulness: weakref.WeakKeyDictionary[Mixture, float] = weakref.WeakKeyDictionary()
_poses: weakref.WeakKeyDictionary[Mixture, np.ndarray] = weakref.WeakKeyDictionary()


def _square_index(g: np.ndarray) -> int:
    return next(k for k, h in enumerate(_SQUARE) if np.array_equal(g, h))


@functools.cache
def _pose_frequencies() -> np.ndarray:
    """The pose signature's frequencies, (8 B) x 3: the :func:`_orbits` of ``B`` random
    frequencies (:data:`POSE_FREQUENCIES`, width :data:`POSE_WIDTH`)."""
    base = gaussian_frequencies(POSE_FREQUENCIES, 3, POSE_WIDTH, np.random.default_rng(1))
    omega = _orbits(base)
    omega.flags.writeable = False
    return omega


def pose_signatures(views: Sequence[Mixture]) -> np.ndarray:
    """The pose signature of each luminance view (cached per view), shape (N, 16 B).

    The real and imaginary parts of the view's characteristic function at
    :func:`_pose_frequencies`.  The signature of a view moved by one of the square's
    symmetries is a permutation of it, so a pair's best map is found by a dot product
    per map, without moving a model (:meth:`JensenShannon.chosen_maps`).
    """
    views = list(views)
    fresh = [v for v in dict.fromkeys(views) if v not in _poses]
    if fresh:
        for v, row in zip(fresh, characteristic(fresh, _pose_frequencies()), strict=True):
            _poses[v] = row
    width = 2 * len(_pose_frequencies())
    return np.array([_poses[v] for v in views]).reshape(len(views), width)


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


class _Moved(Sequence[Mixture]):
    """``views`` under one frame map, each moved when first indexed (:func:`moved`):
    a pair's chosen map needs one variant of a view, not one per map."""

    def __init__(self, views: list[Mixture], position_map: np.ndarray) -> None:
        self._views, self._map = views, position_map

    def __len__(self) -> int:
        return len(self._views)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [moved(v, self._map) for v in self._views[index]]
        return moved(self._views[index], self._map)


def _moved_views(views: Sequence[Mixture], maps: Sequence[np.ndarray]) -> list[Sequence[Mixture]]:
    """Each of ``views`` under each map (moved lazily): the views themselves for the
    identity."""
    views = list(views)
    return [views if np.array_equal(g, _IDENTITY) else _Moved(views, g) for g in maps]


def _inverses(maps: Sequence[np.ndarray]) -> np.ndarray:
    """For each of the (orthogonal) ``maps``, the index of its inverse among them."""
    return np.array([next(j for j, h in enumerate(maps) if np.array_equal(g.T, h)) for g in maps])


def convolved_view(mixture: Mixture, spread: float) -> Mixture:
    """The model convolved with an isotropic Gaussian of standard deviation ``spread``
    (cached per mixture); the model itself when ``spread`` is 0."""
    if spread == 0:
        return mixture
    per = _scaled.setdefault(mixture, {})
    key = ("spread", float(spread))
    if key not in per:
        per[key] = mixture.convolved(float(spread) ** 2)
    return per[key]


def _raw_colour(mixture: Mixture) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The map from model coordinates to raw pixel position and colour, ``inverse``
    (5, 5) and ``offset`` (5,), and the raw luma weights of the model's colour space."""
    t = mixture.transform
    return t.inverse_matrix, t.offset, np.asarray(LUMA[t.colour_space])


def luma_view(mixture: Mixture, scale: float, spread: float) -> Mixture:
    """The luminance structure of a photo model (cached per mixture and parameters).

    The (x, y, luma) image of the model under an affine map, exact for a mixture:
    positions centred on the frame and divided by its long side (as in the common
    model space), luma the colour space's linear luma (:data:`leitmotiv.colour.LUMA`)
    standardized to zero mean and standard deviation ``scale`` over the whole
    mixture, then convolved with an isotropic Gaussian of standard deviation
    ``spread``.  Blind to hue, toning and changes of exposure and contrast.
    """
    per = _scaled.setdefault(mixture, {})
    key = ("luma", float(scale), float(spread))
    if key in per:
        return per[key]
    t = mixture.transform
    inverse, offset, luma = _raw_colour(mixture)
    long_side = float(max(t.width, t.height))
    rows = np.zeros((3, _PHOTO_DIM))
    rows[0, 0] = rows[1, 1] = 1.0 / long_side
    rows[2, _COLOUR] = luma
    A = rows @ inverse
    b = rows @ offset - np.array([t.width / 2.0, t.height / 2.0, 0.0]) / long_side
    raw = mixture.projected(A, b)
    mean, cov = raw.moments()
    # A flat photo has no luma spread to standardize: its luma is only centred.
    gain = scale / np.sqrt(cov[2, 2]) if cov[2, 2] > 1e-18 else 1.0
    view = raw.projected(np.diag([1.0, 1.0, gain]), np.array([0.0, 0.0, -gain * mean[2]]))
    per[key] = view.convolved(float(spread) ** 2) if spread else view
    return per[key]


def colourfulness(mixture: Mixture) -> float:
    """How much colour a photo model has beside its luma (cached per mixture).

    The trace of the covariance of the colour given the luma, for the whole mixture,
    in the units of the common model space of its colour space
    (:data:`leitmotiv.features.COLOUR_NORMALIZATION`): 0 for a greyscale photo, small
    for a toned one (sepia: its colour is a function of its luma), about 1e-3 to 1e-1
    for colour photos.
    """
    found = _colourfulness.get(mixture)
    if found is not None:
        return found
    from leitmotiv.features import COLOUR_NORMALIZATION

    inverse, _, luma = _raw_colour(mixture)
    _, cov = mixture.moments()
    colour = inverse[_COLOUR] @ cov @ inverse[_COLOUR].T
    scales = np.asarray(COLOUR_NORMALIZATION[mixture.transform.colour_space][1])
    colour = colour * scales[:, None] * scales[None, :]
    direction = luma / scales  # luma as a function of the scaled colour
    along = colour @ direction
    spread = float(direction @ along)
    residual = colour - np.outer(along, along) / spread if spread > 0 else colour
    value = max(float(np.trace(residual)), 0.0)
    _colourfulness[mixture] = value
    return value


def colour_shares(rows: Sequence[Mixture], cols: Sequence[Mixture], tone: float) -> np.ndarray:
    """The colour share ``s`` of every pair, shape (R, C): ``r / (r + tone)`` with ``r``
    the smaller colourfulness of the two, and 0 where either photo is greyscale."""
    def grade(models: Sequence[Mixture]) -> np.ndarray:
        r = np.array([colourfulness(m) for m in models])
        return np.where(r < GREY_COLOURFULNESS, 0.0, r)

    lesser = np.minimum(grade(rows)[:, None], grade(cols)[None, :])
    return lesser / (lesser + tone)


@dataclass(frozen=True)
class JensenShannon(Divergence):
    """Jensen–Shannon distance of photo models through their views (module docstring).

    Parameters
    ----------
    n_samples : int
        Monte Carlo samples per convolved photo model.
    seed : int
        Seed of the samples (common random numbers: each view is sampled once).
    colour_weight : float
        Weight ``w`` of the whitened palette term; 0 compares without the palette.
    palette_samples : int
        Monte Carlo samples per palette.
    symmetries : {"none", "mirror", "dihedral"}
        Frame maps the spatial and luminance terms compare under: the identity only;
        and the left-right mirror; and both quarter turns too.
    map_choice : {"signature", "minimum"}
        How a pair's map is chosen: "signature", the map under which the luminance
        views' pose signatures agree best, each term then estimated at it once;
        "minimum", each term's least estimate over the maps (an estimate per map).
    spread : float
        Standard deviation of the Gaussian the photo model is convolved with, in
        model units (0: the model itself).
    luma_scale : float
        Standard deviation of the standardized luma in the luminance view.
    luma_spread : float
        Standard deviation of the Gaussian the luminance view is convolved with.
    luma_samples : int
        Monte Carlo samples per luminance view.
    luma_gain : float
        Factor ``a`` of the luminance term; 0 leaves it out (then greyscale photos are
        compared by the colour terms too).
    tone : float
        Colourfulness at which a pair's colour share is one half.
    """

    name: ClassVar[str] = "js"
    #: 2: convolved model, luminance view and colour share (before: the model and the
    #: palette only); 3: stratified, quasi-Monte Carlo sample sets
    #: (:func:`leitmotiv.divergence.stratified_counts`,
    #: :func:`leitmotiv.divergence.shifted_normals`); 4: mirrors and quarter turns, one
    #: map per pair chosen by the pose signatures.
    version: ClassVar[int] = 4
    #: Calibrated relation thresholds of the default parameters (see
    #: :meth:`near_duplicate_threshold`, :meth:`unrelated_threshold`): the median of
    #: the four training halves' choices of ``benchmarks/quality.py`` (near-duplicate
    #: 0.75-0.80, unrelated 0.85-0.90), rounded down to 0.05.
    NEAR_DUPLICATE: ClassVar[float] = 0.75
    UNRELATED: ClassVar[float] = 0.90

    n_samples: int = parameter(750, low=10)
    seed: int = parameter(0, low=0)
    colour_weight: float = parameter(0.6, low=0.0)
    symmetries: str = parameter("dihedral", choices=tuple(SYMMETRIES))
    map_choice: str = parameter("signature", choices=("signature", "minimum"))
    palette_samples: int = parameter(250, low=10)
    spread: float = parameter(0.1, low=0.0)
    luma_scale: float = parameter(0.5, low=0.0, low_open=True)
    luma_spread: float = parameter(0.06, low=0.0)
    luma_samples: int = parameter(500, low=10)
    luma_gain: float = parameter(2.23, low=0.0)
    tone: float = parameter(1e-3, low=0.0, low_open=True)

    def near_duplicate_threshold(self) -> float | None:
        """Distance below which two photos are near-duplicates, if calibrated: for the
        default parameters, the 0.1th percentile of unrelated pairs on the shared
        mild-edit set's training scenes, rounded down (``benchmarks/quality.py``)."""
        return self.NEAR_DUPLICATE if self == JensenShannon() else None

    def unrelated_threshold(self) -> float | None:
        """Distance from which two photos are unrelated, if calibrated: for the
        default parameters, the 95th percentile of group-mates' distances on the
        training scenes of the three shared sets mixed, rounded down
        (``benchmarks/quality.py``)."""
        return self.UNRELATED if self == JensenShannon() else None

    # ------------------------------------------------------------------ views

    def _spatial(self, mixtures: Sequence[Mixture]) -> list[Mixture]:
        return [convolved_view(m, self.spread) for m in mixtures]

    def _luma(self, mixtures: Sequence[Mixture]) -> list[Mixture]:
        return [luma_view(m, self.luma_scale, self.luma_spread) for m in mixtures]

    def _terms(self, mixtures: Sequence[Mixture]) -> list[tuple[list[Mixture], int, bool]]:
        """The views of photo models this distance compares: the convolved models, the
        palettes (if weighed) and the luminance views (if weighed), each with its
        sample count and whether the frame symmetries apply to it (not to a palette,
        which has no position)."""
        terms = [(self._spatial(mixtures), int(self.n_samples), True)]
        if self.colour_weight > 0:
            terms.append((colour_views(mixtures), int(self.palette_samples), False))
        if self.luma_gain > 0:
            terms.append((self._luma(mixtures), int(self.luma_samples), True))
        return terms

    def _combine(self, spatial, palette, luma, shares) -> np.ndarray:
        """The distance from the terms' square-root divergences (see the module)."""
        colour = np.sqrt(spatial)
        if palette is not None:
            colour = colour + self.colour_weight * np.sqrt(palette)
        if luma is None:
            return colour
        return shares * colour + (1.0 - shares) * self.luma_gain * np.sqrt(luma)

    # -------------------------------------------------------------- fast path

    def embedding(self, mixtures: Sequence[Mixture]) -> np.ndarray:
        """Characteristic functions of the views, weighed like the distance's terms.

        Photo models get 513 floats: 128 spatial frequencies (cosine and sine) and 64
        palette ones times ``colour_weight * PALETTE_EMBEDDING_GAIN``, both times the
        photo's own colour share (so a greyscale photo's are zero), then 64 of the
        luminance view times :data:`LUMA_EMBEDDING_GAIN`, then the colour share times
        :data:`SHARE_COLUMN`; other models the generic embedding of
        :class:`~leitmotiv.implementation.Divergence`.
        """
        mixtures = list(mixtures)
        edges = _embedding_edges()
        if mixtures and not all(is_photo_model(m) for m in mixtures):
            return super().embedding(mixtures)
        spatial, palette, luma = _embedding_frequencies()
        out = np.empty((len(mixtures), edges[-1] + 1), dtype=np.float32)
        for start in range(0, len(mixtures), _VIEW_CHUNK):
            chunk = mixtures[start : start + _VIEW_CHUNK]
            rows = slice(start, start + len(chunk))
            share = np.diag(colour_shares(chunk, chunk, self.tone))[:, None]
            out[rows, edges[0] : edges[1]] = share * characteristic(chunk, spatial)
            gain = self.colour_weight * PALETTE_EMBEDDING_GAIN
            out[rows, edges[1] : edges[2]] = (
                share * gain * characteristic(colour_views(chunk), palette)
            )
            out[rows, edges[2] : edges[3]] = LUMA_EMBEDDING_GAIN * characteristic(
                self._luma(chunk), luma
            )
            out[rows, -1] = SHARE_COLUMN * share[:, 0]
        return out

    def embedding_maps(self, width: int) -> list[np.ndarray] | None:
        """Columns of an embedding of ``width`` floats that give the embedding of the
        photo under each frame map of ``symmetries`` but the identity (the positional
        parts permuted, the palette kept), so that the candidate search takes a pair's
        nearest map as the distance does; None without frame maps or for the generic
        embedding of models that are not photos'."""
        maps = SYMMETRIES[self.symmetries]
        edges = _embedding_edges()
        if len(maps) == 1 or width != edges[-1] + 1:
            return None
        moved = [_positional_permutations(g) for g in maps[1:]]
        return [
            np.concatenate([spatial, np.arange(edges[1], edges[2]), edges[2] + luma, [edges[3]]])
            for spatial, luma in moved
        ]

    def embedding_gaps(self, queries: np.ndarray, candidates: np.ndarray) -> np.ndarray | None:
        """The parts' distances added as the distance adds its terms (None for
        embeddings that are not photos' of :meth:`embedding`).

        For a query ``q`` and a candidate ``c`` with colour share ``s`` (the smaller of
        the two, :func:`colour_shares`, read from the last column), under the frame
        map ``g`` that makes it least:
        ``s (|S_q - g S_c| + GAP_PALETTE |P_q - P_c|) + (1 - s) luma_gain GAP_LUMA
        |L_q - g L_c| / LUMA_EMBEDDING_GAIN``, where ``S`` and ``P`` are the spatial
        and palette parts divided by the photo's own share, ``L`` the luminance part.
        Each part's distance stands for the square root of a divergence, as in the
        distance; the Euclidean distance of the whole embedding sums their squares.

        Parameters
        ----------
        queries : ndarray, shape (B, D), float32
        candidates : ndarray, shape (B, C, D), float32

        Returns
        -------
        ndarray, shape (B, C), float64, or None
        """
        edges = _embedding_edges()
        if queries.shape[-1] != edges[-1] + 1 or candidates.shape[-1] != edges[-1] + 1:
            return None
        q = np.asarray(queries, dtype=np.float32)
        c = np.asarray(candidates, dtype=np.float32)
        s_q = q[:, -1].astype(np.float64) / SHARE_COLUMN
        s_c = c[..., -1].astype(np.float64) / SHARE_COLUMN
        pair = np.minimum(s_q[:, None], s_c)
        # Undo each photo's own share (a greyscale photo's parts are zero, and so is its
        # pairs' share).
        inv_q = np.divide(1.0, s_q, out=np.zeros_like(s_q), where=s_q > 0)[:, None, None]
        inv_c = np.divide(1.0, s_c, out=np.zeros_like(s_c), where=s_c > 0)[..., None]
        maps = SYMMETRIES[self.symmetries]
        moved = [_positional_permutations(g) for g in maps]

        def part_distance(a: int, b: int, perms: list[np.ndarray] | None, scale: bool):
            # float32 products (one BLAS call per query), the rest in float64.
            qp, cp = q[:, a:b], c[..., a:b]
            variants = np.stack([qp[:, p] for p in perms], axis=2) if perms else qp[..., None]
            dot = np.matmul(cp, variants).astype(np.float64)
            q_sq = np.einsum("bd,bd->b", qp, qp).astype(np.float64)[:, None, None]
            c_sq = np.einsum("bcd,bcd->bc", cp, cp).astype(np.float64)[..., None]
            if scale:
                sq = q_sq * inv_q**2 + c_sq * inv_c**2 - 2.0 * dot * inv_q * inv_c
            else:
                sq = q_sq + c_sq - 2.0 * dot
            return np.sqrt(np.maximum(sq, 0.0))

        spatial = part_distance(edges[0], edges[1], [m[0] for m in moved], True)
        palette = part_distance(edges[1], edges[2], None, True)
        luma = part_distance(edges[2], edges[3], [m[1] for m in moved], False)
        share = pair[..., None]
        luma_weight = self.luma_gain * GAP_LUMA / LUMA_EMBEDDING_GAIN
        gap = share * (spatial + GAP_PALETTE * palette) + (1.0 - share) * luma_weight * luma
        return gap.min(axis=-1)

    def estimator(self) -> JensenShannon:
        """This distance with at most :data:`ESTIMATE_SAMPLES` samples per spatial and
        luminance view."""
        return dataclasses.replace(
            self,
            n_samples=min(int(self.n_samples), ESTIMATE_SAMPLES),
            luma_samples=min(int(self.luma_samples), ESTIMATE_SAMPLES),
        )

    # ----------------------------------------------------------- kept samples

    def _kept(self, mixture: Mixture) -> list[tuple[Mixture, int]]:
        """The views and sample counts whose sets :meth:`dump_prepared` keeps (the
        views of :meth:`_terms`; a model that is no photo keeps its own set only).
        Symmetries are drawn anew."""
        if not is_photo_model(mixture):
            return [(mixture, int(self.n_samples))]
        return [(views[0], n) for views, n, _ in self._terms([mixture])]

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
        if not all(is_photo_model(m) for m in rows + cols):
            return np.sqrt(js_cross(rows, cols, self.n_samples, self.seed, n_jobs))
        maps = SYMMETRIES[self.symmetries]
        by_signature = self.map_choice == "signature" and len(maps) > 1
        choice = self.chosen_maps(rows, cols) if by_signature else None
        found = []
        for (row_views, n, symmetric), (col_views, _, _) in zip(
            self._terms(rows), self._terms(cols), strict=True
        ):
            if symmetric and by_signature:
                found.append(
                    js_cross_chosen(
                        row_views,
                        col_views,
                        _moved_views(col_views, maps),
                        _moved_views(row_views, [g.T for g in maps]),
                        choice,
                        n,
                        self.seed,
                        n_jobs,
                    )
                )
                continue
            best = None
            for position_map in maps if symmetric else maps[:1]:
                moved_cols = (
                    col_views
                    if position_map is maps[0]
                    else [moved(m, position_map) for m in col_views]
                )
                js = js_cross(row_views, moved_cols, n, self.seed, n_jobs)
                best = js if best is None else np.minimum(best, js)
            found.append(best)
        return self._assemble(found, colour_shares(rows, cols, self.tone))

    def chosen_maps(self, rows: Sequence[Mixture], cols: Sequence[Mixture]) -> np.ndarray:
        """The frame map of each pair of photo models under ``map_choice="signature"``,
        shape (R, C): indices into ``SYMMETRIES[symmetries]``.

        The map ``g`` that maximizes the dot product of the row's pose signature and
        the column's moved by ``g`` (:func:`pose_signatures`), i.e. that brings their
        luminance views' characteristic functions closest; the identity on ties and
        for a model against itself.  The reversed pair's dot product under ``g^-1`` is
        the same number, so it takes the inverse map.
        """
        rows, cols = list(rows), list(cols)
        maps = SYMMETRIES[self.symmetries]
        a, b = pose_signatures(self._luma(rows)), pose_signatures(self._luma(cols))
        agreement = np.stack(
            [a @ b[:, _orbit_permutation(g.tobytes(), POSE_FREQUENCIES)].T for g in maps]
        )
        choice = np.argmax(agreement, axis=0)
        same = np.array([[r is c for c in cols] for r in rows], dtype=bool)
        choice[same] = 0
        return choice

    def _assemble(self, found: list[np.ndarray], shares: np.ndarray) -> np.ndarray:
        """The distance from the divergences of :meth:`_terms`, in its order."""
        spatial, rest = found[0], list(found[1:])
        palette = rest.pop(0) if self.colour_weight > 0 else None
        luma = rest.pop(0) if self.luma_gain > 0 else None
        return self._combine(spatial, palette, luma, shares)

    def warm(self, mixtures: Sequence[Mixture]) -> None:
        """Draw the sample sets of many models in one batched pass (see
        :func:`leitmotiv.divergence.prepare_many`)."""
        mixtures = list(mixtures)
        if not mixtures or not all(is_photo_model(m) for m in mixtures):
            prepare_many(mixtures, self.n_samples, self.seed)
            return
        # Each model beside its other views: the small views' generator calls then
        # overlap the larger spatial sets' kernels.
        terms = self._terms(mixtures)
        views = [t[0][i] for i in range(len(mixtures)) for t in terms]
        sizes = [n for _ in mixtures for _, n, _ in terms]
        prepare_many(views, sizes, self.seed)

    def pairwise(self, mixtures: Sequence[Mixture], n_jobs: int = -1) -> np.ndarray:
        """Symmetric distance matrix, shape (N, N), zero diagonal.

        Cheaper than :meth:`cross` of the list with itself: every term is estimated
        from one sample set per view and symmetry (see
        :func:`leitmotiv.divergence.js_matrix_moved`).
        """
        mixtures = list(mixtures)
        if not mixtures or not all(is_photo_model(m) for m in mixtures):
            distance = np.sqrt(js_matrix(mixtures, self.n_samples, self.seed, n_jobs))
            np.fill_diagonal(distance, 0.0)
            return distance
        choice = self.pair_maps(mixtures)
        found = [
            self.term_matrix(views, n, choice, n_jobs)
            if symmetric
            else js_matrix(views, n, self.seed, n_jobs)
            for views, n, symmetric in self._terms(mixtures)
        ]
        distance = self._assemble(found, colour_shares(mixtures, mixtures, self.tone))
        np.fill_diagonal(distance, 0.0)
        return distance

    def pair_maps(self, mixtures: Sequence[Mixture]) -> np.ndarray | None:
        """The map of every pair of ``mixtures`` (photo models) that :meth:`pairwise`
        uses, shape (N, N), or None when it takes the minimum over the maps (or has
        the identity only): :meth:`chosen_maps`, with the reversed pair given the
        inverse map even where ties could break either way."""
        maps = SYMMETRIES[self.symmetries]
        if self.map_choice != "signature" or len(maps) == 1:
            return None
        choice, inverse = self.chosen_maps(mixtures, mixtures), _inverses(maps)
        upper = np.triu(np.ones(choice.shape, dtype=bool), 1)
        choice = np.where(upper, choice, inverse[choice.T])
        np.fill_diagonal(choice, 0)
        return choice

    def term_matrix(
        self, views: Sequence[Mixture], n: int, choice: np.ndarray | None, n_jobs: int = -1
    ) -> np.ndarray:
        """Jensen–Shannon divergences of one positional view of the photos, all pairs:
        under the maps of :meth:`pair_maps` (``choice``), or the least over the maps
        when ``choice`` is None."""
        views = list(views)
        if choice is None:
            return self._symmetric_matrix(views, n, n_jobs)
        maps = SYMMETRIES[self.symmetries]
        return js_matrix_chosen(
            views, _moved_views(views, maps), _inverses(maps), choice, n, self.seed, n_jobs
        )

    def _symmetric_matrix(self, views: list[Mixture], n: int, n_jobs: int) -> np.ndarray:
        """``min_g JS(v_i, g v_j)`` over the symmetries, for all pairs of views."""
        seed = self.seed
        js = js_matrix(views, n, seed, n_jobs)
        if self.symmetries != "none":
            mirrored = [moved(m, _MIRROR) for m in views]
            js = np.minimum(js, js_matrix_moved(views, mirrored, None, n, seed, n_jobs))
        if self.symmetries == "dihedral":
            turned = [moved(m, _TURN) for m in views]
            back = [moved(m, _TURN.T) for m in views]
            quarter = js_matrix_moved(views, turned, back, n, seed, n_jobs)
            js = np.minimum(js, np.minimum(quarter, quarter.T))
        return js
