"""The library's map: neighbour lists, levels, the layout of the test photos (seeded,
neighbours kept near, scenes together), tiny and degenerate libraries, placing added
photos on a kept map, the migration from schema 6, and the viewport query."""

from __future__ import annotations

import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
from scipy.spatial import cKDTree
from test_sparse_index import copy_of, fitted, index_without_late, settings  # noqa: F401

from leitmotiv import layout, store
from leitmotiv.config import Settings
from leitmotiv.implementation import Clusterer, Clustering
from leitmotiv.library import Library

FAST = {"featurizer": {"gmm": {"n_samples": 2000}}}


def test_nearest_in_edges_takes_each_items_nearest_from_both_ends():
    rows = np.array([0, 0, 1, 2, 0])
    cols = np.array([1, 2, 2, 3, 3])
    values = np.array([0.5, 0.1, 0.3, 0.2, 0.9])
    idx, dist = layout.nearest_in_edges(5, rows, cols, values, k=2)
    np.testing.assert_array_equal(idx, [[2, 1], [2, 0], [0, 3], [2, 0], [-1, -1]])
    np.testing.assert_allclose(dist[:4], [[0.1, 0.5], [0.3, 0.5], [0.1, 0.2], [0.2, 0.9]])
    assert np.isinf(dist[4]).all()


def test_nearest_in_matrix_skips_unknown_distances():
    d = np.array([[0, 0.2, np.nan], [0.2, 0, 0.5], [np.nan, 0.5, 0]])
    idx, dist = layout.nearest_in_matrix(d, k=2)
    np.testing.assert_array_equal(idx, [[1, -1], [0, 2], [1, -1]])
    np.testing.assert_allclose(dist[1], [0.2, 0.5])


def test_each_level_ends_at_four_times_the_last_bound():
    ranks = [0, 255, 256, 1023, 1024, 4095, 4096]
    np.testing.assert_array_equal(layout.level_of(ranks), [0, 0, 1, 1, 2, 2, 3])


def _indexed(tmp_path: Path, fitted_folder: Path, **values) -> Library:
    return Library.open(settings(copy_of(fitted_folder, tmp_path / "lib"), **values))


def _map_of(lib: Library) -> dict[int, tuple[float, float, int, int]]:
    """{photo id: (x, y, rank, cluster)} of the current map."""
    found = lib.map_points((-1.0, -1.0, 2.0, 2.0), 10_000)
    assert found is not None and found.in_box == len(found.points)
    with store.bound(lib.db):
        rank = dict(store.MapPoint.select(store.MapPoint.photo, store.MapPoint.rank).tuples())
    return {p.id: (p.x, p.y, rank[p.id], p.cluster) for p in found.points}


def _matrix(n, rows, cols, values):
    d = np.full((n, n), np.nan)
    d[rows, cols] = d[cols, rows] = values
    np.fill_diagonal(d, 0.0)
    return d


def test_the_map_keeps_neighbours_near_and_is_seeded(fitted, tmp_path, groups):  # noqa: F811
    with _indexed(tmp_path, fitted) as lib:
        report = lib.build_index(progress=False)
        assert report.layout == "full"
        placed = _map_of(lib)
        ids = np.array(sorted(placed))
        assert len(ids) == len(lib.photos())
        xy = np.array([placed[i][:2] for i in ids])
        assert np.isfinite(xy).all() and xy.min() >= 0 and xy.max() == pytest.approx(1.0)
        # Each photo's 10 nearest by stored distance, against its 10 nearest on the map.
        with store.bound(lib.db):
            edges = np.array(
                store.Distance.select(
                    store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
                ).tuples()
            )
        rows, cols = np.searchsorted(ids, edges[:, 0]), np.searchsorted(ids, edges[:, 1])
        graph, _ = layout.nearest_in_edges(len(ids), rows, cols, edges[:, 2], k=10)
        _, near = cKDTree(xy).query(xy, 11)
        kept = np.mean([len(set(near[i, 1:]) & set(graph[i])) / 10 for i in range(len(ids))])
        assert kept > 0.45, kept  # chance: 10 / 63
        # Photos of one scene lie closer together than photos of different scenes.
        scene = np.array([groups[Path(lib.photo(int(i)).path).name] for i in ids])
        gap = np.linalg.norm(xy[:, None] - xy[None], axis=-1)
        same = scene[:, None] == scene[None]
        off = ~np.eye(len(ids), dtype=bool)
        assert np.median(gap[same & off]) < 0.4 * np.median(gap[~same])
        # Representatives: the exemplars first, every rank once.
        ranks = np.array([placed[i][2] for i in ids])
        assert sorted(ranks) == list(range(len(ids)))
        exemplars = {c.exemplar.id for c in lib.clusters()}
        assert {int(i) for i in ids[ranks < len(exemplars)]} == exemplars
        # Seeded: the same graph and clustering give the same map again.
        clusters = lib.clusters()
        labels = np.zeros(len(ids), dtype=int)
        for c, cluster in enumerate(clusters):
            labels[np.searchsorted(ids, [m.id for m in cluster.members])] = c
        exemplar_at = np.searchsorted(ids, [c.exemplar.id for c in clusters])
        full = layout.nearest_in_matrix(_matrix(len(ids), rows, cols, edges[:, 2]))
        again = layout.compute(*full, labels, exemplar_at)
        np.testing.assert_array_equal(again.xy, xy)
        np.testing.assert_array_equal(again.rank, ranks)


def test_added_photos_are_placed_by_their_neighbours(fitted, tmp_path, groups):  # noqa: F811
    with _indexed(tmp_path, fitted, index="sparse", neighbours=20) as lib:
        late, first = index_without_late(lib, "_3.jpg")
        assert first.layout == "full"
        before = _map_of(lib)
        assert lib.add([Path(p.path) for p in late], progress=False).added == len(late)
        second = lib.build_index(progress=False)
        assert second.clustering == "extended" and second.layout == "placed"
        after = _map_of(lib)
        assert set(after) > set(before)
        # The kept photos stay where they were, in their order; the added come last.
        old = sorted(before)
        moved = [after[i][:2] for i in old]
        np.testing.assert_allclose(moved, [before[i][:2] for i in old], atol=1e-9)
        assert sorted(old, key=lambda i: after[i][2]) == sorted(old, key=lambda i: before[i][2])
        new = sorted(set(after) - set(before))
        assert min(after[i][2] for i in new) == len(old)
        # Each added photo lands nearer its own scene's photos than the others.
        scene = {p.id: groups[Path(p.path).name] for p in lib.photos()}
        for i in new:
            d = {o: np.hypot(after[o][0] - after[i][0], after[o][1] - after[i][1]) for o in old}
            mates = [v for o, v in d.items() if scene[o] == scene[i]]
            others = [v for o, v in d.items() if scene[o] != scene[i]]
            assert np.mean(mates) < np.median(others), Path(lib.photo(i).path).name


def _small_map(tmp_path: Path, photos_dir: Path, copies: dict[str, str]):
    """The whole map of a library of ``copies`` (new name: name in ``photos_dir``),
    indexed with any warning an error, and its number of placed photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for name, source in copies.items():
        shutil.copy2(photos_dir / source, folder / name)
    with Library.open(Settings(library=tmp_path / "lib", params=FAST)) as lib:
        lib.add([folder], progress=False)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            lib.build_index(progress=False)
        return lib.map_points((-1.0, -1.0, 2.0, 2.0), 10), lib.map_size()


@pytest.mark.parametrize("count", [0, 1, 2, 3])
def test_tiny_and_identical_libraries_get_a_valid_map(tmp_path, photos_dir, count):
    names = ["coffee_0.jpg", "rocket_0.jpg", "astronaut_0.jpg"][:count]
    found, size = _small_map(tmp_path, photos_dir, {name: name for name in names})
    if count == 0:
        assert found is None and size == 0
        return
    xy = np.array([(p.x, p.y) for p in found.points])
    assert len(xy) == count and np.isfinite(xy).all()
    assert np.isfinite(found.bounds).all()
    if count > 1:
        assert len({tuple(p) for p in xy.round(6)}) == count  # distinct photos apart


def test_identical_photos_share_one_place(tmp_path, photos_dir):
    found, _ = _small_map(tmp_path, photos_dir, {f"copy_{i}.jpg": "coffee_0.jpg" for i in range(4)})
    xy = np.array([(p.x, p.y) for p in found.points])
    assert xy.shape == (4, 2) and np.isfinite(xy).all() and np.ptp(xy, axis=0).max() == 0


@dataclass(frozen=True)
class EveryPhotoAlone(Clusterer):
    """A plugin's clusterer: every photo its own cluster and exemplar."""

    name: ClassVar[str] = "every-photo-alone"

    def cluster(self, distances: np.ndarray) -> Clustering:
        return Clustering(np.arange(len(distances)), np.arange(len(distances)))


def test_a_plugin_clusterer_gets_a_map(fitted, tmp_path):  # noqa: F811
    # A third-party clusterer that puts every photo in a cluster of its own.
    with _indexed(tmp_path, fitted) as lib:
        lib.clusterer = EveryPhotoAlone()
        lib.build_index(progress=False)
        placed = _map_of(lib)
        assert len(placed) == len(lib.photos()) == len({c for *_, c in placed.values()})
        xy = np.array([v[:2] for v in placed.values()])
        assert np.isfinite(xy).all() and len(np.unique(xy.round(9), axis=0)) > len(xy) // 2


def test_a_schema_6_library_gets_its_map_from_the_next_build(fitted, tmp_path):  # noqa: F811
    with _indexed(tmp_path, fitted) as lib:
        lib.build_index(progress=False)
        clusters = {c.id for c in lib.clusters()}
        folder = lib.context.folder
    # Back to schema 6: no map tables.
    db = store.connect(None, folder)
    db.execute_sql("DROP TABLE map_point")
    db.execute_sql("DROP TABLE map_layout")
    db.execute_sql("UPDATE schema_version SET version = 6")
    db.close()
    with pytest.raises(RuntimeError, match="schema version 6, older than"):
        Library.open(settings(folder), read_only=True)
    with Library.open(settings(folder)) as lib:
        with store.bound(lib.db):
            assert store.schema_version(lib.db) == store.SCHEMA_VERSION == 8
            assert store.MapPoint.select().count() == 0
        assert lib.map_size() == 0 and lib.map_points((0, 0, 1, 1), 10) is None
        report = lib.build_index(progress=False)
        # The clustering is kept; its map is made.
        assert report.clustering == "kept" and report.layout == "full"
        assert {c.id for c in lib.clusters()} == clusters
        assert lib.map_size() == len(lib.photos())


def test_a_viewport_returns_the_lowest_ranks_inside_it(fitted, tmp_path):  # noqa: F811
    with _indexed(tmp_path, fitted) as lib:
        lib.build_index(progress=False)
        placed = _map_of(lib)
        # Around the middle photo (by x), 0.6 of the map's longer side: some, not all.
        x, y = sorted(v[:2] for v in placed.values())[len(placed) // 2]
        box = (x - 0.3, y - 0.3, x + 0.3, y + 0.3)
        inside = sorted(
            (r, i)
            for i, (x, y, r, _) in placed.items()
            if box[0] <= x <= box[2] and box[1] <= y <= box[3]
        )
        assert 2 <= len(inside) < len(placed)
        few = len(inside) // 2
        found = lib.map_points(box, few)
        assert found.in_box == len(inside) and found.n_points == len(placed)
        assert [p.id for p in found.points] == [i for _, i in inside[:few]]
        # Counts of many boxes, against counting every photo.
        rng = np.random.default_rng(0)
        for x0, y0, w, h in rng.uniform(0, 0.7, (40, 4)):
            x1, y1 = x0 + w, y0 + h
            held = sum(x0 <= x <= x1 and y0 <= y <= y1 for x, y, *_ in placed.values())
            assert lib.map_points((x0, y0, x1, y1), 1).in_box == held
        whole = lib.map_points((-5.0, -5.0, 5.0, 5.0), 3)
        assert whole.in_box == len(placed) and len(whole.points) == 3
        assert lib.map_points((3.0, 3.0, 4.0, 4.0), 5).points == []


@pytest.mark.postgres
def test_the_map_and_its_viewports_on_postgresql(tmp_path, photos_dir, empty_postgres):
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in sorted(p.name for p in photos_dir.glob("*.jpg"))[:40]:
        shutil.copy2(photos_dir / name, folder / name)
    settings = Settings(library=tmp_path / "library", database=empty_postgres, params=FAST)
    with Library.open(settings) as lib:
        lib.add([folder], progress=False)
        assert lib.build_index(progress=False).layout == "full"
    with Library.open(settings, read_only=True) as reader:
        placed = _map_of(reader)
        assert len(placed) == 40
        x, y = sorted(v[:2] for v in placed.values())[len(placed) // 2]
        box = (x - 0.3, y - 0.3, x + 0.3, y + 0.3)
        inside = sorted(
            (r, i)
            for i, (x, y, r, _) in placed.items()
            if box[0] <= x <= box[2] and box[1] <= y <= box[3]
        )
        few = len(inside) // 2
        found = reader.map_points(box, few)
        assert found.in_box == len(inside) >= 2
        assert [p.id for p in found.points] == [i for _, i in inside[:few]]


def test_umap_graphs_of_identical_photos_or_with_a_lonely_photo_stay_finite():
    # Over SMALL photos: the UMAP path.  A photo with no stored distance at all must
    # not turn the map into NaN; 40 identical photos are one point.
    n = 40
    rows, cols = np.triu_indices(n, 1)
    gaps = np.abs(np.sin(rows * 1.7 + cols * 0.3)) + 0.1
    lonely = (rows != 5) & (cols != 5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        idx, dist = layout.nearest_in_edges(n, rows[lonely], cols[lonely], gaps[lonely])
        found = layout.compute(idx, dist, np.arange(n) % 3, np.array([0, 1, 2]))
        assert found.method == "umap" and np.isfinite(found.xy).all()
        idx, dist = layout.nearest_in_edges(n, rows, cols, np.zeros(len(rows)))
        same = layout.compute(idx, dist, np.zeros(n, dtype=int), np.array([0]))
    assert np.isfinite(same.xy).all() and np.ptp(same.xy, axis=0).max() == 0
