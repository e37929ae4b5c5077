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

Over 400 lines on purpose: pricing is one algorithm (bands, units, thresholds, caps) over one
timeline; the versioned book and the TOML reading it builds on live in tariffcore and
tariff_file.
"""

from __future__ import annotations

import bisect
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from tariffcore import (
    MINUTES_PER_DAY,
    VersionBook,
    check_cover_day,
    check_version,
    check_window,
    hhmm,
    intervals,
    local_at,
    require_aware,
)

VehicleClass = Literal["small", "large", "new_energy"]
VEHICLE_CLASSES: tuple[VehicleClass, ...] = get_args(VehicleClass)
CapMode = Literal["calendar_day", "rolling_24h"]
CAP_MODES: tuple[CapMode, ...] = get_args(CapMode)
FreeFirstMode = Literal["deduction", "threshold"]
FREE_FIRST_MODES: tuple[FreeFirstMode, ...] = get_args(FreeFirstMode)

DEFAULT_EXIT_GRACE_MINUTES = 15
# Work grows with the stay (lines per band per day): a longer stay is refused, not priced.
DEFAULT_MAX_STAY_DAYS = 366
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
        check_window("band", self.name, self.start_min, self.end_min)
        if self.rate_fen < 0:
            raise ValueError(f"band {self.name!r}: rate_fen must be >= 0")
        if self.unit_minutes <= 0:
            raise ValueError(f"band {self.name!r}: unit_minutes must be > 0")

    @property
    def free(self) -> bool:
        return self.rate_fen == 0

    def intervals(self) -> tuple[tuple[int, int], ...]:
        """The band's pieces within one local day, as ``[start, end)`` minutes."""
        return intervals(self)


def check_bands_cover_day(bands: tuple[Band, ...]) -> None:
    """Raise ValueError unless ``bands`` cover every minute of the day exactly once."""
    check_cover_day(bands, "band")


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
    """One posted tariff, in force from ``effective_from`` until the next version.

    ``exit_grace_minutes``: after paying, a driver who leaves within this many minutes owes
    nothing more (see ``settle``).
    """

    version: str
    effective_from: dt.datetime
    zone: ZoneInfo
    rates: Mapping[tuple[str, VehicleClass], Rates]
    holidays: frozenset[dt.date] = frozenset()
    free_first: Mapping[str, FreeFirst] = field(default_factory=dict)
    site_names: Mapping[str, str] = field(default_factory=dict)
    note: str = ""
    exit_grace_minutes: int = DEFAULT_EXIT_GRACE_MINUTES

    def __post_init__(self) -> None:
        check_version(self)
        if self.exit_grace_minutes < 0:
            raise ValueError(f"version {self.version!r}: exit_grace_minutes must be >= 0")

    @property
    def site_classes(self) -> tuple[str, ...]:
        return tuple(sorted({site_class for site_class, _ in self.rates}))

    @functools.cached_property
    def _plans(self) -> dict[tuple[str, VehicleClass], _Plan]:
        """Compiled rates by (site class, vehicle), filled as quotes ask for them."""
        return {}


class TariffBook(VersionBook[TariffVersion]):
    """All versions of the posted tariff, ordered by ``effective_from``."""

    kind = "tariff"


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
    require_aware(value, name)


def _day_intervals(
    day: dt.date, zone: ZoneInfo, bands: tuple[Band, ...]
) -> list[tuple[dt.datetime, dt.datetime, Band]]:
    """The UTC intervals of ``bands`` on local ``day``, in time order."""
    pieces = [
        (local_at(day, a, zone), local_at(day, b, zone), band)
        for band in bands
        for a, b in band.intervals()
    ]
    return sorted(pieces, key=lambda piece: piece[0])


@functools.lru_cache(maxsize=1024)
def _rule_name(band: Band, holiday: bool) -> str:
    window = f"{hhmm(band.start_min)}-{hhmm(band.end_min)}"
    prefix = "holiday " if holiday else ""
    if band.free:
        return f"{prefix}{band.name} {window}"
    rate = f"{band.rate_fen} fen per started {band.unit_minutes} min"
    return f"{prefix}{band.name} {window}, {rate}"


# One band interval of one local day: UTC start/end, the same instants in the tariff's zone
# (so lines that end on a band boundary need no conversion), the band's identity for merging
# (equal bands share it, holiday or not), rule name, rate and unit.
_Segment = tuple[dt.datetime, dt.datetime, dt.datetime, dt.datetime, int, str, int, dt.timedelta]
# A local day: UTC start, UTC start of the next day, date ordinal, segments in time order.
_Day = tuple[dt.datetime, dt.datetime, int, tuple[_Segment, ...]]
# A priced piece before it becomes a line: local start/end, rule, rate, unit, UTC start/end,
# cap window.
_Piece = tuple[dt.datetime, dt.datetime, str, int, dt.timedelta, dt.datetime, dt.datetime, int]

_MAX_CACHED_DAYS = 4096


class _Plan:
    """One (version, site class, vehicle) compiled for pricing, with its days cached.

    Converting wall-clock band boundaries to instants is most of the cost of a quote and
    depends only on (version, rates, local day), so each day is computed once and reused.
    """

    __slots__ = ("_days", "_keys", "cap", "holidays", "rates", "zone")

    def __init__(self, version: TariffVersion, rates: Rates) -> None:
        self.rates = rates
        self.zone = version.zone
        self.holidays = version.holidays
        self.cap = rates.cap
        keys: dict[Band, int] = {}
        for band in (*rates.bands, *rates.holiday_bands):
            keys.setdefault(band, len(keys))
        self._keys = keys
        self._days: dict[dt.date, _Day] = {}

    def day(self, day: dt.date) -> _Day:
        found = self._days.get(day)
        if found is not None:
            return found
        zone = self.zone
        holiday = day in self.holidays
        bands = self.rates.holiday_bands if holiday else self.rates.bands
        segments = tuple(
            (
                a,
                b,
                a.astimezone(zone),
                b.astimezone(zone),
                self._keys[band],
                _rule_name(band, holiday),
                band.rate_fen,
                dt.timedelta(minutes=band.unit_minutes),
            )
            for a, b, band in _day_intervals(day, zone, bands)
        )
        found = (
            local_at(day, 0, zone),
            local_at(day, MINUTES_PER_DAY, zone),
            day.toordinal(),
            segments,
        )
        if len(self._days) >= _MAX_CACHED_DAYS:  # bounded: quotes may name any date
            self._days.clear()
        self._days[day] = found
        return found


def _plan(version: TariffVersion, site_class: str, vehicle: VehicleClass) -> _Plan:
    plan = version._plans.get((site_class, vehicle))
    if plan is not None:
        return plan
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
    plan = version._plans[(site_class, vehicle)] = _Plan(version, rates)
    return plan


def quote(
    tariffs: TariffBook,
    site_id: str,
    site_class: str,
    vehicle: VehicleClass,
    entry: dt.datetime,
    exit: dt.datetime,
    *,
    max_days: int = DEFAULT_MAX_STAY_DAYS,
) -> Quote:
    """Price a stay ``[entry, exit)`` at ``site_id`` under the version in force at entry.

    A stay over ``max_days`` is refused (ValueError naming the bound): pricing costs time and
    memory in proportion to the stay, and nobody parks for centuries."""
    _require_aware(entry, "entry")
    _require_aware(exit, "exit")
    # Compared in UTC: datetimes sharing a tzinfo compare by wall clock, wrong across DST.
    entry_utc, exit_utc = entry.astimezone(_UTC), exit.astimezone(_UTC)
    if exit_utc < entry_utc:
        raise ValueError(f"exit {exit.isoformat()} is before entry {entry.isoformat()}")
    if vehicle not in VEHICLE_CLASSES:
        raise ValueError(f"unknown vehicle class {vehicle!r}; expected one of {VEHICLE_CLASSES}")
    index = bisect.bisect_right(tariffs._starts, entry_utc)
    version = tariffs.versions[index - 1] if index else tariffs.version_at(entry)  # raises
    if exit_utc - entry_utc > dt.timedelta(days=max_days):
        raise ValueError(f"a stay may last at most {max_days} days (max_stay_days)")
    plan = _plan(version, site_class, vehicle)
    if entry_utc == exit_utc:
        return Quote(site_id, version.version, 0, ())
    total, lines = _price(plan, version.free_first.get(site_id), entry_utc, exit_utc)
    return Quote(site_id, version.version, total, lines)


def _price(
    plan: _Plan, free_first: FreeFirst | None, entry: dt.datetime, exit: dt.datetime
) -> tuple[int, tuple[QuoteLine, ...]]:
    """Total and lines (in the tariff's zone) of a non-empty stay; ``entry``/``exit`` in UTC.

    Works on UTC datetimes sharing one tzinfo (compared and subtracted without offset
    look-ups) and converts an instant to local time only where it is not a cached band
    boundary: entry, exit, the end of a free first period, a rolling 24 h boundary.
    """
    zone = plan.zone
    entry_l, exit_l = entry.astimezone(zone), exit.astimezone(zone)
    lines: list[QuoteLine] = []
    start, start_l = entry, entry_l
    waived = ""
    if free_first is not None:
        free_span = dt.timedelta(minutes=free_first.minutes)
        if free_first.mode == "deduction":
            start = entry + free_span
            if start < exit:
                start_l = start.astimezone(zone)
            else:
                start, start_l = exit, exit_l
            lines.append(QuoteLine(entry_l, start_l, f"first {free_first.minutes} min free", 0, 0))
        elif exit - entry <= free_span:
            waived = f" — waived: stays of at most {free_first.minutes} min are free"
    if start == exit:
        return 0, tuple(lines)

    # Units and amounts; a cap adjustment after the last charged line of each cap window
    # over the cap (the windows of charged pieces only ever increase along the stay).
    cap = plan.cap
    total = 0
    cap_fen = cap.amount_fen if cap is not None else 0
    open_window = -1  # the cap window being summed
    window_total = 0
    window_last = 0  # index of its last charged line
    window_first_l = entry_l  # local start of its first charged line
    pieces = _pieces(plan, entry, entry_l, start, start_l, exit, exit_l)
    for lo_l, hi_l, rule, rate, unit, lo, hi, window in pieces:
        if not rate:
            lines.append(QuoteLine(lo_l, hi_l, rule, 0, 0))
            continue
        units = -(-(hi - lo) // unit)
        if waived:
            lines.append(QuoteLine(lo_l, hi_l, rule + waived, units, 0))
            continue
        amount = units * rate
        total += amount
        if cap is not None:
            if window != open_window:
                if window_total > cap_fen:
                    total += _insert_cap(
                        lines,
                        window_last,
                        cap,
                        window_total,
                        open_window,
                        window_first_l,
                        entry,
                        zone,
                    )
                open_window, window_total, window_first_l = window, 0, lo_l
            window_total += amount
            window_last = len(lines)
        lines.append(QuoteLine(lo_l, hi_l, rule, units, amount))
    if cap is not None and window_total > cap_fen:
        total += _insert_cap(
            lines, window_last, cap, window_total, open_window, window_first_l, entry, zone
        )
    return total, tuple(lines)


def _pieces(
    plan: _Plan,
    entry: dt.datetime,
    entry_l: dt.datetime,
    start: dt.datetime,
    start_l: dt.datetime,
    exit: dt.datetime,
    exit_l: dt.datetime,
) -> list[_Piece]:
    """``[start, exit)`` cut into band intervals × local days (× rolling 24 h windows for
    charged bands); adjacent pieces of the same band merged, charged ones only within one
    cap window. ``*_l`` are the same instants in the tariff's zone."""
    cap, zone = plan.cap, plan.zone
    rolling = cap is not None and cap.mode == "rolling_24h"
    calendar = cap is not None and not rolling
    pieces: list[_Piece] = []
    last_key = -1  # band identity of pieces[-1]
    day = start_l.date()
    first_ordinal = entry_l.toordinal()
    while True:
        day_start, next_day_start, ordinal, segments = plan.day(day)
        if day_start >= exit:
            return pieces
        day_window = ordinal - first_ordinal if calendar else 0
        for a, b, a_l, b_l, key, rule, rate, unit in segments:
            if a >= exit:
                break
            lo, lo_l = (a, a_l) if a >= start else (start, start_l)
            hi, hi_l = (b, b_l) if b <= exit else (exit, exit_l)
            if lo >= hi:
                continue
            window = day_window
            if rolling and rate:
                window = (lo - entry) // _DAY
                boundary = entry + (window + 1) * _DAY
                while boundary < hi:
                    boundary_l = boundary.astimezone(zone)
                    if key == last_key and pieces[-1][6] == lo and pieces[-1][7] == window:
                        p = pieces[-1]
                        pieces[-1] = (p[0], boundary_l, p[2], rate, unit, p[5], boundary, window)
                    else:
                        pieces.append((lo_l, boundary_l, rule, rate, unit, lo, boundary, window))
                    last_key = key
                    lo, lo_l, window = boundary, boundary_l, window + 1
                    boundary += _DAY
            if key == last_key and pieces[-1][6] == lo and (not rate or pieces[-1][7] == window):
                p = pieces[-1]
                pieces[-1] = (p[0], hi_l, p[2], rate, unit, p[5], hi, p[7])
            else:
                pieces.append((lo_l, hi_l, rule, rate, unit, lo, hi, window))
            last_key = key
        if next_day_start >= exit:  # what the next day's ``day_start`` check would say
            return pieces
        day += _DAY


def _insert_cap(
    lines: list[QuoteLine],
    last: int,
    cap: Cap,
    charged: int,
    window: int,
    first_start: dt.datetime,
    entry: dt.datetime,
    zone: ZoneInfo,
) -> int:
    """Insert the zero-length adjustment after ``lines[last]``; returns its (negative) amount."""
    if cap.mode == "calendar_day":
        label = f"daily cap {cap.amount_fen} fen (local day {first_start.date().isoformat()})"
    else:
        since = (entry + window * _DAY).astimezone(zone).isoformat()
        label = f"daily cap {cap.amount_fen} fen (24 h from {since})"
    at = lines[last].end
    amount = cap.amount_fen - charged
    lines.insert(last + 1, QuoteLine(at, at, label, 0, amount))
    return amount


@dataclass(frozen=True)
class Settlement:
    """What a stay owes given what was paid: ``due_fen = max(0, quote.total_fen - paid_fen)``.

    ``quote`` prices ``[entry, priced_until)``; ``grace_until`` (None before any payment) is
    the last instant the driver may leave without owing more. Instants in the tariff's zone.
    """

    quote: Quote
    paid_fen: int
    due_fen: int
    grace_until: dt.datetime | None
    priced_until: dt.datetime


def settle(
    tariffs: TariffBook,
    site_id: str,
    site_class: str,
    vehicle: VehicleClass,
    entry: dt.datetime,
    exit: dt.datetime,
    paid_fen: int,
    paid_at: dt.datetime | None,
    *,
    max_days: int = DEFAULT_MAX_STAY_DAYS,
) -> Settlement:
    """Settle a stay with a post-payment exit grace (the version in force at entry gives it).

    Leaving at most ``exit_grace_minutes`` after paying prices the stay only up to the payment
    (clamped to ``[entry, exit]``: a payment after the exit, or before the entry, never
    prices time not parked); leaving later prices the whole stay, and what was paid counts
    towards it. Raises ValueError as ``quote`` does, and for a negative ``paid_fen`` or a
    naive ``paid_at``.
    """
    if isinstance(paid_fen, bool) or not isinstance(paid_fen, int) or paid_fen < 0:
        raise ValueError(f"paid_fen must be an integer >= 0 (fen), got {paid_fen!r}")
    _require_aware(entry, "entry")
    _require_aware(exit, "exit")
    version = tariffs.version_at(entry)
    zone = version.zone
    # In UTC: wall-clock sums and comparisons would be wrong across a DST change.
    entry_utc, exit_utc = entry.astimezone(_UTC), exit.astimezone(_UTC)
    grace_until: dt.datetime | None = None
    priced_until = exit_utc
    if paid_at is not None:
        _require_aware(paid_at, "paid_at")
        paid_utc = paid_at.astimezone(_UTC)
        grace_until = paid_utc + dt.timedelta(minutes=version.exit_grace_minutes)
        if exit_utc <= grace_until:
            priced_until = min(max(paid_utc, entry_utc), exit_utc)
        grace_until = grace_until.astimezone(zone)
    q = quote(tariffs, site_id, site_class, vehicle, entry, priced_until, max_days=max_days)
    return Settlement(
        quote=q,
        paid_fen=paid_fen,
        due_fen=max(0, q.total_fen - paid_fen),
        grace_until=grace_until,
        priced_until=priced_until.astimezone(zone),
    )


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


def summary(
    tariff: TariffVersion,
    lang: Literal["zh", "en"],
    site_class: str | None = None,
    site_id: str | None = None,
) -> str:
    """A plain-language summary of one posted tariff version, in Chinese or English. With
    ``site_class`` (and ``site_id``), only what is posted at one site: its class's rates and
    its own free-first rule (the web page's posted tariff)."""
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
    for cls in tariff.site_classes:
        if site_class is not None and cls != site_class:
            continue
        out.append(f"{cls}类：" if zh else f"Class {cls}:")
        for vehicle in VEHICLE_CLASSES:
            rates = tariff.rates.get((cls, vehicle))
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
    for free_site, rule in sorted(tariff.free_first.items()):
        if site_class is not None and free_site != site_id:
            continue
        name = tariff.site_names.get(free_site, free_site)
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
    grace = tariff.exit_grace_minutes
    if zh:
        out.append(
            f"缴费后{grace}分钟内离场不再收费；超时离场按入场至离场全程计费，已缴金额抵扣。"
            if grace
            else "缴费后离场无宽限期：按入场至离场全程计费，已缴金额抵扣。"
        )
    else:
        out.append(
            f"After paying you have {grace} min to leave at no extra charge; leaving later "
            "prices the whole stay up to the exit, less what was paid."
            if grace
            else "No exit grace after paying: the whole stay is priced up to the exit, "
            "less what was paid."
        )
    if tariff.holidays:
        days = ", ".join(d.isoformat() for d in sorted(tariff.holidays))
        out.append(f"节假日：{days}。" if zh else f"Holidays: {days}.")
    return "\n".join(out)
