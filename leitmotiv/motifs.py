"""Motifs: clusters seen through time.

A *motif* is a cluster of photos looked at along the time axis.  What makes it a
leitmotiv is recurrence: the same scene photographed in many separate periods, not
twenty near-duplicates shot one afternoon.  This module turns clusters with capture
times into motifs with their occurrences, periods, gaps and a recurrence score.

Only EXIF capture times count (``taken_source == "exif"``): a file's modification
time says when it was copied, not when it was shot, so photos dated only by it are
counted apart as undated, never placed on the timeline.

Scoring
-------
1. Photos of a motif taken within ``burst_gap`` of each other (default 30 minutes)
   form one *burst*, which counts as one *occurrence*.
2. The timeline's resolution follows the span of the whole library: days for a
   span under 60 days, months under 3 years, years beyond.
3. The recurrence score is the number of distinct periods with an occurrence plus
   a bonus in [0, 1) for how much of the library's span they cover::

       score = periods + (last - first) / (library_span + resolution)

   so a scene shot in four separate years scores above 4, a burst on one afternoon
   scores 1, and among motifs seen in equally many periods the longer-lived wins.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise

RESOLUTIONS = ("day", "month", "year")
_RESOLUTION_LENGTH = {
    "day": timedelta(days=1),
    "month": timedelta(days=30.44),
    "year": timedelta(days=365.25),
}


@dataclass(frozen=True)
class Shot:
    """One photo of a cluster, as the motif analysis sees it."""

    photo_id: int
    taken: datetime | None
    taken_source: str | None


@dataclass(frozen=True)
class Occurrence:
    """One burst: photos taken within the burst gap of each other."""

    start: datetime
    end: datetime
    photo_ids: list[int]


@dataclass(frozen=True)
class Period:
    """One period of the timeline (a day, month or year) in which a motif appears."""

    label: str
    start: datetime
    occurrences: list[Occurrence]

    @property
    def photo_ids(self) -> list[int]:
        """Every photo of the period, in time order."""
        return [pid for occ in self.occurrences for pid in occ.photo_ids]


@dataclass(frozen=True)
class Motif:
    """A cluster seen through time.

    Attributes
    ----------
    cluster_id, exemplar_id : int
    score : float
        Recurrence score (see the module docstring).
    resolution : str
        "day", "month" or "year".
    periods : list of Period
        Periods with an occurrence, in time order.
    gaps_days : list of float
        Days between the starts of consecutive occurrences.
    undated_ids : list of int
        Members without an EXIF capture time, counted apart.
    member_ids : list of int
        Every member.
    """

    cluster_id: int
    exemplar_id: int
    score: float
    resolution: str
    periods: list[Period]
    gaps_days: list[float]
    undated_ids: list[int] = field(default_factory=list)
    member_ids: list[int] = field(default_factory=list)

    @property
    def n_occurrences(self) -> int:
        """Bursts counted once each."""
        return sum(len(p.occurrences) for p in self.periods)

    @property
    def recurring(self) -> bool:
        """True when the motif appears in at least two separate periods."""
        return len(self.periods) >= 2


def capture_time(shot: Shot) -> datetime | None:
    """The shot's capture time if it is a real one (EXIF), else None.

    Times with a UTC offset are compared as local wall-clock times: the motif
    timeline is about when in the photographer's day and year a photo was taken.
    """
    if shot.taken is None or shot.taken_source != "exif":
        return None
    return shot.taken.replace(tzinfo=None)


def choose_resolution(times: Iterable[datetime]) -> str:
    """Day, month or year, from the span of the given times."""
    times = list(times)
    if len(times) < 2:
        return "year"
    span = max(times) - min(times)
    if span < timedelta(days=60):
        return "day"
    if span < timedelta(days=3 * 365):
        return "month"
    return "year"


def period_of(moment: datetime, resolution: str) -> tuple[str, datetime]:
    """Label and start of the period holding ``moment``.

    Labels are ``YYYY-MM-DD``, ``YYYY-MM`` or ``YYYY`` with the year always in four
    digits (taken from ``isoformat``: ``strftime("%Y")`` writes the year 1 as ``1``
    on Linux, a label the web view's period URLs would not accept).
    """
    if resolution == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return start.date().isoformat(), start
    if resolution == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        return start.date().isoformat()[:7], start
    if resolution == "year":
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
        return start.date().isoformat()[:4], start
    raise ValueError(f"unknown resolution {resolution!r}; choose one of {', '.join(RESOLUTIONS)}")


def bursts(dated: Sequence[tuple[datetime, int]], burst_gap: timedelta) -> list[Occurrence]:
    """Group (time, photo id) pairs into bursts separated by more than ``burst_gap``."""
    occurrences: list[Occurrence] = []
    current: list[tuple[datetime, int]] = []
    for moment, photo_id in sorted(dated):
        if current and moment - current[-1][0] > burst_gap:
            occurrences.append(_occurrence(current))
            current = []
        current.append((moment, photo_id))
    if current:
        occurrences.append(_occurrence(current))
    return occurrences


def _occurrence(items: list[tuple[datetime, int]]) -> Occurrence:
    return Occurrence(items[0][0], items[-1][0], [pid for _, pid in items])


def find_motifs(
    clusters: Sequence[tuple[int, int, Sequence[Shot]]],
    burst_gap: timedelta = timedelta(minutes=30),
    since: datetime | None = None,
    until: datetime | None = None,
    resolution: str | None = None,
) -> list[Motif]:
    """Motifs of the given clusters, highest recurrence score first.

    Parameters
    ----------
    clusters : sequence of (cluster_id, exemplar_id, shots)
    burst_gap : timedelta
        Photos closer in time than this form one occurrence.
    since, until : datetime, optional
        Keep only capture times in [since, until]; undated photos are kept apart.
    resolution : str, optional
        Force "day", "month" or "year" instead of choosing from the library's span.
    """
    scale = library_scale(clusters, since, until, resolution)
    motifs = [
        motif_of(cluster_id, exemplar_id, shots, *scale, burst_gap, since, until)
        for cluster_id, exemplar_id, shots in clusters
    ]
    motifs.sort(key=motif_order)
    return motifs


def motif_order(motif: Motif) -> tuple[float, int, int]:
    """Sort key of motifs: highest score first, then the larger, then by cluster id."""
    return (-motif.score, -len(motif.member_ids), motif.cluster_id)


def _within(moment: datetime, since: datetime | None, until: datetime | None) -> bool:
    return (since is None or moment >= since) and (until is None or moment <= until)


def library_scale(
    clusters: Sequence[tuple[int, int, Sequence[Shot]]],
    since: datetime | None = None,
    until: datetime | None = None,
    resolution: str | None = None,
) -> tuple[str, timedelta]:
    """The timeline's resolution and the library's span, from every capture time.

    Both depend on the whole library, so a motif computed alone by :func:`motif_of`
    needs them from here (or from where they were stored) to score as in
    :func:`find_motifs`.
    """
    times = [
        t
        for _, _, shots in clusters
        for t in map(capture_time, shots)
        if t and _within(t, since, until)
    ]
    span = (max(times) - min(times)) if times else timedelta(0)
    return resolution or choose_resolution(times), span


def motif_of(
    cluster_id: int,
    exemplar_id: int,
    shots: Sequence[Shot],
    resolution: str,
    library_span: timedelta,
    burst_gap: timedelta = timedelta(minutes=30),
    since: datetime | None = None,
    until: datetime | None = None,
) -> Motif:
    """One cluster's motif, given the library's resolution and span (:func:`library_scale`).

    Parameters
    ----------
    cluster_id, exemplar_id : int
    shots : sequence of Shot
        The cluster's members.
    resolution : str
        "day", "month" or "year".
    library_span : timedelta
        From the first to the last capture time of the whole library.
    burst_gap, since, until
        As in :func:`find_motifs`.
    """
    dated = [(t, s.photo_id) for s in shots if (t := capture_time(s)) and _within(t, since, until)]
    undated = [s.photo_id for s in shots if capture_time(s) is None]
    occurrences = bursts(dated, burst_gap)
    periods: dict[str, Period] = {}
    for occ in occurrences:
        label, start = period_of(occ.start, resolution)
        periods.setdefault(label, Period(label, start, [])).occurrences.append(occ)
    gaps = [(b.start - a.start).total_seconds() / 86400.0 for a, b in pairwise(occurrences)]
    spread = (occurrences[-1].start - occurrences[0].start) if occurrences else timedelta(0)
    score = len(periods) + spread / (library_span + _RESOLUTION_LENGTH[resolution])
    return Motif(
        cluster_id=cluster_id,
        exemplar_id=exemplar_id,
        score=float(score),
        resolution=resolution,
        periods=sorted(periods.values(), key=lambda p: p.start),
        gaps_days=gaps,
        undated_ids=undated,
        member_ids=[s.photo_id for s in shots],
    )
