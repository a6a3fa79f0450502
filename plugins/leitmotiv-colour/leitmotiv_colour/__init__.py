"""A colour-only photo model, as a leitmotiv featurizer plugin.

The built-in featurizer models a photo as a mixture over ``(x, y, colour)``, so where a
colour sits matters.  This one models only *which* colours a photo contains and in what
proportions: a Gaussian mixture over the colours of blurred pixels sampled uniformly
over the image, 3-D (e.g. CIE Lab).  Without positions the model is invariant to
mirroring, rotation by any angle and moving the subject within the frame, and changes
only as much as a crop changes the palette.  That finds the same scene shot from
another angle or reframed, and photos that share a palette, where the positional model
sees different pictures; in exchange it cannot tell apart two photos with the same
colours arranged differently.

Model coordinates
-----------------
All photos share one colour space, so their models are comparable by any divergence
(including the built-in Jensen–Shannon and the ``cauchy-schwarz`` plugin): a colour
``c`` in the native units of :mod:`leitmotiv.colour` becomes ``z = (c - ref) * scale``
with leitmotiv's per-space constants (:data:`leitmotiv.features.COLOUR_NORMALIZATION`),
e.g. ``(L - 50, a, b) / 80`` for Lab.  The samples are not whitened per photo: that
would erase exactly the absolute colour this model exists to compare.

Rendering
---------
A colour-only mixture has no positions, so it cannot be rendered as an image of the
photo: its ``transform`` is ``None`` (``Mixture.render`` refuses it with a clear
message, and ``average_mixture`` pools such mixtures directly, which is valid because
they share coordinates).  :meth:`ColourFeaturizer.palette` draws it instead as a
palette strip: one band per component, as wide as its weight, in its mean colour.

Select it with ``leitmotiv --featurizer colour ...`` or, in the configuration file,
``featurizer = "colour"`` and parameters under ``[params.featurizer.colour]``.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from leitmotiv.colour import SPACES, from_rgb, to_rgb
from leitmotiv.features import COLOUR_NORMALIZATION, as_rgb01, blur_image
from leitmotiv.hookspecs import hookimpl
from leitmotiv.interfaces import Featurizer

if TYPE_CHECKING:
    from leitmotiv.mixture import Mixture

__all__ = ["ColourFeaturizer", "colour_normalization", "leitmotiv_featurizers"]
__version__ = "0.1.0"


def colour_normalization(colour_space: str) -> tuple[np.ndarray, np.ndarray]:
    """Reference colour and per-channel scale of the shared model coordinates.

    Parameters
    ----------
    colour_space : {"lab", "rgb", "yuv"}

    Returns
    -------
    reference, scale : ndarray, shape (3,)
        ``z = (colour - reference) * scale``.
    """
    # leitmotiv's own constants, so that a colour distance means the same in this
    # model as in the colour part of the built-in (x, y, colour) model.
    reference, scale = COLOUR_NORMALIZATION[colour_space]
    return np.asarray(reference, dtype=np.float64), np.asarray(scale, dtype=np.float64)


@dataclass(frozen=True)
class ColourFeaturizer(Featurizer):
    """Variational Gaussian mixture over the colours of a photo, without positions.

    Parameters
    ----------
    n_samples : int
        Pixels sampled per photo, >= 1.  A palette needs fewer samples than the
        5-D model: 3000 pin down 20 components in 3-D well.
    blur : float
        Gaussian blur sigma as a fraction of the long side, in [0, 1].  Blurring
        first averages away noise, JPEG artefacts and fine texture, so the palette is
        that of the regions a viewer sees (and of a rescaled or recompressed copy).
    colour_space : {"lab", "rgb", "yuv"}
        Space of the model; Lab is perceptually uniform, so Gaussian widths mean the
        same colour difference everywhere.
    max_components : int
        Upper bound on the number of palette components, >= 1.
    weight_concentration : float
        Dirichlet concentration of the weights prior, > 0; small values favour few
        components.
    """

    name: ClassVar[str] = "colour"

    n_samples: int = 3000
    blur: float = 0.02
    colour_space: str = "lab"
    max_components: int = 20
    weight_concentration: float = 0.01

    def __post_init__(self) -> None:
        for field in ("n_samples", "max_components"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                raise ValueError(f"{field} must be an integer, got {value!r}")
            if value < 1:
                raise ValueError(f"{field} must be at least 1, got {value}")
        blur = self.blur
        if isinstance(blur, bool) or not isinstance(blur, numbers.Real):
            raise ValueError(f"blur must be a number, got {blur!r}")
        if not (math.isfinite(blur) and 0.0 <= blur <= 1.0):
            raise ValueError(
                f"blur must be between 0 and 1 (fraction of the long side), got {blur}"
            )
        if self.colour_space not in SPACES:
            raise ValueError(
                f"colour_space must be one of {', '.join(SPACES)}, got {self.colour_space!r}"
            )
        wc = self.weight_concentration
        if (
            isinstance(wc, bool)
            or not isinstance(wc, numbers.Real)
            or not (math.isfinite(wc) and wc > 0)
        ):
            raise ValueError(f"weight_concentration must be a positive number, got {wc!r}")

    def colours(self, image: np.ndarray, seed: int = 0) -> np.ndarray:
        """The sampled colours of a photo, in model coordinates.

        Parameters
        ----------
        image : ndarray, shape (height, width, 3), uint8
            The upright RGB photo (float arrays in [0, 1] are accepted too).
        seed : int
            Seed of the sampled pixels.

        Returns
        -------
        ndarray, shape (n_samples, 3)
            ``(colour - reference) * scale`` (see :func:`colour_normalization`).
        """
        rgb01 = blur_image(as_rgb01(image), self.blur)
        height, width = rgb01.shape[:2]
        # Pixels drawn uniformly (with replacement) weigh every colour by the area it
        # covers, whatever the size, orientation or framing of the photo.
        rng = np.random.default_rng(seed)
        picks = rng.integers(0, height * width, self.n_samples)
        colour = from_rgb(rgb01.reshape(-1, 3)[picks], self.colour_space)
        reference, scale = colour_normalization(self.colour_space)
        return (colour - reference) * scale

    def model(self, image: np.ndarray, seed: int = 0) -> Mixture:
        """Fit the photo's colour mixture (3-D, ``transform=None``: no render).

        Parameters
        ----------
        image : ndarray, shape (height, width, 3), uint8
        seed : int
            Seed of the sampled pixels and of the fit's initialization.

        Returns
        -------
        Mixture
            Over the model coordinates described in the module docstring.
        """
        # Imported here so the plugin loads (and is listed) without the fitter built.
        from leitmotiv.vbgmm import fit_mixture

        mixture = fit_mixture(
            self.colours(image, seed=seed),
            self.max_components,
            seed,
            weight_concentration=self.weight_concentration,
        )
        return dataclasses.replace(mixture, transform=None)

    def palette(self, mixture: Mixture, width: int = 256, height: int = 32) -> np.ndarray:
        """Draw a colour mixture of this featurizer as a palette strip.

        One vertical band per component, its width proportional to the component's
        weight and filled with its mean colour; bands run from dark to light.

        Parameters
        ----------
        mixture : Mixture
            A model made by this featurizer (same colour space).
        width, height : int
            Size of the strip in pixels.

        Returns
        -------
        ndarray of uint8, shape (height, width, 3)
            RGB.
        """
        width, height = int(width), int(height)
        if width <= 0 or height <= 0:
            raise ValueError("width and height must be positive")
        if mixture.dim != 3:
            raise ValueError(f"expected a 3-D colour mixture, got dimension {mixture.dim}")
        reference, scale = colour_normalization(self.colour_space)
        colours = mixture.means / scale + reference
        rgb = to_rgb(colours, self.colour_space)
        # Order by perceived lightness (Rec. 601 luma), whatever the model's space.
        order = np.argsort(rgb @ np.array([0.299, 0.587, 0.114]), kind="stable")
        weights = mixture.weights[order] / mixture.weights.sum()
        edges = np.round(np.concatenate([[0.0], np.cumsum(weights)]) * width).astype(int)
        edges[-1] = width
        band = np.searchsorted(edges, np.arange(width), side="right") - 1
        row = rgb[order][np.clip(band, 0, len(order) - 1)]
        strip = np.round(row * 255.0).astype(np.uint8)
        return np.broadcast_to(strip, (height, width, 3)).copy()


@hookimpl
def leitmotiv_featurizers():
    """The ``colour`` featurizer."""
    return [ColourFeaturizer]
