"""Netpbm PAM files (``P7``), the one Netpbm kind Pillow does not read.

A PAM file is a text header (``WIDTH``, ``HEIGHT``, ``DEPTH``, ``MAXVAL``, optional
``TUPLTYPE``, ending with ``ENDHDR``) followed by the samples, row by row, one or two
bytes each (big-endian), from 0 to ``MAXVAL``.  :func:`read_pam` turns one into a
Pillow image (greyscale, greyscale with alpha, RGB or RGBA by its depth), scaled to
8 bits, so it goes through the same conversions as every other format.  PBM, PGM and
PPM (``P1`` to ``P6``) are Pillow's.
"""

from __future__ import annotations

from typing import BinaryIO

import numpy as np
from PIL import Image

__all__ = ["PamError", "read_pam"]

# Samples per pixel this reader takes: grey (L), grey + alpha (LA), RGB, RGBA.
_DEPTHS = (1, 2, 3, 4)

# A header line is short; this bounds what a file without ENDHDR makes us read.
_MAX_HEADER = 4096


class PamError(ValueError):
    """The file is not a PAM file this reader takes; the message says why."""


def _header(fh: BinaryIO) -> dict[str, str]:
    if fh.read(3) != b"P7\n":
        raise PamError("not a PAM file (no P7 signature)")
    fields: dict[str, str] = {}
    read = 3
    while True:
        line = fh.readline(_MAX_HEADER)
        read += len(line)
        if not line or read > _MAX_HEADER:
            raise PamError("corrupt header (no ENDHDR line)")
        words = line.decode("ascii", errors="replace").split()
        if not words or words[0].startswith("#"):
            continue
        if words[0] == "ENDHDR":
            return fields
        fields[words[0]] = " ".join(words[1:])


def read_pam(fh: BinaryIO, max_pixels: int) -> Image.Image:
    """Read a PAM file into an 8-bit Pillow image.

    Parameters
    ----------
    fh : binary file
        Positioned at the start of the file.
    max_pixels : int
        Refuse a header declaring more pixels than this, before reading any sample.

    Returns
    -------
    PIL.Image.Image
        Mode ``L``, ``LA``, ``RGB`` or ``RGBA`` (by ``DEPTH``), with ``format`` ``"PAM"``.

    Raises
    ------
    PamError
        For a header that is incomplete, inconsistent or too large (the message says
        so), and for pixel data shorter than the header declares (``"truncated ..."``).
    """
    fields = _header(fh)
    try:
        width, height = int(fields["WIDTH"]), int(fields["HEIGHT"])
        depth, maxval = int(fields["DEPTH"]), int(fields["MAXVAL"])
    except (KeyError, ValueError):
        raise PamError("corrupt header (WIDTH, HEIGHT, DEPTH and MAXVAL are required)") from None
    if width < 1 or height < 1:
        raise PamError(f"empty image ({width}×{height} pixels)")
    if width * height > max_pixels:
        raise PamError(f"too large ({width}×{height} pixels, limit {max_pixels} pixels)")
    if depth not in _DEPTHS or not 1 <= maxval <= 65535:
        raise PamError(f"unsupported PAM layout (DEPTH {depth}, MAXVAL {maxval})")
    dtype = np.dtype(">u2") if maxval > 255 else np.dtype("u1")
    count = width * height * depth
    data = fh.read(count * dtype.itemsize)
    if len(data) < count * dtype.itemsize:
        raise PamError(
            f"truncated pixel data (the header declares {width}×{height} pixels, "
            f"the file holds {len(data) // (depth * dtype.itemsize)} of them)"
        )
    samples = np.frombuffer(data, dtype=dtype).reshape(height, width, depth)
    if maxval != 255:
        samples = np.rint(np.minimum(samples, maxval) * (255.0 / maxval))
    pixels = samples.astype(np.uint8)
    image = Image.fromarray(pixels[..., 0] if depth == 1 else pixels)  # mode by depth
    image.format = "PAM"
    return image
