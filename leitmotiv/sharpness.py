"""How sharp a photo is: the variance of the Laplacian of its thumbnail.

The Laplacian responds to edges and fine texture; blur and heavy compression remove
both, so among near-duplicates the sharpest copy has the largest variance.  It is
measured on the stored JPEG thumbnail (the same long side for every photo), so that
values of photos of different sizes compare, and so that photos added before the
measure existed can be measured from what the store already holds.
"""

from __future__ import annotations

import cv2
import numpy as np

__all__ = ["laplacian_variance"]


def laplacian_variance(jpeg: bytes) -> float:
    """Sharpness of a photo from its JPEG thumbnail.

    Parameters
    ----------
    jpeg : bytes
        The thumbnail (any image format OpenCV decodes).

    Returns
    -------
    float
        Variance of the Laplacian of the grey image, in squared 8-bit grey levels.

    Raises
    ------
    ValueError
        If the bytes are not an image.
    """
    grey = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_GRAYSCALE)
    if grey is None:
        raise ValueError("the thumbnail is not a readable image")
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())
