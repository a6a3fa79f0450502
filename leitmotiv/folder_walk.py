"""Which of the files and folders given to an ingest are photos, and why the rest are not.

:func:`collect` walks the paths and sorts every entry into one of three lists:

- **files** to decode: regular files whose name has a photo extension (decoding then
  decides: a text file named ``x.jpg`` becomes a failure) or whose first bytes are a
  photo format's magic number (an extension-less ``IMG_0001`` holding a JPEG);
- **failed** entries, each with its reason: things named like photos that cannot be
  one, namely folders and special files (a named pipe, socket or device, or a link to
  one), and folders that cannot be listed;
- **ignored** entries, each with its reason: hidden names (starting with a dot; a
  hidden folder is not entered), special files not named like photos, and regular
  files whose name and first bytes are no photo format.

Special files are recognised from ``os.stat`` before anything opens them, so a named
pipe never blocks the walk.  Symbolic links are followed, each real folder is walked
once (a link loop ends), and the library's own folder is skipped.  Names that are not
valid UTF-8 are kept as Python gives them (see :mod:`leitmotiv.paths`).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from dataclasses import dataclass, field

from leitmotiv.formats import read_prefix, sniff, special_file_kind
from leitmotiv.imaging import is_image_name

__all__ = ["FolderWalk", "Skipped", "collect"]

HIDDEN = "hidden (the name starts with a dot)"
NOT_A_PHOTO = "not a photo (neither its name nor its first bytes are an image format)"


@dataclass(frozen=True)
class Skipped:
    """A path that is not decoded, and why."""

    path: str
    reason: str


@dataclass
class FolderWalk:
    """What :func:`collect` found: the files to decode (absolute, unique, in walk
    order), and the failed and ignored entries with their reasons."""

    files: list[str] = field(default_factory=list)
    failed: list[Skipped] = field(default_factory=list)
    ignored: list[Skipped] = field(default_factory=list)


def collect(
    paths: Iterable[str | os.PathLike[str]],
    recursive: bool = True,
    exclude: str | os.PathLike[str] | None = None,
) -> FolderWalk:
    """Sort the files under ``paths`` into photos to decode, failures and ignored files.

    Parameters
    ----------
    paths : iterable of path-like
        Files and folders; relative paths are taken from the working directory and
        ``~`` is expanded.
    recursive : bool
        Walk sub-folders too.
    exclude : path-like, optional
        A folder never to walk into (the library's own).

    Returns
    -------
    FolderWalk
        A named file that does not exist is among the files to decode, so that the
        decoder's failure names it and says why (not found, broken link).
    """
    walk = FolderWalk()
    files: dict[str, None] = {}
    visited: set[str] = set()
    if exclude is not None:
        visited.add(os.path.realpath(exclude))

    def add(path: str, st: os.stat_result, named: bool) -> None:
        """Sort one entry that is not a folder; ``named`` when the user gave it."""
        kind = special_file_kind(st.st_mode)
        if kind is not None:
            skipped = Skipped(path, f"not a regular file ({kind})")
            if named or is_image_name(path):
                walk.failed.append(skipped)
            else:
                walk.ignored.append(skipped)
        elif is_image_name(path):
            files[path] = None
        else:
            try:
                photo = sniff(read_prefix(path)) is not None
            except OSError as exc:
                walk.ignored.append(Skipped(path, f"cannot read it ({_why(exc)})"))
                return
            if photo:
                files[path] = None
            else:
                walk.ignored.append(Skipped(path, NOT_A_PHOTO))

    def walk_folder(folder: str) -> None:
        real = os.path.realpath(folder)
        if real in visited:
            return
        visited.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            walk.failed.append(Skipped(folder, f"cannot list the folder ({_why(exc)})"))
            return
        for entry in entries:
            if entry.name.startswith("."):
                walk.ignored.append(Skipped(entry.path, HIDDEN))
                continue
            try:
                st = entry.stat()  # follows links; a link loop is caught by `visited`
            except OSError as exc:
                if is_image_name(entry.name):
                    files[entry.path] = None  # the decoder says why (e.g. broken link)
                else:
                    walk.ignored.append(Skipped(entry.path, f"cannot read it ({_why(exc)})"))
                continue
            if stat.S_ISDIR(st.st_mode):
                if is_image_name(entry.name):
                    walk.failed.append(Skipped(entry.path, "is a directory, not a file"))
                if recursive:
                    walk_folder(entry.path)
            else:
                add(entry.path, st, named=False)

    for given in paths:
        path = os.path.abspath(os.path.expanduser(os.fspath(given)))
        try:
            st = os.stat(path)
        except OSError:
            files[path] = None  # missing or unreadable: the decoder's failure says why
            continue
        if stat.S_ISDIR(st.st_mode):
            walk_folder(path)
        else:
            add(path, st, named=True)
    walk.files = list(files)
    return walk


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
