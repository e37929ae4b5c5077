"""Property tests (hypothesis) for the tariff engine: monotone, capped, itemised, settled;
and the optimised ``quote`` equal, line for line, to a straightforward reference."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from parking.tariffs import (
    VEHICLE_CLASSES,
    Band,
    Cap,
    FreeFirst,
    Quote,
    QuoteLine,
    Rates,
    TariffBook,
    TariffVersion,
    VehicleClass,
    quote,
    settle,
)
from tests.test_tariffs import BOOK, SAMPLE

CST = ZoneInfo("Asia/Shanghai")
# Around the sample's version change (2026-07-01) and its holidays.
BASE = dt.datetime(2026, 5, 1, tzinfo=CST)
SPAN_MIN = 240 * 24 * 60

# (book, site, site class) combinations covering deduction, threshold, both cap kinds, no cap.
CASES: list[tuple[TariffBook, str, str]] = [
    (SAMPLE, "cp-shiminting", "A"),
    (SAMPLE, "cp-zhening", "A"),
    (SAMPLE, "cp-other", "A"),
    (SAMPLE, "cp-other", "B"),
    (SAMPLE, "cp-other", "C"),
    (BOOK, "thr", "X"),
    (BOOK, "ded", "X"),
    (BOOK, "s", "R"),
    (BOOK, "thr", "R"),
]
NIGHT_FREE_CASES = CASES  # every one of them posts 22:00–08:00 free

cases = st.sampled_from(CASES)
vehicles = st.sampled_from(VEHICLE_CLASSES)
entries = st.builds(
    lambda minutes, seconds, zone: (
        BASE + dt.timedelta(minutes=minutes, seconds=seconds)
    ).astimezone(zone),
    st.integers(0, SPAN_MIN),
    st.integers(0, 59),
    st.sampled_from([CST, dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
)
durations = st.integers(0, 4 * 24 * 3600).map(lambda s: dt.timedelta(seconds=s))


def price(
    case: tuple[TariffBook, str, str], vehicle: VehicleClass, entry: dt.datetime, exit_: dt.datetime
) -> Quote:
    book, site, cls = case
    if book is BOOK and cls == "R":  # the custom class R prices small vehicles only
        vehicle = "small"
    return quote(book, site, cls, vehicle, entry, exit_)


@settings(max_examples=200, deadline=None)
@given(cases, vehicles, entries, durations, durations)
def test_fee_never_decreases_with_later_exit(
    case: tuple[TariffBook, str, str],
    vehicle: VehicleClass,
    entry: dt.datetime,
    stay: dt.timedelta,
    more: dt.timedelta,
) -> None:
    shorter = price(case, vehicle, entry, entry + stay)
    longer = price(case, vehicle, entry, entry + stay + more)
    assert shorter.total_fen <= longer.total_fen
    assert shorter.tariff_version == longer.tariff_version


@settings(max_examples=200, deadline=None)
@given(cases, vehicles, entries, durations)
def test_lines_sum_and_cover_the_stay(
    case: tuple[TariffBook, str, str], vehicle: VehicleClass, entry: dt.datetime, stay: dt.timedelta
) -> None:
    exit_ = entry + stay
    q = price(case, vehicle, entry, exit_)
    assert q.total_fen == sum(line.amount_fen for line in q.lines)
    assert q.total_fen >= 0
    if stay:
        assert q.lines[0].start == entry
        assert q.lines[-1].end == exit_
        for a, b in zip(q.lines, q.lines[1:], strict=False):
            assert a.end == b.start
        for line in q.lines:
            assert line.start <= line.end
            assert line.units >= 0
            assert line.rule
            if line.amount_fen < 0:  # a cap adjustment: zero-length, no units
                assert line.start == line.end and line.units == 0
    else:
        assert q.lines == ()


@settings(max_examples=200, deadline=None)
@given(cases, vehicles, entries, durations)
def test_fee_never_exceeds_cap_times_days(
    case: tuple[TariffBook, str, str], vehicle: VehicleClass, entry: dt.datetime, stay: dt.timedelta
) -> None:
    book, _site, cls = case
    if book is BOOK and cls == "R":
        vehicle = "small"
    exit_ = entry + stay
    q = price(case, vehicle, entry, exit_)
    rates = book.version_at(entry).rates[(cls, vehicle)]
    if rates.cap is None or not stay:
        return
    zone = book.version_at(entry).zone
    if rates.cap.mode == "calendar_day":
        last = (exit_ - dt.timedelta(microseconds=1)).astimezone(zone).date()
        days = (last - entry.astimezone(zone).date()).days + 1
    else:
        days = -(-stay // dt.timedelta(days=1))
    assert q.total_fen <= rates.cap.amount_fen * days


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(NIGHT_FREE_CASES),
    vehicles,
    st.integers(0, 240),
    st.integers(0, 10 * 60 * 60),
    st.integers(0, 10 * 60 * 60),
)
def test_zero_inside_night_free_window(
    case: tuple[TariffBook, str, str], vehicle: VehicleClass, day: int, a: int, b: int
) -> None:
    night = dt.datetime.combine(BASE.date() + dt.timedelta(days=day), dt.time(22, 0), tzinfo=CST)
    lo, hi = sorted((a, b))
    entry = night + dt.timedelta(seconds=lo)
    exit_ = night + dt.timedelta(seconds=hi)
    q = price(case, vehicle, entry, exit_)
    assert q.total_fen == 0
    assert all(line.amount_fen == 0 for line in q.lines)


# ----- settle: the post-payment exit grace ---------------------------------------------------

offsets = st.integers(0, 3 * 24 * 3600).map(lambda s: dt.timedelta(seconds=s))


@settings(max_examples=200, deadline=None)
@given(
    cases,
    vehicles,
    entries,
    durations,
    st.integers(0, 10_000),
    st.one_of(st.none(), st.integers(-3600, 4 * 24 * 3600).map(lambda s: dt.timedelta(seconds=s))),
)
def test_settle_due_never_negative(
    case: tuple[TariffBook, str, str],
    vehicle: VehicleClass,
    entry: dt.datetime,
    stay: dt.timedelta,
    paid_fen: int,
    paid_after: dt.timedelta | None,
) -> None:
    book, site, cls = case
    vehicle = "small" if book is BOOK and cls == "R" else vehicle
    paid_at = None if paid_after is None else entry + paid_after
    s = settle(book, site, cls, vehicle, entry, entry + stay, paid_fen, paid_at)
    assert s.due_fen >= 0
    assert s.due_fen == max(0, s.quote.total_fen - paid_fen)
    assert entry <= s.priced_until <= entry + stay


@settings(max_examples=200, deadline=None)
@given(cases, vehicles, entries, offsets, st.integers(0, 10**9))
def test_settle_leaving_within_grace_after_paying_the_quote_owes_nothing(
    case: tuple[TariffBook, str, str],
    vehicle: VehicleClass,
    entry: dt.datetime,
    paid_after: dt.timedelta,
    grace_us: int,
) -> None:
    book, site, cls = case
    vehicle = "small" if book is BOOK and cls == "R" else vehicle
    paid_at = entry + paid_after
    paid = quote(book, site, cls, vehicle, entry, paid_at).total_fen
    grace = dt.timedelta(minutes=book.version_at(entry).exit_grace_minutes)
    exit_ = paid_at + min(grace, dt.timedelta(microseconds=grace_us))
    s = settle(book, site, cls, vehicle, entry, exit_, paid, paid_at)
    assert s.due_fen == 0
    assert s.priced_until == paid_at
    assert s.grace_until == paid_at + grace


@settings(max_examples=200, deadline=None)
@given(cases, vehicles, entries, offsets, durations, st.integers(0, 10_000))
def test_settle_leaving_after_grace_owes_the_whole_stay_less_paid(
    case: tuple[TariffBook, str, str],
    vehicle: VehicleClass,
    entry: dt.datetime,
    paid_after: dt.timedelta,
    late: dt.timedelta,
    paid_fen: int,
) -> None:
    book, site, cls = case
    vehicle = "small" if book is BOOK and cls == "R" else vehicle
    paid_at = entry + paid_after
    grace = dt.timedelta(minutes=book.version_at(entry).exit_grace_minutes)
    exit_ = paid_at + grace + late + dt.timedelta(microseconds=1)
    s = settle(book, site, cls, vehicle, entry, exit_, paid_fen, paid_at)
    whole = quote(book, site, cls, vehicle, entry, exit_)
    assert s.quote == whole
    assert s.priced_until == exit_
    assert s.due_fen == max(0, whole.total_fen - paid_fen)


# ----- the optimised engine against a straightforward reference ------------------------------
#
# The reference is the engine as first written: per-piece time-zone conversions, one object
# per piece, merging and caps as separate passes. ``quote`` must give the same lines (same
# instants, same zone, same fold, same rules, units and amounts) for any book and stay.

_UTC = dt.UTC
_DAY = dt.timedelta(days=1)


def _ref_local_at(day: dt.date, minute: int, zone: ZoneInfo) -> dt.datetime:
    if minute >= 1440:
        day, minute = day + _DAY, minute - 1440
    local = dt.datetime.combine(day, dt.time(minute // 60, minute % 60), tzinfo=zone)
    return local.astimezone(_UTC)


def _ref_day_intervals(
    day: dt.date, zone: ZoneInfo, bands: tuple[Band, ...]
) -> list[tuple[dt.datetime, dt.datetime, Band]]:
    pieces = [
        (_ref_local_at(day, a, zone), _ref_local_at(day, b, zone), band)
        for band in bands
        for a, b in band.intervals()
    ]
    return sorted(pieces, key=lambda piece: piece[0])


@dataclass(frozen=True)
class _RefPiece:
    start: dt.datetime
    end: dt.datetime
    band: Band
    holiday: bool
    window: int


def _ref_band_pieces(
    start: dt.datetime, end: dt.datetime, rates: Rates, version: TariffVersion, entry: dt.datetime
) -> Iterator[_RefPiece]:
    zone, cap = version.zone, rates.cap
    day = start.astimezone(zone).date()
    first_day = entry.astimezone(zone).date()
    while True:
        if _ref_local_at(day, 0, zone) >= end:
            return
        holiday = day in version.holidays
        bands = rates.holiday_bands if holiday else rates.bands
        for a, b, band in _ref_day_intervals(day, zone, bands):
            lo, hi = max(a, start), min(b, end)
            if lo >= hi:
                continue
            if cap is not None and cap.mode == "rolling_24h":
                k = (lo - entry) // _DAY
                while lo < hi:
                    boundary = min(hi, entry + (k + 1) * _DAY)
                    yield _RefPiece(lo, boundary, band, holiday, k)
                    lo, k = boundary, k + 1
            else:
                window = (day - first_day).days if cap is not None else 0
                yield _RefPiece(lo, hi, band, holiday, window)
        day += _DAY


def _ref_merge(pieces: Iterator[_RefPiece]) -> list[_RefPiece]:
    merged: list[_RefPiece] = []
    for piece in pieces:
        if merged:
            last = merged[-1]
            same_band = last.band == piece.band and last.end == piece.start
            if same_band and (piece.band.free or last.window == piece.window):
                merged[-1] = _RefPiece(last.start, piece.end, last.band, last.holiday, last.window)
                continue
        merged.append(piece)
    return merged


def _ref_rule_name(band: Band, holiday: bool) -> str:
    window = f"{band.start_min // 60:02d}:{band.start_min % 60:02d}-"
    window += f"{band.end_min // 60:02d}:{band.end_min % 60:02d}"
    prefix = "holiday " if holiday else ""
    if band.free:
        return f"{prefix}{band.name} {window}"
    return f"{prefix}{band.name} {window}, {band.rate_fen} fen per started {band.unit_minutes} min"


def _ref_apply_cap(
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
        if cap.mode == "rolling_24h":
            since = (entry + window * _DAY).astimezone(zone).isoformat()
            label = f"daily cap {cap.amount_fen} fen (24 h from {since})"
        else:
            day = first_start[window].astimezone(zone).date().isoformat()
            label = f"daily cap {cap.amount_fen} fen (local day {day})"
        at = lines[last_index[window]].end
        adjustments[last_index[window]] = QuoteLine(at, at, label, 0, cap.amount_fen - total)
    out: list[QuoteLine] = []
    for index, line in enumerate(lines):
        out.append(line)
        if index in adjustments:
            out.append(adjustments[index])
    return out


def reference_quote(
    tariffs: TariffBook,
    site_id: str,
    site_class: str,
    vehicle: VehicleClass,
    entry: dt.datetime,
    exit_: dt.datetime,
) -> Quote:
    start = entry.astimezone(_UTC)
    version = [v for v in tariffs.versions if v.effective_from.astimezone(_UTC) <= start][-1]
    rates = version.rates[(site_class, vehicle)]
    zone = version.zone
    entry_utc, exit_utc = entry.astimezone(_UTC), exit_.astimezone(_UTC)
    if entry_utc == exit_utc:
        return Quote(site_id, version.version, 0, ())
    free_first = version.free_first.get(site_id)
    lines: list[QuoteLine] = []
    windows: list[int | None] = []
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
    for piece in _ref_merge(_ref_band_pieces(start, exit_utc, rates, version, entry_utc)):
        rule = _ref_rule_name(piece.band, piece.holiday)
        if piece.band.free:
            lines.append(QuoteLine(piece.start, piece.end, rule, 0, 0))
            windows.append(None)
            continue
        units = -(-(piece.end - piece.start) // dt.timedelta(minutes=piece.band.unit_minutes))
        amount = units * piece.band.rate_fen
        if waived and free_first is not None:
            rule = f"{rule} — waived: stays of at most {free_first.minutes} min are free"
            amount = 0
        lines.append(QuoteLine(piece.start, piece.end, rule, units, amount))
        windows.append(piece.window if amount else None)
    if rates.cap is not None:
        lines = _ref_apply_cap(lines, windows, rates.cap, entry_utc, zone)
    local = tuple(
        QuoteLine(
            ln.start.astimezone(zone), ln.end.astimezone(zone), ln.rule, ln.units, ln.amount_fen
        )
        for ln in lines
    )
    return Quote(site_id, version.version, sum(ln.amount_fen for ln in local), local)


def exactly(q: Quote) -> tuple[Any, ...]:
    """A quote as the API shows it: wall-clock times, offsets and zone, not just instants."""
    return (
        q.site_id,
        q.tariff_version,
        q.total_fen,
        tuple(
            (
                ln.start.isoformat(),
                ln.end.isoformat(),
                ln.start.tzinfo,
                ln.end.tzinfo,
                ln.start.fold,
                ln.end.fold,
                ln.rule,
                ln.units,
                ln.amount_fen,
            )
            for ln in q.lines
        ),
    )


@settings(max_examples=300, deadline=None)
@given(cases, vehicles, entries, durations)
def test_quote_equals_reference_on_posted_books(
    case: tuple[TariffBook, str, str], vehicle: VehicleClass, entry: dt.datetime, stay: dt.timedelta
) -> None:
    book, site, cls = case
    vehicle = "small" if book is BOOK and cls == "R" else vehicle
    got = quote(book, site, cls, vehicle, entry, entry + stay)
    assert exactly(got) == exactly(reference_quote(book, site, cls, vehicle, entry, entry + stay))


# Zones with DST, some switching at or across midnight (Santiago, Havana) or by 30 minutes
# (Lord Howe), each with a transition date in 2026 to centre stays on.
DST_ZONES = [
    ("Asia/Shanghai", dt.date(2026, 10, 1)),
    ("Europe/Berlin", dt.date(2026, 3, 29)),
    ("Europe/Berlin", dt.date(2026, 10, 25)),
    ("America/New_York", dt.date(2026, 3, 8)),
    ("America/New_York", dt.date(2026, 11, 1)),
    ("America/Santiago", dt.date(2026, 4, 5)),
    ("America/Santiago", dt.date(2026, 9, 6)),
    ("America/Havana", dt.date(2026, 3, 8)),
    ("America/Havana", dt.date(2026, 11, 1)),
    ("Australia/Lord_Howe", dt.date(2026, 4, 5)),
    ("Australia/Lord_Howe", dt.date(2026, 10, 4)),
]
CUTS = st.one_of(st.sampled_from([0, 30, 60, 120, 150, 180, 480, 1320, 1410]), st.integers(0, 1439))


@st.composite
def band_sets(draw: st.DrawFn) -> tuple[Band, ...]:
    cuts = sorted(draw(st.sets(CUTS, min_size=1, max_size=5)))
    spans = list(itertools.pairwise(cuts))
    if len(cuts) == 1:
        spans = [(0, 1440)]
    elif cuts[0] == 0:
        spans.append((cuts[-1], 1440))
    else:
        spans.append((cuts[-1], cuts[0]))  # across midnight
    return tuple(
        Band(
            draw(st.sampled_from(["a", "b"])),
            lo,
            hi,
            draw(st.sampled_from([0, 0, 10, 100, 150])),
            draw(st.sampled_from([1, 7, 30, 60, 90])),
        )
        for lo, hi in spans
    )


@st.composite
def rates_(draw: st.DrawFn) -> Rates:
    bands = draw(band_sets())
    holiday = draw(
        st.one_of(
            st.just(bands),
            band_sets(),
            # the same bands, some repriced: equal bands merge across a holiday boundary
            st.lists(st.booleans(), min_size=len(bands), max_size=len(bands)).map(
                lambda flip: tuple(
                    Band(b.name, b.start_min, b.end_min, 0 if f else b.rate_fen, b.unit_minutes)
                    for b, f in zip(bands, flip, strict=True)
                )
            ),
        )
    )
    cap = draw(
        st.one_of(
            st.none(),
            st.builds(
                Cap,
                st.sampled_from([0, 100, 500, 2000]),
                st.sampled_from(["calendar_day", "rolling_24h"]),
            ),
        )
    )
    return Rates(bands, holiday, cap)


@st.composite
def books_and_stays(
    draw: st.DrawFn,
) -> tuple[TariffBook, str, list[tuple[dt.datetime, dt.datetime]]]:
    zone_name, pivot = draw(st.sampled_from(DST_ZONES))
    zone = ZoneInfo(zone_name)
    noon = dt.datetime.combine(pivot, dt.time(12), tzinfo=zone)
    holidays = frozenset(
        draw(st.sets(st.integers(-4, 6).map(lambda d: pivot + dt.timedelta(days=d)), max_size=4))
    )
    free_first = draw(
        st.one_of(
            st.none(),
            st.builds(FreeFirst, st.integers(1, 180), st.sampled_from(["deduction", "threshold"])),
        )
    )
    first = TariffVersion(
        "v1",
        noon - dt.timedelta(days=30),
        zone,
        {("X", "small"): draw(rates_())},
        holidays=holidays,
        free_first={} if free_first is None else {"site": free_first},
    )
    second = TariffVersion(
        "v2",
        noon + dt.timedelta(minutes=draw(st.integers(-3 * 1440, 3 * 1440))),
        zone,
        {("X", "small"): draw(rates_())},
        holidays=holidays,
    )
    book = TariffBook((first, second))
    site = draw(st.sampled_from(["site", "other"]))
    tz = draw(st.sampled_from([zone, _UTC, dt.timezone(dt.timedelta(hours=-5))]))
    stays = []
    noon_utc = noon.astimezone(_UTC)  # instant arithmetic: wall-clock sums skip DST changes
    for _ in range(draw(st.integers(1, 4))):
        entry = noon_utc + dt.timedelta(
            seconds=draw(st.integers(-3 * 86400, 3 * 86400)),
            microseconds=draw(st.sampled_from([0, 0, 1, 999_999])),
        )
        stay = dt.timedelta(
            seconds=draw(st.integers(0, 4 * 86400)),
            microseconds=draw(st.sampled_from([0, 0, 1, 500_000])),
        )
        stays.append((entry.astimezone(tz), (entry + stay).astimezone(tz)))
    return book, site, stays


@settings(max_examples=400, deadline=None)
@given(books_and_stays())
def test_quote_equals_reference_on_random_books(
    scenario: tuple[TariffBook, str, list[tuple[dt.datetime, dt.datetime]]],
) -> None:
    book, site, stays = scenario
    for entry, exit_ in stays:  # several stays per book: the cached days are reused
        got = quote(book, site, "X", "small", entry, exit_)
        want = reference_quote(book, site, "X", "small", entry, exit_)
        assert exactly(got) == exactly(want), (entry, exit_)
