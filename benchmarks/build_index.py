"""Build-index time for a library of 1,000 photos.

Makes 1,000 photos from the 320 shared photos (``photos`` and ``photos-hard``): each
source as it is, mirrored, cropped to its central 85 %, and cropped then mirrored, as
JPEGs in a temporary folder; adds them (not timed here, see ``ingest.py``) and times
``build_index``: the distances (goal: at most 60 s) and the clustering, then the
incremental case of 10 more photos.

Usage::

    python benchmarks/build_index.py [-n 1000] [-j 0] [--library DIR]

``--library`` keeps the library (and the generated photos beside it) so a second run
skips the ingest; the index is dropped before timing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from PIL import Image, ImageOps

from leitmotiv import store
from leitmotiv.config import Settings
from leitmotiv.library import Library

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _variants(im: Image.Image) -> list[Image.Image]:
    w, h = im.size
    dx, dy = round(w * 0.075), round(h * 0.075)
    crop = im.crop((dx, dy, w - dx, h - dy))
    return [im, ImageOps.mirror(im), crop, ImageOps.mirror(crop)]


def make_photos(folder: Path, n: int) -> None:
    """Write ``n`` photos (variants of the shared ones) into ``folder``, if not there."""
    folder.mkdir(parents=True, exist_ok=True)
    if len(list(folder.glob("*.jpg"))) >= n:
        return
    sources = sorted((DATA / "photos").glob("*.jpg")) + sorted((DATA / "photos-hard").glob("*.jpg"))
    count = 0
    for variant in range(4):
        for src in sources:
            if count == n:
                return
            with Image.open(src) as im:
                im = ImageOps.exif_transpose(im).convert("RGB")
                _variants(im)[variant].save(folder / f"v{variant}_{src.name}", quality=90)
            count += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000, help="photos in the library")
    parser.add_argument("-j", "--jobs", type=int, default=0, help="workers (0: all cores)")
    parser.add_argument("--library", type=Path, help="keep the library here between runs")
    args = parser.parse_args()

    work = args.library or Path(tempfile.mkdtemp(prefix="leitmotiv-bench-index-"))
    try:
        photos = work / "photos"
        make_photos(photos, args.n + 10)
        names = sorted(p.name for p in photos.glob("*.jpg"))
        base, extra = names[: args.n], names[args.n : args.n + 10]
        with Library.open(Settings(library=work / "library")) as library:
            t0 = time.perf_counter()
            report = library.add([photos / name for name in base], jobs=args.jobs, progress=True)
            print(
                f"ingest: {report.added} added, {report.unchanged} unchanged "
                f"in {time.perf_counter() - t0:.1f} s"
            )
            with store.bound(library.db):  # time the full build, not a leftover index
                store.Distance.delete().execute()
                store.ClusterRun.delete().execute()
            index = library.build_index(jobs=args.jobs, progress=False)
            print(
                f"build-index of {index.n_photos} photos: {index.pairs_computed} pairs, "
                f"distances {index.distance_seconds:.1f} s (goal <= 60 s), "
                f"clustering {index.cluster_seconds:.1f} s into {index.n_clusters} clusters, "
                f"total {index.seconds:.1f} s"
            )
            library.add([photos / name for name in extra], jobs=args.jobs, progress=False)
            more = library.build_index(jobs=args.jobs, progress=False)
            print(
                f"+{len(extra)} photos: {more.pairs_computed} new pairs, distances "
                f"{more.distance_seconds:.1f} s, clustering {more.cluster_seconds:.1f} s, "
                f"total {more.seconds:.1f} s (with refits)"
            )
    finally:
        if args.library is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
