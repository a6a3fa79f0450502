"""Search by an outside photo on a large sparse index: seconds per search after the fit.

Run ``python benchmarks/outside_search.py`` (options: ``--help``).

The library is built as ``benchmarks/scale.py`` builds its own: ``--photos`` models
derived by random crops, colour shifts and mirrors from the fitted models of
``--bases`` shared photos (``../shared/data/photos``), stored as if added, each with
the embedding and the cheap estimate's sample sets a sparse ``build-index`` stores
with its candidate lists (the lists themselves are not needed by the search and are
left empty).  The queries are other
shared photos, never in the library.

Printed: the fit of a query (decode excluded; the baseline, since every search pays
it), the first search of the process (which reads the stored embeddings), and p50 /
p99 / max of the following searches (embeddings kept in memory, as the web server
keeps them), with their ratio to the fit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_library import sources
from scale import derived_range, populate

from leitmotiv import outside, sparse_index, store
from leitmotiv.config import Settings
from leitmotiv.imaging import decode
from leitmotiv.ingest import FIT_LONG_SIDE
from leitmotiv.library import Library


def _store_embeddings(lib: Library, bases, n_photos: int, seed: int) -> None:
    """Store each photo's embedding under the search key the library looks up."""
    k = lib.settings.neighbours
    params = sparse_index.SearchParameters(k=k, wide=sparse_index.wide_for(k))
    search_id = store.search_key_id(lib.db, params.key(lib.divergence))
    featurizer_id = lib.context.key_ids()[0]
    cheap = lib.divergence.estimator()
    with store.bound(lib.db):
        ids = [p for (p,) in store.Photo.select(store.Photo.id).order_by(store.Photo.id).tuples()]
        for s in range(0, n_photos, 1000):
            models = derived_range(bases, s, min(s + 1000, n_photos), seed)
            emb = lib.divergence.embedding(models)
            cheap.warm(models)
            samples = cheap.dump_prepared(models)
            rows = [
                (
                    ids[s + i],
                    featurizer_id,
                    search_id,
                    emb[i].astype("<f4").tobytes(),
                    b"",
                    samples[i],
                )
                for i in range(len(models))
            ]
            n = store.Neighbours
            fields = [n.photo, n.featurizer, n.search, n.embedding, n.candidates, n.samples]
            with lib.db.atomic():
                store.insert_rows(n, fields, rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--bases", type=int, default=16)
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--top", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    paths = sources()
    with tempfile.TemporaryDirectory() as tmp:
        lib = Library.open(Settings(library=Path(tmp) / "library", index="sparse"))
        ctx = lib.context
        start = time.perf_counter()
        images = [decode(p, target_long_side=FIT_LONG_SIDE).rgb for p in paths]
        bases = [outside.fit_image(ctx, rgb) for rgb in images[: args.bases]]
        with store.bound(lib.db):
            populate(lib, bases, 0, args.photos, args.seed)
        _store_embeddings(lib, bases, args.photos, args.seed)
        print(
            f"library: {args.photos} photos from {args.bases} bases, made in "
            f"{time.perf_counter() - start:.0f} s"
        )
        queries = images[args.bases : args.bases + args.queries]
        fits, models = [], []
        for rgb in queries:
            t = time.perf_counter()
            models.append(outside.fit_image(ctx, rgb))
            fits.append(time.perf_counter() - t)
        cache = outside.EmbeddingCache()
        t = time.perf_counter()
        found = outside.rank(ctx, models[0], args.top, cache)
        first = time.perf_counter() - t
        assert len(found) == args.top
        times = []
        for model in models:
            t = time.perf_counter()
            outside.rank(ctx, model, args.top, cache)
            times.append(time.perf_counter() - t)
        fit = statistics.median(fits)
        p50, p99 = np.percentile(times, [50, 99])
        print(f"fit of a query (median of {len(fits)}): {fit:.3f} s")
        print(f"first search (reads the embeddings): {first:.3f} s")
        print(
            f"search, embeddings in memory, {len(times)} queries: p50 {p50:.3f} s, "
            f"p99 {p99:.3f} s, max {max(times):.3f} s; p50/fit {p50 / fit:.2f}"
        )
        lib.close()


if __name__ == "__main__":
    main()
