"""Generate a large synthetic photo library, reproducibly, from the shared photos.

Each output photo is one of the shared photos (``<repo>/../shared/data/photos``) with
random edits of the kinds a real library holds many of: a crop (70-100 % of each side,
anywhere in the frame), a resize to 320 px on the long side, a colour shift (an
exposure gain and a per-channel white-balance gain), and a left-right mirror half of
the time.  Photo ``i`` depends only on ``(seed, i)``, so any prefix of a library is the
smaller library of the same seed, and an interrupted run is resumed by running it again
(existing files are kept).  Write the output outside git (``benchmarks/generated/`` is
ignored)::

    python benchmarks/make_library.py OUT_DIR --count 10000 [--seed 0]

``benchmarks/scale.py`` derives its models by the same kinds of edit applied to the
fitted models of the shared photos, see there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

PHOTOS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
LONG_SIDE = 320

#: Ranges of the random edits (shared with ``benchmarks/scale.py``).
CROP = (0.7, 1.0)
EXPOSURE = (0.8, 1.25)
WHITE_BALANCE = 0.08  # per-channel gain in [1 - x, 1 + x]
MIRROR_PROBABILITY = 0.5


def sources(photo_dir: Path = PHOTOS) -> list[Path]:
    """The shared photos, in a fixed order."""
    paths = sorted(p for p in Path(photo_dir).iterdir() if p.suffix.lower() in (".jpg", ".jpeg"))
    if not paths:
        raise SystemExit(f"no photos in {photo_dir}")
    return paths


def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """One random edit of an RGB image: crop, resize, colour shift, mirror."""
    width, height = image.size
    fx, fy = rng.uniform(*CROP, size=2)
    cw, ch = max(1, round(width * fx)), max(1, round(height * fy))
    left = int(rng.integers(0, width - cw + 1))
    top = int(rng.integers(0, height - ch + 1))
    image = image.crop((left, top, left + cw, top + ch))
    scale = LONG_SIDE / max(cw, ch)
    size = (max(1, round(cw * scale)), max(1, round(ch * scale)))
    image = image.resize(size, Image.Resampling.LANCZOS)
    gain = rng.uniform(*EXPOSURE) * rng.uniform(1 - WHITE_BALANCE, 1 + WHITE_BALANCE, 3)
    pixels = np.asarray(image, dtype=np.float32) * gain
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    if rng.random() < MIRROR_PROBABILITY:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--photos", type=Path, default=PHOTOS)
    args = parser.parse_args(argv)
    paths = sources(args.photos)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    cache: dict[int, Image.Image] = {}
    start = time.perf_counter()
    written = 0
    for i in range(args.count):
        out = args.out_dir / f"lib_{i:07d}.jpg"
        if out.exists():
            continue
        rng = np.random.default_rng([args.seed, i])
        which = int(rng.integers(len(paths)))
        if which not in cache:
            with Image.open(paths[which]) as im:
                cache[which] = im.convert("RGB")
        tmp = out.with_suffix(".tmp")
        edit(cache[which], rng).save(tmp, format="JPEG", quality=90)
        tmp.replace(out)  # atomic: an interrupted run leaves no half-written photo
        written += 1
        if written % 500 == 0:
            rate = written / (time.perf_counter() - start)
            left = (args.count - i - 1) / rate
            print(f"{i + 1}/{args.count} photos, about {left:.0f} s left", file=sys.stderr)
    print(f"wrote {written} photos to {args.out_dir} in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
