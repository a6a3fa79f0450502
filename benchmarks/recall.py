"""Recall@10 of the sparse index for each plugin combination, on libraries of real files.

For each size ``N``, the first ``N`` photos of a generated library
(``benchmarks/make_library.py``; ``--kind diverse`` by default: random parts of the
shared photos, see there) are written as 320-px JPEG files, and for each featurizer:

1. the first 99 % are ingested through :meth:`leitmotiv.library.Library.add` (all
   cores), then indexed with each divergence by
   :meth:`~leitmotiv.library.Library.build_index` exactly as ``leitmotiv build-index``
   does (``index = "auto"``: sparse above 2,000 photos);
2. the last 1 % are added (``Library.add``, as ``leitmotiv add-directory``) and each
   divergence's index is brought up to date (``build_index``): the cost of +1 %, as a
   fraction of the build (the index alone, and counting the fits: add plus build);
3. recall@10: for ``--queries`` random photos, the share of the exact 10 nearest (by
   the same divergence, against all ``N`` photos) that ``Library.similar`` returns
   among its 10 (``benchmarks/scale.py``'s measure).  With ``--stages`` it also says
   where the misses are: the share of the exact top 10 among each query's ``wide``
   nearest embeddings, and among the ``k`` best of those by the cheap estimate (the
   index's ``wide`` and ``k``, and any others given as ``--widths WIDE:K ...``).

``--no-build`` ingests all ``N`` files and builds no index: it reports only where the
misses are, each query's list taken by the index's rule against every photo.  That
estimates the index's recall@10 at a fraction of the time (no candidate lists for the
other photos, no exact pairs), a little under it in every run so far (see
:func:`candidates_only`).  With ``--costs`` it also times one photo's candidate search
for each list width (:func:`width_costs`); ``--queries 0`` skips the recall.

Usage::

    python benchmarks/recall.py [--sizes 2500 10000] [--queries 300]
        [--featurizers gmm colour] [--divergences js cauchy-schwarz] [--kind diverse]
        [--stages [--widths 900:100 1200:100]] [--no-build [--costs]] [--keep]

The first-party plugins must be importable (installed, or ``plugins/<name>`` on
``PYTHONPATH``).  Files go to ``benchmarks/generated/`` and libraries to
``benchmarks/out/`` (both git-ignored); a library is ingested again unless ``--keep``
kept it from an earlier run (its ingest then counts at the rate of the +1 % added).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO))

import make_library  # noqa: E402
from scale import exact_top10, fresh_copies, library_models, recall_at_10  # noqa: E402

from leitmotiv import candidates, sparse_index  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.library import Library  # noqa: E402

OUT = REPO / "benchmarks" / "out"
GENERATED = REPO / "benchmarks" / "generated"


def embed_all(lib: Library, mixtures: list) -> np.ndarray:
    """The divergence's embedding of every model, 4,096 fresh copies at a time
    (:func:`scale.fresh_copies`), so the per-model caches of 100,000 photos never pile
    up."""
    return np.concatenate(
        [
            lib.divergence.embedding(fresh_copies(mixtures[s : s + 4096]))
            for s in range(0, len(mixtures), 4096)
        ]
    )


def stage_recall(
    lib: Library,
    n_queries: int,
    widths: list[tuple[int, int]] | None = None,
    batch: int = 50,
    report=None,
) -> list[tuple[int, int, float, float]]:
    """Share of the exact top 10 among the ``wide`` nearest embeddings of each query,
    and among the ``k`` best of those by the divergence's cheap estimate.

    The queries are :func:`scale.recall_at_10`'s, taken ``batch`` at a time; after each
    batch ``report(done, shares)`` gets the shares so far.  Models are embedded and
    estimated as fresh copies (:func:`embed_all`).

    Returns ``(wide, k, in_wide, in_k)`` for the index's own ``wide`` and ``k``, then
    for each of ``widths``.
    """
    ids, mixtures = library_models(lib)
    order = np.random.default_rng(1).permutation(len(ids))[: min(n_queries, len(ids))]
    k = lib.settings.neighbours
    widths = [(sparse_index.wide_for(k), k), *(widths or [])]
    emb = embed_all(lib, mixtures)
    maps = lib.divergence.embedding_maps(emb.shape[1])
    estimator = lib.divergence.estimator()
    in_wide = [[] for _ in widths]
    in_k = [[] for _ in widths]

    def shares() -> list[tuple[int, int, float, float]]:
        return [
            (wide, keep, float(np.mean(a)), float(np.mean(b)))
            for (wide, keep), a, b in zip(widths, in_wide, in_k, strict=True)
        ]

    for first in range(0, len(order), batch):
        queries = order[first : first + batch]
        top = exact_top10(lib, ids, mixtures, queries)
        for q, true in zip(queries, top, strict=True):
            # The index's own search (its maps and gaps) for each list width.
            lists = {
                wide: candidates.nearest(
                    emb[q : q + 1],
                    emb,
                    wide,
                    exclude=np.array([q]),
                    maps=maps,
                    gaps=lib.divergence.embedding_gaps,
                )[0][0]
                for wide in {wide for wide, _ in widths}
            }
            near = np.unique(np.concatenate(list(lists.values())))
            estimates = estimator.cross(
                [mixtures[q]], fresh_copies([mixtures[j] for j in near]), n_jobs=-1
            )[0]
            cheap = dict(zip(near.tolist(), estimates, strict=True))
            for i, (wide, keep) in enumerate(widths):
                listed = lists[wide]
                listed_estimates = np.array([cheap[j] for j in listed.tolist()])
                best = listed[np.lexsort((listed, listed_estimates))[:keep]]
                in_wide[i].append(len(set(true) & set(listed.tolist())) / 10)
                in_k[i].append(len(set(true) & set(best.tolist())) / 10)
        if report is not None:
            report(len(in_k[0]), shares())
    return shares()


def width_costs(lib: Library, widths: list[int], n_queries: int = 30, block: int = 256) -> None:
    """Print what one photo's candidate search costs for each list width: the
    embedding search (``block`` photos searched together against all, as the index
    searches) and the re-ranking of its list by the cheap estimate (``n_queries``
    photos, their sample sets drawn beforehand, as the index keeps them).  Each list is
    estimated twice: the first pass also moves the views it needs under the pairs'
    frame maps (not those an earlier width already moved), the second has them all,
    as late in a long build.
    """
    ids, mixtures = library_models(lib)
    queries = np.random.default_rng(2).permutation(len(ids))[:block]
    emb = embed_all(lib, mixtures)
    maps = lib.divergence.embedding_maps(emb.shape[1])
    lists, search = {}, {}
    for wide in widths:
        t = time.perf_counter()
        lists[wide] = candidates.nearest(
            emb[queries], emb, wide, exclude=queries, maps=maps, gaps=lib.divergence.embedding_gaps
        )[0]
        search[wide] = (time.perf_counter() - t) / len(queries)
    estimator = lib.divergence.estimator()
    timed = queries[:n_queries]
    near = np.unique(np.concatenate([lists[w][:n_queries].ravel() for w in widths] + [timed]))
    t = time.perf_counter()
    estimator.warm([mixtures[j] for j in near])
    print(f"sample sets of {len(near):,} photos drawn in {time.perf_counter() - t:.1f} s")
    for wide in widths:
        first = warm = 0.0
        for q, listed in zip(timed, lists[wide], strict=False):
            cols = [mixtures[j] for j in listed]
            t = time.perf_counter()
            estimator.cross([mixtures[q]], cols)
            first += time.perf_counter() - t
            t = time.perf_counter()
            estimator.cross([mixtures[q]], cols)
            warm += time.perf_counter() - t
        print(
            f"{lib.divergence.name:16s} a {wide}-wide list per photo: embedding search "
            f"{1e3 * search[wide]:.1f} ms, re-ranking {1e3 * first / len(timed):.1f} ms first, "
            f"{1e3 * warm / len(timed):.1f} ms with the moved views kept ({len(timed)} photos)",
            flush=True,
        )


def _print_stages(name: str, done: int, stages) -> None:
    """One line per list width: where the exact top 10 of ``done`` queries are."""
    for wide, keep, in_wide, in_k in stages:
        print(
            f"{name:16s} exact top 10 among the {wide} nearest embeddings {in_wide:.3f}, "
            f"among the {keep} best cheap estimates of those {in_k:.3f} ({done} queries)",
            flush=True,
        )


def _ingest(folder: Path, featurizer: str, files: list[Path], title: str, args):
    """Add ``files`` to the library in ``folder`` (made afresh unless ``--keep``) and
    print what it took; return the library's settings and the add report."""
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    base = Settings(library=folder, featurizer=featurizer, neighbours=args.k)
    with Library.open(base) as lib:
        added = lib.add(files, progress=args.progress)
    print(
        f"\n== {args.kind} library, featurizer {featurizer}, {title} ==\n"
        f"ingest of {len(files):,} files  {added.seconds:8.1f} s  ({added.added:,} added, "
        f"{added.failed} failed)",
        flush=True,
    )
    return base, added


def candidates_only(n: int, featurizer: str, args) -> None:
    """``--no-build``: ingest all ``n`` files, then only where the misses are.

    Each query's list is the index's rule applied against every photo, which is what a
    photo added last gets.  The built index also computes the pairs of every list that
    names the query, and its recall@10 was a little above the share among the ``k``
    best cheap estimates (0.967 against 0.964 at 10,000 photos, 0.955 against 0.949 at
    30,000, the same 150 queries).
    """
    files = make_library.generate(GENERATED / args.kind, n, args.seed, args.kind)
    folder = OUT / f"recall-{args.kind}-{featurizer}-{n}-unindexed"
    base, _ = _ingest(folder, featurizer, files, f"N = {n:,}, not indexed", args)
    for name in args.divergences:
        with Library.open(dataclasses.replace(base, divergence=name)) as lib:
            if args.queries:
                t = time.perf_counter()
                stage_recall(
                    lib,
                    args.queries,
                    args.widths,
                    report=lambda done, stages, name=name: _print_stages(name, done, stages),
                )
                print(f"{name:16s} {time.perf_counter() - t:.0f} s", flush=True)
            if args.costs:
                k = lib.settings.neighbours
                width_costs(lib, sorted({sparse_index.wide_for(k), *(w for w, _ in args.widths)}))
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def run(n: int, featurizer: str, args) -> None:
    files = make_library.generate(GENERATED / args.kind, n, args.seed, args.kind)
    n_old = n - max(1, n // 100)
    folder = OUT / f"recall-{args.kind}-{featurizer}-{n}"
    base, added = _ingest(folder, featurizer, files[:n_old], f"N = {n:,}", args)
    # A kept library was ingested by an earlier run: its ingest is then taken to cost
    # what adding the last 1 % costs per photo (measured below, in this run).
    ingest_seconds = added.seconds if added.added == n_old else None
    full = {}
    for name in args.divergences:
        with Library.open(dataclasses.replace(base, divergence=name)) as lib:
            full[name] = lib.build_index(progress=args.progress)
        print(
            f"{name:16s} build {full[name].seconds:8.1f} s  ({full[name].method}: "
            f"candidates {full[name].candidate_seconds:.1f} s, {full[name].pairs_computed:,} "
            f"pairs {full[name].distance_seconds:.1f} s, clustering "
            f"{full[name].cluster_seconds:.1f} s)",
            flush=True,
        )
    with Library.open(base) as lib:
        more = lib.add(files[n_old:], progress=args.progress)
    print(f"add-directory +1 % ({more.added} files)  {more.seconds:6.1f} s", flush=True)
    if ingest_seconds is None:
        ingest_seconds = more.seconds * n_old / max(more.added, 1)
        print(f"ingest of {n_old:,} files taken as {ingest_seconds:.0f} s (the +1 % rate)")
    for name in args.divergences:
        with Library.open(dataclasses.replace(base, divergence=name)) as lib:
            inc = lib.build_index(progress=args.progress)
            t = time.perf_counter()
            recall, _ = recall_at_10(lib, args.queries)
            seconds = time.perf_counter() - t
            stages = stage_recall(lib, args.queries, args.widths) if args.stages else None
        build = full[name].seconds
        print(
            f"{name:16s} +1 % build-index {inc.seconds:6.1f} s = {inc.seconds / build:.3f} of "
            f"the build; with the fits (add + build-index) "
            f"{(more.seconds + inc.seconds) / (ingest_seconds + build):.3f}\n"
            f"{name:16s} recall@10 {recall:.3f}  ({args.queries} queries, {seconds:.0f} s)",
            flush=True,
        )
        if stages:
            _print_stages(name, args.queries, stages)
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)


def _width(text: str) -> tuple[int, int]:
    """``WIDE:K`` of ``--widths`` as two positive integers."""
    wide, _, keep = text.partition(":")
    if not (wide.isdigit() and keep.isdigit() and 0 < int(keep) <= int(wide)):
        raise argparse.ArgumentTypeError(f"expected WIDE:K with 0 < K <= WIDE, got {text!r}")
    return int(wide), int(keep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--featurizers", nargs="+", default=["gmm", "colour"])
    parser.add_argument("--divergences", nargs="+", default=["js", "cauchy-schwarz"])
    parser.add_argument("--kind", choices=make_library.KINDS, default="diverse")
    parser.add_argument("--k", type=int, default=50, help="candidates per photo")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--stages", action="store_true", help="where the misses are")
    parser.add_argument(
        "--no-build",
        action="store_true",
        help="ingest all photos and say only where the misses are (no index built)",
    )
    parser.add_argument(
        "--costs",
        action="store_true",
        help="with --no-build: also what one photo's search costs for each list width",
    )
    parser.add_argument(
        "--widths",
        type=_width,
        nargs="+",
        default=[],
        metavar="WIDE:K",
        help="with --stages: also these list widths and candidates per photo",
    )
    parser.add_argument("--progress", action="store_true", help="progress bars")
    parser.add_argument("--keep", action="store_true", help="keep (and reuse) the libraries")
    args = parser.parse_args(argv)
    for n in args.sizes:
        for featurizer in args.featurizers:
            (candidates_only if args.no_build else run)(n, featurizer, args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
