"""Motif analysis: bursts, periods, resolution and the recurrence score."""

from datetime import datetime, timedelta

import pytest

from leitmotiv.motifs import Shot, bursts, choose_resolution, find_motifs, period_of


def shots(start_id, times, source="exif"):
    return [Shot(start_id + i, t, source) for i, t in enumerate(times)]


def test_scene_seen_in_separate_years_outranks_a_burst():
    yearly = shots(0, [datetime(2015 + k, 7, 1, 18, 0) for k in range(4)])
    burst = shots(100, [datetime(2019, 3, 2, 14, 0) + timedelta(minutes=2 * k) for k in range(20)])
    motifs = find_motifs([(1, 0, yearly), (2, 100, burst)])
    assert [m.cluster_id for m in motifs] == [1, 2]
    lake, afternoon = motifs
    assert lake.resolution == "year"
    assert [p.label for p in lake.periods] == ["2015", "2016", "2017", "2018"]
    assert lake.recurring and not afternoon.recurring
    assert afternoon.n_occurrences == 1 and len(afternoon.periods[0].photo_ids) == 20
    assert lake.score > 4 > 1 <= afternoon.score < 2
    assert lake.gaps_days == pytest.approx([365, 366, 365], abs=1)


def test_file_times_are_counted_apart_not_placed_on_the_timeline():
    mixed = [Shot(1, datetime(2020, 1, 1), "exif"), Shot(2, datetime(2021, 1, 1), "mtime"),
             Shot(3, None, None)]
    (motif,) = find_motifs([(7, 1, mixed)])
    assert motif.undated_ids == [2, 3]
    assert [p.photo_ids for p in motif.periods] == [[1]]
    assert motif.member_ids == [1, 2, 3]


def test_resolution_follows_the_library_span():
    base = datetime(2020, 5, 1)
    assert choose_resolution([base, base + timedelta(days=10)]) == "day"
    assert choose_resolution([base, base + timedelta(days=400)]) == "month"
    assert choose_resolution([base, base + timedelta(days=4000)]) == "year"
    assert period_of(datetime(2020, 5, 17, 13, 5), "month") == ("2020-05", datetime(2020, 5, 1))
    with pytest.raises(ValueError, match="resolution"):
        period_of(base, "week")


def test_bursts_split_on_the_gap():
    t0 = datetime(2022, 1, 1, 12, 0)
    dated = [(t0, 1), (t0 + timedelta(minutes=10), 2), (t0 + timedelta(hours=3), 3)]
    occ = bursts(dated, timedelta(minutes=30))
    assert [o.photo_ids for o in occ] == [[1, 2], [3]]


def test_since_until_restrict_the_timeline():
    yearly = shots(0, [datetime(2010 + k, 1, 1) for k in range(10)])
    (motif,) = find_motifs([(1, 0, yearly)], since=datetime(2012, 1, 1),
                           until=datetime(2014, 12, 31))
    assert [p.label for p in motif.periods] == ["2012-01", "2013-01", "2014-01"]


def test_timezone_aware_times_mix_with_naive_ones():
    aware = datetime(2021, 6, 1, 10, 0, tzinfo=datetime.now().astimezone().tzinfo)
    members = [Shot(1, aware, "exif"), Shot(2, datetime(2023, 6, 1), "exif")]
    (motif,) = find_motifs([(1, 1, members)])
    assert len(motif.periods) == 2


def test_empty_library_has_no_motifs():
    assert find_motifs([]) == []
    (motif,) = find_motifs([(1, 5, [Shot(5, None, None)])])
    assert motif.score == 0 and motif.periods == []
