"""Time of ``leitmotiv duplicates`` on a large library: reading the stored groups.

Run ``python benchmarks/duplicates.py`` (options: ``--help``).

The library is *synthetic*, made straight in a fresh store, since fitting 100,000
photos takes hours and this is about the groups, not the models: ``--photos`` photo
rows and, as a sparse index leaves them, ``--neighbours`` distances per photo.  One
photo in ``--group`` starts a group of ``--group`` consecutive photos all within 0.3
of each other (below the calibrated near-duplicate distance, 0.90); every other
distance is drawn above it, with a fixed seed.

Printed, each the best of ``--repeat`` runs in this process:

- ``update``: what ``build-index`` adds, grouping every near pair and storing the groups
  (the first time; a second update with nothing changed is timed too);
- ``read``: :meth:`Library.duplicates`, the stored groups (what the command reads);
- ``page``: one page of 20 groups and their count (what ``/duplicates`` reads);
- ``regroup``: :meth:`Library.duplicates` with an explicit threshold, the groups made
  from the stored distances on the spot (the baseline: what the command would cost
  without stored groups);

and the wall time of ``leitmotiv duplicates --json`` as a subprocess (start-up
included).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from leitmotiv import duplicates, store
from leitmotiv.config import Settings
from leitmotiv.library import Library


def _fill(library: Library, n_photos: int, neighbours: int, group: int, seed: int) -> int:
    """Insert the synthetic photos and distances; return the number of distances."""
    rng = np.random.default_rng(seed)
    featurizer_id, divergence_id, _ = library.context.key_ids()
    with store.bound(library.db), library.db.atomic():
        rows = [
            {
                "path": f"/synthetic/{i:07d}.jpg",
                "sha256": f"{i:064x}",
                "size": int(rng.integers(100_000, 5_000_000)),
                "mtime": 0.0,
                "width": int(rng.choice([1600, 3200])),
                "height": 1200,
                "sharpness": float(rng.uniform(10, 500)),
            }
            for i in range(n_photos)
        ]
        for s in range(0, n_photos, store.INSERT_CHUNK):
            store.Photo.insert_many(rows[s : s + store.INSERT_CHUNK]).execute()
        ids = np.array(
            [pid for (pid,) in store.Photo.select(store.Photo.id).order_by(store.Photo.id).tuples()]
        )
    pairs: dict[tuple[int, int], float] = {}
    for start in range(0, n_photos - group + 1, group * 4):  # one run in four is a group
        members = ids[start : start + group]
        for i, a in enumerate(members):
            for b in members[i + 1 :]:
                pairs[(int(a), int(b))] = float(rng.uniform(0.1, 0.3))
    others = rng.integers(0, n_photos, size=(n_photos, neighbours))
    for i, row in enumerate(others):
        for j in row:
            a, b = sorted((int(ids[i]), int(ids[j])))
            if a != b and (a, b) not in pairs:
                pairs[(a, b)] = float(rng.uniform(0.95, 1.3))
    distance_rows = [(a, b, featurizer_id, divergence_id, v) for (a, b), v in pairs.items()]
    with store.bound(library.db):
        for s in range(0, len(distance_rows), 100_000):
            with library.db.atomic():
                store.insert_distances(distance_rows[s : s + 100_000])
    return len(distance_rows)


def _best(func, repeat: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--neighbours", type=int, default=10)
    parser.add_argument("--group", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "library"
        library = Library.open(Settings(library=folder))
        start = time.perf_counter()
        n_distances = _fill(library, args.photos, args.neighbours, args.group, args.seed)
        print(
            f"synthetic library: {args.photos} photos, {n_distances} distances "
            f"(made in {time.perf_counter() - start:.1f} s)"
        )
        start = time.perf_counter()
        changed = duplicates.update(library.context)
        print(f"update (first):      {time.perf_counter() - start:8.3f} s, {changed} photos placed")
        again, changed = _best(lambda: duplicates.update(library.context), args.repeat)
        print(f"update (unchanged):  {again:8.3f} s, {changed} photos changed")
        read, stored = _best(library.duplicates, args.repeat)
        page, _ = _best(
            lambda: (library.count_duplicates(), library.duplicates(offset=0, limit=20)),
            args.repeat,
        )
        threshold = library.near_duplicate_threshold()
        regroup, anew = _best(lambda: library.duplicates(threshold), args.repeat)
        assert stored == anew, "the stored groups differ from the groups made anew"
        print(f"read (stored):       {read:8.3f} s, {len(stored)} groups")
        print(f"page of 20 groups:   {page:8.3f} s")
        print(f"regroup (baseline):  {regroup:8.3f} s, ratio read/regroup {read / regroup:.2f}")
        library.close()
        env = {**os.environ, "LEITMOTIV_CONFIG": os.devnull}
        command = [sys.executable, "-m", "leitmotiv", "--library", str(folder)]
        cli, _ = _best(
            lambda: subprocess.run(
                [*command, "duplicates", "--json"], env=env, check=True, capture_output=True
            ),
            args.repeat,
        )
        print(f"leitmotiv duplicates --json (subprocess): {cli:.2f} s")


if __name__ == "__main__":
    main()
