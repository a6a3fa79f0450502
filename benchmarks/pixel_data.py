"""What the check that a file holds its declared pixels costs, against decoding it.

Makes 12-megapixel PNGs and JPEGs (4000 x 3000) by upscaling shared photos, then for
each file times, in this process, :func:`leitmotiv.pixel_data.missing_pixel_data` (the
check: the PNG's data stream inflated and counted, the JPEG's markers read) and
:func:`leitmotiv.imaging.decode` at the working size (512 pixels, the check included),
best of ``--repeat`` runs each.  Prints the check's share of the decode per format.

Usage::

    python benchmarks/pixel_data.py [-n 4] [--repeat 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from PIL import Image

from leitmotiv.imaging import decode
from leitmotiv.ingest import FIT_LONG_SIDE
from leitmotiv.pixel_data import missing_pixel_data

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
SIZE = (4000, 3000)


def timed(func, repeat: int) -> float:
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        func()
        runs.append(time.perf_counter() - t0)
    return min(runs)  # the least disturbed run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=4, help="photos per format")
    parser.add_argument("--repeat", type=int, default=3, help="runs per measure (best kept)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="leitmotiv-bench-pixel-data-") as work:
        for fmt, suffix in (("PNG", ".png"), ("JPEG", ".jpg")):
            checks, decodes = [], []
            for src in sorted(DATA.glob("*.jpg"))[: args.n]:
                path = Path(work) / (src.stem + suffix)
                with Image.open(src) as im:
                    im.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC).save(path)

                def check(path=path, fmt=fmt):
                    with open(path, "rb") as fh:
                        assert missing_pixel_data(fh, fmt) is None

                def decode_small(path=path):
                    decode(path, target_long_side=FIT_LONG_SIDE)

                checks.append(timed(check, args.repeat))
                decodes.append(timed(decode_small, args.repeat))
            check_ms = 1000 * sum(checks) / len(checks)
            decode_ms = 1000 * sum(decodes) / len(decodes)
            print(
                f"{fmt:<4} 12 MP, {args.n} files: check {check_ms:.2f} ms, decode at "
                f"{FIT_LONG_SIDE} px {decode_ms:.1f} ms (check included): "
                f"the check is {100 * check_ms / decode_ms:.1f} % of the decode"
            )


if __name__ == "__main__":
    main()
