"""Decoding photos into upright RGB arrays, with their capture date.

Every photo format leitmotiv accepts goes through :func:`decode`, which turns it into
an upright ``(H, W, 3)`` ``uint8`` RGB array, or refuses it with a :class:`DecodeError`
whose message names the file and says in plain words what is wrong with it.  A batch
ingester can therefore catch exactly one exception type per file and carry on.

Conversions
-----------
- greyscale (``1``, ``L``, ``I;16``, ``I``, ``F``), palette (``P``), ``CMYK`` and
  ``YCbCr`` images become RGB;
- 16-bit samples are scaled from 0..65535 to 0..255 (never clipped or wrapped);
- images with alpha (``LA``, ``RGBA``, ``PA``, palette with transparency) are
  composited on a neutral mid-grey background (:data:`ALPHA_BACKGROUND`), so that
  transparent regions look like "no colour in particular" rather than black or white;
- the EXIF orientation is applied, so the result is upright;
- animated images (GIF, WebP, ...) and MPO files (a camera's stereo or multi-picture
  JPEG) give their first frame.

Formats
-------
The format is told by the file's content, not its name: every format Pillow reads
(JPEG, PNG, TIFF, WebP, BMP, GIF, MPO, PBM/PGM/PPM, AVIF), HEIC/HEIF through
pillow-heif, PAM through :mod:`leitmotiv.pam`, and camera RAW files (DNG, CR2, CR3,
NEF, ARW, RAF, ORF, RW2) through LibRaw (:mod:`leitmotiv.camera_raw`).  Only regular
files are opened: a named pipe, socket or device (or a link to one) is refused from
``os.stat``, before opening, since reading one may never end.  A PNG or JPEG whose
data is shorter than its header declares is refused before decoding
(:mod:`leitmotiv.pixel_data`).

Capture date
------------
EXIF ``DateTimeOriginal`` when it is plausible, that is from :data:`EARLIEST_CAPTURE`
(the first surviving photographs) to a day after now; otherwise the file's
modification time, with ``taken_source`` ``"mtime-bad-exif"`` (the EXIF date was there
but implausible) or ``"mtime"`` (there was none).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import os
import threading
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError, features

from leitmotiv.formats import RAW_EXTENSIONS, RAW_FORMATS, SNIFF_BYTES, sniff, special_file_kind
from leitmotiv.pixel_data import missing_pixel_data

try:  # HEIC/HEIF support is optional: without pillow-heif those files are refused.
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF = True
except ImportError:  # pragma: no cover - depends on the environment
    _HEIF = False

__all__ = [
    "ALPHA_BACKGROUND",
    "DEFAULT_MAX_PIXELS",
    "DEFAULT_TARGET_LONG_SIDE",
    "EARLIEST_CAPTURE",
    "IMAGE_EXTENSIONS",
    "DecodeError",
    "DecodedImage",
    "decode",
    "file_sha256",
    "is_image_name",
    "regular_file_stat",
    "thumbnail_jpeg",
]

#: Largest image (width x height of the header) :func:`decode` accepts by default.
DEFAULT_MAX_PIXELS = 200_000_000

#: A good working size for the featurizers: the image is blurred by about 1 % of its
#: long side before sampling, so more pixels than this add nothing but decode time.
DEFAULT_TARGET_LONG_SIDE = 512

#: Grey level (0..255) that transparent pixels are composited on.
ALPHA_BACKGROUND = 128

# Pillow's own bomb check runs inside Image.open, before we can read the size.  Align
# its warning threshold with our default limit; decode() turns both its warning and its
# error into a DecodeError that names the size (or opens the file anyway when the
# caller allowed a larger limit), so Pillow never speaks first.
Image.MAX_IMAGE_PIXELS = DEFAULT_MAX_PIXELS

#: Capture dates before this (about when the oldest surviving photograph was taken)
#: are implausible: a camera with a flat clock battery or a bad edit wrote them.
EARLIEST_CAPTURE = dt.datetime(1826, 1, 1)

#: How far after now a capture date may lie (a camera clock set a little ahead, in
#: another time zone) before it is implausible.
FUTURE_CAPTURE_SLACK = dt.timedelta(days=1)

_BASE_EXTENSIONS = {
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".tif",
    ".tiff",
    ".webp",
    ".bmp",
    ".gif",
    ".mpo",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
    ".pam",
    *RAW_EXTENSIONS,
}
if _HEIF:
    _BASE_EXTENSIONS |= {".heic", ".heif"}
if features.check("avif") or (_HEIF and hasattr(pillow_heif, "register_avif_opener")):
    _BASE_EXTENSIONS.add(".avif")

#: Lower-case file extensions (with the dot) that are considered photos.
IMAGE_EXTENSIONS: frozenset[str] = frozenset(_BASE_EXTENSIONS)

# EXIF tags.
_ORIENTATION = 0x0112
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003
_OFFSET_TIME_ORIGINAL = 0x9011
_SUBSEC_TIME_ORIGINAL = 0x9291

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}

# warnings.catch_warnings changes process-wide state; serialize our use of it.
_OPEN_LOCK = threading.Lock()


class DecodeError(ValueError):
    """A file could not be decoded as a photo.

    Attributes
    ----------
    path : str
        The file, as given.
    reason : str
        What is wrong, in plain words (also in the message).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


@dataclass(frozen=True, eq=False)
class DecodedImage:
    """A decoded, upright photo and its metadata.

    Attributes
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
        The upright pixels, possibly reduced in size (see ``target_long_side``).
    width, height : int
        Size of the original full image, upright (after the EXIF orientation).
    taken : datetime or None
        Capture time: EXIF DateTimeOriginal (timezone-aware when OffsetTimeOriginal
        is present, naive local time otherwise) or else the file's modification time
        as a naive local time.
    taken_source : str
        ``"exif"``, ``"mtime"``, or ``"mtime-bad-exif"`` when an EXIF date was there
        but implausible (see the module docstring).
    format : str
        Pillow's format name, e.g. ``"JPEG"``, ``"PNG"``, ``"HEIF"``, ``"MPO"``, or
        ``"PAM"``, or a RAW file's extension in capitals (``"DNG"``, ``"CR3"``, ...).
    """

    rgb: np.ndarray
    width: int
    height: int
    taken: dt.datetime | None
    taken_source: str
    format: str


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """Whether ``path``'s extension (case-insensitive) is in :data:`IMAGE_EXTENSIONS`."""
    return Path(os.fspath(path)).suffix.lower() in IMAGE_EXTENSIONS


def file_sha256(path: str | os.PathLike[str], chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks so big files need little memory."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def thumbnail_jpeg(rgb: np.ndarray, long_side: int = 256, quality: int = 85) -> bytes:
    """Encode a (reduced) JPEG thumbnail of an RGB image.

    Parameters
    ----------
    rgb : ndarray, shape (H, W, 3), uint8
    long_side : int
        Long side of the thumbnail; smaller images are not enlarged.
    quality : int
        JPEG quality, 1..95.

    Returns
    -------
    bytes
        The JPEG file.
    """
    rgb = np.ascontiguousarray(rgb, dtype=np.uint8)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB array, got shape {rgb.shape}")
    if long_side < 1:
        raise ValueError(f"long_side must be positive, got {long_side}")
    rgb = _resize_long_side(rgb, long_side)
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def decode(
    path: str | os.PathLike[str],
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_long_side: int | None = None,
) -> DecodedImage:
    """Decode a photo into an upright RGB array with its capture date.

    Parameters
    ----------
    path : str or path-like
        A regular file.  Its format is recognised by content, not by extension
        (except that a TIFF-like file named ``.dng``, ``.nef``, ... is camera RAW).
    max_pixels : int
        Refuse images whose header declares more than this many pixels; checked
        before any pixel data is decoded, so decompression bombs cost nothing.
    target_long_side : int or None
        When given, return pixels whose long side is at most this (smaller images are
        not enlarged).  JPEGs are then decoded directly at a reduced DCT scale that is
        still at least this size, which is several times faster, and resized from there.
        ``None`` keeps the full resolution.

    Returns
    -------
    DecodedImage

    Raises
    ------
    DecodeError
        For every file that cannot be decoded; the message names the file and the
        reason (not found, broken link, is a directory, not a regular file, permission
        denied, empty file, not an image, too large, truncated, truncated pixel data,
        corrupt data, not a camera RAW file LibRaw can read).
    """
    if target_long_side is not None and target_long_side < 1:
        raise ValueError(f"target_long_side must be positive or None, got {target_long_side}")
    regular_file_stat(path)
    try:
        # Without blocking: should the path have become a named pipe since the check,
        # opening it must not wait for a writer (the fstat below then refuses it).
        fh = os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb")
    except PermissionError:
        raise DecodeError(path, "permission denied") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot open the file ({exc.strerror or exc})") from None
    try:
        stat = os.fstat(fh.fileno())
        kind = special_file_kind(stat.st_mode)
        if kind is not None:
            raise DecodeError(path, f"not a regular file ({kind})")
        # Empty by what it holds: a file the kernel makes up as it is read (/proc)
        # has a size of 0.
        head = fh.read(SNIFF_BYTES)
        if not head:
            raise DecodeError(path, "empty file (0 bytes)")
        found = sniff(head)
        fh.seek(0)
        extension = Path(os.fspath(path)).suffix.lower()
        if found in RAW_FORMATS or (extension in RAW_EXTENSIONS and found in ("TIFF", None)):
            return _decode_raw(fh, path, stat.st_mtime, target_long_side, max_pixels, extension)
        return _decode_stream(fh, path, found, stat.st_mtime, max_pixels, target_long_side)
    finally:
        fh.close()


def decode_bytes(
    data: bytes,
    name: str,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    target_long_side: int | None = None,
) -> DecodedImage:
    """:func:`decode` for a photo held in memory (an upload): nothing touches the disk.

    ``name`` is what error messages call it.  There is no file time: without an EXIF
    date, ``taken`` is the epoch and means nothing.

    Raises
    ------
    DecodeError
        As :func:`decode`; camera RAW files are read from disk only.
    """
    if target_long_side is not None and target_long_side < 1:
        raise ValueError(f"target_long_side must be positive or None, got {target_long_side}")
    if not data:
        raise DecodeError(name, "empty file (0 bytes)")
    found = sniff(data[:SNIFF_BYTES])
    return _decode_stream(io.BytesIO(data), name, found, 0.0, max_pixels, target_long_side)


def _decode_stream(
    fh: io.BufferedReader | io.BytesIO,
    name: str | os.PathLike[str],
    found: str | None,
    mtime: float,
    max_pixels: int,
    target_long_side: int | None,
) -> DecodedImage:
    """Decode a stream whose format :func:`sniff` found (``found``; not camera RAW):
    PAM by this module's reader, the rest by Pillow, once its header is checked
    against ``max_pixels`` and its pixel data is known to be all there."""
    im = _open_pam(fh, name, max_pixels) if found == "PAM" else _open(fh, name, max_pixels, found)
    missing = missing_pixel_data(fh, im.format or "")
    if missing is not None:
        raise DecodeError(name, missing)
    return _decode_open(im, name, mtime, target_long_side)


def regular_file_stat(path: str | os.PathLike[str]) -> os.stat_result:
    """``os.stat(path)`` of a regular file (links followed), without opening it.

    Raises
    ------
    DecodeError
        When the path is missing, a broken link, not accessible, a directory, or a
        special file (named pipe, socket, device), with that reason in plain words.
    """
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise DecodeError(path, "broken link (its target does not exist)") from None
        raise DecodeError(path, "file not found") from None
    except PermissionError:
        raise DecodeError(path, "permission denied") from None
    except OSError as exc:
        raise DecodeError(path, f"cannot open the file ({exc.strerror or exc})") from None
    kind = special_file_kind(st.st_mode)
    if kind == "a directory":
        raise DecodeError(path, "is a directory, not a file")
    if kind is not None:
        raise DecodeError(path, f"not a regular file ({kind})")
    return st


def _decode_raw(
    fh: io.BufferedReader,
    path: str | os.PathLike[str],
    mtime: float,
    target: int | None,
    max_pixels: int,
    extension: str,
) -> DecodedImage:
    """A camera RAW file through LibRaw (imported here: only RAW files need it)."""
    from leitmotiv.camera_raw import RawError, read_raw

    try:
        raw = read_raw(os.fspath(path), fh, target, max_pixels)
    except RawError as exc:
        raise DecodeError(path, str(exc)) from None
    rgb = raw.rgb if target is None else _resize_long_side(raw.rgb, target)
    taken, source = _capture_time(raw.taken, mtime)
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        width=raw.width,
        height=raw.height,
        taken=taken,
        taken_source=source,
        format=extension.lstrip(".").upper() or "RAW",
    )


def _open_pam(fh: io.BufferedReader, path: str | os.PathLike[str], max_pixels: int) -> Image.Image:
    from leitmotiv.pam import PamError, read_pam

    try:
        return read_pam(fh, max_pixels)
    except PamError as exc:
        raise DecodeError(path, str(exc)) from None


def _capture_time(exif: dt.datetime | None, mtime: float) -> tuple[dt.datetime, str]:
    """The capture time and its source: the EXIF date if plausible, else the file time."""
    if exif is None:
        return dt.datetime.fromtimestamp(mtime), "mtime"
    # Wall-clock times compared: the day of slack covers any time zone offset.
    wall = exif.replace(tzinfo=None)
    if EARLIEST_CAPTURE <= wall <= dt.datetime.now() + FUTURE_CAPTURE_SLACK:
        return exif, "exif"
    return dt.datetime.fromtimestamp(mtime), "mtime-bad-exif"


def _open(
    fh: io.BufferedReader,
    path: str | os.PathLike[str],
    max_pixels: int,
    announced: str | None = None,
) -> Image.Image:
    """Read the header, refusing unknown formats and images above ``max_pixels``;
    ``announced`` is the format the file's first bytes name (:func:`sniff`), if any."""
    try:
        with _OPEN_LOCK, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(fh)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow refused on its own limit before telling us the size: read the header
        # without its check, then apply ours (the caller may allow more than Pillow).
        im = _open_without_bomb_check(fh)
        if im is None:
            raise DecodeError(path, "too large (exceeds the decompression-bomb limit)") from None
    except UnidentifiedImageError:
        if announced is not None:
            # It starts like a photo file: damaged or cut short, not some other file.
            raise DecodeError(
                path, f"corrupt {announced} file (it starts like one; its header cannot be read)"
            ) from None
        raise DecodeError(path, "not an image (unrecognised format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise DecodeError(path, f"corrupt header ({exc})") from None
    width, height = im.size
    if width * height > max_pixels:
        raise DecodeError(path, f"too large ({width}×{height} pixels, limit {max_pixels} pixels)")
    if width < 1 or height < 1:
        raise DecodeError(path, f"empty image ({width}×{height} pixels)")
    return im


def _open_without_bomb_check(fh: io.BufferedReader) -> Image.Image | None:
    """Identify ``fh`` the way Image.open does, but skip its decompression-bomb check.

    Only header parsing happens here (plugin constructors read no pixel data).
    """
    Image.init()
    for format_id in Image.ID:
        factory, accept = Image.OPEN[format_id]
        fh.seek(0)
        prefix = fh.read(16)
        fh.seek(0)
        try:
            if accept is not None and not accept(prefix):
                continue
            return factory(fh, "")
        except (OSError, SyntaxError, ValueError, IndexError, TypeError, EOFError):
            continue
    return None


def _decode_open(
    im: Image.Image, path: str | os.PathLike[str], mtime: float, target: int | None
) -> DecodedImage:
    fmt = im.format or "unknown"
    width, height = im.size  # before draft() shrinks it
    orientation, taken = _read_exif(im)
    if target is not None and fmt in ("JPEG", "MPO"):
        _jpeg_draft(im, target)
    try:
        im.seek(0)  # first frame of animations
        im.load()
        rgb = _to_rgb_array(im)
    except DecodeError:
        raise
    except MemoryError:
        raise DecodeError(path, "not enough memory to decode it") from None
    except Exception as exc:  # any decoder failure is the file's fault
        text = str(exc)
        if "truncated" in text.lower() or isinstance(exc, EOFError):
            raise DecodeError(path, f"truncated file ({text})") from None
        raise DecodeError(path, f"corrupt data ({type(exc).__name__}: {text})") from None
    if target is not None:
        rgb = _resize_long_side(rgb, target)
    transpose = _TRANSPOSE.get(orientation)
    if transpose is not None:
        rgb = np.asarray(Image.fromarray(rgb, "RGB").transpose(transpose))
        if orientation in (5, 6, 7, 8):
            width, height = height, width
    taken, source = _capture_time(taken, mtime)
    return DecodedImage(
        rgb=np.ascontiguousarray(rgb, dtype=np.uint8),
        width=int(width),
        height=int(height),
        taken=taken,
        taken_source=source,
        format=fmt,
    )


def _jpeg_draft(im: Image.Image, target: int) -> None:
    """Ask libjpeg to decode at the smallest DCT scale whose long side is >= ``target``."""
    width, height = im.size
    long_side = max(width, height)
    if long_side <= target:
        return
    scale = target / long_side
    # draft() picks the largest reduction that keeps both sides >= the requested size.
    request = (max(1, int(np.ceil(width * scale))), max(1, int(np.ceil(height * scale))))
    try:
        im.draft("RGB", request)
    except (OSError, ValueError):  # pragma: no cover - draft is only an optimisation
        pass


def _read_exif(im: Image.Image) -> tuple[int, dt.datetime | None]:
    """Orientation (1 if unknown) and EXIF capture time; broken EXIF just gives none."""
    try:
        exif = im.getexif()
    except Exception:  # a metadata failure must only drop the metadata
        return 1, None
    try:
        orientation = int(exif.get(_ORIENTATION, 1))
    except Exception:
        orientation = 1
    if orientation not in _TRANSPOSE:
        orientation = 1
    try:
        ifd = exif.get_ifd(_EXIF_IFD)
        taken = _parse_exif_datetime(
            ifd.get(_DATETIME_ORIGINAL),
            ifd.get(_SUBSEC_TIME_ORIGINAL),
            ifd.get(_OFFSET_TIME_ORIGINAL),
        )
    except Exception:
        taken = None
    return orientation, taken


def _exif_text(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="ignore")
    text = str(value).strip("\x00 \t\r\n")
    return text or None


def _parse_exif_datetime(
    value: object, subsec: object = None, offset: object = None
) -> dt.datetime | None:
    """Parse EXIF ``YYYY:MM:DD HH:MM:SS`` (+ sub-seconds, + ``±HH:MM`` offset)."""
    text = _exif_text(value)
    if text is None:
        return None
    try:
        taken = dt.datetime.strptime(text[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None  # blank ("    :  :  ") or malformed dates count as absent
    sub = _exif_text(subsec)
    if sub and sub.isdigit():
        taken = taken.replace(microsecond=int((sub + "000000")[:6]))
    off = _exif_text(offset)
    if off and len(off) == 6 and off[0] in "+-" and off[3] == ":":
        try:
            hours, minutes = int(off[1:3]), int(off[4:6])
            delta = dt.timedelta(hours=hours, minutes=minutes)
            taken = taken.replace(tzinfo=dt.timezone(delta if off[0] == "+" else -delta))
        except ValueError:
            pass
    return taken


def _to_rgb_array(im: Image.Image) -> np.ndarray:
    """Convert any Pillow mode to an (H, W, 3) uint8 RGB array."""
    mode = im.mode
    if mode == "RGB":
        return np.asarray(im)
    has_alpha = mode in ("RGBA", "RGBa", "LA", "La", "PA") or (
        mode == "P" and "transparency" in im.info
    )
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32)
        alpha = rgba[..., 3:4] / 255.0
        rgb = rgba[..., :3] * alpha + ALPHA_BACKGROUND * (1.0 - alpha)
        return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
    if mode.startswith("I;16") or mode in ("I", "F"):
        grey = _scale_high_depth(np.asarray(im), mode)
        return np.repeat(grey[..., None], 3, axis=2)
    if mode.startswith("RGB;16") or mode == "RGBX":
        return np.asarray(im.convert("RGB"))
    return np.asarray(im.convert("RGB"))


def _scale_high_depth(values: np.ndarray, mode: str) -> np.ndarray:
    """Map 16-bit, 32-bit integer or float greyscale to uint8 without clipping or wrapping.

    16-bit data spans 0..65535 and is divided by 257 (so 65535 -> 255).  Pillow's
    32-bit ``I`` mode also carries 16-bit PNG/TIFF data: values within 0..65535 with
    any above 255 are treated as 16-bit, within 0..255 as 8-bit; anything else, like
    floats outside 0..1, is stretched from its own minimum to maximum.
    """
    values = values.astype(np.float64)
    finite = values[np.isfinite(values)]
    lo = float(finite.min()) if finite.size else 0.0
    hi = float(finite.max()) if finite.size else 0.0
    if mode.startswith("I;16"):
        scaled = values / 257.0
    elif mode == "F" and lo >= 0.0 and hi <= 1.0:
        scaled = values * 255.0
    elif mode == "I" and lo >= 0.0 and hi <= 255.0:
        scaled = values
    elif mode == "I" and lo >= 0.0 and hi <= 65535.0:
        scaled = values / 257.0
    elif hi > lo:
        scaled = (values - lo) * (255.0 / (hi - lo))
    else:
        scaled = np.zeros_like(values)
    scaled = np.nan_to_num(scaled, nan=0.0, posinf=255.0, neginf=0.0)
    return np.clip(np.rint(scaled), 0, 255).astype(np.uint8)


def _resize_long_side(rgb: np.ndarray, long_side: int) -> np.ndarray:
    """Shrink so the long side is at most ``long_side`` (area filter, aspect kept)."""
    height, width = rgb.shape[:2]
    current = max(height, width)
    if current <= long_side:
        return rgb
    scale = long_side / current
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    # INTER_AREA averages every source pixel into the result: no aliasing on shrink.
    return np.ascontiguousarray(cv2.resize(rgb, size, interpolation=cv2.INTER_AREA))
