"""A large library shaped as a sparse index leaves it, made in minutes: for the web benchmark.

The web view's speed depends on the rows a library holds, not on how its distances
were computed.  The real sparse index of 100,000 photos takes about 40 minutes of both
cores (``benchmarks/scale.py``); this script writes a library with the same row counts
and shapes in about ten, through the store layer and the library's own clustering step:

1. **Photos and models**: ``scale.py``'s derived models (random crops, colour shifts
   and mirrorings of the 160 shared photos' fitted models, model ``i`` from the seed
   ``(seed, i)``), stored by ``scale.populate``.  Each photo also gets the thumbnail
   of the shared photo it derives from (256 px JPEG, as ``add`` makes it) and a
   capture date: uniform over 2014-2025, from EXIF for 90 % of the photos, from the
   file time for 8 %, none for 2 %.
2. **Distances**: each photo's ``k`` (50) nearest photos in the sparse index's embedding
   (the divergence's ``embedding`` and ``candidates.candidate_pairs``, the candidate
   search's first stage, exact brute force), stored as the pair's distance *in the
   embedding* instead of the Jensen-Shannon divergence that ``build-index`` would
   compute for the same pairs.  Each pair once, as
   ``build-index`` stores them: about ``N k / 1.6`` rows.
3. **Clustering**: sparse affinity propagation of the configured clusterer on that graph
   (``Clusterer.cluster_graph``, preference from the median embedding distance of 500
   random pairs, the sparse index's rule), stored by the library's own step, which
   writes the per-clustering summaries; then ``ANALYZE``, as ``build-index`` runs it.

Usage::

    python benchmarks/web_library.py FOLDER [--photos 100000] [--k 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import scale  # noqa: E402
from make_library import sources  # noqa: E402

from leitmotiv import candidates, index, store  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.imaging import decode, thumbnail_jpeg  # noqa: E402
from leitmotiv.ingest import THUMBNAIL_LONG_SIDE  # noqa: E402
from leitmotiv.library import Library  # noqa: E402

#: Capture dates are spread over these years.
FIRST_YEAR, LAST_YEAR = 2014, 2025
#: Shares of photos dated by EXIF, by file time, and not at all.
DATE_SOURCES = {"exif": 0.90, "mtime": 0.08, None: 0.02}
#: Photos per block embedded, stored and written.
BLOCK = 4096


def _dates(n: int, seed: int) -> tuple[list[dt.datetime | None], list[str | None]]:
    """Capture times and their sources for ``n`` photos."""
    rng = np.random.default_rng([seed, 1])
    start = dt.datetime(FIRST_YEAR, 1, 1)
    span = (dt.datetime(LAST_YEAR + 1, 1, 1) - start).total_seconds()
    seconds = rng.uniform(0, span, n)
    names = list(DATE_SOURCES)
    picks = rng.choice(len(names), size=n, p=list(DATE_SOURCES.values()))
    source = [names[p] for p in picks]
    taken = [
        None if s is None else start + dt.timedelta(seconds=int(x))
        for x, s in zip(seconds, source, strict=True)
    ]
    return taken, source


def build(folder: Path, n: int, k: int = 50, seed: int = 0) -> dict[str, float]:
    """Write the library of ``n`` photos at ``folder`` (which must not hold one yet).

    Returns
    -------
    dict
        Row counts and the seconds each step took.
    """
    if (folder / store.SQLITE_NAME).exists():
        raise SystemExit(f"{folder} already holds a library")
    stats: dict[str, float] = {}
    t = time.perf_counter()
    bases = scale.fitted_models()
    thumbs = [
        thumbnail_jpeg(decode(path, target_long_side=512).rgb, long_side=THUMBNAIL_LONG_SIDE)
        for path in sources()
    ]
    taken, source = _dates(n, seed)

    def extra(i: int) -> dict:
        return {
            "taken": taken[i],
            "taken_source": source[i],
            "thumbnail": thumbs[scale.base_of(i, len(bases), seed)],
        }

    settings = Settings(library=folder, index="sparse", neighbours=k)
    with Library.open(settings) as lib, store.bound(lib.db):
        scale.populate(lib, bases, 0, n, seed, extra)
        stats["store_seconds"] = time.perf_counter() - t
        # Photo i is stored as derived/{i:07d}.jpg: its id by that order.
        ids = np.array(
            [
                pid
                for (pid,) in store.Photo.select(store.Photo.id).order_by(store.Photo.path).tuples()
            ],
            dtype=np.int64,
        )

        t = time.perf_counter()
        embeddings = np.concatenate(
            [
                lib.divergence.embedding(scale.derived_range(bases, s, min(s + BLOCK, n), seed))
                for s in range(0, n, BLOCK)
            ]
        )
        indices, distances = candidates.candidate_pairs(embeddings, k)
        stats["search_seconds"] = time.perf_counter() - t

        # Each undirected pair once, with its embedding distance.
        rows = np.repeat(np.arange(n), indices.shape[1])
        cols = indices.reshape(-1)
        lo, hi = np.minimum(rows, cols), np.maximum(rows, cols)
        _, first = np.unique(lo * n + hi, return_index=True)
        lo, hi, values = lo[first], hi[first], distances.reshape(-1)[first]
        keys = lib.context.key_ids(create=True)
        t = time.perf_counter()
        for s in range(0, len(values), 100_000):
            part = slice(s, s + 100_000)
            with lib.db.atomic():
                store.insert_distances(
                    [
                        (int(a), int(b), keys[0], keys[1], float(v))
                        for a, b, v in zip(ids[lo[part]], ids[hi[part]], values[part], strict=True)
                    ]
                )
        stats["distance_rows"] = len(values)
        stats["distance_seconds"] = time.perf_counter() - t

        t = time.perf_counter()
        rng = np.random.default_rng([seed, 2])
        a = rng.integers(0, n, 500)
        b = (a + rng.integers(1, n, 500)) % n
        typical = float(np.median(np.linalg.norm(embeddings[a] - embeddings[b], axis=1)))
        stats["clusters"], _ = index._recluster(
            lib.context,
            ids,
            len(values),
            lambda: lib.clusterer.cluster_graph(n, lo, hi, values, typical),
        )
        lib.db.execute_sql("ANALYZE")
        stats["cluster_seconds"] = time.perf_counter() - t
    stats["photos"] = n
    return stats


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="the new library's folder")
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--k", type=int, default=50, help="distances per photo")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    stats = build(args.folder, args.photos, args.k, args.seed)
    for name, value in stats.items():
        print(f"{name:18s} {value:12,.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
