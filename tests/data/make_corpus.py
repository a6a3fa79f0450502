"""Regenerate the compact test corpus in ``tests/data`` from the shared photo sets.

The shared sets (``<repo>/../shared/data``: 40 scenes x 4 versions at 800 px, their hard
and monochrome re-shoots, and the bad-input files) are too big to live in the
repository; the tests need only a few scenes of each.  This script copies those scenes
downscaled to a long side of 320 px, keeping each file's EXIF (capture date and
orientation tag) and its row of ``groups.csv``, and copies the bad-input files byte for
byte.  Running it again gives the same files.

Usage::

    python tests/data/make_corpus.py [--source ../shared/data]
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
from pathlib import Path

from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent
DEFAULT_SOURCE = HERE.parents[2] / "shared" / "data"

#: Long side of the copied photos, in pixels (smaller files are copied unchanged).
LONG_SIDE = 320
JPEG_QUALITY = 90

#: Scenes of ``photos/`` kept, four versions each.  Every scene a test names is here,
#: with the deliberately alike pairs that make rankings meaningful (two dusky lakes,
#: two cloudy skies of a kind) and the scenes whose files carry orientation tags.
SCENES = (
    "astronaut",
    "boats_sunset",
    "chelsea_cat",
    "cloud_sky",
    "coffee",
    "dahlia",
    "dusk_lake",
    "forest_path",
    "green_hills",
    "hubble_deep_field",
    "misty_pier",
    "mountain_clouds",
    "red_marigold",
    "rocket",
    "summer_night_lake",
    "yellow_flower",
)

#: Scenes whose ``photos-hard/`` and ``photos-mono/`` versions are kept too.
HARD_SCENES = ("astronaut", "coffee", "dusk_lake", "forest_path", "misty_pier", "red_marigold")
MONO_SCENES = HARD_SCENES

#: The shared set's third orientation tag (8) is on a scene whose licence does not allow
#: redistribution, so this corpus writes it on a file of its own: the pixels are stored
#: turned so that a reader applying the tag sees the photo upright.
ADDED_ORIENTATION = {"rocket_1.jpg": 8}

_ORIENTATION_TAG = 0x0112


def _scene(file_name: str) -> str:
    return file_name.rsplit("_", 1)[0]


def _downscaled(source: Path, dest: Path, orientation: int | None = None) -> str:
    """Write ``source`` at :data:`LONG_SIDE` (EXIF kept) and describe what was done."""
    with Image.open(source) as im:
        exif = im.getexif()
        if max(im.size) <= LONG_SIDE and orientation is None:
            shutil.copyfile(source, dest)
            return "copied unchanged"
        scale = LONG_SIDE / max(im.size)
        size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
        out = im.convert("RGB").resize(size, Image.Resampling.LANCZOS)
        done = f"resized to {size[0]}x{size[1]} lanczos"
        if orientation is not None:
            # Store the upright pixels turned the other way, so the tag turns them back.
            out = out.transpose(Image.Transpose.ROTATE_270)
            exif[_ORIENTATION_TAG] = orientation
            done += f", pixels turned 90 deg clockwise with EXIF Orientation={orientation}"
            assert ImageOps.exif_transpose(_reloaded(out, exif)).size == size
        out.save(dest, quality=JPEG_QUALITY, exif=exif.tobytes())
    return f"{done}; jpeg q{JPEG_QUALITY}, EXIF kept"


def _reloaded(image: Image.Image, exif: Image.Exif) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes())
    buffer.seek(0)
    return Image.open(buffer)


def _copy_set(source: Path, dest: Path, scenes: tuple[str, ...], oriented: bool) -> int:
    """Copy the files of ``scenes`` with their ``groups.csv`` rows and ``sources.csv``."""
    dest.mkdir(parents=True, exist_ok=True)
    with open(source / "groups.csv", newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        fields = list(reader.fieldnames or [])
        rows = [r for r in reader if r["group"] in scenes]
    for row in rows:
        orientation = ADDED_ORIENTATION.get(row["file"]) if oriented else None
        done = _downscaled(source / row["file"], dest / row["file"], orientation)
        row["transform"] = f"{row['transform']}; then for this corpus: {done}"
        if orientation is not None:
            row["orientation"] = str(orientation)
    with open(dest / "groups.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    if (source / "sources.csv").exists():
        with open(source / "sources.csv", newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            fields = list(reader.fieldnames or [])
            kept = [r for r in reader if r["group"] in scenes]
        with open(dest / "sources.csv", "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, lineterminator="\n")
            writer.writeheader()
            writer.writerows(kept)
    return len(rows)


def _copy_bad(source: Path, dest: Path) -> int:
    """Copy the bad-input files as they are, the dangling link made a real link."""
    dest.mkdir(parents=True, exist_ok=True)
    count = 0
    for path in sorted(source.iterdir()):
        target = dest / path.name
        if path.name == "dangling_link.jpg":
            # The shared copy may hold the link's target as a plain file; git keeps links.
            if target.is_symlink() or target.exists():
                target.unlink()
            target.symlink_to("does_not_exist.jpg")
        elif path.is_dir():
            shutil.copytree(path, target, dirs_exist_ok=True)
        else:
            shutil.copyfile(path, target)
        count += 1
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source", type=Path, default=DEFAULT_SOURCE, help="the shared data folder"
    )
    args = parser.parse_args()
    source = args.source.resolve()
    if not (source / "photos" / "groups.csv").is_file():
        parser.error(f"{source} does not hold the shared photo sets (photos/groups.csv)")
    counts = {
        "photos": _copy_set(source / "photos", HERE / "photos", SCENES, oriented=True),
        "photos-hard": _copy_set(source / "photos-hard", HERE / "photos-hard", HARD_SCENES, False),
        "photos-mono": _copy_set(source / "photos-mono", HERE / "photos-mono", MONO_SCENES, False),
        "bad": _copy_bad(source / "bad", HERE / "bad"),
    }
    for folder, n in counts.items():
        print(f"{folder}: {n} files")


if __name__ == "__main__":
    main()
