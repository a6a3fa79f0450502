"""Real photo features for benchmarks and tests: (x, y, L, a, b) of blurred pixels.

Each photo gives two disjoint-by-seed random draws of pixel positions, a training set and
a held-out set, both standardized with the training set's mean and standard deviation so
that every photo lives on the same footing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

PHOTO_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "photos"
DEFAULT_PHOTOS = ("dahlia_0.jpg", "misty_pier_0.jpg", "chelsea_cat_0.jpg", "astronaut_0.jpg")


def photo_features(name: str, n: int = 5000, seed: int = 0, photo_dir: Path = PHOTO_DIR):
    """Return standardized ``(train, held_out)`` feature arrays of shape (n, 5).

    Parameters
    ----------
    name : str
        File name of a JPEG in ``photo_dir``.
    n : int
        Samples in each set.
    seed : int
        Seed of the pixel draws.

    Returns
    -------
    train, held_out : ndarray, shape (n, 5)
        Columns x, y (pixels), L, a, b (OpenCV Lab of float32 RGB in [0, 1]), minus the
        training mean and divided by the training standard deviation.
    """
    import cv2  # deferred: only benchmarks and tests need OpenCV

    path = Path(photo_dir) / name
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FileNotFoundError(f"cannot read photo {path}")
    rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB).astype(np.float32) / 255.0
    h, w = rgb.shape[:2]
    # Blur at ~1 % of the long side so a sample sees its neighbourhood, not JPEG noise.
    sigma = 0.01 * max(h, w)
    rgb = cv2.GaussianBlur(rgb, (0, 0), sigmaX=sigma, sigmaY=sigma)
    lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2Lab)
    rng = np.random.default_rng(seed)

    def draw() -> np.ndarray:
        ys = rng.integers(0, h, size=n)
        xs = rng.integers(0, w, size=n)
        return np.column_stack([xs, ys, lab[ys, xs].astype(np.float64)]).astype(np.float64)

    train, held_out = draw(), draw()
    mean, std = train.mean(axis=0), train.std(axis=0)
    std[std == 0] = 1.0
    return (train - mean) / std, (held_out - mean) / std
