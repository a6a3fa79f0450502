"""A photo's mixture drawn as ellipses: the geometry behind the model view.

Each component of a 5-D ``(x, y, c1, c2, c3)`` mixture becomes one ellipse: the
``n_sigma`` contour of its position marginal, in the pixel coordinates of the image
the model was fitted on, filled with the component's mean colour.  Everything here is
pure arithmetic on the mixture, so the web view only formats the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from leitmotiv import colour
from leitmotiv.mixture import Mixture

# Opacity is mapped linearly from weight into this range, so that the lightest
# component is still visible and the heaviest does not hide the photo under it.
MIN_OPACITY = 0.25
MAX_OPACITY = 0.9


@dataclass(frozen=True)
class Ellipse:
    """One mixture component as an SVG-ready ellipse.

    Attributes
    ----------
    cx, cy : float
        Centre in raw pixel coordinates (``x`` right, ``y`` down).
    rx, ry : float
        Semi-axes in pixels (``rx`` along the principal direction).
    angle : float
        Rotation of the principal axis in degrees, clockwise on screen (SVG
        convention, since ``y`` points down).
    fill : str
        The component's mean colour as ``#rrggbb``.
    opacity : float
        Fill opacity in [MIN_OPACITY, MAX_OPACITY], increasing with the weight.
    weight : float
        The component's mixing weight.
    """

    cx: float
    cy: float
    rx: float
    ry: float
    angle: float
    fill: str
    opacity: float
    weight: float


def mixture_ellipses(mixture: Mixture, n_sigma: float = 2.0) -> list[Ellipse]:
    """The components of ``mixture`` as ellipses over its photo, heaviest first.

    Components are mapped back to raw coordinates with the feature transform
    (``raw mean = A^-1 mu + offset``, ``raw cov = A^-1 Sigma A^-T``); the position
    block of the raw covariance gives the ellipse, the colour block's mean its fill.

    Parameters
    ----------
    mixture : Mixture
        A 5-D photo model with a feature transform.
    n_sigma : float
        Contour drawn, in standard deviations of the position marginal.

    Returns
    -------
    list of Ellipse
        Heaviest first, so that drawing them in order puts small components on top.

    Raises
    ------
    ValueError
        If the mixture has no transform or is not 5-D.
    """
    if mixture.transform is None or mixture.dim != 5:
        raise ValueError("the model view needs a 5-D mixture with a feature transform")
    means, covs = mixture.raw_components()
    rgb = colour.to_rgb(means[:, 2:], mixture.transform.colour_space)
    weights = mixture.weights / mixture.weights.sum()
    top = float(weights.max()) if weights.size else 1.0
    # One batched eigh for all components; it returns ascending eigenvalues, so the
    # last eigenvector is the major axis.
    values, vectors = np.linalg.eigh(covs[:, :2, :2])
    semi = n_sigma * np.sqrt(np.clip(values, 0.0, None))
    angles = np.degrees(np.arctan2(vectors[:, 1, 1], vectors[:, 0, 1]))
    opacity = MIN_OPACITY + (MAX_OPACITY - MIN_OPACITY) * weights / top
    fills = np.rint(np.asarray(rgb, dtype=np.float64) * 255).astype(int)
    out = []
    for k in np.argsort(-weights, kind="stable").tolist():
        out.append(
            Ellipse(
                cx=float(means[k, 0]),
                cy=float(means[k, 1]),
                rx=float(semi[k, 1]),
                ry=float(semi[k, 0]),
                angle=float(angles[k]),
                fill="#{:02x}{:02x}{:02x}".format(*fills[k].tolist()),
                opacity=float(opacity[k]),
                weight=float(weights[k]),
            )
        )
    return out
