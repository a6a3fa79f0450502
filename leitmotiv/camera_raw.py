"""Camera RAW files (DNG, CR2, CR3, NEF, ARW, RAF, ORF, RW2), read through LibRaw.

A RAW file holds the sensor's mosaic (one colour per photosite) and, in nearly every
camera's files, a JPEG preview the camera rendered from it.  Since leitmotiv works at a
reduced size, :func:`read_raw` uses the preview when its long side reaches the size
asked for and its shape is the mosaic's; otherwise it demosaics the mosaic with LibRaw
(camera white balance, sRGB, 8 bits; at half size when that is still large enough).
LibRaw applies the camera's orientation to what it demosaics; the preview is turned
the same way here.  LibRaw comes from the ``rawpy`` package.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import rawpy
from PIL import Image

__all__ = ["RawError", "RawImage", "read_raw"]

# LibRaw's flip codes as Pillow transposes: 3 = 180°, 5 = 90° counter-clockwise,
# 6 = 90° clockwise.
_FLIPS = {
    3: Image.Transpose.ROTATE_180,
    5: Image.Transpose.ROTATE_90,
    6: Image.Transpose.ROTATE_270,
}

# A preview whose aspect ratio differs from the mosaic's by more than this is not the
# whole picture (some cameras letterbox their previews): demosaic instead.
_ASPECT_TOLERANCE = 0.03


# Before this, LibRaw's time is its "none" (the epoch, in any time zone).
_NO_TIME = dt.datetime(1970, 1, 2)


class RawError(ValueError):
    """LibRaw could not read the file; the message says why in plain words."""


@dataclass(frozen=True, eq=False)
class RawImage:
    """A camera RAW file decoded: upright pixels and what LibRaw knows of the picture.

    Attributes
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        The upright picture: the camera's preview or the demosaiced mosaic.
    width, height : int
        Size of the full picture LibRaw develops, upright.
    taken : datetime or None
        The camera's capture time as LibRaw reads it (local wall-clock time), if any.
    source : str
        ``"preview"`` or ``"demosaic"``.
    """

    rgb: np.ndarray
    width: int
    height: int
    taken: dt.datetime | None
    source: str


def read_raw(
    path: str, fh: BinaryIO, target_long_side: int | None, max_pixels: int
) -> RawImage:
    """Decode a camera RAW file.

    Parameters
    ----------
    path : str
        The file: LibRaw reads it from disk, a part at a time.
    fh : binary file
        The same file, open: read whole into memory and handed to LibRaw instead when
        ``path`` is not valid UTF-8 (rawpy passes only UTF-8 names to LibRaw).
    target_long_side : int or None
        The long side needed: a preview at least this large is used as it is; ``None``
        asks for the full mosaic, demosaiced.
    max_pixels : int
        Refuse a picture larger than this (width times height), before developing it.

    Returns
    -------
    RawImage

    Raises
    ------
    RawError
        A file LibRaw does not recognise, with corrupt or truncated data, larger than
        ``max_pixels`` or too large for memory.
    """
    try:
        path.encode("utf-8")
        source: str | BinaryIO = path
    except UnicodeEncodeError:
        fh.seek(0)
        source = fh
    try:
        with rawpy.imread(source) as raw:
            sizes = raw.sizes
            flip = int(sizes.flip)
            width, height = int(sizes.width), int(sizes.height)
            if flip in (5, 6):
                width, height = height, width
            if width * height > max_pixels:
                raise RawError(f"too large ({width}×{height} pixels, limit {max_pixels} pixels)")
            taken = _capture_time(raw.other.timestamp)
            rgb = _preview(raw, flip, width, height, target_long_side)
            source = "preview"
            if rgb is None:
                half = target_long_side is not None and max(width, height) // 2 >= target_long_side
                rgb = raw.postprocess(use_camera_wb=True, half_size=half, output_bps=8)
                source = "demosaic"
    except rawpy.LibRawFileUnsupportedError:
        raise RawError("not a camera RAW file LibRaw can read") from None
    except (rawpy.LibRawTooBigError, rawpy.LibRawUnsufficientMemoryError, MemoryError):
        raise RawError("too large (not enough memory to develop it)") from None
    except (rawpy.LibRawIOError, rawpy.LibRawDataError) as exc:
        raise RawError(f"truncated or corrupt RAW data ({exc})") from None
    except rawpy.LibRawError as exc:
        raise RawError(f"corrupt RAW file ({type(exc).__name__}: {exc})") from None
    return RawImage(np.ascontiguousarray(rgb, dtype=np.uint8), width, height, taken, source)


def _capture_time(stamp: object) -> dt.datetime | None:
    """LibRaw's capture time (rawpy gives a datetime, older versions a Unix time), or
    None: a file without one reads as the Unix epoch, which no camera RAW was taken at."""
    if isinstance(stamp, int | float):
        stamp = dt.datetime.fromtimestamp(stamp) if stamp > 0 else None
    if not isinstance(stamp, dt.datetime) or stamp.replace(tzinfo=None) < _NO_TIME:
        return None
    return stamp


def _preview(
    raw: rawpy.RawPy, flip: int, width: int, height: int, target: int | None
) -> np.ndarray | None:
    """The embedded preview, upright, if it is large enough and shows the whole picture."""
    if target is None:
        return None
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None
    except rawpy.LibRawError:
        return None  # a broken preview: the mosaic may still be fine
    if thumb.format == rawpy.ThumbFormat.JPEG:
        try:
            image = Image.open(io.BytesIO(thumb.data))
            image.draft("RGB", (target, target))
            image = image.convert("RGB")
        except (OSError, ValueError, SyntaxError):
            return None
    else:
        image = Image.fromarray(np.ascontiguousarray(thumb.data, dtype=np.uint8))
    if image.mode != "RGB":
        image = image.convert("RGB")
    if flip in _FLIPS:
        image = image.transpose(_FLIPS[flip])
    if max(image.size) < target:
        return None
    if abs(image.width / image.height - width / height) > _ASPECT_TOLERANCE * width / height:
        return None
    return np.asarray(image)
