"""Ingest throughput on full-size photos.

Makes 12-megapixel JPEGs (4000 x 3000, quality 90) by upscaling the shared photos into
a temporary folder, adds N of them to a fresh library with ``jobs`` workers and prints
photos per second and where the worker time goes (hash, decode, thumbnail, model).
The model time is split into features (blur, sample, normalize) and fit by timing
``featurizer.features`` on a few of the decoded photos in this process.

Goal: at least 10 photos/s on 2 cores.

Usage::

    python benchmarks/ingest.py [-n 24] [-j 2] [--keep DIR]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from leitmotiv.config import Settings
from leitmotiv.ingest import FIT_LONG_SIDE
from leitmotiv.library import Library

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos"
SIZE = (4000, 3000)


def make_photos(folder: Path, n: int) -> list[Path]:
    """Upscale the first ``n`` shared photos to 12 MP JPEGs in ``folder``."""
    sources = sorted(DATA.glob("*.jpg"))[:n]
    out = []
    for src in sources:
        with Image.open(src) as im:
            big = im.convert("RGB").resize(SIZE, Image.Resampling.BICUBIC)
        path = folder / src.name
        big.save(path, quality=90)
        out.append(path)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=24, help="photos to ingest")
    parser.add_argument("-j", "--jobs", type=int, default=2, help="worker processes")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="leitmotiv-bench-ingest-"))
    try:
        photos_dir = work / "photos"
        photos_dir.mkdir()
        t0 = time.perf_counter()
        paths = make_photos(photos_dir, args.n)
        print(
            f"made {len(paths)} photos of {SIZE[0]}x{SIZE[1]} in {time.perf_counter() - t0:.1f} s"
        )

        with Library.open(Settings(library=work / "library")) as library:
            report = library.add([photos_dir], jobs=args.jobs, progress=False)
            featurizer = library.featurizer
        n = report.added
        print(
            f"ingested {n} photos with jobs={args.jobs} in {report.seconds:.2f} s: "
            f"{n / report.seconds:.2f} photos/s (failed {report.failed})"
        )
        total = sum(report.timings.values())
        for stage in ("hash", "decode", "thumbnail", "model"):
            seconds = report.timings.get(stage, 0.0)
            print(
                f"  {stage:<10} {seconds / n * 1000:8.1f} ms/photo  {100 * seconds / total:5.1f} %"
            )

        # Split the model time into features and fit on a few photos, in-process.
        from leitmotiv.imaging import decode

        feat, model = [], []
        for path in paths[:4]:
            rgb = decode(path, target_long_side=FIT_LONG_SIDE).rgb
            t = time.perf_counter()
            featurizer.features(rgb, seed=0)
            feat.append(time.perf_counter() - t)
            t = time.perf_counter()
            featurizer.model(rgb, seed=0)
            model.append(time.perf_counter() - t)
        f, m = float(np.mean(feat)), float(np.mean(model))
        print(
            f"  model split (in-process, {len(feat)} photos): features {f * 1000:.1f} ms, "
            f"fit {(m - f) * 1000:.1f} ms per photo"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
