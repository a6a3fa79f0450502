"""Whether a PNG or JPEG file holds the pixel data its header declares.

A header can lie: a PNG or JPEG of a few hundred bytes may declare 14000 × 14000
pixels.  Pillow decodes what data there is and leaves the rest of the image blank
without a word (a PNG whose compressed stream ends early, a JPEG whose EOI marker
comes early), after allocating the full declared size.  These checks run on the file
before any pixel is decoded and name what is missing:

- **PNG**: the image data (the IDAT chunks) is inflated as a stream, a chunk at a time,
  and its bytes are counted against what the header's size, bit depth, colour type and
  interlacing require; nothing is kept, so memory stays small whatever the header says.
- **JPEG** (Huffman coded, every kind but the rare arithmetic one): every 8 × 8 block of
  every component has at least its DC coefficient coded, with at least one bit, so the
  coded data after the first scan header must hold at least one bit per block.  A file
  with less cannot be the image its header declares.  (This bound catches a header
  that lies about the size; a JPEG cut short in the middle of its data is caught by
  the decoder itself, which then finds no end-of-image marker.)
"""

from __future__ import annotations

import io
import math
import struct
import zlib
from typing import BinaryIO

__all__ = ["missing_pixel_data"]

# Bytes read and inflated at a time: bounds the memory of the PNG check.
_CHUNK = 1 << 20

# PNG channels per colour type: grey, RGB, palette, grey + alpha, RGBA.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}

# Adam7 passes: (first column, first row, column step, row step).
_ADAM7 = (
    (0, 0, 8, 8),
    (4, 0, 8, 8),
    (0, 4, 4, 8),
    (2, 0, 4, 4),
    (0, 2, 2, 4),
    (1, 0, 2, 2),
    (0, 1, 1, 2),
)

# JPEG start-of-frame markers coded with Huffman tables (SOF0-3, SOF5-7).
_HUFFMAN_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7}
# Start-of-frame markers coded arithmetically (SOF9-11, SOF13-15): no per-block bound.
_ARITHMETIC_SOF = {0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
# Markers that stand alone, without a length: TEM, RST0-7, SOI, EOI.
_STANDALONE = {0x01, *range(0xD0, 0xDA)}


def missing_pixel_data(fh: BinaryIO, fmt: str) -> str | None:
    """Why the file lacks the pixel data its header declares, or None if it does not.

    Parameters
    ----------
    fh : binary file
        The open file, seekable; its position is restored.
    fmt : str
        Pillow's format name; only ``"PNG"`` and ``"JPEG"`` (with ``"MPO"``, whose
        first image is a JPEG) are checked, any other gives None.

    Returns
    -------
    str or None
        The reason in plain words, starting with ``"truncated pixel data"`` (or
        ``"corrupt data"`` for a PNG data stream that does not inflate).
    """
    position = fh.tell()
    try:
        fh.seek(0)
        if fmt == "PNG":
            return _png_missing(fh)
        if fmt in ("JPEG", "MPO"):
            return _jpeg_missing(fh)
        return None
    except (struct.error, IndexError):
        return None  # a structure this check cannot follow: the decoder judges the file
    finally:
        fh.seek(position)


def _png_expected_bytes(width: int, height: int, depth: int, colour: int, interlace: int) -> int:
    """Bytes the inflated image data of a PNG with this header holds (filter bytes too)."""
    bits = depth * _PNG_CHANNELS.get(colour, 1)

    def rows(w: int, h: int) -> int:
        return 0 if w == 0 or h == 0 else h * (1 + math.ceil(w * bits / 8))

    if not interlace:
        return rows(width, height)
    return sum(
        rows(
            max(0, math.ceil((width - x0) / dx)),
            max(0, math.ceil((height - y0) / dy)),
        )
        for x0, y0, dx, dy in _ADAM7
    )


def _png_missing(fh: BinaryIO) -> str | None:
    fh.seek(8)  # the signature
    expected = None
    inflate = zlib.decompressobj()
    inflated = 0
    while True:
        head = fh.read(8)
        if len(head) < 8:
            break
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", fh.read(13))
            expected = _png_expected_bytes(width, height, depth, colour, interlace)
            fh.seek(length - 13 + 4, io.SEEK_CUR)
        elif kind == b"IDAT":
            left = length
            while left > 0:
                data = fh.read(min(left, _CHUNK))
                if not data:
                    break
                left -= len(data)
                try:
                    while data and inflated < (expected or 0):
                        inflated += len(inflate.decompress(data, _CHUNK))
                        data = inflate.unconsumed_tail
                except zlib.error as exc:
                    return f"corrupt data (the image data does not inflate: {exc})"
                if expected is not None and inflated >= expected:
                    return None
            fh.seek(4, io.SEEK_CUR)  # CRC
        elif kind == b"IEND":
            break
        else:
            fh.seek(length + 4, io.SEEK_CUR)
    if expected is None or inflated >= expected:
        return None  # no header: Pillow has refused the file already
    share = 100.0 * inflated / expected
    return (
        f"truncated pixel data (the header declares {width}×{height} pixels, "
        f"the image data holds {share:.2g} % of them)"
    )


def _jpeg_missing(fh: BinaryIO) -> str | None:
    size = fh.seek(0, io.SEEK_END)
    fh.seek(2)  # SOI
    blocks = None
    while True:
        byte = fh.read(1)
        if not byte:
            return None
        if byte != b"\xff":
            continue
        marker = fh.read(1)
        while marker == b"\xff":  # fill bytes
            marker = fh.read(1)
        if not marker:
            return None
        code = marker[0]
        if code in _STANDALONE or code == 0x00:
            continue
        head = fh.read(2)
        if len(head) < 2:
            return None
        (length,) = struct.unpack(">H", head)
        if code in _ARITHMETIC_SOF:
            return None
        if code in _HUFFMAN_SOF and blocks is None:
            frame = fh.read(length - 2)
            height, width, count = struct.unpack(">HHB", frame[1:6])
            if height == 0:
                return None  # the height comes later (DNL): no bound from the header
            factors = [(frame[7 + 3 * i] >> 4, frame[7 + 3 * i] & 15) for i in range(count)]
            if not factors:
                return None
            h_max = max(h for h, _ in factors) or 1
            v_max = max(v for _, v in factors) or 1
            blocks = sum(
                math.ceil(math.ceil(width * h / h_max) / 8)
                * math.ceil(math.ceil(height * v / v_max) / 8)
                for h, v in factors
            )
            continue
        if code == 0xDA:  # start of scan: everything after its header is coded data at most
            if blocks is None:
                return None
            data = size - (fh.tell() + length - 2)
            if data * 8 >= blocks:
                return None
            need = math.ceil(blocks / 8)
            return (
                f"truncated pixel data (the header declares {width}×{height} pixels, which "
                f"need at least {need} bytes of image data; the file holds {max(data, 0)} bytes)"
            )
        fh.seek(length - 2, io.SEEK_CUR)
