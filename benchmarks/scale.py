"""Benchmark of the scalable index path at 10k-100k photos (issue 9).

Models
------
Fitting 100,000 photos is not what this benchmark measures (fits are stored once and
excluded from the index goal), so the models are *derived*:

1. The shared photos (``<repo>/../shared/data/photos``) are decoded at 320 px on the
   long side and fitted once with the default featurizer; the models and the measured
   fit time are cached in ``benchmarks/out/scale_models.pkl`` (git-ignored).  The fit
   time gives the extrapolated ingest time below.
2. Model ``i`` of a library of size N is a random edit of one of them, of the same
   kinds and ranges as ``benchmarks/make_library.py`` makes of the photo files, applied
   to the model instead of the pixels (no refit), with a generator seeded by
   ``(seed, i)``:

   - crop and resize: a crop of 70-100 % of each side is mapped back to the
     "common" frame, ``x' = (x L + W/2 - left - cw/2) / max(cw, ch)`` (likewise y),
     an affine map of the position part of the means and covariances
     (``Mixture.transformed(A, b, update_transform=False)``).  The mass of the cropped-
     away parts stays in the model, outside the frame -- a refit would drop it;
   - mirror, half of the time: ``x -> -x``;
   - colour shift: the exposure and white-balance gains become shifts of the Lab colour
     means, to first order at mid-grey (``f(Y) = Y^(1/3)``: ``dL = 116 df(Y)``,
     ``da = 500 (df(R) - df(G))``, ``db = 200 (df(G) - df(B))`` with ``df(g) =
     0.5 (g^(1/3) - 1)``), in model units (1/80);
   - weight jitter: each weight times ``exp(N(0, 0.1^2))``, renormalized.

Steps timed
-----------
embedding (:func:`leitmotiv.candidates.embed`); candidate graph: exact brute-force
search of ``--wide`` embedding neighbours, then re-ranking by the divergence at 128
Monte Carlo samples down to ``--k`` (:func:`~leitmotiv.candidates.refine`); exact
divergence on the candidate pairs (:func:`~leitmotiv.candidates.sparse_distances`);
sparse affinity propagation; an incremental add of 1 % more photos
(:func:`~leitmotiv.candidates.candidates_for`, then
:func:`~leitmotiv.candidates.refine_added`, which estimates only the pairs with an added
photo, and the exact divergence of the pairs not computed before).  Peak resident
memory is ``ru_maxrss``.  Recall@10 compares, for ``--queries`` sampled photos, the
pruned top-10 (the 10 nearest by exact divergence among the photo's ``k``
candidates) with the exact top-10 over all N photos.

Usage::

    python benchmarks/scale.py [--sizes 10000 30000 100000] [--queries 500]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import pickle
import resource
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

from make_library import CROP, EXPOSURE, MIRROR_PROBABILITY, WHITE_BALANCE, sources  # noqa: E402

from leitmotiv import candidates  # noqa: E402
from leitmotiv.mixture import Mixture  # noqa: E402
from leitmotiv.photo_distance import JensenShannon  # noqa: E402
from leitmotiv.sparse_cluster import SparseAffinityPropagation  # noqa: E402

OUT = REPO / "benchmarks" / "out"
CACHE = OUT / "scale_models.pkl"
LONG_SIDE = 320


def fitted_models() -> tuple[list[Mixture], float]:
    """Models of the shared photos (cached) and the seconds one fit took on average."""
    if CACHE.exists():
        with open(CACHE, "rb") as fh:
            data = pickle.load(fh)
        return [Mixture.from_bytes(b) for b in data["models"]], data["seconds_per_fit"]
    from leitmotiv.features import GmmFeaturizer
    from leitmotiv.imaging import decode

    featurizer = GmmFeaturizer()
    paths = sources()
    start = time.perf_counter()
    models = []
    for i, path in enumerate(paths):
        models.append(featurizer.model(decode(path, target_long_side=LONG_SIDE).rgb))
        if (i + 1) % 20 == 0:
            print(f"  fitted {i + 1}/{len(paths)}", file=sys.stderr, flush=True)
    per_fit = (time.perf_counter() - start) / len(paths)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(CACHE, "wb") as fh:
        pickle.dump({"models": [m.to_bytes() for m in models], "seconds_per_fit": per_fit}, fh)
    return models, per_fit


def _df(gain: np.ndarray) -> np.ndarray:
    return 0.5 * (np.cbrt(gain) - 1.0)


def derived(base: Mixture, rng: np.random.Generator) -> Mixture:
    """One random edit of a photo model, as make_library.py edits the photo."""
    t = base.transform
    width, height = t.width, t.height
    long_side = max(width, height)
    fx, fy = rng.uniform(*CROP, size=2)
    cw, ch = width * fx, height * fy
    left, top = rng.uniform(0, width - cw), rng.uniform(0, height - ch)
    new_long = max(cw, ch)
    A = np.eye(5)
    b = np.zeros(5)
    A[0, 0] = A[1, 1] = long_side / new_long
    b[0] = (width / 2 - left - cw / 2) / new_long
    b[1] = (height / 2 - top - ch / 2) / new_long
    gains = rng.uniform(*EXPOSURE) * rng.uniform(1 - WHITE_BALANCE, 1 + WHITE_BALANCE, 3)
    r, g, bl = _df(gains)
    b[2:] = np.array([116 * g, 500 * (r - g), 200 * (g - bl)]) / 80.0
    if rng.random() < MIRROR_PROBABILITY:
        A[0] = -A[0]
        b[0] = -b[0]
    out = base.transformed(A, b, update_transform=False)
    w = out.weights * np.exp(rng.normal(0.0, 0.1, out.n_components))
    return dataclasses.replace(out, weights=w / w.sum())


def library(bases: list[Mixture], n: int, seed: int = 0) -> list[Mixture]:
    """N derived models; model ``i`` depends only on ``(seed, i)``."""
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, i])
        out.append(derived(bases[int(rng.integers(len(bases)))], rng))
    return out


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run(n: int, bases, per_fit, args) -> None:
    js = JensenShannon()
    print(f"\n== N = {n:,} photos (k = {args.k}, wide = {args.wide}) ==", flush=True)
    t = time.perf_counter()
    models = library(bases, n, args.seed)
    print(f"derive models        {time.perf_counter() - t:8.1f} s", flush=True)
    n_old = n - max(1, n // 100)  # the last 1 % are added incrementally afterwards
    t = time.perf_counter()
    emb = candidates.embed(models)
    t_embed = time.perf_counter() - t
    print(f"embedding            {t_embed:8.1f} s  ({emb.shape[1]} floats/photo)", flush=True)
    t = time.perf_counter()
    wide, wide_d = candidates.candidate_pairs(emb[:n_old], args.wide)
    t_search = time.perf_counter() - t
    t = time.perf_counter()
    idx, est = candidates.refine(models[:n_old], wide, args.k, js)
    t_refine = time.perf_counter() - t
    print(
        f"candidate graph      {t_search + t_refine:8.1f} s  (search {t_search:.1f} s, "
        f"re-rank {t_refine:.1f} s)",
        flush=True,
    )
    t = time.perf_counter()
    rows, cols, values = candidates.sparse_distances(models[:n_old], idx, js)
    t_js = time.perf_counter() - t
    print(f"JS on candidates     {t_js:8.1f} s  ({len(rows):,} pairs)", flush=True)
    t = time.perf_counter()
    clustering = SparseAffinityPropagation().cluster_graph(n_old, rows, cols, values)
    t_cluster = time.perf_counter() - t
    print(
        f"sparse clustering    {t_cluster:8.1f} s  ({len(clustering.exemplars):,} clusters, "
        "preference = median edge)",
        flush=True,
    )
    t = time.perf_counter()
    preference = -candidates.sample_median_distance(models[:n_old], js)
    sampled = SparseAffinityPropagation(preference=preference).cluster_graph(
        n_old, rows, cols, values
    )
    print(
        f"sparse clustering    {time.perf_counter() - t:8.1f} s  ({len(sampled.exemplars):,} "
        f"clusters, preference = -median of 2000 random pairs = {preference:.3f})",
        flush=True,
    )
    # Incremental: the last 1 % arrive.
    t = time.perf_counter()
    all_wide, _, _ = candidates.candidates_for(emb[n_old:], emb[:n_old], wide, wide_d, args.wide)
    table, _, changed = candidates.refine_added(models, all_wide, idx, est, n_old, args.k, js)
    # Exact distances only for pairs not computed before: new rows and changed lists.
    redo = np.concatenate([np.arange(n_old, n), changed])
    only = np.full_like(table, -1)
    only[redo] = table[redo]
    old_keys = np.minimum(rows, cols) * n + np.maximum(rows, cols)
    need_r, need_c = candidates.unique_pairs(only)
    need_keys = np.minimum(need_r, need_c) * n + np.maximum(need_r, need_c)
    fresh = ~np.isin(need_keys, old_keys)
    add = np.stack([need_r[fresh], need_c[fresh]], axis=1)
    candidates.sparse_distances(models, (add[:, 0], add[:, 1]), js)
    t_inc = time.perf_counter() - t
    full = t_embed * n_old / n + t_search + t_refine + t_js
    print(
        f"incremental +{n - n_old:,}    {t_inc:8.1f} s  ({100 * t_inc / full:.1f} % of the "
        f"build; {len(changed):,} old lists changed, {len(add):,} new pairs)",
        flush=True,
    )
    print(f"peak resident memory {peak_mib():8.0f} MiB", flush=True)
    # Recall@10 of the pruned search against the exact divergence over all photos.
    rng = np.random.default_rng(1)
    queries = np.sort(rng.choice(n_old, size=min(args.queries, n_old), replace=False))
    t = time.perf_counter()
    hits = []
    for q in queries:
        exact = js.cross([models[q]], models[:n_old])[0]
        exact[q] = np.inf
        true_top = np.argsort(exact, kind="stable")[:10]
        cand = idx[q][idx[q] >= 0]
        pruned = cand[np.argsort(exact[cand], kind="stable")[:10]]
        hits.append(len(set(true_top.tolist()) & set(pruned.tolist())) / 10)
    print(
        f"recall@10            {np.mean(hits):8.3f}    ({len(queries)} queries, exact JS "
        f"against all {n_old:,}: {time.perf_counter() - t:.0f} s)",
        flush=True,
    )
    cores = os.cpu_count() or 1
    ingest = per_fit * n / cores
    index = t_embed + t_search + t_refine + t_js + t_cluster
    print(
        f"ingest (extrapolated) {ingest:7.0f} s  ({per_fit:.2f} s per fit at {LONG_SIDE} px, "
        f"over {cores} cores)\nindex total          {index:8.1f} s (fits excluded)",
        flush=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--k", type=int, default=30)
    parser.add_argument("--wide", type=int, default=100)
    parser.add_argument("--queries", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    t = time.perf_counter()
    bases, per_fit = fitted_models()
    print(f"{len(bases)} fitted base models ({time.perf_counter() - t:.1f} s to load or fit)")
    for n in args.sizes:
        run(n, bases, per_fit, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
