"""The per-clustering summaries stored with each clustering run, against a recomputation.

The reference recomputes everything from the members as the listings did before the
summaries existed: the display order by sorting, the motifs by
:func:`leitmotiv.motifs.find_motifs` over the whole clustering.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from test_motifs_library import build_dated_library

from leitmotiv import store, summaries
from leitmotiv.config import Settings
from leitmotiv.json_shapes import cluster_json, motif_json
from leitmotiv.library import Library
from leitmotiv.motifs import Shot, find_motifs, library_scale


def _wall(photo) -> dt.datetime | None:
    return None if photo.taken is None else photo.taken.replace(tzinfo=None)


def _reference(library: Library):
    """(clusters as {id: (exemplar id, [member photos in display order])}, motifs)."""
    clusters = {}
    for cluster in library.clusters():
        ordered = sorted(
            cluster.members,
            key=lambda p, e=cluster.exemplar.id: (p.id != e, p.taken is None, _wall(p), p.path),
        )
        clusters[cluster.id] = (cluster.exemplar.id, ordered)
    shots = [
        (cid, exemplar, [Shot(p.id, p.taken, p.taken_source) for p in members])
        for cid, (exemplar, members) in clusters.items()
    ]
    return clusters, shots, find_motifs(shots)


def assert_summaries_match(library: Library) -> None:
    """Every stored summary of the current run equals its recomputation."""
    clusters, shots, motifs = _reference(library)
    run = library.summary()
    assert run is not None and run.n_clusters == len(clusters) > 0
    assert run.n_photos == sum(len(m) for _, m in clusters.values())
    resolution, span = library_scale(shots)
    assert (run.resolution, run.span) == (resolution, span)
    starts = [p.start for m in motifs for p in m.periods]
    assert (run.first_period, run.last_period) == (min(starts), max(starts))

    stored = library.cluster_summaries()
    assert [s.cluster_id for s in stored] == sorted(clusters)
    by_rank = library.cluster_summaries(by_motif=True)
    assert [s.cluster_id for s in by_rank] == [m.cluster_id for m in motifs]
    assert [s.motif_rank for s in by_rank] == list(range(len(motifs)))
    featurizer_key = library.featurizer.key()
    for summary, motif in zip(by_rank, motifs, strict=True):
        exemplar, members = clusters[summary.cluster_id]
        assert summary.exemplar_id == exemplar
        assert summary.size == len(members)
        times = [_wall(p) for p in members if p.taken is not None]
        assert (summary.first_taken, summary.last_taken) == (min(times), max(times))
        assert summary.score == motif.score
        assert summary.n_occurrences == motif.n_occurrences
        assert summary.n_undated == len(motif.undated_ids)
        assert [(p.label, p.start, p.n_photos, p.n_occurrences) for p in summary.periods] == [
            (p.label, p.start, len(p.photo_ids), len(p.occurrences)) for p in motif.periods
        ]
        assert summary.average_key == summaries.average_key(
            featurizer_key, [p.sha256 for p in members]
        )
        # The display order is stored as positions: any page is an index range.
        ids = [p.id for p in members]
        assert library.member_ids([summary.cluster_id])[summary.cluster_id] == ids
        assert library.member_ids([summary.cluster_id], 1, 3)[summary.cluster_id] == ids[1:3]
        # One motif alone, from the stored scale, is the whole library's motif.
        assert library.motif(summary.cluster_id) == motif
    assert_listings_match(library, motifs)


def assert_listings_match(library: Library, motifs) -> None:
    """The stored /api/clusters and /api/motifs entries equal their recomputation from
    the whole clustering, in both orders."""
    clusters = library.clusters()
    photos = {p.id: p for c in clusters for p in c.members}
    by_id = library.listings()
    assert [json.loads(text) for text, _ in by_id] == [cluster_json(c) for c in clusters]
    by_rank = library.listings(by_motif=True)
    assert [json.loads(text) for _, text in by_rank] == [
        motif_json(m, photos, f"/clusters/{m.cluster_id}/average.png") for m in motifs
    ]
    assert library.listings(2, 3, by_motif=True) == by_rank[2:5]


@pytest.fixture(scope="module")
def dated(tmp_path_factory, photos_dir):
    _, _, library = build_dated_library(tmp_path_factory.mktemp("summaries"), photos_dir)
    yield library
    library.close()


def test_summaries_of_a_dated_library_equal_a_recomputation(dated):
    assert_summaries_match(dated)
    # Spot checks against what the test wrote into EXIF (see test_motifs_library.py).
    run = dated.summary()
    assert run.resolution == "year"
    assert (run.first_period, run.last_period) == (dt.datetime(2015, 1, 1), dt.datetime(2025, 1, 1))
    top = dated.cluster_summaries(0, 1, by_motif=True)[0]
    assert [p.label for p in top.periods] == ["2016", "2018", "2020", "2022"]


def test_summaries_are_replaced_with_the_clustering(tmp_path, photos_dir):
    files = sorted(photos_dir.glob("*.jpg"))
    settings = Settings(
        library=tmp_path / "lib", params={"featurizer": {"gmm": {"n_samples": 500}}}
    )
    with Library.open(settings) as library:
        library.add(files[:12], progress=False, jobs=1)
        library.build_index(progress=False)
        assert_summaries_match(library)
        library.add(files[12:20], progress=False, jobs=1)
        library.build_index(progress=False)
        assert_summaries_match(library)
        with store.bound(library.db):
            # The old run's summaries went with it (foreign keys cascade).
            assert store.ClusterSummary.select().count() == library.summary().n_clusters


def test_a_version_4_clustering_gets_its_summaries_when_migrated(tmp_path, photos_dir):
    files = sorted(photos_dir.glob("*.jpg"))[:8]
    settings = Settings(
        library=tmp_path / "lib", params={"featurizer": {"gmm": {"n_samples": 500}}}
    )
    with Library.open(settings) as library:
        library.add(files, progress=False, jobs=1)
        library.build_index(progress=False)
        expected = [(c.id, [p.id for p in c.members]) for c in library.clusters()]
    # Take the database back to schema 4: no summaries, no positions, no new columns.
    db = store.connect(None, tmp_path / "lib")
    for sql in (
        "DROP TABLE cluster_summary",
        "DROP INDEX cluster_member_cluster_id_position",
        f"DROP INDEX {store.PHOTO_ORDER_INDEX}",
        "ALTER TABLE cluster_member DROP COLUMN position",
        *(
            f"ALTER TABLE cluster_run DROP COLUMN {name}"
            for name in ("n_clusters", "resolution", "span_us", "first_period", "last_period")
        ),
        "UPDATE schema_version SET version = 4",
    ):
        db.execute_sql(sql)
    db.close()
    with Library.open(settings) as library:
        assert store.schema_version(library.db) == store.SCHEMA_VERSION
        assert [(c.id, [p.id for p in c.members]) for c in library.clusters()] == expected
        assert_summaries_match(library)
        indexes = {i.name for i in library.db.get_indexes("photo")}
        assert store.PHOTO_ORDER_INDEX in indexes


def test_a_version_6_clustering_gets_its_listings_when_migrated(tmp_path, photos_dir):
    files = sorted(photos_dir.glob("*.jpg"))[:10]
    settings = Settings(
        library=tmp_path / "lib", params={"featurizer": {"gmm": {"n_samples": 500}}}
    )
    with Library.open(settings) as library:
        library.add(files, progress=False, jobs=1)
        library.build_index(progress=False)
    # Take the database back to schema 6: the summaries without their listings.
    db = store.connect(None, tmp_path / "lib")
    for sql in (
        "ALTER TABLE cluster_summary DROP COLUMN cluster_json",
        "ALTER TABLE cluster_summary DROP COLUMN motif_json",
        "UPDATE schema_version SET version = 6",
    ):
        db.execute_sql(sql)
    db.close()
    with pytest.raises(RuntimeError, match="schema version 6"):
        Library.open(settings, read_only=True)  # the web view waits for a writer
    with Library.open(settings) as library:
        assert store.schema_version(library.db) == store.SCHEMA_VERSION
        assert_summaries_match(library)


def test_listings_show_a_moved_photo_at_its_new_path(tmp_path, photos_dir):
    folder = tmp_path / "photos"
    folder.mkdir()
    for source in sorted(photos_dir.glob("*.jpg"))[:8]:
        shutil.copy(source, folder / source.name)
    settings = Settings(
        library=tmp_path / "lib", params={"featurizer": {"gmm": {"n_samples": 500}}}
    )
    with Library.open(settings) as library:
        library.add([folder], progress=False, jobs=1)
        library.build_index(progress=False)
        first = sorted(folder.iterdir())[0]
        first.rename(folder / f"moved-{first.name}")
        assert library.add([folder], progress=False, jobs=1).moved == 1
        names = {
            Path(member["path"]).name
            for text, _ in library.listings()
            for member in json.loads(text)["members"]
        }
        assert f"moved-{first.name}" in names and first.name not in names
        assert_summaries_match(library)  # the motifs' listings too
