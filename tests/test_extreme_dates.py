"""Capture dates at the ends of what a ``datetime`` holds (the years 1 and 9999).

Decoding may refuse such EXIF dates, but a store can hold them anyway (written by an
older leitmotiv, or by hand): the timeline, the motif pages and the CLI must still
work.  The photos are inserted straight into the store, clustered as one cluster.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from click.testing import CliRunner
from test_web import call

from leitmotiv import store, summaries
from leitmotiv.cli import cli
from leitmotiv.config import Settings
from leitmotiv.library import Library
from leitmotiv.web.app import make_app, make_timeline, next_period

LAST_DAY = dt.datetime(9999, 12, 31, 12, 0)


def dated_library(folder, times: list[dt.datetime]) -> Library:
    """A library whose photos (no files, no models) carry these EXIF times, all in one
    current cluster."""
    library = Library.open(Settings(library=folder))
    featurizer, divergence, clusterer = library.context.key_ids(create=True)
    with store.bound(library.db), library.db.atomic():
        ids = [
            store.Photo.insert(
                path=f"/nowhere/{i}.jpg", sha256=f"{i:064x}", size=1, mtime=0.0,
                width=4, height=3, taken=taken, taken_source="exif",
            ).execute()
            for i, taken in enumerate(times)
        ]  # fmt: skip
        run = store.ClusterRun.create(
            clusterer=clusterer, featurizer=featurizer, divergence=divergence,
            n_photos=len(ids), base_photos=len(ids), is_current=True,
        )  # fmt: skip
        cluster = store.Cluster.create(run=run, exemplar=ids[0])
        for photo_id in ids:
            store.ClusterMember.create(cluster=cluster, photo=photo_id)
        summaries.store_run(run.id)  # as build-index stores them with the clustering
    return library


@pytest.mark.parametrize(
    ("times", "labels"),
    [
        ([dt.datetime(1, 1, 1), dt.datetime(2020, 5, 1), dt.datetime(9999, 12, 31)],
         ["0001", "2020", "9999"]),
        ([dt.datetime(9999, 12, 20), LAST_DAY], ["9999-12-20", "9999-12-31"]),
        ([dt.datetime(9999, 1, 5), LAST_DAY], ["9999-01", "9999-12"]),
        ([dt.datetime(1, 1, 1, 8), dt.datetime(1, 1, 3)], ["0001-01-01", "0001-01-03"]),
    ],
)  # fmt: skip
def test_motifs_of_extreme_dates_open_on_the_web_and_in_the_cli(tmp_path, times, labels):
    library = dated_library(tmp_path / "library", times)
    try:
        app = make_app(library)
        page = call(app, "/motifs")
        assert page.status == 200
        (motif,) = library.motifs()
        assert [p.label for p in motif.periods] == labels
        for label in labels:
            assert f'href="/motifs/{motif.cluster_id}/{label}"' in page.text
            period = call(app, f"/motifs/{motif.cluster_id}/{label}")
            assert period.status == 200, label
            assert f"{label[:4]}-" in period.text  # the date shown with its 4-digit year
        api = call(app, "/api/motifs").json()["motifs"]
        assert [p["label"] for p in api[0]["periods"]] == labels
    finally:
        library.close()
    result = CliRunner().invoke(cli, ["--library", str(tmp_path / "library"), "motifs", "--json"])
    assert result.exit_code == 0, result.output
    assert [p["label"] for p in json.loads(result.stdout)[0]["periods"]] == labels


@pytest.mark.parametrize("resolution", ["day", "month", "year"])
def test_the_last_period_ends_at_the_last_moment(resolution):
    assert next_period(LAST_DAY.replace(hour=0), resolution) == dt.datetime.max
    assert next_period(dt.datetime(2020, 12, 1), resolution) > dt.datetime(2020, 12, 1)


def test_a_timeline_up_to_the_year_9999_ends(tmp_path):
    library = dated_library(tmp_path / "library", [dt.datetime(9990, 6, 1), LAST_DAY])
    try:
        timeline = make_timeline(library.motifs())
    finally:
        library.close()
    assert timeline.end == dt.datetime.max
    assert [t.label for t in timeline.ticks][:2] == ["9990", "9991"]
    assert all(3.0 <= t.x <= 97.0 for t in timeline.ticks)
