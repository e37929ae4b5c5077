"""Availability: the share of time a connector could be used, from its status timeline (its own
reports, connector 0's, and the outages), over the last 24 h and 7 days."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from charging.health.records import (
    FAULTED,
    OFFLINE_STATUS,
    UNAVAILABLE,
    UNKNOWN_STATUS,
    USABLE_STATUSES,
    Outage,
    StatusPoint,
    canonical_status,
)
from events import utc


def _usable(status: str) -> bool:
    return canonical_status(status) in USABLE_STATUSES


def availability(history: Sequence[StatusPoint], start: datetime, end: datetime) -> float:
    """The share of ``[start, end)`` spent in a usable status (0..1). ``history`` is a sequence
    of ``(since, status)``; each holds until the next ``since`` (the last until ``end``), before
    the first nothing is known (unusable). Points at the same instant: the last one holds."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise ValueError(f"empty window: {start.isoformat()} .. {end.isoformat()}")
    points = sorted(history, key=lambda p: p[0])
    usable = timedelta(0)
    for i, (since, status) in enumerate(points):
        if not _usable(status):
            continue
        until = points[i + 1][0] if i + 1 < len(points) else end
        lo, hi = max(since, start), min(until, end)
        if hi > lo:
            usable += hi - lo
    return usable / (end - start)


def connector_timeline(
    reports: Sequence[StatusPoint],
    charger: Sequence[StatusPoint] = (),
    outages: Sequence[Outage] = (),
) -> tuple[StatusPoint, ...]:
    """What a connector effectively was, over time: ``Offline`` during an outage, else connector
    0's status (``charger``) when that is Faulted or Unavailable (the whole charger is down),
    else the connector's own status, else ``Unknown``. Consecutive equal statuses are merged."""
    own = sorted(reports, key=lambda p: p[0])
    whole = sorted(charger, key=lambda p: p[0])
    own_at = [p[0] for p in own]
    whole_at = [p[0] for p in whole]
    instants = set(own_at) | set(whole_at)
    for o in outages:
        instants.add(o.start)
        if o.end is not None:
            instants.add(o.end)

    def at(points: list[StatusPoint], keys: list[datetime], t: datetime) -> str | None:
        i = bisect.bisect_right(keys, t) - 1
        return canonical_status(points[i][1]) if i >= 0 else None

    out: list[StatusPoint] = []
    for t in sorted(instants):
        if any(o.start <= t and (o.end is None or t < o.end) for o in outages):
            status = OFFLINE_STATUS
        else:
            top = at(whole, whole_at, t)
            status = top if top in (FAULTED, UNAVAILABLE) else at(own, own_at, t) or UNKNOWN_STATUS
        if not out or out[-1][1] != status:
            out.append((t, status))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Availability:
    """Availability over the last 24 h and 7 days (0..1; None: nothing known yet), per
    connector and for the charger (the mean of its connectors: connector-hours usable)."""

    day: float | None
    week: float | None
    connectors: Mapping[int, tuple[float | None, float | None]]


def window(timeline: Sequence[StatusPoint], now: datetime, span: timedelta) -> float | None:
    """Availability over ``span`` before ``now``, measured from the first thing known of the
    connector if that is later: a charger installed yesterday is not 'down' the week before."""
    if not timeline:
        return None
    start = max(now - span, timeline[0][0])
    return availability(timeline, start, now) if start < now else None


def mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None
