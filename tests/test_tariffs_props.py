"""Property tests (hypothesis) for the tariff engine: monotone, capped, itemised."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from parking.tariffs import VEHICLE_CLASSES, Quote, TariffBook, VehicleClass, quote
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
