"""Retrieval quality of leitmotiv against the baselines users would pick instead.

On the three shared photo sets of 40 scenes × 4 versions, ``photos`` (mild edits),
``photos-hard`` (hard re-shoots) and ``photos-mono`` (the colour original beside black
and white, sepia and a high-contrast black-and-white crop), and on all three mixed into
one library (480 photos, 40 scenes × 12 versions, each version's group-mates the other
11), this prints for every method and baseline the mean N-S score (the photo itself
plus its group-mates among its top 3, out of 4; per set only), the mean average
precision, the precision at 1, the adjusted Rand index of the default clusterer's
clusters against the scenes, and seconds per photo (fit + distances).  Every method
is computed once on the 480 photos; a set's figures come from its block of that matrix
(each distance depends on its two photos only).

It then chooses the default divergence's weights by leave-scenes-out: the scenes are
split in two halves (``--splits`` random splits, each giving two folds); on the
training half a small grid of parameters is scored, the best one is scored on the
held-out half.  It calibrates the relation thresholds the same way, reporting their
precision and recall on held-out scenes, and prints how the default's distances of
group-mates and of unrelated photos are distributed.

Fitted models are cached in ``benchmarks/out/models`` (git-ignored) by featurizer
configuration, so a second run only recomputes distances.

Usage: ``python benchmarks/quality.py [--data DIR] [--quick] [--splits N]``
(``--quick``: the default, the previous default and the baselines only)
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import itertools
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
from leitmotiv.divergence import js_matrix
from leitmotiv.evaluation import (
    adjusted_rand,
    mean_average_precision,
    ns_score,
    pair_distances,
    precision_at_1,
)
from leitmotiv.imaging import decode
from leitmotiv.ingest import FIT_LONG_SIDE, single_threaded
from leitmotiv.jensen_shannon import (
    JensenShannon,
    colour_shares,
    colour_views,
    convolved_view,
    luma_view,
)
from leitmotiv.mixture import Mixture
from leitmotiv.plugins import get_implementation, implementations

sys.path.insert(0, str(Path(__file__).parent))
from _baselines import hash_distances, histogram_distances

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / "benchmarks" / "out" / "models"
SETS = ("photos", "photos-hard", "photos-mono")
SHORT = {"photos": "easy", "photos-hard": "hard", "photos-mono": "mono"}

# (label, featurizer name, featurizer params, divergence name, divergence params)
DEFAULT = ("leitmotiv default", "gmm", {}, "js", {})
PREVIOUS = (
    "previous default: √JS + 0.2 √JS of the palettes",
    "gmm",
    {},
    "js",
    {
        "n_samples": 1000,
        "colour_weight": 0.2,
        "spread": 0.0,
        "luma_gain": 0.0,
        "symmetries": "none",
    },
)
VARIANTS = [
    ("without the frame maps (symmetries none)", "gmm", {}, "js", {"symmetries": "none"}),
    (
        "frame maps by each term's least estimate (map_choice minimum)",
        "gmm",
        {},
        "js",
        {"map_choice": "minimum"},
    ),
    (
        "the default of version 3 (no frame maps, palette 0.9, luma spread 0.05, gain 2.45)",
        "gmm",
        {},
        "js",
        {"symmetries": "none", "colour_weight": 0.9, "luma_spread": 0.05, "luma_gain": 2.45},
    ),
    ("without the luminance view", "gmm", {}, "js", {"luma_gain": 0.0}),
    ("luminance view only (every pair)", "gmm", {}, "js", {"tone": 1e9}),
    ("without the spread (spread 0)", "gmm", {}, "js", {"spread": 0.0}),
    ("palette weight 0.2", "gmm", {}, "js", {"colour_weight": 0.2}),
]
PLUGIN_VARIANTS = [
    ("Cauchy-Schwarz divergence (plugin)", "gmm", {}, "cauchy-schwarz", {}),
    ("colour featurizer (plugin)", "colour", {}, "js", {}),
]
BASELINES = [
    ("pHash (imagehash), Hamming", lambda paths: hash_distances(paths, "phash")),
    ("wHash (imagehash), Hamming", lambda paths: hash_distances(paths, "whash")),
    ("dHash (imagehash), Hamming", lambda paths: hash_distances(paths, "dhash")),
    ("colorhash (imagehash), Hamming", lambda paths: hash_distances(paths, "colorhash")),
    ("RGB histogram 8×8×8, χ²", histogram_distances),
]

# The grid searched on training scenes: the default's parameters are one of its points.
GRID = {
    "spread": (0.05, 0.1),
    "luma_spread": (0.05, 0.07),
    "colour_weight": (0.4, 0.6, 0.8, 1.0),
    "tone": (3e-4, 1e-3, 3e-3),
}


def load_set(data: Path, name: str) -> tuple[list[Path], np.ndarray]:
    """Paths and scene labels of one shared photo set."""
    root = data / name
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


class Library480:
    """The three sets as one library: paths, scene labels and set of every photo."""

    def __init__(self, data: Path) -> None:
        self.paths, labels, sets = [], [], []
        for index, name in enumerate(SETS):
            paths, scenes = load_set(data, name)
            self.paths += paths
            labels += list(scenes)
            sets += [index] * len(paths)
        self.labels, self.sets = np.array(labels), np.array(sets)

    def mask(self, name: str, scenes: np.ndarray | None = None) -> np.ndarray:
        """Photos of one set (or "mixed": all), optionally of some scenes only."""
        m = np.ones(len(self.labels), bool) if name == "mixed" else self.sets == SETS.index(name)
        return m if scenes is None else m & np.isin(self.labels, scenes)


def set_scores(d: np.ndarray, lib: Library480, name: str, scenes=None, ari=True) -> dict:
    m = lib.mask(name, scenes)
    sub, labels = d[np.ix_(m, m)], lib.labels[m]
    out = {"map": mean_average_precision(sub, labels), "p1": precision_at_1(sub, labels)}
    if name != "mixed":
        out["ns"] = ns_score(sub, labels)
    if ari:
        out["ari"] = adjusted_rand(AffinityPropagation().cluster(sub).labels, labels)
    return out


def run_method(method, lib: Library480) -> tuple[dict, np.ndarray]:
    label, featurizer, fparams, divergence, dparams = method
    mixtures, fit_seconds = models(lib.paths, featurizer, fparams)
    impl = get_implementation("divergence", divergence, dparams)
    start = time.perf_counter()
    d = impl.pairwise(mixtures)
    seconds = fit_seconds + (time.perf_counter() - start) / len(lib.paths)
    return {"method": label, "seconds": seconds}, d


def run_baseline(name, fn, lib: Library480) -> tuple[dict, np.ndarray]:
    start = time.perf_counter()
    d = fn(lib.paths)
    return {"method": name, "seconds": (time.perf_counter() - start) / len(lib.paths)}, d


def print_tables(rows: list[tuple[dict, np.ndarray]], lib: Library480) -> None:
    for name in (*SETS, "mixed"):
        print(f"## {name}\n")
        cols = ["N-S", "mAP", "P@1", "ARI"] if name != "mixed" else ["mAP", "P@1", "ARI"]
        print("| method | " + " | ".join(cols) + " | s/photo |")
        print("| --- " * (len(cols) + 2) + "|")
        for row, d in rows:
            r = set_scores(d, lib, name)
            values = ([r["ns"]] if name != "mixed" else []) + [r["map"], r["p1"], r["ari"]]
            print(
                f"| {row['method']} | " + " | ".join(f"{v:.3f}" for v in values)
                + f" | {row['seconds']:.3f} |"
            )
        print()


# ----------------------------------------------------------- leave-scenes-out


def term_matrices(mixtures) -> dict:
    """√JS of every view the grid combines, all pairs of the 480 photos, under the
    frame map of each pair that the default would choose at that luma spread (its
    choice reads the luminance views)."""
    base = JensenShannon()
    out = {"palette": np.sqrt(js_matrix(colour_views(mixtures), base.palette_samples))}
    for luma_spread in GRID["luma_spread"]:
        point = dataclasses.replace(base, luma_spread=luma_spread)
        choice = point.pair_maps(mixtures)
        for spread in GRID["spread"]:
            views = [convolved_view(m, spread) for m in mixtures]
            out["spatial", spread, luma_spread] = np.sqrt(
                point.term_matrix(views, base.n_samples, choice)
            )
        views = [luma_view(m, base.luma_scale, luma_spread) for m in mixtures]
        out["luma", luma_spread] = np.sqrt(point.term_matrix(views, base.luma_samples, choice))
    return out


def luma_gain(colour: np.ndarray, luma: np.ndarray, shares: np.ndarray, labels, train) -> float:
    """The gain that puts the luminance term on the colour terms' scale: the ratio of
    their typical values (median of group-mates plus median of unrelated pairs) over
    the pairs of colourful training photos."""
    pairs = train[:, None] & train[None, :] & (shares > 0.9)
    np.fill_diagonal(pairs, False)
    same = labels[:, None] == labels[None, :]
    typical = [np.median(x[pairs & same]) + np.median(x[pairs & ~same]) for x in (colour, luma)]
    return float(typical[0] / typical[1])


def combine(terms, shares, point: dict, gain: float) -> np.ndarray:
    spatial = terms["spatial", point["spread"], point["luma_spread"]]
    colour = spatial + point["colour_weight"] * terms["palette"]
    d = shares * colour + (1 - shares) * gain * terms["luma", point["luma_spread"]]
    np.fill_diagonal(d, 0.0)
    return d


def objective(d, lib, scenes) -> float:
    """What the grid maximizes: mean N-S of the three sets (out of 1) plus mixed mAP."""
    ns = [set_scores(d, lib, name, scenes, ari=False)["ns"] / 4 for name in SETS]
    return float(np.mean(ns) + set_scores(d, lib, "mixed", scenes, ari=False)["map"])


def thresholds(d, lib, scenes) -> tuple[float, float]:
    """Relation thresholds from the given scenes: near-duplicate below the 0.1th
    percentile of unrelated pairs of the mild-edit set, unrelated from the 95th
    percentile of group-mates of the mixed set (both rounded down to 0.05)."""
    easy = lib.mask("photos", scenes)
    same, other = pair_distances(d[np.ix_(easy, easy)], lib.labels[easy])
    near = np.floor(np.percentile(other, 0.1) / 0.05) * 0.05
    mixed = lib.mask("mixed", scenes)
    same, other = pair_distances(d[np.ix_(mixed, mixed)], lib.labels[mixed])
    unrelated = np.floor(np.percentile(same, 95) / 0.05) * 0.05
    return float(near), float(unrelated)


def relation_quality(d, lib, scenes, near, unrelated) -> str:
    """Precision and recall of both thresholds on the given scenes."""
    mixed = lib.mask("mixed", scenes)
    same, other = pair_distances(d[np.ix_(mixed, mixed)], lib.labels[mixed])
    easy = lib.mask("photos", scenes)
    edits, _ = pair_distances(d[np.ix_(easy, easy)], lib.labels[easy])
    called_near = np.sum(same < near) + np.sum(other < near)
    called_unrelated = np.sum(same >= unrelated) + np.sum(other >= unrelated)
    return (
        f"near-duplicate < {near:.2f}: precision {np.sum(same < near) / max(called_near, 1):.4f} "
        f"(same scene), recall {np.mean(edits < near):.3f} of mild edits; "
        f"unrelated ≥ {unrelated:.2f}: precision "
        f"{np.sum(other >= unrelated) / max(called_unrelated, 1):.4f}, recall "
        f"{np.mean(other >= unrelated):.3f} of other-scene pairs, "
        f"{np.mean(same >= unrelated):.3f} of same-scene pairs called unrelated"
    )


def leave_scenes_out(lib: Library480, splits: int, default_d: np.ndarray) -> None:
    """Print the grid's choice per fold and its held-out scores, beside the default's,
    then the relation thresholds chosen and scored the same way."""
    mixtures, _ = models(lib.paths, "gmm", {})
    terms = term_matrices(mixtures)
    default = JensenShannon()
    points = [dict(zip(GRID, values, strict=True)) for values in itertools.product(*GRID.values())]
    scenes = np.unique(lib.labels)
    rng = np.random.default_rng(0)
    print("| fold | chosen on training scenes | held-out easy N-S | hard N-S | mono N-S "
          "| mixed mAP | default's held-out easy / hard / mono / mixed |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    picks, chosen_points = [], []
    for split in range(splits):
        half = rng.permutation(scenes)[: len(scenes) // 2]
        for fold, (train, test) in enumerate(
            ((half, np.setdiff1d(scenes, half)), (np.setdiff1d(scenes, half), half))
        ):
            train_mask = np.isin(lib.labels, train)
            best = None
            for point in points:
                shares = colour_shares(mixtures, mixtures, point["tone"])
                spatial = terms["spatial", point["spread"], point["luma_spread"]]
                colour = spatial + point["colour_weight"] * terms["palette"]
                gain = luma_gain(
                    colour, terms["luma", point["luma_spread"]], shares, lib.labels, train_mask
                )
                d = combine(terms, shares, point, gain)
                score = objective(d, lib, train)
                if best is None or score > best[0]:
                    best = (score, point, gain, d)
            _, point, gain, d = best
            held = [set_scores(d, lib, n, test, ari=False)["ns"] for n in SETS]
            held.append(set_scores(d, lib, "mixed", test, ari=False)["map"])
            ref = [set_scores(default_d, lib, n, test, ari=False)["ns"] for n in SETS]
            ref.append(set_scores(default_d, lib, "mixed", test, ari=False)["map"])
            chosen = ", ".join(f"{k} {v:g}" for k, v in point.items()) + f", luma_gain {gain:.2f}"
            print(
                f"| {2 * split + fold} | {chosen} | "
                + " | ".join(f"{v:.3f}" for v in held)
                + " | " + " / ".join(f"{v:.3f}" for v in ref) + " |"
            )
            picks.append((train, test, thresholds(default_d, lib, train)))
            chosen_points.append({**point, "luma_gain": gain})
    median = {k: float(np.median([p[k] for p in chosen_points])) for k in chosen_points[0]}
    print("\nthe folds' median choice (how the default is set): "
          + ", ".join(f"{k} {v:g}" for k, v in median.items()))
    print(f"default: spread {default.spread}, luma_spread {default.luma_spread}, "
          f"colour_weight {default.colour_weight}, tone {default.tone}, "
          f"luma_gain {default.luma_gain}\n")
    print("## relation thresholds of the default, chosen on training scenes, "
          "scored on held-out scenes\n")
    for fold, (_, test, (near, unrelated)) in enumerate(picks):
        print(f"- fold {fold}: " + relation_quality(default_d, lib, test, near, unrelated))
    # The constants take the folds' median, rounded down to 0.05.
    near, unrelated = (
        float(np.floor(np.median([t[i] for _, _, t in picks]) / 0.05 + 1e-9) * 0.05)
        for i in (0, 1)
    )
    print(f"- the folds' median thresholds, rounded down ({near:.2f}, {unrelated:.2f}; the "
          f"default's constants: {default.near_duplicate_threshold():.2f}, "
          f"{default.unrelated_threshold():.2f}) on all scenes: "
          + relation_quality(default_d, lib, None, near, unrelated))



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO.parent / "shared" / "data",
        help="folder holding photos/, photos-hard/ and photos-mono/ "
        "(default: ../shared/data beside the repository)",
    )
    parser.add_argument("--quick", action="store_true", help="defaults and baselines only")
    parser.add_argument("--splits", type=int, default=2, help="random halvings of the scenes")
    args = parser.parse_args()
    for name in SETS:
        if not (args.data / name / "groups.csv").is_file():
            parser.error(f"{args.data / name / 'groups.csv'} is missing (see --data)")
    print(f"# leitmotiv retrieval quality, {date.today()}")
    print(
        f"machine: {platform.machine()} {platform.processor() or ''}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}\n"
    )
    lib = Library480(args.data)
    methods = [DEFAULT, PREVIOUS] if args.quick else [DEFAULT, PREVIOUS, *VARIANTS]
    if not args.quick:
        for m in PLUGIN_VARIANTS:
            kinds = {"featurizer": m[1], "divergence": m[3]}
            if all(name in implementations(kind) for kind, name in kinds.items()):
                methods.append(m)
    rows = [run_method(method, lib) for method in methods]
    default_d = rows[0][1]
    rows += [run_baseline(name, fn, lib) for name, fn in BASELINES]
    print_tables(rows, lib)

    print("## leave-scenes-out: the default's weights chosen on half of the scenes\n")
    leave_scenes_out(lib, args.splits, default_d)

    print("\n## distances of the default: group-mates vs unrelated photos\n")
    q = [1, 5, 25, 50, 75, 95, 99]
    print("| set | pairs | " + " | ".join(f"{x} %" for x in q) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in q) + " |")
    d = default_d
    for name in (*SETS, "mixed"):
        m = lib.mask(name)
        same, other = pair_distances(d[np.ix_(m, m)], lib.labels[m])
        for kind, values in (("group-mates", same), ("unrelated", other)):
            pct = np.percentile(values, q)
            label = SHORT.get(name, name)
            print(f"| {label} | {kind} | " + " | ".join(f"{v:.3f}" for v in pct) + " |")


if __name__ == "__main__":
    main()
