"""Regenerate the sample photos of ``leitmotiv demo`` (``leitmotiv/samples``).

The demo has to show what leitmotiv is for: scenes that come back over the years.  So
each sample is a mild edit (a crop, an exposure or white-balance change, a mirror
image) of one of six public-domain or CC0 photos of the shared photo set, written at a
long side of 384 px with an EXIF capture date chosen here: three scenes recur across
years and seasons (with a burst among them), one is a single burst, two are one-offs.
The dates are invented; ``leitmotiv/samples/CREDITS.md`` says so.

Usage::

    python tools/make_samples.py [--source ../shared/data/photos]
"""

from __future__ import annotations

import argparse
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "photos"
DEST = REPO / "leitmotiv" / "samples"
LONG_SIDE = 384
JPEG_QUALITY = 88
_EXIF_IFD = 0x8769
_DATETIME_ORIGINAL = 0x9003


@dataclass(frozen=True)
class Sample:
    """One sample photo: which scene, when it was "taken", and how it is edited.

    ``crop`` keeps that fraction of the width and height, its corner at ``(cx, cy)``
    in [0, 1] of the free range; ``gain`` multiplies the exposure; ``warm`` > 1
    raises red and lowers blue (< 1 the other way round).
    """

    scene: str
    taken: dt.datetime
    crop: float = 1.0
    cx: float = 0.5
    cy: float = 0.5
    gain: float = 1.0
    warm: float = 1.0
    mirror: bool = False

    @property
    def file_name(self) -> str:
        return f"{self.scene}_{self.taken:%Y%m%d-%H%M%S}.jpg"


def _at(*parts: int) -> dt.datetime:
    return dt.datetime(*parts)


SAMPLES = (
    # The morning coffee, once or twice a year for eight years, in every season.
    Sample("coffee", _at(2017, 3, 12, 8, 15)),
    Sample("coffee", _at(2018, 11, 3, 9, 40), crop=0.85, cx=0.2, cy=0.7, gain=0.9),
    Sample("coffee", _at(2019, 6, 21, 7, 55), warm=1.06, gain=1.08),
    Sample("coffee", _at(2020, 1, 18, 10, 5), crop=0.8, cx=0.8, cy=0.3, warm=0.95),
    Sample("coffee", _at(2021, 9, 9, 8, 30), mirror=True, gain=0.94),
    Sample("coffee", _at(2022, 12, 24, 9, 10), crop=0.88, cx=0.4, cy=0.2, warm=1.08),
    Sample("coffee", _at(2024, 4, 2, 7, 45), gain=1.1, warm=0.97),
    # The cat, every couple of years, with a burst of three one August afternoon.
    Sample("chelsea_cat", _at(2018, 2, 4, 15, 20)),
    Sample("chelsea_cat", _at(2019, 10, 27, 11, 0), crop=0.85, cx=0.1, cy=0.5, warm=1.05),
    Sample("chelsea_cat", _at(2021, 8, 14, 16, 2), gain=1.1),
    Sample("chelsea_cat", _at(2021, 8, 14, 16, 3), crop=0.9, cx=0.6, cy=0.4, gain=1.08),
    Sample("chelsea_cat", _at(2021, 8, 14, 16, 9), crop=0.82, cx=0.3, cy=0.8, gain=1.05),
    Sample("chelsea_cat", _at(2023, 12, 30, 14, 45), mirror=True, warm=0.96),
    # The dandelion meadow in seed, each May or so.
    Sample("dandelion_field", _at(2019, 5, 11, 18, 30)),
    Sample("dandelion_field", _at(2020, 4, 26, 19, 5), crop=0.85, cx=0.7, cy=0.5, warm=1.05),
    Sample("dandelion_field", _at(2022, 5, 15, 17, 50), gain=0.92),
    Sample("dandelion_field", _at(2024, 5, 19, 18, 40), crop=0.8, cx=0.2, cy=0.4, gain=1.06),
    # A launch watched once: four frames within two minutes, one burst.
    Sample("rocket", _at(2015, 2, 11, 23, 3, 12)),
    Sample("rocket", _at(2015, 2, 11, 23, 3, 40), crop=0.85, cx=0.5, cy=0.2),
    Sample("rocket", _at(2015, 2, 11, 23, 4, 5), crop=0.75, cx=0.5, cy=0.1, gain=1.05),
    Sample("rocket", _at(2015, 2, 11, 23, 5, 31), crop=0.7, cx=0.5, cy=0.0, gain=0.95),
    # Two one-offs: a night at the telescope, a portrait.
    Sample("hubble_deep_field", _at(2016, 9, 3, 23, 40)),
    Sample("hubble_deep_field", _at(2016, 9, 3, 23, 52), crop=0.85, cx=0.3, cy=0.6),
    Sample("astronaut", _at(2016, 6, 18, 12, 0)),
    Sample("astronaut", _at(2016, 6, 18, 12, 1), crop=0.88, cx=0.5, cy=0.3, warm=1.04),
)


def edited(original: Image.Image, sample: Sample) -> Image.Image:
    """``original`` edited as ``sample`` says and resized to :data:`LONG_SIDE`."""
    w, h = original.size
    cw, ch = round(w * sample.crop), round(h * sample.crop)
    left, top = round((w - cw) * sample.cx), round((h - ch) * sample.cy)
    image = original.crop((left, top, left + cw, top + ch))
    if sample.mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gains = np.array([sample.warm, 1.0, 1.0 / sample.warm]) * sample.gain
    rgb = np.asarray(image, dtype=np.float64) * gains
    image = Image.fromarray(np.clip(np.rint(rgb), 0, 255).astype(np.uint8))
    scale = LONG_SIDE / max(image.size)
    size = (round(image.width * scale), round(image.height * scale))
    return image.resize(size, Image.Resampling.LANCZOS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="shared photos/")
    args = parser.parse_args()
    for old in DEST.glob("*.jpg"):
        old.unlink()
    for sample in SAMPLES:
        with Image.open(args.source / f"{sample.scene}_0.jpg") as im:
            original = ImageOps.exif_transpose(im).convert("RGB")  # upright
        exif = Image.Exif()
        exif.get_ifd(_EXIF_IFD)[_DATETIME_ORIGINAL] = sample.taken.strftime("%Y:%m:%d %H:%M:%S")
        edited(original, sample).save(
            DEST / sample.file_name, quality=JPEG_QUALITY, exif=exif.tobytes()
        )
    print(f"{len(SAMPLES)} samples in {DEST}")


if __name__ == "__main__":
    main()
