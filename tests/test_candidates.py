"""Candidate search for large libraries: recall against the exact divergence, exactness
of the blockwise and incremental searches, and the sparse exact distances."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from leitmotiv import candidates
from leitmotiv.interfaces import Divergence
from leitmotiv.jensen_shannon import JensenShannon
from leitmotiv.mixture import Mixture


def _fit(paths):
    from leitmotiv.features import GmmFeaturizer
    from leitmotiv.imaging import decode

    featurizer = GmmFeaturizer(n_samples=2000)
    return [featurizer.model(decode(p, target_long_side=256).rgb) for p in paths]


@pytest.fixture(scope="module")
def real_models(photos_dir: Path) -> list[Mixture]:
    """Models of the 64 test photos (16 scenes x mild edits), fitted once."""
    return _fit(sorted(photos_dir.glob("*.jpg")))


def _edited(model: Mixture, rng: np.random.Generator) -> Mixture:
    """A model moved as an edited photo would be: shift, zoom, mirror, colour, weights."""
    A = np.eye(5)
    b = np.zeros(5)
    A[0, 0] = A[1, 1] = rng.uniform(1.0, 1.3)
    if rng.random() < 0.5:
        A[0, 0] = -A[0, 0]
    b[:2] = rng.normal(0, 0.05, 2)
    b[2:] = rng.normal(0, 0.05, 3)
    out = model.transformed(A, b, update_transform=False)
    w = out.weights * np.exp(rng.normal(0, 0.1, out.n_components))
    return dataclasses.replace(out, weights=w / w.sum())


@pytest.fixture(scope="module")
def few_models(photos_dir: Path) -> list[Mixture]:
    """Twelve photo models: three real fits and three edits of each (fast)."""
    paths = sorted(photos_dir.glob("*.jpg"))[::20][:3]
    rng = np.random.default_rng(0)
    base = _fit(paths)
    return base + [_edited(m, rng) for m in base for _ in range(3)]


def _recall(true_top: np.ndarray, found: np.ndarray) -> float:
    return float(
        np.mean([len(set(t) & set(f)) / len(t) for t, f in zip(true_top, found, strict=True)])
    )


@pytest.mark.slow
def test_recall_of_true_top10_on_real_photos(real_models):
    js = JensenShannon()
    exact = js.pairwise(real_models)
    np.fill_diagonal(exact, np.inf)
    true_top = np.argsort(exact, axis=1, kind="stable")[:, :10]
    # A quarter of the library as candidates, three quarters as the wide list.
    n = len(real_models)
    indices, _ = candidates.search(real_models, n // 4, js)
    assert indices.shape == (n, n // 4)
    assert _recall(true_top, indices) >= 0.95
    # The embedding alone already finds most of them in a wide list: 0.948 here for
    # version 3 of js; for version 4, whose distance takes a frame map per pair, 0.920
    # by the plain embedding and 0.981 when the search takes the nearest map too.
    embeddings = js.embedding(real_models)
    maps = js.embedding_maps(embeddings.shape[1])
    wide, _ = candidates.candidate_pairs(embeddings, 3 * n // 4, maps=maps)
    assert _recall(true_top, wide) >= 0.94


def test_embedding_is_per_photo_and_deterministic(few_models):
    js = JensenShannon()
    emb = js.embedding(few_models)
    assert emb.dtype == np.float32
    assert emb.shape == (len(few_models), 2 * (128 + 64 + 64) + 1)  # and the colour share
    assert np.all(np.isfinite(emb))
    # A photo's embedding does not depend on its companions.
    np.testing.assert_allclose(js.embedding(few_models[5:7])[1], emb[6], rtol=1e-6)
    np.testing.assert_array_equal(js.embedding(few_models), emb)
    assert js.embedding([]).shape == (0, emb.shape[1])


def _dense_reference(emb: np.ndarray, k: int):
    x = emb.astype(np.float64)
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    idx = np.arange(len(x))
    order = np.array([np.lexsort((idx, row))[:k] for row in d])
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("block", [1, 7, 64, 1000])
@pytest.mark.parametrize("partition_rows", [1, 3, None])
def test_blockwise_search_equals_dense_brute_force(block, partition_rows, monkeypatch):
    emb = np.random.default_rng(1).normal(size=(157, 12)).astype(np.float32)
    if partition_rows is not None:  # the top-k of a block taken a few rows at a time
        monkeypatch.setattr(candidates, "_PARTITION_BYTES", partition_rows * 8 * len(emb))
    idx, dist = candidates.candidate_pairs(emb, 10, block=block)
    ref_idx, ref_dist = _dense_reference(emb, 10)
    np.testing.assert_array_equal(idx, ref_idx)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-12)


def test_search_handles_duplicates_and_ties():
    emb = np.repeat(np.random.default_rng(2).normal(size=(5, 3)), 3, axis=0).astype(np.float32)
    idx, dist = candidates.candidate_pairs(emb, 4, block=4)
    ref_idx, _ = _dense_reference(emb, 4)
    np.testing.assert_array_equal(idx, ref_idx)
    assert np.all(idx != np.arange(len(emb))[:, None])
    assert np.all(dist[:, :2] == 0)


@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_libraries(n):
    emb = np.random.default_rng(3).normal(size=(n, 4)).astype(np.float32)
    idx, dist = candidates.candidate_pairs(emb, 10)
    assert idx.shape == dist.shape == (n, max(0, n - 1))
    if n >= 2:
        assert set(idx[0]) == set(range(1, n))


@pytest.mark.parametrize(("n", "start", "k"), [(230, 200, 10), (13, 3, 5), (51, 50, 60), (2, 1, 3)])
def test_searching_added_rows_equals_searching_all(n, start, k):
    emb = np.random.default_rng(n + start).normal(size=(n, 8)).astype(np.float32)
    idx, dist = candidates.candidate_pairs(emb, k, start=start, block=7)
    ref_idx, ref_dist = candidates.candidate_pairs(emb, k)
    np.testing.assert_array_equal(idx, ref_idx[start:])
    np.testing.assert_allclose(dist, ref_dist[start:], rtol=1e-12)


def test_sparse_distances_are_the_exact_divergence_once_per_pair(few_models):
    js = JensenShannon(n_samples=200)
    table = np.array([[1, 2], [0, 3], [0, 5], [1, 0], [4, 4], [0, 1]])  # 4-4 is a self-pair
    models = few_models[:6]
    rows, cols, values = candidates.sparse_distances(models, table, js, block=2)
    pairs = {tuple(sorted(p)) for p in zip(rows.tolist(), cols.tolist(), strict=True)}
    assert len(pairs) == len(rows) == 7
    assert pairs == {(0, 1), (0, 2), (1, 3), (2, 5), (0, 3), (0, 5), (1, 5)}
    dense = js.pairwise(models)
    np.testing.assert_allclose(values, dense[rows, cols], rtol=1e-9, atol=1e-12)
    # Explicit pairs, in either orientation, give the same.
    _, _, v2 = candidates.sparse_distances(models, (cols, rows), js)
    np.testing.assert_allclose(np.sort(v2), np.sort(values))
    empty = candidates.sparse_distances(models, np.zeros((6, 0), dtype=int), js)
    assert all(len(a) == 0 for a in empty)


def test_refine_keeps_the_best_cheap_estimates(few_models):
    js = JensenShannon(n_samples=64)
    wide, _ = candidates.candidate_pairs(js.embedding(few_models), 11)
    idx, est = candidates.refine(few_models, wide, 4, js)
    cheap = js.estimator().pairwise(few_models)
    np.fill_diagonal(cheap, np.inf)
    order = np.argsort(cheap, axis=1, kind="stable")[:, :4]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_allclose(est, np.take_along_axis(cheap, order, axis=1), rtol=1e-9)


def test_edited_copies_find_their_original(few_models):
    # Each base photo's three edits are among its five candidates after the search
    # (one to spare: the fits, hence the margins, vary a little with the machine).
    indices, _ = candidates.search(few_models, 5, JensenShannon(), wide=8)
    for b in range(3):
        edits = {3 + 3 * b + j for j in range(3)}
        assert edits <= set(indices[b].tolist())


def test_refine_added_estimates_only_added_pairs_and_merges(few_models, monkeypatch):
    js = JensenShannon(n_samples=64)
    n_old, wide_k, k = 9, 6, 3
    n = len(few_models)
    cheap = js.estimator().pairwise(few_models)
    np.fill_diagonal(cheap, np.inf)
    emb = js.embedding(few_models)
    wide, _ = candidates.candidate_pairs(emb[:n_old], wide_k)
    old_idx, old_est = candidates.refine(few_models[:n_old], wide, k, js)
    added_wide, _ = candidates.candidate_pairs(emb, wide_k, start=n_old)
    estimated = []
    estimate = candidates._estimate

    def counting(mixtures, pairs, *args, **kwargs):
        estimated.extend(zip(*pairs, strict=True))
        return estimate(mixtures, pairs, *args, **kwargs)

    monkeypatch.setattr(candidates, "_estimate", counting)
    idx, est, changed = candidates.refine_added(few_models, added_wide, old_idx, old_est, k, js)
    # Only the added photos' wide lists were estimated.
    assert {tuple(sorted(p)) for p in estimated} == {
        tuple(sorted((n_old + r, int(c)))) for r, row in enumerate(added_wide) for c in row
    }
    # A photo's pool: its own list (old) or wide list (added), and every added photo
    # whose wide list holds it.
    for i in range(n):
        pool = set(old_idx[i].tolist()) if i < n_old else set(added_wide[i - n_old].tolist())
        pool |= {n_old + r for r, row in enumerate(added_wide) if i in row}
        pool.discard(i)
        pool = np.array(sorted(pool))
        best = pool[np.lexsort((pool, cheap[i, pool]))[:k]]
        np.testing.assert_array_equal(idx[i], best)
        np.testing.assert_allclose(est[i], cheap[i, best], rtol=1e-9)
    expect = [i for i in range(n_old) if not np.array_equal(idx[i], old_idx[i])]
    assert expect  # the added edits enter some old lists
    np.testing.assert_array_equal(np.sort(changed), expect)


def test_sample_median_distance(few_models):
    js = JensenShannon(n_samples=100)
    dense = js.pairwise(few_models)
    median = candidates.sample_median_distance(few_models, js, n_pairs=400)
    lo, hi = np.quantile(dense[np.triu_indices(len(dense), 1)], [0.3, 0.7])
    assert lo <= median <= hi
    assert candidates.sample_median_distance(few_models[:1], js) == 0.0


def _merge_reference(indices, distances, rows, extra, extra_dist, n):
    """Sort each row's stored and extra entries together by (distance, index)."""
    k = indices.shape[1]
    cand = np.concatenate([indices[rows], extra], axis=1)
    dist = np.concatenate([distances[rows], extra_dist], axis=1)
    dist[cand < 0] = np.inf
    order = np.lexsort((np.where(cand < 0, n, cand), dist), axis=-1)[:, :k]
    out_idx = np.take_along_axis(cand, order, axis=1)
    out_dist = np.take_along_axis(dist, order, axis=1)
    out_idx[~np.isfinite(out_dist)] = -1
    return out_idx, out_dist


@pytest.mark.parametrize("seed", range(6))
def test_merging_lists_equals_sorting_them_together(seed):
    rng = np.random.default_rng(seed)
    n, k, n_rows = 500, 12, 40
    # Sorted stored lists with ties (distances on a coarse grid) and padded tails.
    distances = np.round(rng.random((n_rows, k)) * 4) / 4
    indices = rng.integers(0, n, (n_rows, k))
    order = np.lexsort((indices, distances), axis=-1)
    indices = np.take_along_axis(indices, order, 1)
    distances = np.take_along_axis(distances, order, 1)
    short = rng.random(n_rows) < 0.3
    indices[short, k // 2 :], distances[short, k // 2 :] = -1, np.inf
    rows = np.sort(rng.choice(n_rows, 25, replace=False))
    extra = rng.integers(0, n, (25, 5))
    extra_dist = np.round(rng.random((25, 5)) * 4) / 4
    extra[rng.random((25, 5)) < 0.3] = -1  # padding among the extras, in any column
    want = _merge_reference(indices.copy(), distances.copy(), rows, extra, extra_dist, n)
    got_idx, got_dist = indices.copy(), distances.copy()
    changed = candidates._merge_lists(got_idx, got_dist, rows, extra, extra_dist, n)
    np.testing.assert_array_equal(got_idx[rows], want[0])
    np.testing.assert_array_equal(got_dist[rows], want[1])
    others = np.setdiff1d(np.arange(n_rows), rows)
    np.testing.assert_array_equal(got_idx[others], indices[others])
    np.testing.assert_array_equal(changed, rows[(want[0] != indices[rows]).any(axis=1)])


def test_kept_sample_sets_give_the_same_estimates_without_drawing(few_models):
    cheap = JensenShannon(n_samples=64)
    first, other = few_models[0], few_models[5]
    cheap.warm([first, other])
    (blob,) = cheap.dump_prepared([first])
    twin = Mixture.from_bytes(first.to_bytes())  # equal model, nothing cached
    assert cheap.dump_prepared([twin]) == [None]
    assert cheap.load_prepared([twin], [blob]) == [True]
    assert cheap.dump_prepared([twin]) == [blob]
    np.testing.assert_array_equal(cheap.cross([twin], [other]), cheap.cross([first], [other]))
    # Blobs that do not fit are refused and leave the model to be drawn as usual.
    fresh = Mixture.from_bytes(first.to_bytes())
    assert JensenShannon(n_samples=65).load_prepared([fresh], [blob]) == [False]
    assert JensenShannon(n_samples=64, colour_weight=0.0).load_prepared([fresh], [blob]) == [False]
    assert cheap.load_prepared([fresh, fresh], [blob[:-8], b"XXXX" + blob[4:]]) == [False, False]
    assert cheap.dump_prepared([fresh]) == [None]
    # A divergence that keeps nothing says so.
    assert Divergence.dump_prepared(cheap, [first]) == [None]
    assert Divergence.load_prepared(cheap, [first], [blob]) == [False]


def test_the_search_takes_the_nearest_embedding_map(few_models):
    """With column permutations, a pair's embedding distance is the least over them,
    as dense brute force computes it; without, the plain distance."""
    js = JensenShannon()
    emb = js.embedding(few_models)
    maps = js.embedding_maps(emb.shape[1])
    assert len(maps) == 3  # mirror and both quarter turns
    x = emb.astype(np.float64)
    dense = np.min(
        [np.sqrt(((x[:, None] - x[None, :, perm]) ** 2).sum(-1)) for perm in
         [np.arange(x.shape[1]), *maps]],
        axis=0,
    )
    np.fill_diagonal(dense, np.inf)
    idx, dist = candidates.candidate_pairs(emb, 5, maps=maps, block=7)
    np.testing.assert_allclose(dist, np.sort(dense, axis=1)[:, :5], rtol=1e-6)
    plain, _ = candidates.candidate_pairs(emb, 5)
    assert not np.array_equal(plain, idx)


def test_embedding_maps_permute_the_embedding_of_a_moved_photo(few_models):
    from leitmotiv.jensen_shannon import SYMMETRIES, moved

    js = JensenShannon()
    m = few_models[0]
    emb = js.embedding([m])
    maps = js.embedding_maps(emb.shape[1])
    for g, perm in zip(SYMMETRIES["dihedral"][1:], maps, strict=True):
        np.testing.assert_allclose(js.embedding([moved(m, g)]), emb[:, perm], atol=1e-6)
    assert JensenShannon(symmetries="none").embedding_maps(emb.shape[1]) is None
    assert js.embedding_maps(emb.shape[1] + 2) is None  # not a photo model's embedding


@pytest.fixture(scope="module")
def mono_models(photos_mono_dir: Path) -> list[Mixture]:
    """A colour photo, its black and white, sepia and high-contrast black and white
    versions, for two scenes (greyscale photos have a colour share of zero)."""
    return _fit([photos_mono_dir / f"{s}_m{i}.jpg" for s in ("astronaut", "coffee")
                 for i in range(4)])  # fmt: skip


def _gap_reference(js: JensenShannon, p: Mixture, q: Mixture) -> float:
    """The embedding gap of two photos from their views, in plain NumPy: the parts'
    characteristic functions compared as the gaps' formula says, least over the maps."""
    from leitmotiv import jensen_shannon as J
    from leitmotiv.embedding import characteristic

    spatial, palette, luma = J._embedding_frequencies()
    share = J.colour_shares([p], [q], js.tone)[0, 0]

    def parts(m: Mixture):
        view = J.luma_view(m, js.luma_scale, js.luma_spread)
        return (characteristic([m], spatial)[0], characteristic([J.colour_view(m)], palette)[0],
                characteristic([view], luma)[0])  # fmt: skip

    (sp, pp, lp), palette_gain = parts(p), js.colour_weight * J.PALETTE_EMBEDDING_GAIN
    best = np.inf
    for g in J.SYMMETRIES[js.symmetries]:
        sq, pq, lq = parts(J.moved(q, g))
        colour = np.linalg.norm(sp - sq) + J.GAP_PALETTE * palette_gain * np.linalg.norm(pp - pq)
        grey = js.luma_gain * J.GAP_LUMA * np.linalg.norm(lp - lq)
        best = min(best, share * colour + (1 - share) * grey)
    return best


def test_embedding_gaps_add_the_parts_distances(few_models, mono_models):
    """The gaps read the parts and the colour share back from the embedding and add
    the parts' distances as the distance adds its terms, at the nearest frame map; a
    greyscale photo is compared by its luminance part alone."""
    js = JensenShannon()
    models = few_models[:4] + mono_models
    emb = js.embedding(models)
    gaps = js.embedding_gaps(emb[:2], np.broadcast_to(emb, (2, *emb.shape)))
    assert gaps.shape == (2, len(models)) and np.all(np.isfinite(gaps))
    reference = [[_gap_reference(js, models[i], m) for m in models] for i in range(2)]
    np.testing.assert_allclose(gaps, reference, rtol=2e-3, atol=2e-4)
    grey = emb[5:6]  # the first scene's black and white version
    assert grey[0, -1] == 0.0
    to_grey = js.embedding_gaps(grey, emb[None])[0]
    np.testing.assert_allclose(to_grey, [_gap_reference(js, models[5], m) for m in models],
                               rtol=2e-3, atol=2e-4)  # fmt: skip
    # Itself first, then its scene's colour original and sepia version among the next.
    order = np.argsort(to_grey, kind="stable")
    assert order[0] == 5 and {4, 6} <= set(order[1:4].tolist())
    # Not a photo model's embedding: no gaps.
    assert js.embedding_gaps(emb[:1, :-1], emb[None, :, :-1]) is None
    assert Divergence.embedding_gaps(js, emb[:1], emb[None]) is None


def test_the_search_orders_a_shortlist_by_the_gaps(few_models, mono_models):
    """With gaps, the search keeps the best by the gaps among a shortlist of
    SHORTLIST times the Euclidean nearest; without, the Euclidean order."""
    js = JensenShannon()
    emb = js.embedding(few_models + mono_models)
    n, k = len(emb), 5
    maps = js.embedding_maps(emb.shape[1])
    idx, dist = candidates.candidate_pairs(emb, k, maps=maps, gaps=js.embedding_gaps, block=5)
    assert k * candidates.SHORTLIST >= n - 1  # the shortlist is every other photo here
    full = js.embedding_gaps(emb, np.broadcast_to(emb, (n, *emb.shape)))
    np.fill_diagonal(full, np.inf)
    np.testing.assert_allclose(dist, np.sort(full, axis=1)[:, :k], rtol=1e-9)
    np.testing.assert_array_equal(idx, np.argsort(full, axis=1, kind="stable")[:, :k])
    plain, _ = candidates.candidate_pairs(emb, k, maps=maps)
    assert not np.array_equal(plain, idx)
    # A divergence without gaps (the interface's default) keeps the Euclidean order.
    generic = Divergence.embedding_gaps.__get__(js)
    same, _ = candidates.candidate_pairs(emb, k, maps=maps, gaps=generic)
    np.testing.assert_array_equal(same, plain)
