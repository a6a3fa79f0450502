"""Cost of the default divergence per pair, against the previous default, in one process.

Run ``python benchmarks/distance_cost.py [--data DIR] [--repeats N]``.  On the models of
the shared ``photos`` and ``photos-mono`` sets (320 photos, fitted once and cached by
``benchmarks/quality.py``), each divergence computes, alternately and ``--repeats``
times (the fastest run counts):

- *cold*: all pairs from fresh models, as a dense ``build-index`` does (drawing each
  view's sample sets included);
- *warm*: one 160 × 160 block of ``cross`` on models whose sample sets are drawn
  already, the marginal cost of a pair in a large library.

It prints microseconds per pair and the ratio new / previous.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from leitmotiv.jensen_shannon import JensenShannon
from leitmotiv.mixture import Mixture

sys.path.insert(0, str(Path(__file__).parent))
from quality import REPO, load_set, models

# The default of version 1: the model with 1000 samples and the palette, nothing else.
PREVIOUS = JensenShannon(
    n_samples=1000, colour_weight=0.2, spread=0.0, luma_gain=0.0, symmetries="none"
)


def fresh(mixtures: list[Mixture]) -> list[Mixture]:
    """Copies without cached views or sample sets."""
    return [Mixture(m.weights, m.means, m.covariances, transform=m.transform) for m in mixtures]


def cold(divergence: JensenShannon, mixtures: list[Mixture]) -> float:
    """Seconds per pair of ``pairwise`` from fresh models."""
    mixtures = fresh(mixtures)
    start = time.perf_counter()
    divergence.warm(mixtures)
    divergence.pairwise(mixtures)
    n = len(mixtures)
    return (time.perf_counter() - start) / (n * (n - 1) / 2)


def warm(divergence: JensenShannon, rows: list[Mixture], cols: list[Mixture]) -> float:
    """Seconds per pair of ``cross`` on models whose sample sets are drawn."""
    divergence.warm(rows + cols)
    start = time.perf_counter()
    divergence.cross(rows, cols)
    return (time.perf_counter() - start) / (len(rows) * len(cols))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    mixtures = []
    for name in ("photos", "photos-mono"):
        paths, _ = load_set(args.data, name)
        mixtures += models(paths, "gmm", {})[0]
    new = JensenShannon()
    rows, cols = fresh(mixtures[::2]), fresh(mixtures[1::2])
    best = {"cold": {}, "warm": {}}
    for _ in range(args.repeats):
        for label, divergence in (("previous", PREVIOUS), ("new", new)):
            for kind, seconds in (
                ("cold", cold(divergence, mixtures)),
                ("warm", warm(divergence, rows, cols)),
            ):
                best[kind][label] = min(best[kind].get(label, np.inf), seconds)
    print(f"{len(mixtures)} photo models, fastest of {args.repeats} runs each")
    for kind, times in best.items():
        print(
            f"{kind}: previous {times['previous'] * 1e6:.1f} µs per pair, new "
            f"{times['new'] * 1e6:.1f} µs per pair: {times['new'] / times['previous']:.2f}×"
        )


if __name__ == "__main__":
    main()
