"""Posted parking tariffs and itemised quotes: the pure pricing engine.

No I/O and no clock: a tariff book and the stay's entry/exit instants go in, an itemised
``Quote`` comes out, so the same inputs always give the same fee whoever computes it.
All money is integer fen. Instants are aware datetimes; they are interpreted in the
tariff's zone only where a rule names a wall-clock time ("22:00", local midnight, holidays).

How a stay is priced (see docs/tariffs.md for the full statement):

1. The version in force at the *entry* instant is used for the whole stay.
2. A "first N minutes free" *deduction* makes ``[entry, entry + N)`` one 0-fen line; pricing
   of the bands starts after it.
3. The rest of the stay is cut at band boundaries (and at local midnight / rolling 24 h
   window boundaries when a cap applies); adjacent pieces of the same band are merged.
   Every piece is charged ``ceil(duration / unit) * rate``; units restart in every line.
4. A *threshold* ("stays of at most N minutes cost nothing") zeroes every line of a stay of
   at most N minutes.
5. A per-day cap adds a negative, zero-length adjustment line after the last charged line of
   each cap window whose charges exceed the cap.
"""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args
from zoneinfo import ZoneInfo

VehicleClass = Literal["small", "large", "new_energy"]
VEHICLE_CLASSES: tuple[VehicleClass, ...] = get_args(VehicleClass)
CapMode = Literal["calendar_day", "rolling_24h"]
CAP_MODES: tuple[CapMode, ...] = get_args(CapMode)
FreeFirstMode = Literal["deduction", "threshold"]
FREE_FIRST_MODES: tuple[FreeFirstMode, ...] = get_args(FreeFirstMode)

MINUTES_PER_DAY = 24 * 60
_DAY = dt.timedelta(days=1)
_UTC = dt.UTC


@dataclass(frozen=True)
class Band:
    """A time-of-day band: ``[start_min, end_min)`` in local minutes of the day.

    ``start_min > end_min`` is a window across midnight (22:00–08:00 is ``1320 → 480``).
    ``rate_fen`` is charged per started ``unit_minutes``; a rate of 0 makes the band free.
    """

    name: str
    start_min: int
    end_min: int
    rate_fen: int
    unit_minutes: int

    def __post_init__(self) -> None:
        if not (0 <= self.start_min < MINUTES_PER_DAY and 0 <= self.end_min <= MINUTES_PER_DAY):
            raise ValueError(f"band {self.name!r}: times must lie within 00:00–24:00")
        if self.start_min == self.end_min:
            raise ValueError(f"band {self.name!r}: start and end must differ")
        if self.rate_fen < 0:
            raise ValueError(f"band {self.name!r}: rate_fen must be >= 0")
        if self.unit_minutes <= 0:
            raise ValueError(f"band {self.name!r}: unit_minutes must be > 0")

    @property
    def free(self) -> bool:
        return self.rate_fen == 0

    def intervals(self) -> tuple[tuple[int, int], ...]:
        """The band's pieces within one local day, as ``[start, end)`` minutes."""
        if self.start_min < self.end_min:
            return ((self.start_min, self.end_min),)
        return ((0, self.end_min), (self.start_min, MINUTES_PER_DAY))


def check_bands_cover_day(bands: tuple[Band, ...]) -> None:
    """Raise ValueError unless ``bands`` cover every minute of the day exactly once."""
    cover = [0] * MINUTES_PER_DAY
    for band in bands:
        for start, end in band.intervals():
            for minute in range(start, end):
                cover[minute] += 1
    for minute, count in enumerate(cover):
        if count != 1:
            what = "not covered by any band" if count == 0 else "covered by more than one band"
            raise ValueError(f"{minute // 60:02d}:{minute % 60:02d} is {what}")


@dataclass(frozen=True)
class Cap:
    """At most ``amount_fen`` per window: local calendar day, or 24 h rolling from entry."""

    amount_fen: int
    mode: CapMode

    def __post_init__(self) -> None:
        if self.amount_fen < 0:
            raise ValueError("cap amount_fen must be >= 0")
        if self.mode not in CAP_MODES:
            raise ValueError(f"cap mode must be one of {CAP_MODES}, got {self.mode!r}")


@dataclass(frozen=True)
class FreeFirst:
    """First ``minutes`` free: as a ``deduction`` from every stay, or a ``threshold``."""

    minutes: int
    mode: FreeFirstMode

    def __post_init__(self) -> None:
        if self.minutes <= 0:
            raise ValueError("free_first minutes must be > 0")
        if self.mode not in FREE_FIRST_MODES:
            raise ValueError(
                f"free_first mode must be one of {FREE_FIRST_MODES}, got {self.mode!r}"
            )


@dataclass(frozen=True)
class Rates:
    """What one vehicle class pays in one site class."""

    bands: tuple[Band, ...]
    holiday_bands: tuple[Band, ...]
    cap: Cap | None = None

    def __post_init__(self) -> None:
        check_bands_cover_day(self.bands)
        check_bands_cover_day(self.holiday_bands)


@dataclass(frozen=True)
class TariffVersion:
    """One posted tariff, in force from ``effective_from`` until the next version."""

    version: str
    effective_from: dt.datetime
    zone: ZoneInfo
    rates: Mapping[tuple[str, VehicleClass], Rates]
    holidays: frozenset[dt.date] = frozenset()
    free_first: Mapping[str, FreeFirst] = field(default_factory=dict)
    site_names: Mapping[str, str] = field(default_factory=dict)
    note: str = ""

    def __post_init__(self) -> None:
        if self.effective_from.utcoffset() is None:
            raise ValueError(f"version {self.version!r}: effective_from must be timezone-aware")

    @property
    def site_classes(self) -> tuple[str, ...]:
        return tuple(sorted({site_class for site_class, _ in self.rates}))


@dataclass(frozen=True)
class TariffBook:
    """All versions of the posted tariff, ordered by ``effective_from``."""

    versions: tuple[TariffVersion, ...]

    def __post_init__(self) -> None:
        if not self.versions:
            raise ValueError("a tariff book needs at least one version")
        starts = [v.effective_from for v in self.versions]
        if any(a >= b for a, b in itertools.pairwise(starts)):
            raise ValueError("tariff versions must be in strictly increasing effective_from order")
        ids = [v.version for v in self.versions]
        if len(set(ids)) != len(ids):
            raise ValueError("tariff version ids must be unique")

    def version_at(self, instant: dt.datetime) -> TariffVersion:
        """The version in force at ``instant`` (aware)."""
        _require_aware(instant, "instant")
        found: TariffVersion | None = None
        for version in self.versions:
            if version.effective_from <= instant:
                found = version
        if found is None:
            first = self.versions[0].effective_from.isoformat()
            raise ValueError(
                f"no tariff in force at {instant.isoformat()} (first version: {first})"
            )
        return found


@dataclass(frozen=True)
class QuoteLine:
    start: dt.datetime
    end: dt.datetime
    rule: str
    units: int
    amount_fen: int


@dataclass(frozen=True)
class Quote:
    site_id: str
    tariff_version: str
    total_fen: int
    lines: tuple[QuoteLine, ...]


def _require_aware(value: dt.datetime, name: str) -> None:
    if not isinstance(value, dt.datetime) or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime (ISO 8601 with offset)")


def hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _local_at(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    """The UTC instant of local ``day`` + ``minute`` (minute 1440 is the next midnight)."""
    if minute >= MINUTES_PER_DAY:
        day, minute = day + _DAY, minute - MINUTES_PER_DAY
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(_UTC)


@functools.lru_cache(maxsize=4096)
def _day_intervals(
    day: dt.date, zone: ZoneInfo, bands: tuple[Band, ...]
) -> tuple[tuple[dt.datetime, dt.datetime, Band], ...]:
    """The UTC intervals of ``bands`` on local ``day``, in time order (cached: pure)."""
    pieces = [
        (_local_at(day, a, zone), _local_at(day, b, zone), band)
        for band in bands
        for a, b in band.intervals()
    ]
    return tuple(sorted(pieces, key=lambda piece: piece[0]))


@dataclass(frozen=True)
class _Piece:
    start: dt.datetime  # UTC
    end: dt.datetime  # UTC
    band: Band
    holiday: bool
    window: int  # cap window index (0 without a cap)


def _band_pieces(
    start: dt.datetime,
    end: dt.datetime,
    rates: Rates,
    version: TariffVersion,
    entry: dt.datetime,
) -> Iterator[_Piece]:
    """Pieces of ``[start, end)`` (UTC), one per band interval × local day × cap window."""
    zone = version.zone
    cap = rates.cap
    day = start.astimezone(zone).date()
    first_day = entry.astimezone(zone).date()
    while True:
        day_start = _local_at(day, 0, zone)
        if day_start >= end:
            return
        holiday = day in version.holidays
        bands = rates.holiday_bands if holiday else rates.bands
        for a, b, band in _day_intervals(day, zone, bands):
            lo, hi = max(a, start), min(b, end)
            if lo >= hi:
                continue
            if cap is not None and cap.mode == "rolling_24h":
                k = (lo - entry) // _DAY
                while lo < hi:
                    boundary = min(hi, entry + (k + 1) * _DAY)
                    yield _Piece(lo, boundary, band, holiday, k)
                    lo, k = boundary, k + 1
            else:
                window = (day - first_day).days if cap is not None else 0
                yield _Piece(lo, hi, band, holiday, window)
        day += _DAY


def _merge(pieces: Iterator[_Piece]) -> list[_Piece]:
    merged: list[_Piece] = []
    for piece in pieces:
        if merged:
            last = merged[-1]
            same_band = last.band == piece.band and last.end == piece.start
            if same_band and (piece.band.free or last.window == piece.window):
                merged[-1] = _Piece(last.start, piece.end, last.band, last.holiday, last.window)
                continue
        merged.append(piece)
    return merged


def _units(start: dt.datetime, end: dt.datetime, unit_minutes: int) -> int:
    span = end - start
    unit = dt.timedelta(minutes=unit_minutes)
    return -(-span // unit)


@functools.lru_cache(maxsize=1024)
def _rule_name(band: Band, holiday: bool) -> str:
    window = f"{hhmm(band.start_min)}-{hhmm(band.end_min)}"
    prefix = "holiday " if holiday else ""
    if band.free:
        return f"{prefix}{band.name} {window}"
    rate = f"{band.rate_fen} fen per started {band.unit_minutes} min"
    return f"{prefix}{band.name} {window}, {rate}"


def _cap_label(cap: Cap, window_start: dt.datetime, zone: ZoneInfo) -> str:
    if cap.mode == "calendar_day":
        day = window_start.astimezone(zone).date().isoformat()
        return f"daily cap {cap.amount_fen} fen (local day {day})"
    since = window_start.astimezone(zone).isoformat()
    return f"daily cap {cap.amount_fen} fen (24 h from {since})"


def quote(
    tariffs: TariffBook,
    site_id: str,
    site_class: str,
    vehicle: VehicleClass,
    entry: dt.datetime,
    exit: dt.datetime,
) -> Quote:
    """Price a stay ``[entry, exit)`` at ``site_id`` under the version in force at entry."""
    _require_aware(entry, "entry")
    _require_aware(exit, "exit")
    if exit < entry:
        raise ValueError(f"exit {exit.isoformat()} is before entry {entry.isoformat()}")
    if vehicle not in VEHICLE_CLASSES:
        raise ValueError(f"unknown vehicle class {vehicle!r}; expected one of {VEHICLE_CLASSES}")
    version = tariffs.version_at(entry)
    if site_class not in version.site_classes:
        raise ValueError(
            f"unknown site class {site_class!r} in tariff {version.version!r}; "
            f"known: {', '.join(version.site_classes)}"
        )
    rates = version.rates.get((site_class, vehicle))
    if rates is None:
        raise ValueError(
            f"tariff {version.version!r} has no rates for vehicle {vehicle!r} "
            f"in class {site_class!r}"
        )
    zone = version.zone
    entry_utc, exit_utc = entry.astimezone(_UTC), exit.astimezone(_UTC)
    if entry_utc == exit_utc:
        return Quote(site_id, version.version, 0, ())

    free_first = version.free_first.get(site_id)
    lines: list[QuoteLine] = []
    windows: list[int | None] = []  # cap window of each line (None: not capped)
    start = entry_utc
    if free_first is not None and free_first.mode == "deduction":
        free_end = min(exit_utc, entry_utc + dt.timedelta(minutes=free_first.minutes))
        lines.append(QuoteLine(entry_utc, free_end, f"first {free_first.minutes} min free", 0, 0))
        windows.append(None)
        start = free_end

    waived = (
        free_first is not None
        and free_first.mode == "threshold"
        and exit_utc - entry_utc <= dt.timedelta(minutes=free_first.minutes)
    )
    for piece in _merge(_band_pieces(start, exit_utc, rates, version, entry_utc)):
        rule = _rule_name(piece.band, piece.holiday)
        if piece.band.free:
            lines.append(QuoteLine(piece.start, piece.end, rule, 0, 0))
            windows.append(None)
            continue
        units = _units(piece.start, piece.end, piece.band.unit_minutes)
        amount = units * piece.band.rate_fen
        if waived and free_first is not None:
            rule = f"{rule} — waived: stays of at most {free_first.minutes} min are free"
            amount = 0
        lines.append(QuoteLine(piece.start, piece.end, rule, units, amount))
        windows.append(piece.window if amount else None)

    if rates.cap is not None:
        lines = _apply_cap(lines, windows, rates.cap, entry_utc, zone)

    local = tuple(
        QuoteLine(
            ln.start.astimezone(zone), ln.end.astimezone(zone), ln.rule, ln.units, ln.amount_fen
        )
        for ln in lines
    )
    return Quote(site_id, version.version, sum(ln.amount_fen for ln in local), local)


def _apply_cap(
    lines: list[QuoteLine],
    windows: list[int | None],
    cap: Cap,
    entry: dt.datetime,
    zone: ZoneInfo,
) -> list[QuoteLine]:
    totals: dict[int, int] = {}
    last_index: dict[int, int] = {}
    first_start: dict[int, dt.datetime] = {}
    for index, (line, window) in enumerate(zip(lines, windows, strict=True)):
        if window is None:
            continue
        totals[window] = totals.get(window, 0) + line.amount_fen
        last_index[window] = index
        first_start.setdefault(window, line.start)
    adjustments: dict[int, QuoteLine] = {}
    for window, total in totals.items():
        if total <= cap.amount_fen:
            continue
        window_start = entry + window * _DAY if cap.mode == "rolling_24h" else first_start[window]
        at = lines[last_index[window]].end
        label = _cap_label(cap, window_start, zone)
        adjustments[last_index[window]] = QuoteLine(at, at, label, 0, cap.amount_fen - total)
    out: list[QuoteLine] = []
    for index, line in enumerate(lines):
        out.append(line)
        if index in adjustments:
            out.append(adjustments[index])
    return out


_VEHICLE_NAMES: dict[str, dict[VehicleClass, str]] = {
    "zh": {"small": "小型车", "large": "大型车", "new_energy": "新能源车"},
    "en": {
        "small": "small vehicles",
        "large": "large vehicles",
        "new_energy": "new-energy vehicles",
    },
}


def _money(fen: int, lang: Literal["zh", "en"]) -> str:
    yuan = f"{fen // 100}.{fen % 100:02d}"
    return f"{yuan}元" if lang == "zh" else f"CNY {yuan}"


def _band_text(band: Band, lang: Literal["zh", "en"]) -> str:
    window = f"{hhmm(band.start_min)}–{hhmm(band.end_min)}"
    if lang == "zh":
        if band.free:
            return f"{window} 免费"
        unit = band.unit_minutes
        return f"{window} 每{unit}分钟{_money(band.rate_fen, lang)}（不足{unit}分钟按{unit}分钟计）"
    if band.free:
        return f"{window} free"
    return f"{window} {_money(band.rate_fen, lang)} per started {band.unit_minutes} min"


def summary(tariff: TariffVersion, lang: Literal["zh", "en"]) -> str:
    """A plain-language summary of one posted tariff version, in Chinese or English."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}")
    zh = lang == "zh"
    since = tariff.effective_from.astimezone(tariff.zone).strftime("%Y-%m-%d %H:%M")
    out = [
        f"收费标准 {tariff.version}，自 {since} 起执行（按入场时间适用）。"
        if zh
        else f"Tariff {tariff.version}, in force from {since} (a stay is priced by its entry time)."
    ]
    if tariff.note:
        out.append(tariff.note)
    for site_class in tariff.site_classes:
        out.append(f"{site_class}类：" if zh else f"Class {site_class}:")
        for vehicle in VEHICLE_CLASSES:
            rates = tariff.rates.get((site_class, vehicle))
            if rates is None:
                continue
            sep = "；" if zh else "; "
            text = sep.join(
                _band_text(b, lang) for b in sorted(rates.bands, key=lambda b: b.start_min)
            )
            line = (
                f"  {_VEHICLE_NAMES[lang][vehicle]}：{text}"
                if zh
                else f"  {_VEHICLE_NAMES[lang][vehicle]}: {text}"
            )
            if rates.holiday_bands != rates.bands:
                hol = sep.join(
                    _band_text(b, lang)
                    for b in sorted(rates.holiday_bands, key=lambda b: b.start_min)
                )
                line += f"；节假日：{hol}" if zh else f"; on holidays: {hol}"
            if rates.cap is not None:
                amount = _money(rates.cap.amount_fen, lang)
                if zh:
                    per = (
                        "每自然日（零点重置）"
                        if rates.cap.mode == "calendar_day"
                        else "自入场起每24小时"
                    )
                    line += f"；{per}最高{amount}"
                else:
                    per = (
                        "per calendar day (resets at local midnight)"
                        if rates.cap.mode == "calendar_day"
                        else "per 24 h from entry"
                    )
                    line += f"; at most {amount} {per}"
            out.append(line + ("。" if zh else "."))
    for site_id, rule in sorted(tariff.free_first.items()):
        name = tariff.site_names.get(site_id, site_id)
        if zh:
            if rule.mode == "deduction":
                out.append(f"{name}：每次停车前{rule.minutes}分钟免费，超出部分按标准收费。")
            else:
                out.append(f"{name}：停车不超过{rule.minutes}分钟免费，超过则全程按标准收费。")
        elif rule.mode == "deduction":
            out.append(
                f"{name}: the first {rule.minutes} min of every stay are free; "
                "the rest is charged as posted."
            )
        else:
            out.append(
                f"{name}: stays of at most {rule.minutes} min are free; longer stays pay in full."
            )
    if tariff.holidays:
        days = ", ".join(d.isoformat() for d in sorted(tariff.holidays))
        out.append(f"节假日：{days}。" if zh else f"Holidays: {days}.")
    return "\n".join(out)
