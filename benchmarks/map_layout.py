"""The map's layout method against scikit-learn's SpectralEmbedding, on a library's graph.

Run ``python benchmarks/map_layout.py FOLDER`` on an indexed library (e.g. one that
``benchmarks/web_library.py`` wrote).  Both methods lay out the same graph in this
process: each photo's 10 nearest photos by stored distance
(:func:`leitmotiv.layout.nearest_in_edges`), given to UMAP as its neighbour graph
(:func:`leitmotiv.layout.compute`, the map ``build-index`` stores) and, as the
baseline, to ``SpectralEmbedding(affinity="precomputed")`` as a symmetric affinity
``exp(-(d / median d)^2)``.  Printed per method: seconds, the share of each photo's 10
graph neighbours among its 10 nearest on the map ("neighbours kept"), the share of
those 10 in the photo's own cluster of the stored clustering ("same cluster"), and
the ratios UMAP / baseline.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy import sparse
from scipy.spatial import cKDTree

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from leitmotiv import index, layout, store  # noqa: E402
from leitmotiv.config import Settings  # noqa: E402
from leitmotiv.library import Library  # noqa: E402


def quality(xy: np.ndarray, graph: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(neighbours kept, same cluster) of positions ``xy`` for the 10-NN ``graph``."""
    k = graph.shape[1]
    _, near = cKDTree(xy).query(xy, k + 1)
    near = near[:, 1:]
    known = graph >= 0
    hits = (near[:, :, None] == np.where(known, graph, -2)[:, None, :]).any(axis=2).sum(axis=1)
    kept = float(np.mean(hits / np.maximum(known.sum(axis=1), 1)))
    return kept, float((labels[near] == labels[:, None]).mean())


def spectral(idx: np.ndarray, dist: np.ndarray, seed: int) -> np.ndarray:
    """The baseline: SpectralEmbedding of the same graph's affinity."""
    from sklearn.manifold import SpectralEmbedding

    n, k = idx.shape
    ok = idx.ravel() >= 0
    scale = float(np.median(dist[np.isfinite(dist)]))
    rows = np.repeat(np.arange(n), k)[ok]
    values = np.exp(-((dist.ravel()[ok] / scale) ** 2))
    affinity = sparse.coo_matrix((values, (rows, idx.ravel()[ok])), shape=(n, n)).tocsr()
    affinity = affinity.maximum(affinity.T)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "graph is not fully connected"
        return SpectralEmbedding(2, affinity="precomputed", random_state=seed).fit_transform(
            affinity
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path, help="an indexed library")
    args = parser.parse_args(argv)
    with Library.open(Settings(library=args.folder), read_only=True) as lib:
        ctx = lib.context
        keys = ctx.key_ids()
        with store.bound(lib.db):
            query = store.Model.select(store.Model.photo).where(store.Model.featurizer == keys[0])
            ids = np.sort([i for (i,) in store.raw_rows(lib.db, query)])
            rows, cols, values = index._stored_edges(ctx, ids, keys[0], keys[1])
            run = store.current_run(keys)
            prior = index._run_labels(run, ids)
    if prior is None:
        raise SystemExit(f"{args.folder} has no clustering of all its photos: run build-index")
    labels, exemplars = prior
    idx, dist = layout.nearest_in_edges(len(ids), rows, cols, values)
    print(
        f"{len(ids):,} photos, {len(values):,} stored distances, {len(exemplars):,} clusters; "
        f"load average {os.getloadavg()}",
        flush=True,
    )
    out = {}
    for name in ("UMAP (the map)", "SpectralEmbedding"):
        t0 = time.perf_counter()
        if name.startswith("UMAP"):
            xy = layout.compute(idx, dist, labels, exemplars).xy
        else:
            xy = spectral(idx, dist, layout.SEED)
        seconds = time.perf_counter() - t0
        kept, same = quality(xy, idx, labels)
        out[name] = (seconds, kept, same)
        print(
            f"{name:20s} {seconds:8.1f} s  neighbours kept {kept:.3f}  same cluster {same:.3f}",
            flush=True,
        )
    (t_u, k_u, s_u), (t_s, k_s, s_s) = out.values()
    print(
        f"UMAP / SpectralEmbedding: time {t_u / t_s:.2f}x, neighbours kept "
        f"{k_u / max(k_s, 1e-9):.1f}x, same cluster {s_u / max(s_s, 1e-9):.1f}x; "
        f"load average {os.getloadavg()}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
