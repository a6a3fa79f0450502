"""Memory a loaded photo model holds in the divergence's caches, default against baseline.

Run ``python benchmarks/model_memory.py [--models 3000]``.

A build keeps every model of the library loaded, and each model keeps what the
divergence computed for it (views, sample sets, kernel coefficients; per-model caches
freed with the model).  This script derives ``--models`` models as
``benchmarks/scale.py`` does, compares them in chunks of 500 against 8 of them with
one divergence, and reports the growth of the resident memory per model.  Each
divergence runs in a fresh process (the caches of one would hide the other's); the
baseline is ``js`` without frame maps at version 3's weights, the figure the README's
memory estimates were measured with.
"""

from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

#: The divergences compared: the default, and version 3's settings without maps.
SETTINGS = {
    "default": {},
    "baseline": {
        "symmetries": "none",
        "colour_weight": 0.9,
        "luma_gain": 2.45,
        "luma_spread": 0.05,
    },
}


def _resident_mib() -> float:
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(name: str, n_models: int) -> float:
    """kB of resident memory per model that ``name``'s comparisons leave behind."""
    from scale import derived_range, fitted_models

    from leitmotiv.jensen_shannon import JensenShannon

    models = derived_range(fitted_models(), 0, n_models, 0)
    divergence = JensenShannon(**SETTINGS[name])
    gc.collect()
    before = _resident_mib()
    for start in range(0, n_models, 500):
        divergence.cross(models[start : start + 500], models[:8])
    gc.collect()
    return (_resident_mib() - before) * 1024 / n_models


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=3000)
    parser.add_argument("--one", choices=tuple(SETTINGS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        print(measure(args.one, args.models))
        return 0
    found = {}
    for name in SETTINGS:
        out = subprocess.run(
            [sys.executable, __file__, "--models", str(args.models), "--one", name],
            capture_output=True,
            text=True,
            check=True,
        )
        found[name] = float(out.stdout.split()[-1])
        print(f"{name:9s} {found[name]:7.1f} kB per model")
    print(f"default / baseline: {found['default'] / found['baseline']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
