"""Tests of leitmotiv.folder_walk: what a photo folder holds, sorted before any decoding.

The tests make the special files themselves: named pipes, sockets, links to devices.
A walk that opened a named pipe would wait forever, so each test that meets one runs
under an alarm that turns a hang into a failure.
"""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
from dng_writer import write_dng
from helpers import no_hang
from PIL import Image

from leitmotiv.config import Settings
from leitmotiv.folder_walk import HIDDEN, NOT_A_PHOTO, collect
from leitmotiv.library import Library


@pytest.fixture
def odd_folder(tmp_path, photos_dir) -> Path:
    """A folder of photos under odd names and of things that are not photos."""
    folder = tmp_path / "odd"
    folder.mkdir()
    shutil.copy(photos_dir / "coffee_0.jpg", folder / "coffee.jpg")
    shutil.copy(photos_dir / "coffee_1.jpg", folder / "IMG_0001")  # a JPEG without extension
    rgb = np.asarray(Image.open(photos_dir / "rocket_0.jpg").convert("RGB"))
    Image.fromarray(rgb).save(folder / "scan.ppm")
    flipped = Image.fromarray(np.ascontiguousarray(rgb[:, ::-1]))
    Image.fromarray(rgb).save(folder / "stereo.MPO", save_all=True, append_images=[flipped])
    header = f"P7\nWIDTH {rgb.shape[1]}\nHEIGHT {rgb.shape[0]}\nDEPTH 3\nMAXVAL 255\nENDHDR\n"
    (folder / "scan.pam").write_bytes(header.encode() + rgb.tobytes())
    write_dng(folder / "IMG_0003.DNG", rgb)
    (folder / "notes.txt").write_text("not a photo\n")
    shutil.copy(photos_dir / "coffee_0.jpg", folder / ".hidden.jpg")
    (folder / ".thumbnails").mkdir()
    (folder / "album.jpg").mkdir()  # a folder named like a photo
    os.mkfifo(folder / "pipe.jpg")
    os.mkfifo(folder / "pipe.txt")
    (folder / "zero.jpg").symlink_to("/dev/zero")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(folder / "socket.jpg"))
    yield folder
    sock.close()


def test_walk_sorts_every_entry_with_a_reason(odd_folder) -> None:
    with no_hang():
        walk = collect([odd_folder])
    assert sorted(Path(p).name for p in walk.files) == [
        "IMG_0001",
        "IMG_0003.DNG",
        "coffee.jpg",
        "scan.pam",
        "scan.ppm",
        "stereo.MPO",
    ]
    failed = {Path(s.path).name: s.reason for s in walk.failed}
    assert failed == {
        "album.jpg": "is a directory, not a file",
        "pipe.jpg": "not a regular file (a named pipe (FIFO))",
        "socket.jpg": "not a regular file (a socket)",
        "zero.jpg": "not a regular file (a character device)",
    }
    ignored = {Path(s.path).name: s.reason for s in walk.ignored}
    assert ignored == {
        ".hidden.jpg": HIDDEN,
        ".thumbnails": HIDDEN,
        "notes.txt": NOT_A_PHOTO,
        "pipe.txt": "not a regular file (a named pipe (FIFO))",
    }


def test_named_special_files_fail_and_named_text_is_ignored(odd_folder) -> None:
    with no_hang():
        walk = collect([odd_folder / "pipe.txt", odd_folder / "zero.jpg", odd_folder / "notes.txt"])
    assert walk.files == []
    assert sorted(Path(s.path).name for s in walk.failed) == ["pipe.txt", "zero.jpg"]
    assert [(Path(s.path).name, s.reason) for s in walk.ignored] == [("notes.txt", NOT_A_PHOTO)]


def test_library_records_special_files_as_failures(tmp_path, odd_folder) -> None:
    settings = Settings(
        library=tmp_path / "library", params={"featurizer": {"gmm": {"n_samples": 1000}}}
    )
    with Library.open(settings) as library, no_hang(120):
        report = library.add([odd_folder], jobs=1, progress=False)
        # add-image's path: the special files named one by one go through decoding too.
        again = library.add([odd_folder / "pipe.jpg", odd_folder / "zero.jpg"], jobs=1)
        failures = {Path(f.path).name: f.reason for f in library.failures()}
        added = sorted(Path(p.path).name for p in library.photos())
    assert (report.added, report.failed, report.ignored) == (6, 4, 4)
    assert added == [
        "IMG_0001",
        "IMG_0003.DNG",
        "coffee.jpg",
        "scan.pam",
        "scan.ppm",
        "stereo.MPO",
    ]
    assert failures["pipe.jpg"] == "not a regular file (a named pipe (FIFO))"
    assert failures["zero.jpg"] == "not a regular file (a character device)"
    assert set(failures) == {"album.jpg", "pipe.jpg", "socket.jpg", "zero.jpg"}
    assert sorted((Path(s.path).name, s.reason) for s in report.ignored_files)[0] == (
        ".hidden.jpg",
        HIDDEN,
    )
    assert again.failed == 2 and again.added == 0


def test_photos_named_one_by_one_are_photos_by_name_or_content(odd_folder) -> None:
    named = ["scan.ppm", "scan.pam", "stereo.MPO", "IMG_0001"]
    walk = collect([odd_folder / name for name in named])
    assert [Path(p).name for p in walk.files] == named
    assert walk.failed == walk.ignored == []
