"""Would keeping the exact sample sets in the store make index updates cheaper?

An update of a large library draws the exact Monte Carlo sample sets of the old photos
its added photos are compared with (``Divergence.warm``), where the cheap estimate's
sets are read back from the store instead.  This measures the alternative for the exact
sets: ``N`` photos of an indexed library get their sets drawn and written to a scratch
SQLite file (``benchmarks/out/kept-sets.db``, deleted afterwards); then two fresh
processes, as an update would be, either read them back (``Divergence.load_prepared``)
or draw them again (the baseline).  Each reports its wall, user and system time; the
ratio read / draw is printed.

Usage::

    python benchmarks/kept_sets.py FOLDER [--photos 45000]

``FOLDER`` is an indexed library, e.g. ``benchmarks/out/copy-100k-run`` left by
``scale.py``; 45,000 is about how many old photos adding 1,000 to 100,000 draws.
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from _clock import cpu_times  # noqa: E402

from leitmotiv import index  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.jensen_shannon import colour_views  # noqa: E402
from leitmotiv.library import Library  # noqa: E402

SCRATCH = REPO / "benchmarks" / "out" / "kept-sets.db"


def _models(folder: Path, photos: int, seed: int):
    """``photos`` random models of the library (sorted by photo id) and its divergence."""
    with Library.open(Settings(library=folder)) as lib:
        ids, mixtures = index.indexed_models(lib.context, lib.context.key_ids()[0])
        divergence = lib.divergence
    pick = np.sort(np.random.default_rng(seed).choice(len(ids), photos, replace=False))
    return ids[pick], [mixtures[i] for i in pick], divergence


def write(folder: Path, photos: int, seed: int) -> float:
    """Draw the sets of the picked photos and store them; returns kB per photo."""
    ids, models, divergence = _models(folder, photos, seed)
    SCRATCH.unlink(missing_ok=True)
    with sqlite3.connect(SCRATCH) as db:
        db.execute("CREATE TABLE kept (photo INTEGER PRIMARY KEY, samples BLOB)")
        for s in range(0, len(models), 2000):
            chunk = models[s : s + 2000]
            divergence.warm(chunk)
            blobs = divergence.dump_prepared(chunk)
            db.executemany(
                "INSERT INTO kept VALUES (?, ?)",
                zip(ids[s : s + 2000].tolist(), blobs, strict=True),
            )
    return SCRATCH.stat().st_size / len(models) / 1e3


def measure(folder: Path, photos: int, seed: int, mode: str) -> dict:
    """In this (fresh) process: read the stored sets back or draw them; times in s."""
    _, models, divergence = _models(folder, photos, seed)
    colour_views(models)  # an update has them from its cheap estimate
    with cpu_times() as spent:
        if mode == "read":
            with sqlite3.connect(SCRATCH) as db:
                cursor = db.execute("SELECT photo, samples FROM kept ORDER BY photo")
                done = 0
                while rows := cursor.fetchmany(1000):
                    loaded = divergence.load_prepared(
                        models[done : done + len(rows)], [blob for _, blob in rows]
                    )
                    if not all(loaded):
                        raise SystemExit("a stored set did not match its model")
                    done += len(rows)
        else:
            divergence.warm(models)
    return spent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an indexed library folder")
    parser.add_argument("--photos", type=int, default=45_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--measure", choices=["read", "draw"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.folder, args.photos, args.seed, args.measure)))
        return 0
    kb = write(args.folder, args.photos, args.seed)
    print(f"{args.photos:,} photos' exact sets stored: {kb:.0f} kB a photo")
    times = {}
    try:
        for mode in ("draw", "read"):
            out = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    str(args.folder),
                    "--photos",
                    str(args.photos),
                    "--seed",
                    str(args.seed),
                    "--measure",
                    mode,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            times[mode] = json.loads(out.strip().splitlines()[-1])
            t = times[mode]
            print(
                f"{mode:5s} {t['wall']:6.1f} s wall ({t['wall'] / args.photos * 1e6:.0f} µs a "
                f"photo), user {t['user']:.1f} s, system {t['system']:.1f} s"
            )
    finally:
        SCRATCH.unlink(missing_ok=True)
    print(f"read / draw = {times['read']['wall'] / times['draw']['wall']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
