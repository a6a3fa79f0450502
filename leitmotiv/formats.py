"""What a file is, told by its type and its first bytes rather than by its name.

A photo folder holds photos under names that do not say so (``IMG_0001`` without an
extension, a ``.ppm`` scan, a camera's ``.MPO``), files named like photos that are
not (a named pipe called ``y.jpg``, a link to ``/dev/zero``), and everything else.
This module answers the two questions an ingest asks before decoding:

- :func:`special_file_kind`: is the path something other than a regular file?  A named
  pipe would block whoever opens it until a writer comes and a device never ends, so
  this is decided from ``os.stat`` before opening;
- :func:`sniff`: which photo format do the first bytes (:data:`SNIFF_BYTES`) announce,
  if any?  The magic numbers are the formats' own (JPEG's SOI marker, PNG's signature,
  TIFF's byte order and 42, the ISO base media file's ``ftyp`` brand, ...).
"""

from __future__ import annotations

import os
import stat

__all__ = [
    "RAW_EXTENSIONS",
    "RAW_FORMATS",
    "SNIFF_BYTES",
    "read_prefix",
    "sniff",
    "special_file_kind",
]

#: Bytes :func:`sniff` needs from the start of a file.
SNIFF_BYTES = 32

#: Lower-case extensions of camera RAW files (read through LibRaw, see
#: :mod:`leitmotiv.camera_raw`): Adobe DNG, Canon CR2 and CR3, Nikon NEF, Sony ARW,
#: Fujifilm RAF, Olympus ORF, Panasonic RW2.
RAW_EXTENSIONS: frozenset[str] = frozenset(
    {".dng", ".cr2", ".cr3", ".nef", ".arw", ".raf", ".orf", ".rw2"}
)

#: :func:`sniff` results that only LibRaw reads (the TIFF-based RAW files sniff as
#: ``"TIFF"`` and are told apart by their extension).
RAW_FORMATS: frozenset[str] = frozenset({"CR3", "RAF", "ORF", "RW2"})

# ISO base media file brands (bytes 8-12, after "ftyp") of the still-image formats.
_FTYP_BRANDS = {
    b"heic": "HEIF",
    b"heix": "HEIF",
    b"heim": "HEIF",
    b"heis": "HEIF",
    b"hevc": "HEIF",
    b"hevx": "HEIF",
    b"mif1": "HEIF",
    b"msf1": "HEIF",
    b"avif": "AVIF",
    b"avis": "AVIF",
    b"crx ": "CR3",
}

# The header sizes a BMP's DIB header can have (bytes 14-18): "BM" alone is too common
# a start of text files to mean a bitmap.
_BMP_HEADER_SIZES = {12, 40, 52, 56, 64, 108, 124}

# Netpbm: "P", the kind's digit, whitespace (P1-P6 are PBM, PGM, PPM; P7 is PAM).
_PNM_DIGITS = {b"1", b"2", b"3", b"4", b"5", b"6"}
_WHITESPACE = {b" ", b"\t", b"\r", b"\n"}

_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
)


def special_file_kind(mode: int) -> str | None:
    """What kind of non-regular file ``mode`` (``os.stat(...).st_mode``) is, in words
    (``"a named pipe (FIFO)"``, ``"a character device"``, ...), or None for a regular
    file."""
    if stat.S_ISREG(mode):
        return None
    for test, kind in _SPECIAL_KINDS:
        if test(mode):
            return kind
    return "not a regular file"


def sniff(prefix: bytes) -> str | None:
    """The photo format the first bytes of a file announce, or None.

    Parameters
    ----------
    prefix : bytes
        The file's first bytes (:data:`SNIFF_BYTES` suffice; fewer are fine).

    Returns
    -------
    str or None
        ``"JPEG"`` (MPO files too: they start as JPEG), ``"PNG"``, ``"GIF"``,
        ``"BMP"``, ``"TIFF"`` (and the RAW files built on TIFF: DNG, CR2, NEF, ARW),
        ``"WEBP"``, ``"HEIF"``, ``"AVIF"``, ``"PNM"`` (PBM, PGM, PPM), ``"PAM"``, or a
        RAW format of :data:`RAW_FORMATS`.
    """
    if prefix.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if prefix.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if prefix[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if prefix.startswith(b"BM") and int.from_bytes(prefix[14:18], "little") in _BMP_HEADER_SIZES:
        return "BMP"
    if prefix[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return "ORF"
    if prefix.startswith(b"IIU\x00"):
        return "RW2"
    if prefix[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "TIFF"
    if prefix.startswith(b"RIFF") and prefix[8:12] == b"WEBP":
        return "WEBP"
    if prefix[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(prefix[8:12])
    if prefix.startswith(b"FUJIFILMCCD-RAW"):
        return "RAF"
    if prefix[:1] == b"P" and prefix[2:3] in _WHITESPACE:
        if prefix[1:2] in _PNM_DIGITS:
            return "PNM"
        if prefix[1:2] == b"7":
            return "PAM"
    return None


def read_prefix(path: str | os.PathLike[str]) -> bytes:
    """The first :data:`SNIFF_BYTES` bytes of a regular file.

    The file is opened without blocking, so a path that turned into a named pipe since
    it was checked returns no bytes instead of waiting for a writer.

    Raises
    ------
    OSError
        When the file cannot be opened or read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return b""
        return os.read(fd, SNIFF_BYTES)
    finally:
        os.close(fd)
