"""Helpers shared by several test modules (import with ``from helpers import ...``)."""

from __future__ import annotations

import contextlib
import io
import signal
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from leitmotiv.mixture import Mixture


def random_mixture(rng, k, d, scale=1.0, ridge=0.05):
    """A random ``k``-component mixture in ``d`` dimensions, well conditioned by ``ridge``."""
    a = rng.standard_normal((k, d, d)) * 0.5
    covs = a @ a.transpose(0, 2, 1) + ridge * np.eye(d)
    w = rng.random(k) + 0.1
    return Mixture(w / w.sum(), scale * rng.standard_normal((k, d)), covs)


def scipy_log_pdf(m: Mixture, X: np.ndarray) -> np.ndarray:
    """``ln p(x)`` of every row of ``X``, computed directly with SciPy."""
    terms = [
        np.log(m.weights[k]) + multivariate_normal(m.means[k], m.covariances[k]).logpdf(X)
        for k in range(m.n_components)
    ]
    return logsumexp(np.reshape(terms, (m.n_components, -1)), axis=0)


@contextlib.contextmanager
def no_hang(seconds: int = 60):
    """Fail with TimeoutError, instead of waiting forever, if the block takes longer than
    ``seconds`` (for code that must not block, e.g. on a named pipe; main thread only)."""

    def alarm(signum, frame):
        raise TimeoutError(f"still running after {seconds} s: something blocked")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def png_with_rows(path: Path, width: int, height: int, rows: np.ndarray) -> Path:
    """A PNG whose IHDR declares ``width`` x ``height`` RGB but whose (complete, valid)
    compressed stream holds only ``rows``, an (n, width, 3) uint8 array."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + row.tobytes() for row in rows)  # filter type 0 per row
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return path


def jpeg_claiming(path: Path, width: int, height: int) -> Path:
    """A valid 16 x 16 JPEG whose frame header is rewritten to claim ``width`` x ``height``."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = height.to_bytes(2, "big") + width.to_bytes(2, "big")
    path.write_bytes(bytes(data))
    return path
