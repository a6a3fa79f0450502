"""The sparse index of large libraries through :class:`leitmotiv.library.Library`.

The test photos stand in for a large library: with ``index = "sparse"`` and a few
candidates per photo the pruned path runs on real models, and the dense index of the
same models is the reference.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from leitmotiv import pair_chunks, sparse_index, store
from leitmotiv.config import Settings
from leitmotiv.interfaces import Clusterer, Clustering
from leitmotiv.library import IndexReport, Library

FAST = {"featurizer": {"gmm": {"n_samples": 2000}}}
#: Photos in ``photos/`` of the test corpus (16 scenes x 4 versions).
N_PHOTOS = 64


def settings(folder: Path, **values) -> Settings:
    return Settings(library=folder, params=FAST, **values)


@pytest.fixture(scope="module")
def fitted(tmp_path_factory, photos_dir) -> Path:
    """A library folder with the test photos fitted, not indexed."""
    folder = tmp_path_factory.mktemp("fitted") / "library"
    with Library.open(settings(folder)) as lib:
        report = lib.add([photos_dir], progress=False)
    assert report.added == N_PHOTOS and report.failed == 0
    return folder


def copy_of(fitted: Path, where: Path) -> Path:
    shutil.copytree(fitted, where)
    return where


def groups_of(lib: Library, groups: dict[str, str]) -> dict[int, str]:
    return {p.id: groups[Path(p.path).name] for p in lib.photos()}


def stored_distances(lib: Library) -> dict[tuple[int, int], float]:
    with store.bound(lib.db):
        rows = store.Distance.select(
            store.Distance.photo_a, store.Distance.photo_b, store.Distance.value
        ).tuples()
        return {(a, b): v for a, b, v in rows}


def neighbour_lists(lib: Library) -> dict[int, tuple[bytes, bytes | None]]:
    """{photo id: (candidate list, kept sample sets)} as stored."""
    with store.bound(lib.db):
        rows = store.Neighbours.select(
            store.Neighbours.photo, store.Neighbours.candidates, store.Neighbours.samples
        ).tuples()
        return {p: (bytes(c), None if s is None else bytes(s)) for p, c, s in rows}


def top(distances: dict[tuple[int, int], float], photo: int, n: int) -> set[int]:
    mine = [(v, b if a == photo else a) for (a, b), v in distances.items() if photo in (a, b)]
    return {other for _, other in sorted(mine)[:n]}


def test_sparse_index_finds_each_photos_nearest_and_clusters_the_scenes(fitted, tmp_path, groups):
    from sklearn.metrics import adjusted_rand_score

    folder = copy_of(fitted, tmp_path / "lib")
    k = 16  # candidates per photo: a quarter of the library
    with Library.open(settings(folder, index="sparse", neighbours=k)) as lib:
        report = lib.build_index(progress=False)
        assert report.method == "sparse"
        assert report.n_photos == N_PHOTOS and report.new_lists == N_PHOTOS
        # At most k pairs per photo (pairs found from both ends count once), not all 2016.
        assert N_PHOTOS * k // 2 <= report.pairs_computed <= N_PHOTOS * k
        sparse = stored_distances(lib)
        assert len(sparse) == report.pairs_computed
        clusters = lib.clusters()
        group = groups_of(lib, groups)
        label = {m.id: c for c, cl in enumerate(clusters) for m in cl.members}
        ids = sorted(group)
        ari = adjusted_rand_score([group[i] for i in ids], [label[i] for i in ids])
        assert ari >= 0.9, ari
    # The dense index of the same models: every pair, the reference top-10.
    with Library.open(settings(folder, index="dense")) as lib:
        report = lib.build_index(progress=False)
        assert report.method == "dense" and report.clustering == "full"
        assert report.pairs_computed == N_PHOTOS * (N_PHOTOS - 1) // 2 - len(sparse)
        dense = stored_distances(lib)
    for pair, value in sparse.items():
        assert dense[pair] == value  # stored once, reused by the dense index
    recall = np.mean([len(top(sparse, p, 10) & top(dense, p, 10)) / 10 for p in ids])
    assert recall >= 0.95, recall


def test_adding_photos_updates_the_lists_without_a_rebuild(tmp_path, photos_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(p.name for p in photos_dir.glob("*.jpg"))
    for name in names[1::4]:
        shutil.copy2(photos_dir / name, photos / name)
    folder = tmp_path / "lib"
    sparse = settings(folder, index="sparse", neighbours=10)
    with Library.open(sparse) as lib:
        lib.add([photos], progress=False)
        first = lib.build_index(progress=False)
        assert first.n_photos == N_PHOTOS // 4 and first.new_lists == N_PHOTOS // 4
    for name in names:
        shutil.copy2(photos_dir / name, photos / name)
    added = N_PHOTOS - N_PHOTOS // 4
    with Library.open(sparse) as lib:
        assert lib.add([photos], progress=False).added == added
    scratch = copy_of(folder, tmp_path / "scratch")
    with Library.open(sparse) as lib:
        second = lib.build_index(progress=False)
        assert second.n_photos == N_PHOTOS and second.new_lists == added
        assert 0 < second.changed_lists <= N_PHOTOS // 4
        incremental = stored_distances(lib)
        lists = neighbour_lists(lib)
    # The same library indexed from scratch.
    with Library.open(settings(scratch, index="sparse", neighbours=10)) as lib:
        with store.bound(lib.db):
            store.Neighbours.delete().execute()
            store.Distance.delete().execute()
        rebuilt = lib.build_index(progress=False)
        assert rebuilt.new_lists == N_PHOTOS
        scratch_lists = neighbour_lists(lib)
        scratch_pairs = stored_distances(lib)
    # Nearly the same candidates; the incremental index also keeps the old pairs.
    same = np.mean([lists[p][0] == scratch_lists[p][0] for p in lists])
    assert same >= 0.9, same
    assert len(set(scratch_pairs) & set(incremental)) >= 0.95 * len(scratch_pairs)
    assert second.pairs_computed < rebuilt.pairs_computed


def test_an_interrupted_sparse_build_resumes_to_the_same_index(fitted, tmp_path, monkeypatch):
    whole = copy_of(fitted, tmp_path / "whole")
    broken = copy_of(fitted, tmp_path / "broken")
    monkeypatch.setattr(sparse_index, "BATCH", 20)
    monkeypatch.setattr(pair_chunks, "CHUNK_PAIRS", 50)
    with Library.open(settings(whole, index="sparse", neighbours=8)) as lib:
        lib.build_index(progress=False)
        expected_lists = neighbour_lists(lib)
        expected = stored_distances(lib)
        expected_clusters = [sorted(m.id for m in c.members) for c in lib.clusters()]

    write = sparse_index._write
    calls = []

    def write_then_die(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed during the third batch
        calls.append(1)
        write(*args, **kwargs)

    monkeypatch.setattr(sparse_index, "_write", write_then_die)
    with Library.open(settings(broken, index="sparse", neighbours=8)) as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.build_index(progress=False)
        assert len(neighbour_lists(lib)) == 40  # two batches of 20 committed
        assert stored_distances(lib) == {}
    monkeypatch.setattr(sparse_index, "_write", write)

    compute = pair_chunks.compute_chunk
    chunks = []

    def compute_then_die(*args, **kwargs):
        if len(chunks) == 3:
            raise KeyboardInterrupt
        chunks.append(1)
        return compute(*args, **kwargs)

    monkeypatch.setattr(pair_chunks, "compute_chunk", compute_then_die)
    with Library.open(settings(broken, index="sparse", neighbours=8)) as lib:
        with pytest.raises(KeyboardInterrupt):
            lib.build_index(progress=False)
        assert neighbour_lists(lib) == expected_lists
        assert len(stored_distances(lib)) == 150  # three chunks of 50 committed
        assert lib.clusters() == []
    monkeypatch.setattr(pair_chunks, "compute_chunk", compute)

    with Library.open(settings(broken, index="sparse", neighbours=8)) as lib:
        report = lib.build_index(progress=False)
        assert report.new_lists == 0 and report.changed_lists == 0
        assert report.pairs_computed == len(expected) - 150
        assert stored_distances(lib) == expected
        assert [sorted(m.id for m in c.members) for c in lib.clusters()] == expected_clusters
        # Nothing left to do: the next build computes nothing and keeps the clusters.
        again = lib.build_index(progress=False)
        assert again.pairs_computed == 0 and again.new_lists == 0


def test_auto_switches_to_sparse_above_the_dense_limit(fitted, tmp_path):
    folder = copy_of(fitted, tmp_path / "lib")
    with Library.open(settings(folder, dense_limit=50, neighbours=6)) as lib:
        assert lib.index_method(50) == "dense"
        assert lib.index_method(51) == "sparse"
        report = lib.build_index(progress=False)
        assert report.method == "sparse" and report.pairs_computed <= N_PHOTOS * 6
        assert report.peak_memory_mib > 0


@dataclass(frozen=True)
class AllPairsOnly(Clusterer):
    """A clusterer without a sparse-graph method."""

    name: ClassVar[str] = "all-pairs-only"

    def cluster(self, distances: np.ndarray) -> Clustering:
        n = len(distances)
        return Clustering(np.zeros(n, dtype=np.int64), np.zeros(1, dtype=np.int64))


def test_a_clusterer_that_needs_all_pairs_is_refused_before_any_work(fitted, tmp_path):
    from leitmotiv.cluster import AffinityPropagation
    from leitmotiv.sparse_cluster import SparseAffinityPropagation

    assert AffinityPropagation().clusters_graphs and SparseAffinityPropagation().clusters_graphs
    assert not AllPairsOnly().clusters_graphs
    folder = copy_of(fitted, tmp_path / "lib")
    with Library.open(settings(folder, index="sparse")) as lib:
        lib.clusterer = AllPairsOnly()
        with pytest.raises(ValueError, match=r"all-pairs-only.*needs every pairwise distance"):
            lib.build_index(progress=False)
        assert neighbour_lists(lib) == {} and stored_distances(lib) == {}


#: Photos left out of a first build and added after it: under the 10 % growth that
#: extends the kept clusters instead of clustering again.
LATE = 5


def index_without_late(lib: Library, suffix: str) -> tuple[list, IndexReport]:
    """Drop :data:`LATE` photos whose names end in ``suffix`` and index the rest: the dropped
    photos (to add again) and the build's report."""
    late = [p for p in lib.photos() if Path(p.path).name.endswith(suffix)][:LATE]
    with store.bound(lib.db):
        store.Photo.delete().where(store.Photo.id.in_([p.id for p in late])).execute()
    return late, lib.build_index(progress=False)


def _partition(lib: Library, photos: set[int] | None = None) -> set[frozenset[int]]:
    out = set()
    for c in lib.clusters():
        members = frozenset(m.id for m in c.members if photos is None or m.id in photos)
        if members:
            out.add(members)
    return out


def test_a_small_addition_joins_the_kept_clusters(fitted, tmp_path, photos_dir, groups):
    folder = copy_of(fitted, tmp_path / "lib")
    sparse = settings(folder, index="sparse", neighbours=20)
    with Library.open(sparse) as lib:
        late, first = index_without_late(lib, "_3.jpg")
        assert first.n_photos == N_PHOTOS - LATE and first.clustering == "full"
        before = _partition(lib)
        assert lib.add([Path(p.path) for p in late], progress=False).added == LATE
        second = lib.build_index(progress=False)
        assert second.n_photos == N_PHOTOS and second.clustering == "extended"
        old = {m for c in before for m in c}
        assert _partition(lib, old) == before  # the kept clusters did not move
        group = groups_of(lib, groups)
        cluster_of = {m.id: c.id for c in lib.clusters() for m in c.members}
        new = [p for p in lib.photos() if p.id not in old]
        with_mates = sum(
            any(cluster_of[o] == cluster_of[p.id] for o in old if group[o] == group[p.id])
            for p in new
        )
        assert with_mates >= LATE - 1, with_mates
        # Nothing new: nothing is clustered again; asked to, it clusters in full.
        assert lib.build_index(progress=False).clustering == "kept"
        again = lib.build_index(progress=False, recluster=True)
        assert again.clustering == "full" and again.pairs_computed == 0


def test_positions_in_marks_absent_photos():
    ids = np.array([3, 7, 9])
    np.testing.assert_array_equal(
        sparse_index.positions_in(ids, [9, 3, 4, 10, 0, 7]), [2, 0, -1, -1, -1, 1]
    )
    np.testing.assert_array_equal(sparse_index.positions_in(ids[:0], [1, 2]), [-1, -1])


def test_a_photo_whose_content_changed_is_searched_again(tmp_path, photos_dir):
    photos = tmp_path / "photos"
    photos.mkdir()
    names = sorted(p.name for p in photos_dir.glob("*.jpg"))
    for name in names[:40:4]:
        shutil.copy2(photos_dir / name, photos / name)
    changed = photos / names[0]
    sparse = settings(tmp_path / "lib", index="sparse", neighbours=3)
    with Library.open(sparse) as lib:
        lib.add([photos], progress=False)
        lib.build_index(progress=False)
        before = neighbour_lists(lib)
    shutil.copy2(photos_dir / names[-1], changed)  # another scene under the same name
    with Library.open(sparse) as lib:
        assert lib.add([changed], progress=False).updated == 1
        report = lib.build_index(progress=False)
        (photo,) = [p for p in lib.photos() if p.path == str(changed)]
        assert report.new_lists == 1  # its lists were dropped with its old model
        model = lib.mixture(photo.id)
        with store.bound(lib.db):
            row = store.Neighbours.get(store.Neighbours.photo == photo.id)
        stored = np.frombuffer(bytes(row.embedding), dtype="<f4")
        np.testing.assert_array_equal(stored, lib.divergence.embedding([model])[0])
        assert neighbour_lists(lib)[photo.id] != before[photo.id]


def test_an_update_reads_old_photos_sample_sets_back_instead_of_drawing(
    fitted, tmp_path, monkeypatch
):
    from leitmotiv import divergence

    folder = copy_of(fitted, tmp_path / "lib")
    sparse = settings(folder, index="sparse", neighbours=8)
    with Library.open(sparse) as lib:
        late, _ = index_without_late(lib, "_2.jpg")
        before = neighbour_lists(lib)
        assert all(kept is not None for _, kept in before.values())
        assert lib.add([Path(p.path) for p in late], progress=False).added == LATE
    drawn = []
    draw = divergence._draw_inputs

    def counting(mixtures, key):
        drawn.extend((m, key) for m in mixtures)
        return draw(mixtures, key)

    monkeypatch.setattr(divergence, "_draw_inputs", counting)
    with Library.open(sparse) as lib:  # a new process would start with empty caches too
        report = lib.build_index(progress=False)
        assert report.new_lists == LATE and report.changed_lists > 0
        after = neighbour_lists(lib)
    # The cheap estimate drew only the added photos' spatial and luminance sets (128
    # samples each); the old photos' sets came from the store, and stay stored as they
    # were.
    assert len([key for _, key in drawn if key[0] == 128]) == 2 * LATE
    assert all(after[p][1] == kept for p, (_, kept) in before.items())
