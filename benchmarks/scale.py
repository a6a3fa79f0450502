"""Benchmark of the sparse index at 10k-100k photos (issue 9), through the library.

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

What runs
---------
The models of 99 % of the photos are written to a fresh library store (SQLite, in
``benchmarks/out/scale-N``) as if added, then :meth:`leitmotiv.library.Library.build_index`
builds the sparse index exactly as ``leitmotiv build-index --index sparse`` does: candidate
graph (embedding, search, re-ranking, stored lists), exact divergence on the candidate
pairs (stored), sparse affinity propagation.  Then the last 1 % are added and indexed
incrementally.  The figures are the report's: step times and the peak resident memory
of the process (``ru_maxrss``).

Ingest is measured, not derived: ``make_library.py`` writes ``--ingest-sample`` real
320-px photo files and ``Library.add`` ingests them on all cores; N photos take N over
that rate.

Baselines, measured in the same process: the dense index (all pairs of a 400-photo
sample timed, scaled to N (N - 1) / 2 pairs) and, for the incremental step, the full
build.  Recall@10 compares, for ``--queries`` sampled photos, what ``Library.similar``
returns as the 10 nearest with the exact 10 nearest by the same divergence over all N
photos.

Usage::

    python benchmarks/scale.py [--sizes 10000 30000 100000] [--queries 500 150 100] [--k 50]
                               [--copy-before-increment DIR]
    python benchmarks/scale.py --index-existing FOLDER [--full-seconds S] [--breakdown]
    python benchmarks/scale.py --recall-existing FOLDER [--queries 500] [--recall-batch 100]

The second form only indexes an existing library, e.g. the copy that
``--copy-before-increment`` takes after the full build (it holds the 1 % added photos,
not yet indexed): the incremental step can then be re-measured in a fresh process, as a
user's ``leitmotiv build-index`` after adding photos runs, without another full build;
``--breakdown`` adds the wall, user and system time of its main steps.
The third measures recall alone on an indexed library, printing it after each 100
queries (the exact search dominates: at 100,000 photos about 11 s a query on 2 cores).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import pickle
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import make_library  # noqa: E402
from _clock import cpu_times  # noqa: E402
from make_library import CROP, EXPOSURE, MIRROR_PROBABILITY, WHITE_BALANCE, sources  # noqa: E402

from leitmotiv import candidates, index, pair_chunks, sparse_index, store  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.jensen_shannon import JensenShannon  # noqa: E402
from leitmotiv.library import Library, peak_memory_mib  # noqa: E402
from leitmotiv.mixture import Mixture  # noqa: E402

OUT = REPO / "benchmarks" / "out"
CACHE = OUT / "scale_models.pkl"
LONG_SIDE = 320


def fitted_models() -> list[Mixture]:
    """Models of the shared photos at 320 px (fitted once, then cached)."""
    if CACHE.exists():
        with open(CACHE, "rb") as fh:
            return [Mixture.from_bytes(b) for b in pickle.load(fh)["models"]]
    from leitmotiv.features import GmmFeaturizer
    from leitmotiv.imaging import decode

    featurizer = GmmFeaturizer()
    models = [featurizer.model(decode(path, target_long_side=LONG_SIDE).rgb) for path in sources()]
    OUT.mkdir(parents=True, exist_ok=True)
    with open(CACHE, "wb") as fh:
        pickle.dump({"models": [m.to_bytes() for m in models]}, fh)
    return models


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


def _derivation(i: int, n_bases: int, seed: int) -> tuple[int, np.random.Generator]:
    """Which base model photo ``i`` derives from, and the generator of its edit."""
    rng = np.random.default_rng([seed, i])
    return int(rng.integers(n_bases)), rng


def base_of(i: int, n_bases: int, seed: int = 0) -> int:
    """Index of the base model (shared photo) that derived photo ``i`` is an edit of."""
    return _derivation(i, n_bases, seed)[0]


def derived_range(bases: list[Mixture], start: int, stop: int, seed: int = 0) -> list[Mixture]:
    """Models ``start .. stop - 1`` of a derived library; model ``i`` depends only on
    ``(seed, i)``."""
    out = []
    for i in range(start, stop):
        base, rng = _derivation(i, len(bases), seed)
        out.append(derived(bases[base], rng))
    return out


def populate(
    lib: Library,
    bases: list[Mixture],
    start: int,
    stop: int,
    seed: int,
    extra: Callable[[int], dict] | None = None,
) -> None:
    """Store photos ``start .. stop - 1`` with their derived models, as if added (there
    are no files: the index is what is measured); ``extra(i)`` adds columns to photo
    ``i``'s row (e.g. a capture date and a thumbnail)."""
    featurizer_id = store.key_id(lib.featurizer.key())
    for s in range(start, stop, 1000):
        models = derived_range(bases, s, min(s + 1000, stop), seed)
        photos = [
            {
                "path": f"derived/{i:07d}.jpg",
                "sha256": f"{i:064x}",
                "size": 0,
                "mtime": 0.0,
                "width": m.transform.width,
                "height": m.transform.height,
                **(extra(i) if extra is not None else {}),
            }
            for i, m in zip(range(s, s + len(models)), models, strict=True)
        ]
        with lib.db.atomic():
            store.Photo.insert_many(photos).execute()
            ids = [
                p
                for (p,) in store.Photo.select(store.Photo.id)
                .where(store.Photo.path.in_([p["path"] for p in photos]))
                .order_by(store.Photo.path)
                .tuples()
            ]
            store.Model.insert_many(
                [
                    {
                        "photo": pid,
                        "featurizer": featurizer_id,
                        "mixture": m.to_bytes(),
                        "n_components": m.n_components,
                        "n_iter": 0,
                        "seconds": 0.0,
                    }
                    for pid, m in zip(ids, models, strict=True)
                ]
            ).execute()


def dense_seconds_per_pair(lib: Library, bases: list[Mixture], seed: int) -> float:
    """Seconds per pair of the dense index's all-pairs computation (400 photos)."""
    sample = derived_range(bases, 0, 400, seed)
    t = time.perf_counter()
    lib.divergence.pairwise(sample)
    return (time.perf_counter() - t) / (400 * 399 / 2)


def ingest_rate(count: int) -> float:
    """Photos per second of ``Library.add`` (all cores) on ``count`` generated photos:
    320-px edits of the shared photos written by ``make_library.py``."""
    photos = OUT / "scale-photos"
    make_library.main([str(photos), "--count", str(count)])
    folder = OUT / "scale-ingest"
    shutil.rmtree(folder, ignore_errors=True)
    with Library.open(Settings(library=folder)) as lib:
        files = sorted(photos.glob("lib_*.jpg"))[:count]
        report = lib.add(files, progress=False)
    shutil.rmtree(folder, ignore_errors=True)
    if report.failed:
        raise SystemExit(f"{report.failed} generated photos failed to ingest")
    return report.added / report.seconds


def library_models(lib: Library) -> tuple[np.ndarray, list]:
    """Ids (ascending) and models of the photos with a model of ``lib``'s featurizer."""
    with store.bound(lib.context.db):  # the key's lookup needs the store bound
        featurizer_id = store.key_id(lib.featurizer.key())
    return index.indexed_models(lib.context, featurizer_id)


def fresh_copies(mixtures: list) -> list:
    """Copies of ``mixtures`` with the same values: what a divergence caches per model
    (views, sample sets) for a copy goes when the copy does."""
    return [Mixture.from_bytes(m.to_bytes()) for m in mixtures]


def exact_top10(lib: Library, ids: np.ndarray, mixtures: list, queries: np.ndarray) -> np.ndarray:
    """Positions of the exact 10 nearest photos of each query position, over all photos
    (the divergence against every photo, 4096 columns at a time), shape (Q, 10).

    Each chunk's columns are fresh copies of their models (the same values: a model's
    sample sets are seeded by its parameters), so the views and sample sets the
    divergence caches per model go with the chunk: kept for 100,000 models they would
    hold about 20 GiB.
    """
    exact = np.empty((len(queries), len(ids)))
    rows = [mixtures[q] for q in queries]
    for s in range(0, len(ids), 4096):
        cols = fresh_copies(mixtures[s : s + 4096])
        exact[:, s : s + len(cols)] = lib.divergence.cross(rows, cols)
    exact[np.arange(len(queries)), queries] = np.inf
    return np.argsort(exact, axis=1, kind="stable")[:, :10]


def recall_at_10(
    lib: Library, n_queries: int, batch: int = 100, report=None
) -> tuple[float, float]:
    """Recall of ``Library.similar``'s top 10 against the exact top 10 over all photos,
    and the seconds the exact search took.

    The queries are the first ``n_queries`` of a random order of the photos, taken
    ``batch`` at a time, so every batch done so far is itself a random sample:
    ``report(done, recall, seconds)`` is called after each.
    """
    ids, mixtures = library_models(lib)
    order = np.random.default_rng(1).permutation(len(ids))[: min(n_queries, len(ids))]
    hits, seconds = [], 0.0
    for first in range(0, len(order), batch):
        queries = order[first : first + batch]
        t = time.perf_counter()
        top = exact_top10(lib, ids, mixtures, queries)
        seconds += time.perf_counter() - t
        for q, true in zip(queries, top, strict=True):
            true_top = set(ids[true].tolist())
            pruned = {p.id for p, _ in lib.similar(int(ids[q]), top=10)}
            hits.append(len(true_top & pruned) / 10)
        if report is not None:
            report(len(hits), float(np.mean(hits)), seconds)
    return float(np.mean(hits)), seconds


def recall_existing(args) -> int:
    """Recall@10 of an indexed library, printed after each batch of queries."""
    if not (args.recall_existing / "leitmotiv.db").exists():
        raise SystemExit(f"{args.recall_existing} holds no library (no leitmotiv.db)")
    settings = Settings(library=args.recall_existing, index="sparse", neighbours=args.k)

    def report(done: int, recall: float, seconds: float) -> None:
        print(f"recall@10 {recall:.3f} over {done} queries (exact JS: {seconds:.0f} s)", flush=True)

    with Library.open(settings) as lib:
        recall_at_10(lib, args.queries[0], batch=args.recall_batch, report=report)
    return 0


def run(n: int, bases, rate: float, args, queries: int) -> None:
    n_old = n - max(1, n // 100)  # the last 1 % are added incrementally afterwards
    folder = OUT / f"scale-{n}"
    shutil.rmtree(folder, ignore_errors=True)
    settings = Settings(library=folder, index="sparse", neighbours=args.k)
    print(
        f"\n== N = {n:,} photos (k = {args.k}, wide = {sparse_index.wide_for(args.k)}) ==",
        flush=True,
    )
    with Library.open(settings) as lib, store.bound(lib.db):
        t = time.perf_counter()
        populate(lib, bases, 0, n_old, args.seed)
        print(f"store {n_old:,} derived models {time.perf_counter() - t:8.1f} s", flush=True)
    with Library.open(settings) as lib:
        full = lib.build_index(progress=args.progress)
        print(
            f"candidate graph      {full.candidate_seconds:8.1f} s\n"
            f"JS on candidates     {full.distance_seconds:8.1f} s  ({full.pairs_computed:,} pairs, "
            f"{full.pairs_computed / n_old:.1f} per photo)\n"
            f"sparse clustering    {full.cluster_seconds:8.1f} s  ({full.n_clusters:,} clusters)\n"
            f"index total          {full.seconds:8.1f} s  (fits excluded)\n"
            f"peak resident memory {full.peak_memory_mib:8.0f} MiB",
            flush=True,
        )
        with store.bound(lib.db):
            populate(lib, bases, n_old, n, args.seed)
        if args.copy_before_increment:
            shutil.rmtree(args.copy_before_increment, ignore_errors=True)
            shutil.copytree(folder, args.copy_before_increment)
        inc = lib.build_index(progress=args.progress)
        print(
            f"incremental +{n - n_old:,}    {inc.seconds:8.1f} s  = "
            f"{inc.seconds / full.seconds:.3f} x "
            f"the full build ({inc.pairs_computed:,} new pairs, {inc.changed_lists:,} old "
            f"lists changed)",
            flush=True,
        )
        per_pair = dense_seconds_per_pair(lib, bases, args.seed)
        dense = per_pair * n * (n - 1) / 2
        print(
            f"dense baseline       {dense:8.0f} s  (all {n * (n - 1) // 2:,} pairs at "
            f"{per_pair * 1e3:.3f} ms, measured on 400) = "
            f"{dense / (full.seconds + inc.seconds):.0f} x the sparse index",
            flush=True,
        )
        if queries:  # 0 skips the exact reference (e.g. when only the times are wanted)
            recall, seconds = recall_at_10(lib, queries)
            print(
                f"recall@10            {recall:8.3f}    ({queries} queries; exact JS "
                f"against all {n:,}: {seconds:.0f} s)",
                flush=True,
            )
    print(
        f"ingest               {n / rate:8.0f} s  ({rate:.1f} photos/s measured on "
        f"{args.ingest_sample} generated {LONG_SIDE}-px photos, {os.cpu_count()} cores)\n"
        f"peak resident memory {peak_memory_mib():8.0f} MiB (whole run, with the exact search)",
        flush=True,
    )
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


#: Steps of an index update timed by ``--breakdown``: (owner, attribute, what it does).
#: The exact pairs' chunks include drawing sample sets (the warm step, timed inside them
#: too), and the cheap estimate includes drawing the added photos' cheap sets.
_STEPS = (
    (index, "indexed_models", "load the models of all photos"),
    (sparse_index, "_stored", "read the stored lists and embeddings"),
    (candidates, "candidate_pairs", "embedding search of the added photos"),
    (sparse_index, "_restore_samples", "read back old photos' kept cheap sample sets"),
    (candidates, "_estimate", "cheap estimate of the added photos' pairs"),
    (sparse_index, "_write", "write the lists"),
    (index, "_stored_edges", "read the stored distances"),
    (pair_chunks, "compute_chunk", "exact pairs (with drawing the sets below)"),
    (JensenShannon, "warm", "  draw sample sets (cheap and exact)"),
    (store, "save_distances", "write the distances"),
)


@contextlib.contextmanager
def _timed_steps():
    """Time :data:`_STEPS` while the block runs: wall, user and system seconds each."""
    totals = {step: np.zeros(4) for step in _STEPS}  # wall, user, sys, calls
    originals = []
    for step in _STEPS:
        owner, name, _ = step
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def timed(*a, _original=original, _total=totals[step], **kw):
            spent: dict[str, float] = {}
            try:
                with cpu_times() as spent:
                    return _original(*a, **kw)
            finally:
                _total += (spent["wall"], spent["user"], spent["system"], 1)

        setattr(owner, name, timed)
    try:
        yield totals
    finally:
        for owner, name, original in originals:
            setattr(owner, name, original)


def index_existing(args) -> int:
    """Index what an existing library lacks, e.g. the 1 % added after a full build."""
    settings = Settings(library=args.index_existing, index="sparse", neighbours=args.k)
    with Library.open(settings) as lib:
        with store.bound(lib.db):
            # A run written before schema 3 was a full clustering of its photos.
            store.ClusterRun.update(base_photos=store.ClusterRun.n_photos).where(
                store.ClusterRun.base_photos.is_null()
            ).execute()
        with _timed_steps() if args.breakdown else contextlib.nullcontext() as steps:
            report = lib.build_index(progress=args.progress)
    ratio = (
        f" = {report.seconds / args.full_seconds:.3f} x the full build" if args.full_seconds else ""
    )
    print(
        f"indexed {report.n_photos:,} photos ({report.new_lists:,} new) in "
        f"{report.seconds:.1f} s{ratio}: candidates {report.candidate_seconds:.1f} s, "
        f"{report.pairs_computed:,} pairs {report.distance_seconds:.1f} s, clustering "
        f"({report.clustering}) {report.cluster_seconds:.1f} s, {report.changed_lists:,} old "
        f"lists changed, peak memory {report.peak_memory_mib:.0f} MiB",
        flush=True,
    )
    if steps is not None:
        print(f"{'step':47s} {'wall s':>7s} {'user s':>7s} {'sys s':>7s} {'calls':>6s}")
        for (_, _, what), (wall, user, system, calls) in steps.items():
            print(f"{what:47s} {wall:7.1f} {user:7.1f} {system:7.1f} {calls:6.0f}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000])
    parser.add_argument("--k", type=int, default=50, help="candidates per photo")
    parser.add_argument(
        "--queries",
        type=int,
        nargs="+",
        default=[500],
        help="recall queries, one value per size (the last one repeats)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--keep", action="store_true", help="keep the library folder")
    parser.add_argument(
        "--index-existing",
        type=Path,
        help="only run build-index on this library folder (e.g. a copy of a scale-N store "
        "taken after its full build, with 1 %% more photos added) and print its report",
    )
    parser.add_argument(
        "--copy-before-increment",
        type=Path,
        help="copy the library here after the full build, with the last 1 %% added but "
        "not yet indexed (to re-measure the incremental step with --index-existing)",
    )
    parser.add_argument(
        "--recall-existing",
        type=Path,
        help="only measure recall@10 (--queries) on this indexed library folder, "
        "printing it after each --recall-batch queries",
    )
    parser.add_argument(
        "--recall-batch",
        type=int,
        default=100,
        help="with --recall-existing: queries per printed figure (default 100)",
    )
    parser.add_argument(
        "--full-seconds", type=float, help="with --index-existing: the full build's time"
    )
    parser.add_argument(
        "--breakdown",
        action="store_true",
        help="with --index-existing: also print the time of each step (wall, user, system)",
    )
    parser.add_argument(
        "--ingest-sample",
        type=int,
        default=400,
        help="generated photos to measure ingest on",
    )
    args = parser.parse_args(argv)
    if args.index_existing:
        return index_existing(args)
    if args.recall_existing:
        return recall_existing(args)
    t = time.perf_counter()
    bases = fitted_models()
    print(f"{len(bases)} fitted base models ({time.perf_counter() - t:.1f} s to load or fit)")
    rate = ingest_rate(args.ingest_sample)
    for i, n in enumerate(args.sizes):
        run(n, bases, rate, args, args.queries[min(i, len(args.queries) - 1)])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
