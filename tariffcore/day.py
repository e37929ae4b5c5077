"""The local day of a posted tariff: minutes of the day, windows that may cross midnight,
checking that a tariff's windows cover the day exactly once, and wall-clock minutes of a
local day as UTC instants. Both the parking bands and the charging time-of-use windows are
such windows."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Protocol
from zoneinfo import ZoneInfo

MINUTES_PER_DAY = 24 * 60
_DAY = dt.timedelta(days=1)


class DayWindow(Protocol):
    """A named window ``[start_min, end_min)`` of the local day; ``start_min > end_min``
    crosses midnight."""

    @property
    def name(self) -> str: ...
    @property
    def start_min(self) -> int: ...
    @property
    def end_min(self) -> int: ...


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def check_window(noun: str, name: str, start_min: int, end_min: int) -> None:
    """Raise ValueError unless ``[start_min, end_min)`` is a window of the day (24:00 may end
    one, never start one; start and end differ)."""
    if not (0 <= start_min < MINUTES_PER_DAY and 0 <= end_min <= MINUTES_PER_DAY):
        raise ValueError(f"{noun} {name!r}: times must lie within 00:00–24:00")
    if start_min == end_min:
        raise ValueError(f"{noun} {name!r}: start and end must differ")


def intervals(window: DayWindow) -> tuple[tuple[int, int], ...]:
    """The window's pieces within one local day, as ``[start, end)`` minutes."""
    if window.start_min < window.end_min:
        return ((window.start_min, window.end_min),)
    return ((0, window.end_min), (window.start_min, MINUTES_PER_DAY))


def check_cover_day(windows: Iterable[DayWindow], noun: str) -> None:
    """Raise ValueError unless ``windows`` cover every minute of the day exactly once; the
    message names the first minute that is not (``07:00 is not covered by any band``)."""
    cover = [0] * MINUTES_PER_DAY
    for window in windows:
        for start, end in intervals(window):
            for minute in range(start, end):
                cover[minute] += 1
    for minute, count in enumerate(cover):
        if count != 1:
            what = "not covered by any" if count == 0 else "covered by more than one"
            raise ValueError(f"{hhmm(minute)} is {what} {noun}")


def local_at(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of local ``day`` + ``minute`` (minute 1440 is the next midnight)."""
    if minute >= MINUTES_PER_DAY:
        day, minute = day + _DAY, minute - MINUTES_PER_DAY
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(dt.UTC)


def require_aware(value: object, name: str) -> dt.datetime:
    """``value`` in UTC; ValueError unless it is a timezone-aware datetime."""
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (ISO 8601 with offset)")
    return value.astimezone(dt.UTC)
