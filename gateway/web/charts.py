"""The charger pages' charts and figures, pure (no I/O, no clock: *now* is given): a status
timeline as SVG bars, energy per day as SVG columns, and the numbers and times as a person
reads them. The SVG is drawn on the server; colours come from classes in ``web.css`` (the
page's CSP allows no inline style)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from charging.health.liveness import human

WIDTH = 1000.0  # the charts' viewBox width

# What a status (as the timeline spells it, canonical) is drawn as, and its legend.
STATUS_CLASS = {
    "Available": "st-available",
    "Charging": "st-charging",
    "Preparing": "st-busy",
    "SuspendedEV": "st-busy",
    "SuspendedEVSE": "st-busy",
    "Finishing": "st-busy",
    "Reserved": "st-busy",
    "Occupied": "st-busy",
    "Unavailable": "st-unavailable",
    "Faulted": "st-faulted",
    "Offline": "st-offline",
    "Unknown": "st-unknown",
}
LEGEND = (
    ("st-available", "空闲 · available"),
    ("st-charging", "充电中 · charging"),
    ("st-busy", "占用 · in use"),
    ("st-unavailable", "停用 · unavailable"),
    ("st-faulted", "故障 · faulted"),
    ("st-offline", "离线 · offline"),
    ("st-unknown", "未知 · unknown"),
)
STATE_LABELS = {
    "faulted": "故障 · faulted",
    "offline": "离线 · offline",
    "unavailable": "停用 · unavailable",
    "unknown": "未知 · unknown",
    "warning": "告警 · warning",
    "charging": "充电中 · charging",
    "occupied": "占用 · occupied",
    "available": "空闲 · available",
}


@dataclass(frozen=True, slots=True)
class Bar:
    """A span of the timeline: from ``x`` for ``width`` (viewBox units), its status."""

    x: float
    width: float
    status: str
    css: str
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class Column:
    """A column of a bar chart: its box (viewBox units, y down), label and value."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: float


def status_class(status: str) -> str:
    return STATUS_CLASS.get(status, "st-unknown")


def timeline_bars(
    points: Sequence[tuple[datetime, str]], start: datetime, end: datetime, width: float = WIDTH
) -> list[Bar]:
    """The bars of ``[start, end)`` for a timeline of ``(since, status)`` points (each holds
    until the next; the last until *end*). Before the first point nothing is drawn (nothing
    was known). Bars narrower than a hair are widened to 0.5 so a short fault still shows."""
    if end <= start:
        raise ValueError("an empty window")
    span = (end - start).total_seconds()
    ordered = sorted(points, key=lambda p: p[0])
    out: list[Bar] = []
    for i, (since, status) in enumerate(ordered):
        until = ordered[i + 1][0] if i + 1 < len(ordered) else end
        lo, hi = max(since, start), min(until, end)
        if hi <= lo:
            continue
        x = (lo - start).total_seconds() / span * width
        w = (hi - lo).total_seconds() / span * width
        out.append(Bar(round(x, 2), round(max(w, 0.5), 2), status, status_class(status), lo, hi))
    return out


def ticks(
    start: datetime, end: datetime, step: timedelta, zone: ZoneInfo, width: float = WIDTH
) -> list[tuple[float, str]]:
    """Axis ticks at whole *step*s of local time (hours, or local midnights for a step of a
    day or more) within ``[start, end]``, as ``(x, label)``."""
    if end <= start or step <= timedelta(0):
        raise ValueError("an empty window or step")
    span = (end - start).total_seconds()
    local = start.astimezone(zone)
    if step >= timedelta(days=1):
        t = datetime.combine(local.date(), datetime.min.time(), zone)
        fmt = "%m-%d"
    else:
        t = local.replace(minute=0, second=0, microsecond=0)
        hours = max(1, int(step.total_seconds() // 3600))
        t = t.replace(hour=t.hour - t.hour % hours)
        fmt = "%H:%M"
    out = []
    while t <= end:
        if t >= start:
            x = (t - start).total_seconds() / span * width
            out.append((round(x, 1), t.strftime(fmt)))
        # step in local wall time, then back to an aware instant (DST-safe for Asia/Shanghai)
        t = (t.replace(tzinfo=None) + step).replace(tzinfo=zone)
    return out


def session_energy_wh(session: Mapping[str, Any]) -> float:
    """A session's energy from its meter registers (0 while open or when a register is
    missing; a meter that went backwards counts nothing)."""
    a, b = session.get("meter_start_wh"), session.get("meter_stop_wh")
    if a is None or b is None:
        return 0.0
    return max(0.0, float(b) - float(a))


def energy_by_day(
    sessions: Iterable[Mapping[str, Any]], now: datetime, zone: ZoneInfo, days: int = 7
) -> list[tuple[date, float]]:
    """Energy of the sessions that ended on each of the last *days* local days (today last),
    from their meter registers: ``(day, Wh)``, days without sessions at 0."""
    today = now.astimezone(zone).date()
    first = today - timedelta(days=days - 1)
    out = {first + timedelta(days=i): 0.0 for i in range(days)}
    for s in sessions:
        ended = s.get("ended_at")
        if not ended:
            continue
        day = datetime.fromisoformat(ended).astimezone(zone).date()
        if day in out:
            out[day] += session_energy_wh(s)
    return sorted(out.items())


def columns(
    values: Sequence[tuple[str, float]], height: float, width: float = WIDTH, gap: float = 0.2
) -> list[Column]:
    """Bar-chart columns for ``(label, value)`` pairs, scaled so the largest fills *height*
    (all zero: flat columns); *gap* is the share of each slot left empty."""
    if not values:
        return []
    slot = width / len(values)
    top = max(v for _, v in values)
    out = []
    for i, (label, v) in enumerate(values):
        h = 0.0 if top <= 0 else max(0.0, v) / top * height
        out.append(
            Column(
                round(i * slot + slot * gap / 2, 2),
                round(height - h, 2),
                round(slot * (1 - gap), 2),
                round(h, 2),
                label,
                v,
            )
        )
    return out


def pct(share: float | None) -> str:
    """A share as a person reads it: ``96 %`` (``—`` when nothing is known)."""
    return "—" if share is None else f"{share * 100:.0f} %"


def kwh(wh: float | None) -> str:
    """Watt-hours as kWh with one decimal (``—`` for none)."""
    return "—" if wh is None else f"{wh / 1000:.1f}"


def local(iso: str | None, zone: ZoneInfo, with_date: bool = True) -> str:
    """An ISO instant in the town's time (``12-04 09:30``), ``—`` for none."""
    if not iso:
        return "—"
    t = datetime.fromisoformat(iso).astimezone(zone)
    return t.strftime("%m-%d %H:%M" if with_date else "%H:%M")


def duration(since: str | None, now: datetime) -> str:
    """How long ago *since* was, coarse: ``45 s``, ``12 min``, ``3 h 5 min``, ``2 d 4 h``."""
    if not since:
        return "—"
    return human(now - datetime.fromisoformat(since), up_to=60, days_from_h=24)
