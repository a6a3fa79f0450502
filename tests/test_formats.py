"""Tests of leitmotiv.formats: file kinds from os.stat, photo formats from magic bytes."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import numpy as np
import pytest
from dng_writer import write_dng
from PIL import Image

from leitmotiv.formats import read_prefix, sniff, special_file_kind


@pytest.fixture(scope="module")
def picture() -> Image.Image:
    ramp = np.linspace(0, 255, 48 * 32 * 3).astype(np.uint8).reshape(32, 48, 3)
    return Image.fromarray(ramp)


@pytest.mark.parametrize(
    ("name", "options", "expected"),
    [
        ("a.jpg", {}, "JPEG"),
        ("a.mpo", {"save_all": True}, "JPEG"),
        ("a.png", {}, "PNG"),
        ("a.gif", {}, "GIF"),
        ("a.bmp", {}, "BMP"),
        ("a.tif", {}, "TIFF"),
        ("a.webp", {}, "WEBP"),
        ("a.avif", {}, "AVIF"),
        ("a.ppm", {}, "PNM"),
        ("a.pgm", {"mode": "L"}, "PNM"),
        ("a.pbm", {"mode": "1"}, "PNM"),
    ],
)
def test_sniff_files_pillow_writes(tmp_path, picture, name, options, expected) -> None:
    image = picture.convert(options.pop("mode", "RGB"))
    if options.get("save_all"):
        options["append_images"] = [image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)]
    # Saved under a neutral name: the bytes, not the extension, must tell.
    path = tmp_path / "photo"
    image.save(path, format=Image.registered_extensions()[Path(name).suffix], **options)
    assert sniff(read_prefix(path)) == expected


def test_sniff_heif_pam_and_raw(tmp_path, picture) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    heif = tmp_path / "photo.heic"
    pillow_heif.from_pillow(picture).save(heif)
    assert sniff(read_prefix(heif)) == "HEIF"
    assert sniff(b"P7\nWIDTH 2\n") == "PAM"
    dng = write_dng(tmp_path / "photo.dng", np.asarray(picture))
    assert sniff(read_prefix(dng)) == "TIFF"  # DNG is a TIFF; the extension tells RAW
    assert sniff(b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01") == "CR3"
    assert sniff(b"FUJIFILMCCD-RAW 0201") == "RAF"
    assert sniff(b"IIRO\x08\x00\x00\x00") == "ORF"
    assert sniff(b"IIU\x00\x08\x00\x00\x00") == "RW2"


@pytest.mark.parametrize(
    "prefix",
    [b"", b"hello world, this is text", b"BM is not a bitmap here", b"P9\n", b"Photo", b"%PDF-1.7"],
)
def test_sniff_refuses_what_is_no_photo(prefix) -> None:
    assert sniff(prefix) is None


def test_special_file_kinds(tmp_path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert special_file_kind(os.stat(fifo).st_mode) == "a named pipe (FIFO)"
    assert special_file_kind(os.stat("/dev/null").st_mode) == "a character device"
    assert special_file_kind(os.stat(tmp_path).st_mode) == "a directory"
    regular = tmp_path / "file.jpg"
    regular.write_bytes(b"x")
    assert special_file_kind(os.stat(regular).st_mode) is None
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "sock.jpg"))
        mode = os.stat(tmp_path / "sock.jpg").st_mode
    assert stat.S_ISSOCK(mode) and special_file_kind(mode) == "a socket"


def test_read_prefix_never_waits_on_a_pipe(tmp_path) -> None:
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    assert read_prefix(fifo) == b""  # returns at once: no writer is waited for
