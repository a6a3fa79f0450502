"""The invertible affine map between raw photo samples and model coordinates."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True, eq=False)
class FeatureTransform:
    """Affine map ``z = (raw - offset) @ matrix.T`` and its inverse.

    Raw samples have the columns ``(x, y, c1, c2, c3)``: ``x`` and ``y`` are pixel
    coordinates in the working image of size ``width`` x ``height`` (``x`` to the right,
    ``y`` down), and ``c1..c3`` are the colour in ``colour_space``'s native units (see
    :mod:`leitmotiv.colour`).  Models live in ``z`` coordinates.

    Attributes
    ----------
    offset : ndarray, shape (d,)
    matrix : ndarray, shape (d, d), invertible
    colour_space : str
    width, height : int
        Size of the image the samples were drawn from.
    """

    offset: np.ndarray
    matrix: np.ndarray
    colour_space: str
    width: int
    height: int

    def __post_init__(self) -> None:
        offset = np.ascontiguousarray(self.offset, dtype=np.float64)
        matrix = np.ascontiguousarray(self.matrix, dtype=np.float64)
        if matrix.shape != (offset.size, offset.size):
            raise ValueError(f"matrix shape {matrix.shape} does not match offset {offset.shape}")
        if not np.all(np.isfinite(matrix)) or abs(np.linalg.det(matrix)) < 1e-300:
            raise ValueError("feature transform matrix must be finite and invertible")
        object.__setattr__(self, "offset", offset)
        object.__setattr__(self, "matrix", matrix)

    @property
    def dim(self) -> int:
        """Number of feature dimensions."""
        return self.offset.size

    def forward(self, raw: np.ndarray) -> np.ndarray:
        """Map raw samples, shape (n, d), into model coordinates."""
        return (np.asarray(raw, dtype=np.float64) - self.offset) @ self.matrix.T

    @functools.cached_property
    def inverse_matrix(self) -> np.ndarray:
        """``matrix``'s inverse, shape (d, d), read-only (computed once: every view of a
        model that reads raw colours needs it)."""
        inverse = np.linalg.inv(self.matrix)
        inverse.flags.writeable = False
        return inverse

    def inverse(self, z: np.ndarray) -> np.ndarray:
        """Map model coordinates, shape (n, d), back to raw samples."""
        return np.linalg.solve(self.matrix, np.asarray(z, dtype=np.float64).T).T + self.offset

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serializable description (for the store)."""
        return {
            "offset": self.offset.tolist(),
            "matrix": self.matrix.tolist(),
            "colour_space": self.colour_space,
            "width": int(self.width),
            "height": int(self.height),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureTransform:
        """Inverse of :meth:`to_dict`."""
        return cls(
            offset=np.asarray(d["offset"], dtype=np.float64),
            matrix=np.asarray(d["matrix"], dtype=np.float64),
            colour_space=str(d["colour_space"]),
            width=int(d["width"]),
            height=int(d["height"]),
        )
