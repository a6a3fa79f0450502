"""Baselines users would pick instead of leitmotiv: perceptual hashes and histograms.

Each baseline maps a list of photo paths to an (N, N) distance matrix.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps


def _open_rgb(path: Path) -> Image.Image:
    return ImageOps.exif_transpose(Image.open(path)).convert("RGB")


def hash_distances(paths: list[Path], kind: str) -> np.ndarray:
    """Hamming distances between imagehash hashes ("phash", "whash", "dhash" or
    "colorhash")."""
    import imagehash

    fn = {
        "phash": imagehash.phash,
        "whash": imagehash.whash,
        "dhash": imagehash.dhash,
        "colorhash": imagehash.colorhash,
    }[kind]
    bits = np.array([fn(_open_rgb(p)).hash.ravel() for p in paths], dtype=np.uint8)
    return (bits[:, None, :] != bits[None, :, :]).sum(axis=2).astype(np.float64)


def histogram_distances(paths: list[Path], bins: int = 8) -> np.ndarray:
    """χ² distances between normalized bins×bins×bins RGB histograms."""
    hists = []
    for p in paths:
        rgb = np.asarray(_open_rgb(p)).reshape(-1, 3)
        h, _ = np.histogramdd(rgb, bins=(bins,) * 3, range=[(0, 256)] * 3)
        hists.append(h.ravel() / h.sum())
    h = np.array(hists)
    num = (h[:, None, :] - h[None, :, :]) ** 2
    den = h[:, None, :] + h[None, :, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        return 0.5 * np.where(den > 0, num / den, 0.0).sum(axis=2)
