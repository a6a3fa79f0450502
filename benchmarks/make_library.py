"""Generate a large synthetic photo library, reproducibly, from the shared photos.

Two kinds of library (``--kind``):

- ``near-copy`` (the default): each output photo is one of the shared photos
  (``<repo>/../shared/data/photos``) with random edits of the kinds a real library
  holds many of: a crop (70-100 % of each side, anywhere in the frame), a resize to
  320 px on the long side, a colour shift (an exposure gain and a per-channel
  white-balance gain), and a left-right mirror half of the time.  Every photo is a
  near-copy of one of 160, hundreds of each at 100,000 photos: an easy case for a
  nearest-neighbour search.
- ``diverse``: each output photo is a random *part* of one of the photos of every
  shared set (``<repo>/../shared/data/photos*``: mild edits, hard re-shoots and black
  and white, about 480 photos): a crop of 10-60 % of the area at a free aspect ratio
  (long side up to 3 times the short one) anywhere in the frame, resized to 320 px on
  the long side, mirrored a third of the time, with the same colour shift.  Crops of
  one photo often share little, so most photos have no near-copy and a photo's nearest
  neighbours are a choice among many nearly equidistant ones, as in a real library.

Photo ``i`` depends only on ``(kind, seed, i)``, so any prefix of a library is the
smaller library of the same seed, and an interrupted run is resumed by running it again
(existing files are kept).  Write the output outside git (``benchmarks/generated/`` is
ignored)::

    python benchmarks/make_library.py OUT_DIR --count 10000 [--seed 0] [--kind diverse]

``benchmarks/scale.py`` derives its models by the near-copy edits applied to the
fitted models of the shared photos; ``benchmarks/recall.py`` ingests diverse libraries.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
PHOTOS = DATA / "photos"
LONG_SIDE = 320
KINDS = ("near-copy", "diverse")

#: Ranges of the random edits (shared with ``benchmarks/scale.py``).
CROP = (0.7, 1.0)
EXPOSURE = (0.8, 1.25)
WHITE_BALANCE = 0.08  # per-channel gain in [1 - x, 1 + x]
MIRROR_PROBABILITY = 0.5

#: Ranges of the diverse library's crops: fraction of the area, and the largest ratio
#: of the crop's long side to its short side (log-uniform in between).
DIVERSE_AREA = (0.1, 0.6)
DIVERSE_ASPECT = 3.0
DIVERSE_MIRROR_PROBABILITY = 1 / 3


def sources(photo_dir: Path = PHOTOS) -> list[Path]:
    """The shared photos, in a fixed order."""
    paths = sorted(p for p in Path(photo_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no photos in {photo_dir}")
    return paths


def all_sources(data_dir: Path = DATA) -> list[Path]:
    """The photos of every shared set (``photos*``), in a fixed order."""
    return [p for d in sorted(data_dir.glob("photos*")) if d.is_dir() for p in sources(d)]


def _crop_resized(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """The crop ``(left, top, width, height)`` resized to :data:`LONG_SIDE`."""
    left, top, cw, ch = box
    image = image.crop((left, top, left + cw, top + ch))
    scale = LONG_SIDE / max(cw, ch)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    return image.resize(size, Image.Resampling.LANCZOS)


def _shifted(image: Image.Image, rng: np.random.Generator, mirror: float) -> Image.Image:
    """An exposure and white-balance gain, then a mirror with probability ``mirror``."""
    gain = rng.uniform(*EXPOSURE) * rng.uniform(1 - WHITE_BALANCE, 1 + WHITE_BALANCE, 3)
    pixels = np.asarray(image, dtype=np.float32) * gain
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random near-copy edit of an RGB image: crop, resize, colour shift, mirror."""
    width, height = image.size
    fx, fy = rng.uniform(*CROP, size=2)
    cw, ch = max(1, round(width * fx)), max(1, round(height * fy))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    return _shifted(_crop_resized(image, (left, top, cw, ch)), rng, MIRROR_PROBABILITY)


def edit_diverse(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random part of an RGB image: a crop of 10-60 % of the area at a free aspect
    ratio, resized, colour-shifted, mirrored a third of the time."""
    width, height = image.size
    area = rng.uniform(*DIVERSE_AREA) * width * height
    aspect = np.exp(rng.uniform(-np.log(DIVERSE_ASPECT), np.log(DIVERSE_ASPECT)))
    # The crop keeps its area where one side would not fit: the other side grows.
    cw = min(width, np.sqrt(area * aspect))
    ch = min(height, area / cw)
    cw = min(width, area / ch)
    cw, ch = max(1, round(cw)), max(1, round(ch))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    return _shifted(_crop_resized(image, (left, top, cw, ch)), rng, DIVERSE_MIRROR_PROBABILITY)


def generate(
    out_dir: Path, count: int, seed: int = 0, kind: str = "near-copy", photos: Path | None = None
) -> list[Path]:
    """Write photos ``0 .. count - 1`` of a library into ``out_dir`` (keeping those
    already there) and return their paths.

    Parameters
    ----------
    out_dir : Path
    count : int
    seed : int
    kind : {"near-copy", "diverse"}
    photos : Path, optional
        Source folder (default: the shared ``photos`` for near-copies, every shared
        ``photos*`` set for a diverse library).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    if photos is not None:
        paths = sources(photos)
    else:
        paths = sources() if kind == "near-copy" else all_sources()
    out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[int, Image.Image] = {}
    start = time.perf_counter()
    written, out = 0, []
    # The near-copy library keeps its original seeding, so existing ones stay valid.
    salt = [] if kind == "near-copy" else [KINDS.index(kind)]
    for i in range(count):
        path = out_dir / f"lib_{i:07d}.jpg"
        out.append(path)
        if path.exists():
            continue
        rng = np.random.default_rng([seed, i, *salt])
        which = int(rng.integers(len(paths)))
        if which not in cache:
            with Image.open(paths[which]) as im:
                cache[which] = im.convert("RGB")
        made = (edit if kind == "near-copy" else edit_diverse)(cache[which], rng)
        tmp = path.with_suffix(".tmp")
        made.save(tmp, format="JPEG", quality=90)
        tmp.replace(path)  # atomic: an interrupted run leaves no half-written photo
        written += 1
        if written % 500 == 0:
            rate = written / (time.perf_counter() - start)
            left = (count - i - 1) / rate
            print(f"{i + 1}/{count} photos, about {left:.0f} s left", file=sys.stderr)
    print(f"wrote {written} photos to {out_dir} in {time.perf_counter() - start:.1f} s")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kind", choices=KINDS, default="near-copy")
    parser.add_argument("--photos", type=Path, help="source folder (default: see above)")
    args = parser.parse_args(argv)
    generate(args.out_dir, args.count, args.seed, args.kind, args.photos)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
