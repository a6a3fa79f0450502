"""Colour spaces the featurizers sample in, and the way back to RGB.

Native units: ``"rgb"`` in [0, 1]; ``"lab"`` CIE L*a*b* (D65) with L in [0, 100] and
a, b roughly in [-128, 127]; ``"yuv"`` BT.601 with Y in [0, 1] and U, V in about
[-0.5, 0.5].
"""

from __future__ import annotations

import cv2
import numpy as np

SPACES = ("lab", "rgb", "yuv")

#: Raw luma of each space as a linear function of its channels: BT.601 luma for RGB
#: (the Y of YUV), the first channel of YUV and of Lab (L*, lightness).
LUMA: dict[str, tuple[float, float, float]] = {
    "lab": (1.0, 0.0, 0.0),
    "rgb": (0.299, 0.587, 0.114),
    "yuv": (1.0, 0.0, 0.0),
}

_YUV_FROM_RGB = np.array(
    [[0.299, 0.587, 0.114], [-0.14713, -0.28886, 0.436], [0.615, -0.51499, -0.10001]]
)
_RGB_FROM_YUV = np.linalg.inv(_YUV_FROM_RGB)


def _check(space: str) -> None:
    if space not in SPACES:
        raise ValueError(f"unknown colour space {space!r}; choose one of {', '.join(SPACES)}")


def from_rgb(rgb: np.ndarray, space: str) -> np.ndarray:
    """Convert RGB in [0, 1], shape (..., 3), to ``space`` (float64, same shape)."""
    _check(space)
    rgb = np.asarray(rgb, dtype=np.float64)
    if space == "rgb":
        return rgb.copy()
    if space == "yuv":
        return rgb @ _YUV_FROM_RGB.T
    flat = np.ascontiguousarray(rgb.reshape(-1, 1, 3), dtype=np.float32)
    return cv2.cvtColor(flat, cv2.COLOR_RGB2Lab).astype(np.float64).reshape(rgb.shape)


def to_rgb(values: np.ndarray, space: str) -> np.ndarray:
    """Convert ``space`` values, shape (..., 3), to RGB in [0, 1] (clipped)."""
    _check(space)
    values = np.asarray(values, dtype=np.float64)
    if space == "rgb":
        rgb = values
    elif space == "yuv":
        rgb = values @ _RGB_FROM_YUV.T
    else:
        lab = values.copy()
        lab[..., 0] = np.clip(lab[..., 0], 0.0, 100.0)
        flat = np.ascontiguousarray(lab.reshape(-1, 1, 3), dtype=np.float32)
        rgb = cv2.cvtColor(flat, cv2.COLOR_Lab2RGB).astype(np.float64).reshape(values.shape)
    return np.clip(rgb, 0.0, 1.0)
