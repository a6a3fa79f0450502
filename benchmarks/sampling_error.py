"""Monte Carlo error of the default divergence's terms under several sampling schemes.

Run ``python benchmarks/sampling_error.py [--data DIR] [--seeds N] [--reference N]``.
On the models of the hard set (cached by ``benchmarks/quality.py``: 24 photos at random
plus the four versions of six scenes, so that group-mates are among the pairs), every
pair's three terms (the convolved model, the palette and the luminance view) are
estimated at the default's sample counts from ``--seeds`` seeds, and compared with a
reference from ``--reference`` independent samples per view.  It prints, per scheme,
the root-mean-square error of each term's √JS and of the distance itself, and the
mean error of JS (a bias would show there).  The schemes only change the random
numbers the sampling kernel is given (component counts and standard normals):

- independent: one multinomial draw of the counts, standard normals (version 2);
- stratified: counts by systematic sampling, standard normals;
- antithetic: multinomial counts, each component's normals in pairs (z, −z);
- stratified + antithetic;
- stratified + scrambled Sobol: SciPy's scrambled Sobol points (linear matrix
  scrambling and a digital shift) through the normal inverse CDF;
- stratified + shifted Sobol: the Sobol points digitally shifted (version 3, what
  :func:`leitmotiv.divergence._random_numbers` draws).

Every scheme keeps the estimate unbiased, common random numbers and an exact zero for
a mixture compared with itself.

With ``--ns`` it then prints the hard set's N-S score of the default from each seed,
with the independent sets of version 2 and the sets of version 3, and from eight times
the default's sample counts: how far the score moves with the sample sets alone, and
where it settles without them.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import ndtri
from scipy.stats import qmc

import leitmotiv.divergence as divergence
from leitmotiv._ext import divergence as kernels
from leitmotiv.divergence import js_cross, stratified_counts
from leitmotiv.evaluation import ns_score
from leitmotiv.jensen_shannon import (
    JensenShannon,
    colour_shares,
    colour_views,
    convolved_view,
    luma_view,
)
from leitmotiv.mixture import Mixture

sys.path.insert(0, str(Path(__file__).parent))
from quality import REPO, Library480, models

LIBRARY = divergence._random_numbers


def antithetic(z: np.ndarray, counts: np.ndarray) -> None:
    """Within each component's rows of ``z``, the second half the first negated."""
    start = 0
    for count in counts:
        half = count // 2
        z[start + half : start + 2 * half] = -z[start : start + half]
        start += count


def scheme(stratify: bool, normals: str):
    """Random numbers of the sampling kernel for one scheme: ``normals`` is "plain",
    "antithetic" or "scrambled" (SciPy's scrambled Sobol)."""

    def random_numbers(mixtures, key):
        n, seed = key
        checksums = np.array([divergence._checksum(m) for m in mixtures], dtype=np.uint32)
        words = kernels.seed_states(int(seed), checksums)
        d = mixtures[0].dim
        counts = np.empty(sum(m.n_components for m in mixtures), dtype=np.intp)
        z = np.empty((len(mixtures) * n, d))
        order = np.tile(np.arange(n, dtype=np.intp), len(mixtures))
        k = 0
        for j, m in enumerate(mixtures):
            rng = np.random.Generator(np.random.PCG64(divergence._SeedWords(words[j])))
            w = m.weights / m.weights.sum()
            mine = counts[k : k + m.n_components]
            mine[:] = stratified_counts(w, n, rng.random()) if stratify else rng.multinomial(n, w)
            rows = z[j * n : (j + 1) * n]
            if normals == "scrambled":
                sobol = qmc.Sobol(d, scramble=True, seed=int(rng.integers(1 << 62)))
                rows[:] = ndtri(sobol.random_base2(max(int(n - 1).bit_length(), 0))[:n])
            else:
                rng.standard_normal(out=rows)
                if normals == "antithetic":
                    antithetic(rows, mine)
            rng.shuffle(order[j * n : (j + 1) * n])
            k += m.n_components
        return counts, z, order

    return random_numbers


SCHEMES = {
    "independent (version 2)": scheme(False, "plain"),
    "stratified counts": scheme(True, "plain"),
    "antithetic normals": scheme(False, "antithetic"),
    "stratified + antithetic": scheme(True, "antithetic"),
    "stratified + scrambled Sobol": scheme(True, "scrambled"),
    "stratified + shifted Sobol (version 3)": LIBRARY,
}


def fresh(mixtures: list[Mixture]) -> list[Mixture]:
    """Copies without cached sample sets."""
    return [Mixture(m.weights, m.means, m.covariances, transform=m.transform) for m in mixtures]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--seeds", type=int, default=6)
    parser.add_argument("--reference", type=int, default=40_000)
    parser.add_argument("--ns", action="store_true", help="the hard set's N-S per seed")
    args = parser.parse_args()
    lib = Library480(args.data)
    mixtures, _ = models(lib.paths, "gmm", {})
    hard = np.flatnonzero(lib.sets == 1)
    picked = np.random.default_rng(1).choice(hard, 24, replace=False)
    scenes = np.unique(lib.labels[hard])[:6]
    chosen = [mixtures[i] for i in np.union1d(picked, hard[np.isin(lib.labels[hard], scenes)])]
    js = JensenShannon()
    views = {
        "model": ([convolved_view(m, js.spread) for m in chosen], js.n_samples),
        "palette": (colour_views(chosen), js.palette_samples),
        "luma": ([luma_view(m, js.luma_scale, js.luma_spread) for m in chosen], js.luma_samples),
    }
    upper = np.triu_indices(len(chosen), 1)
    shares = colour_shares(chosen, chosen, js.tone)[upper]

    def distance(found: dict) -> np.ndarray:
        colour = np.sqrt(found["model"]) + js.colour_weight * np.sqrt(found["palette"])
        return shares * colour + (1 - shares) * js.luma_gain * np.sqrt(found["luma"])

    print(
        f"{len(chosen)} hard-set models, {len(upper[0])} pairs, {args.seeds} seeds, "
        f"reference {args.reference} independent samples per view"
    )
    divergence._random_numbers = SCHEMES["independent (version 2)"]
    start = time.perf_counter()
    reference = {
        name: js_cross(fresh(v), fresh(v), args.reference, 10_000)[upper]
        for name, (v, _) in views.items()
    }
    print(f"reference: {time.perf_counter() - start:.0f} s\n")
    print(
        "| scheme | model √JS RMSE | palette √JS RMSE | luma √JS RMSE | distance RMSE "
        "| mean JS error (model / palette / luma) |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for label, random_numbers in SCHEMES.items():
        divergence._random_numbers = random_numbers
        errors = {name: [] for name in views}
        roots = {name: [] for name in views}
        distances = []
        for seed in range(args.seeds):
            found = {}
            for name, (v, n) in views.items():
                copies = fresh(v)
                found[name] = js_cross(copies, copies, n, seed)[upper]
                errors[name].append(found[name] - reference[name])
                roots[name].append(np.sqrt(found[name]) - np.sqrt(reference[name]))
            distances.append(distance(found) - distance(reference))
        rmse = [np.sqrt(np.mean(np.square(roots[name]))) for name in views]
        rmse.append(np.sqrt(np.mean(np.square(distances))))
        bias = " / ".join(f"{np.mean(errors[name]):+.5f}" for name in views)
        print(f"| {label} | " + " | ".join(f"{x:.5f}" for x in rmse) + f" | {bias} |")
    divergence._random_numbers = LIBRARY
    if args.ns:
        hard_scores(lib, mixtures, args.seeds)


def hard_scores(lib: Library480, mixtures: list[Mixture], seeds: int) -> None:
    """The hard set's N-S of the default per seed and scheme, and with 8× the samples."""
    hard = np.flatnonzero(lib.sets == 1)
    chosen, labels = [mixtures[i] for i in hard], lib.labels[hard]
    js = JensenShannon()
    print(
        "\n| hard-set N-S of the default | "
        + " | ".join(f"seed {s}" for s in range(seeds))
        + " | mean |"
    )
    print("| --- " * (seeds + 2) + "|")
    for label in ("independent (version 2)", "stratified + shifted Sobol (version 3)"):
        divergence._random_numbers = SCHEMES[label]
        found = [
            ns_score(replace(js, seed=s).pairwise(fresh(chosen)), labels) for s in range(seeds)
        ]
        print(
            f"| {label} | " + " | ".join(f"{x:.3f}" for x in found) + f" | {np.mean(found):.3f} |"
        )
    divergence._random_numbers = LIBRARY
    many = replace(
        js,
        n_samples=8 * js.n_samples,
        palette_samples=8 * js.palette_samples,
        luma_samples=8 * js.luma_samples,
    )
    print(
        f"\nversion 3 with 8× the samples, seed 0: hard N-S "
        f"{ns_score(many.pairwise(fresh(chosen)), labels):.3f}"
    )


if __name__ == "__main__":
    main()
