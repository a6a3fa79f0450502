"""Retrieval quality of leitmotiv against the baselines users would pick instead.

On ../shared/data/photos (mild edits) and ../shared/data/photos-hard (hard re-shoots),
each a set of 40 scenes × 4 versions, this prints for every method the mean N-S score
(the photo itself plus its group-mates among its top 3, out of 4), the mean average
precision, the precision at 1, the adjusted Rand index of the default clusterer's
clusters against the scenes, and seconds per photo (fit + distances).  It then
checks the choice of the colour weight by a two-fold leave-groups-out split, and
reports how the default's distances of group-mates and of unrelated photos are
distributed, with the calibrated near-duplicate threshold.

Fitted models are cached in ``benchmarks/out/models`` (git-ignored) by featurizer
configuration, so a second run only recomputes distances.

Usage: ``python benchmarks/quality.py [--quick]``  (``--quick``: defaults and baselines only)
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import multiprocessing
import os
import pickle
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from pathlib import Path

import numpy as np

from leitmotiv.cluster import AffinityPropagation
from leitmotiv.evaluation import (
    adjusted_rand,
    mean_average_precision,
    ns_score,
    pair_distances,
    precision_at_1,
)
from leitmotiv.imaging import decode
from leitmotiv.ingest import FIT_LONG_SIDE, single_threaded
from leitmotiv.mixture import Mixture
from leitmotiv.plugins import get_implementation, implementations

sys.path.insert(0, str(Path(__file__).parent))
from _baselines import hash_distances, histogram_distances

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
CACHE = REPO / "benchmarks" / "out" / "models"
DATASETS = ("photos", "photos-hard")

# (label, featurizer name, featurizer params, divergence name, divergence params)
DEFAULT = ("leitmotiv default", "gmm", {}, "js", {})
VARIANTS = [
    (
        "spatial JS only (seed's kind)",
        "gmm",
        {},
        "js",
        {"colour_weight": 0.0, "symmetries": "none"},
    ),
    ("colour term, no symmetries", "gmm", {}, "js", {"symmetries": "none"}),
    ("mirror + quarter turns", "gmm", {}, "js", {"symmetries": "dihedral"}),
    ("per-image whitening of all 5", "gmm", {"normalization": "whiten"}, "js", {}),
    (
        "whitening, spatial JS only",
        "gmm",
        {"normalization": "whiten"},
        "js",
        {"colour_weight": 0.0, "symmetries": "none"},
    ),
    ("colour space RGB", "gmm", {"colour_space": "rgb"}, "js", {}),
    ("colour space Lab", "gmm", {"colour_space": "lab"}, "js", {}),
    ("blur 0.005", "gmm", {"blur": 0.005}, "js", {}),
    ("blur 0.02", "gmm", {"blur": 0.02}, "js", {}),
    ("2000 samples", "gmm", {"n_samples": 2000}, "js", {}),
    ("JS with 500 Monte Carlo samples", "gmm", {}, "js", {"n_samples": 500}),
]
PLUGIN_VARIANTS = [
    ("Cauchy-Schwarz divergence (plugin)", "gmm", {}, "cauchy-schwarz", {}),
    ("colour featurizer (plugin)", "colour", {}, "js", {}),
]
BASELINES = [
    ("pHash (imagehash)", lambda paths: hash_distances(paths, "phash")),
    ("dHash (imagehash)", lambda paths: hash_distances(paths, "dhash")),
    ("colorhash (imagehash)", lambda paths: hash_distances(paths, "colorhash")),
    ("RGB histogram 8x8x8, chi2", histogram_distances),
]


def load_set(name: str) -> tuple[list[Path], np.ndarray]:
    """Paths and scene labels of one shared photo set."""
    root = DATA / name
    with open(root / "groups.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [root / r["file"] for r in rows], np.array([r["group"] for r in rows])


def _fit(args: tuple[str, str, dict]) -> tuple[bytes, float]:
    path, featurizer, params = args
    impl = get_implementation("featurizer", featurizer, params)
    start = time.perf_counter()
    mixture = impl.model(decode(path, target_long_side=FIT_LONG_SIDE).rgb, seed=0)
    return mixture.to_bytes(), time.perf_counter() - start


def models(paths: list[Path], featurizer: str, params: dict) -> tuple[list[Mixture], float]:
    """Fitted models of ``paths`` (cached on disk) and the fit seconds per photo."""
    key = get_implementation("featurizer", featurizer, params).key()
    digest = hashlib.sha256((key + "|" + "|".join(map(str, paths))).encode()).hexdigest()[:16]
    cache = CACHE / f"{digest}.pkl"
    if cache.exists():
        blobs, seconds = pickle.loads(cache.read_bytes())
    else:
        # forkserver: a forked child of a process that has run OpenMP regions hangs.
        context = multiprocessing.get_context("forkserver")
        with ProcessPoolExecutor(
            os.cpu_count(), mp_context=context, initializer=single_threaded
        ) as pool:
            done = list(pool.map(_fit, [(str(p), featurizer, params) for p in paths]))
        blobs = [b for b, _ in done]
        seconds = float(np.mean([s for _, s in done])) / (os.cpu_count() or 1)
        CACHE.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(pickle.dumps((blobs, seconds)))
    return [Mixture.from_bytes(b) for b in blobs], seconds


def scores(distances: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    clusters = AffinityPropagation().cluster(distances)
    return {
        "ns": ns_score(distances, labels),
        "map": mean_average_precision(distances, labels),
        "p1": precision_at_1(distances, labels),
        "ari": adjusted_rand(clusters.labels, labels),
    }


def run_method(method, paths, labels):
    label, featurizer, fparams, divergence, dparams = method
    mixtures, fit_seconds = models(paths, featurizer, fparams)
    impl = get_implementation("divergence", divergence, dparams)
    start = time.perf_counter()
    d = impl.pairwise(mixtures)
    per_photo = fit_seconds + (time.perf_counter() - start) / len(paths)
    return {"method": label, **scores(d, labels), "seconds": per_photo}, d


def run_baseline(name, fn, paths, labels):
    start = time.perf_counter()
    d = fn(paths)
    return {
        "method": name,
        **scores(d, labels),
        "seconds": (time.perf_counter() - start) / len(paths),
    }


def leave_groups_out(paths, labels, weights=(0.0, 0.2, 0.4, 0.6, 0.8, 1.0)):
    """Choose the colour weight on half of the scenes, score it on the other half."""
    mixtures, _ = models(paths, "gmm", {})
    parts = {}
    for w in weights:
        parts[w] = get_implementation("divergence", "js", {"colour_weight": w}).pairwise(mixtures)
    groups = np.unique(labels)
    rng = np.random.default_rng(0)
    half = set(rng.permutation(groups)[: len(groups) // 2])
    in_a = np.array([g in half for g in labels])
    rows = []
    for train, test in ((in_a, ~in_a), (~in_a, in_a)):
        sub = lambda d, m: d[np.ix_(m, m)]  # noqa: E731
        best = max(weights, key=lambda w: ns_score(sub(parts[w], train), labels[train]))
        rows.append((best, ns_score(sub(parts[best], test), labels[test])))
    return rows


def fmt_table(rows: list[dict], best_baseline: float) -> str:
    lines = [
        "| method | N-S (of 4) | ΔN-S vs best baseline | mAP | P@1 | ARI | s/photo |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['ns']:.3f} | {r['ns'] - best_baseline:+.3f} | {r['map']:.3f} "
            f"| {r['p1']:.3f} | {r['ari']:.3f} | {r['seconds']:.3f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="defaults and baselines only")
    args = parser.parse_args()
    print(f"# leitmotiv retrieval quality, {date.today()}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    methods = [DEFAULT] if args.quick else [DEFAULT, *VARIANTS]
    if not args.quick:
        for m in PLUGIN_VARIANTS:
            kinds = {"featurizer": m[1], "divergence": m[3]}
            if all(name in implementations(kind) for kind, name in kinds.items()):
                methods.append(m)
    default_distances = {}
    for name in DATASETS:
        paths, labels = load_set(name)
        baselines = [run_baseline(n, fn, paths, labels) for n, fn in BASELINES]
        best = max(b["ns"] for b in baselines)
        rows = []
        for method in methods:
            row, d = run_method(method, paths, labels)
            rows.append(row)
            if method is DEFAULT:
                default_distances[name] = (d, labels)
        print(f"## {name} ({len(paths)} photos; best baseline N-S {best:.3f})\n")
        print(fmt_table(rows + baselines, best))
        print()
    print("## colour weight chosen on half of the scenes, scored on the other half\n")
    for name in DATASETS:
        paths, labels = load_set(name)
        for fold, (w, held) in enumerate(leave_groups_out(paths, labels)):
            print(
                f"- {name}, fold {fold}: best weight on training scenes {w}, "
                f"N-S on held-out scenes {held:.3f}"
            )
    print("\n## distances of the default: group-mates vs unrelated photos\n")
    q = [1, 5, 25, 50, 75, 95, 99]
    print("| set | pairs | " + " | ".join(f"p{x}" for x in q) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in q) + " |")
    for name, (d, labels) in default_distances.items():
        same, other = pair_distances(d, labels)
        for kind, values in (("group-mates", same), ("unrelated", other)):
            pct = np.percentile(values, q)
            print(f"| {name} | {kind} | " + " | ".join(f"{v:.3f}" for v in pct) + " |")
    d, labels = default_distances["photos"]
    same, other = pair_distances(d, labels)
    # Near-duplicate: below the 0.1th percentile of unrelated pairs of the mild-edit
    # set, rounded down to a multiple of 0.05 (at most 1 in 1,000 false alarms).
    threshold = np.floor(np.percentile(other, 0.1) / 0.05) * 0.05
    print(f"\nnear-duplicate threshold: {threshold:.2f}")
    for name, (d, labels) in default_distances.items():
        same, other = pair_distances(d, labels)
        print(
            f"- {name}: group-mates below it {np.mean(same < threshold):.1%}, "
            f"unrelated below it {np.mean(other < threshold):.2%}"
        )


if __name__ == "__main__":
    main()
