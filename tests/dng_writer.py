"""A minimal DNG writer for the tests: a real photo's Bayer mosaic as a camera RAW file.

The tests need RAW files without shipping any, so they make them: the photo is turned
into linear light, sampled through an RGGB colour filter array (one colour per
photosite, as a sensor records it) at 12 bits, and written as an uncompressed DNG (a
TIFF with the DNG tags LibRaw needs).  The colour matrix is that of linear sRGB, so a
correct demosaic gives back the photo.  Optionally the DNG carries an 8-bit preview
in its first IFD, as cameras' files do, with the mosaic in a sub-IFD, and an EXIF
``DateTimeOriginal``.
"""

from __future__ import annotations

import datetime as dt
import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

WHITE_LEVEL = 4095

# TIFF field types.
BYTE, ASCII, SHORT, LONG, RATIONAL, SRATIONAL = 1, 2, 3, 4, 5, 10
_FORMATS = {BYTE: "B", ASCII: "B", SHORT: "H", LONG: "I"}

# XYZ (D65) to linear sRGB: the DNG ColorMatrix1 of a "camera" whose raw colours are
# linear sRGB.
_XYZ_TO_SRGB = (
    (3.2406, -1.5372, -0.4986),
    (-0.9689, 1.8758, 0.0415),
    (0.0557, -0.2040, 1.0570),
)


def bayer_mosaic(rgb: np.ndarray) -> np.ndarray:
    """The 12-bit RGGB mosaic of an sRGB ``uint8`` image (even sides, cropped)."""
    height, width = (rgb.shape[0] // 2) * 2, (rgb.shape[1] // 2) * 2
    srgb = rgb[:height, :width].astype(np.float64) / 255.0
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    mosaic = np.empty((height, width), dtype=np.float64)
    mosaic[0::2, 0::2] = linear[0::2, 0::2, 0]
    mosaic[0::2, 1::2] = linear[0::2, 1::2, 1]
    mosaic[1::2, 0::2] = linear[1::2, 0::2, 1]
    mosaic[1::2, 1::2] = linear[1::2, 1::2, 2]
    return np.rint(mosaic * WHITE_LEVEL).astype("<u2")


class _Tiff:
    """A little-endian TIFF built back to front: data first, then the IFDs naming it."""

    def __init__(self) -> None:
        self.data = bytearray(b"II*\x00\x00\x00\x00\x00")

    def blob(self, payload: bytes) -> int:
        if len(self.data) % 2:
            self.data += b"\x00"
        offset = len(self.data)
        self.data += payload
        return offset

    def ifd(self, entries: dict[int, tuple[int, object]]) -> int:
        """Write one IFD; ``entries`` maps tags to (type, values or bytes)."""
        fields = []
        for tag in sorted(entries):
            kind, values = entries[tag]
            if kind in (RATIONAL, SRATIONAL):
                code = "I" if kind == RATIONAL else "i"
                raw = b"".join(struct.pack("<" + code * 2, n, d) for n, d in values)
                count = len(values)
            elif isinstance(values, bytes):
                raw, count = values, len(values)
            else:
                raw = struct.pack(f"<{len(values)}{_FORMATS[kind]}", *values)
                count = len(values)
            inline = raw.ljust(4, b"\x00") if len(raw) <= 4 else struct.pack("<I", self.blob(raw))
            fields.append(struct.pack("<HHI", tag, kind, count) + inline)
        body = struct.pack("<H", len(fields)) + b"".join(fields) + b"\x00\x00\x00\x00"
        return self.blob(body)

    def finish(self, first_ifd: int) -> bytes:
        self.data[4:8] = struct.pack("<I", first_ifd)
        return bytes(self.data)


def _ratios(values) -> list[tuple[int, int]]:
    return [(round(v * 10000), 10000) for v in values]


def write_dng(
    path: Path,
    rgb: np.ndarray,
    *,
    preview: np.ndarray | None = None,
    preview_jpeg: bool = False,
    taken: dt.datetime | None = None,
    orientation: int = 1,
) -> Path:
    """Write ``rgb`` (sRGB ``uint8``, H x W x 3) as a DNG of its Bayer mosaic.

    ``preview`` (``uint8`` RGB) goes in the first IFD as the camera's preview (as a
    JPEG with ``preview_jpeg``, as most cameras store it), the mosaic then in a
    sub-IFD; ``taken`` becomes EXIF DateTimeOriginal; ``orientation`` the TIFF
    orientation tag (6: turn 90° clockwise to view).
    """
    mosaic = bayer_mosaic(rgb)
    height, width = mosaic.shape
    tiff = _Tiff()
    raw_offset = tiff.blob(mosaic.tobytes())
    raw_ifd = {
        254: (LONG, [0]),
        256: (LONG, [width]),
        257: (LONG, [height]),
        258: (SHORT, [16]),
        259: (SHORT, [1]),
        262: (SHORT, [32803]),  # colour filter array
        273: (LONG, [raw_offset]),
        277: (SHORT, [1]),
        278: (LONG, [height]),
        279: (LONG, [mosaic.nbytes]),
        284: (SHORT, [1]),
        33421: (SHORT, [2, 2]),  # CFARepeatPatternDim
        33422: (BYTE, bytes([0, 1, 1, 2])),  # CFAPattern: R G / G B
        50717: (LONG, [WHITE_LEVEL]),
    }
    common = {
        271: (ASCII, b"leitmotiv\x00"),
        272: (ASCII, b"test mosaic\x00"),
        274: (SHORT, [orientation]),
        50706: (BYTE, bytes([1, 4, 0, 0])),  # DNGVersion
        50707: (BYTE, bytes([1, 1, 0, 0])),  # DNGBackwardVersion
        50708: (ASCII, b"leitmotiv test mosaic\x00"),  # UniqueCameraModel
        50721: (SRATIONAL, _ratios(v for row in _XYZ_TO_SRGB for v in row)),  # ColorMatrix1
        50728: (RATIONAL, [(1, 1), (1, 1), (1, 1)]),  # AsShotNeutral
        50778: (SHORT, [21]),  # CalibrationIlluminant1: D65
    }
    if taken is not None:
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S").encode() + b"\x00"
        common[34665] = (LONG, [tiff.ifd({36867: (ASCII, stamp)})])  # EXIF IFD
    if preview is None:
        first = tiff.ifd({**raw_ifd, **common})
    else:
        preview = np.ascontiguousarray(preview, dtype=np.uint8)
        sub = tiff.ifd(raw_ifd)
        if preview_jpeg:
            buf = io.BytesIO()
            Image.fromarray(preview).save(buf, "JPEG", quality=92)
            data, compression, photometric = buf.getvalue(), 7, 6  # JPEG, YCbCr
        else:
            data, compression, photometric = preview.tobytes(), 1, 2  # none, RGB
        offset = tiff.blob(data)
        first = tiff.ifd(
            {
                **common,
                254: (LONG, [1]),  # a reduced-resolution image: the preview
                256: (LONG, [preview.shape[1]]),
                257: (LONG, [preview.shape[0]]),
                258: (SHORT, [8, 8, 8]),
                259: (SHORT, [compression]),
                262: (SHORT, [photometric]),
                273: (LONG, [offset]),
                277: (SHORT, [3]),
                278: (LONG, [preview.shape[0]]),
                279: (LONG, [len(data)]),
                284: (SHORT, [1]),
                330: (LONG, [sub]),  # SubIFDs
            }
        )
    path.write_bytes(tiff.finish(first))
    return path
