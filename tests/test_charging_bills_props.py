"""Property tests (hypothesis) for charging bills: itemised, order-free, never double-counted,
monotone in energy and idle time, capped; the band split checked against exact proportions."""

from __future__ import annotations

import datetime as dt
import itertools
from collections import defaultdict
from dataclasses import replace
from fractions import Fraction
from zoneinfo import ZoneInfo

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from charging import billing
from charging.billing import (
    Bill,
    ChargingSessionData,
    ChargingTariffBook,
    ChargingTariffVersion,
    bill,
    energy_by_band,
)
from tests.test_charging_bills import BOOK, SAMPLE

CST = ZoneInfo("Asia/Shanghai")
BASE = dt.datetime(2026, 6, 25, tzinfo=CST)  # the sample's version change is 2026-07-01
SPAN_S = 12 * 86400
MAX_SESSION_S = 2 * 86400

Case = tuple[ChargingTariffBook, str, str]
# flat and per-band service fees, site-listed rates, with and without an idle fee
CASES: list[Case] = [
    (SAMPLE, "cp-zhening", "A"),
    (SAMPLE, "cp-renminyiyuan", "B"),
    (SAMPLE, "cp-jinxiuyuan", "B"),
    (BOOK, "s", "X"),
    (BOOK, "s", "Y"),
]
IDLE_CASES = [c for c in CASES if c != (BOOK, "s", "Y")]
Samples = list[tuple[dt.datetime, int]]
FAST = settings(max_examples=150, deadline=None)

zones = st.sampled_from([CST, dt.UTC, dt.timezone(dt.timedelta(hours=-5))])


@st.composite
def spans(draw: st.DrawFn) -> tuple[dt.datetime, dt.datetime]:
    start = BASE + dt.timedelta(seconds=draw(st.integers(0, SPAN_S)))
    stop = start + dt.timedelta(seconds=draw(st.integers(0, MAX_SESSION_S)))
    return start.astimezone(draw(zones)), stop


@st.composite
def monotone(draw: st.DrawFn, *, minute_aligned: bool = False) -> ChargingSessionData:
    """A session whose register never goes down, with meter_start and meter_stop."""
    start, stop = draw(spans())
    if minute_aligned:
        start = start.replace(second=0)
        stop = start + dt.timedelta(minutes=draw(st.integers(0, MAX_SESSION_S // 60)))
    seconds = int((stop - start).total_seconds())
    unit = 60 if minute_aligned else 1
    offsets = sorted(draw(st.lists(st.integers(0, seconds // unit), max_size=10)))
    size = len(offsets) + 1
    steps = draw(st.lists(st.integers(0, 30_000), min_size=size, max_size=size))
    value = draw(st.integers(0, 10**7))
    meter_start = value
    samples: Samples = []
    for offset, step in zip(offsets, steps, strict=False):
        value += step
        samples.append((start + dt.timedelta(seconds=offset * unit), value))
    return ChargingSessionData(
        start=start,
        stop=stop,
        samples=samples,
        meter_start_wh=meter_start,
        meter_stop_wh=value + steps[-1],
    )


@st.composite
def anything(draw: st.DrawFn) -> ChargingSessionData:
    """Any session: registers up and down, readings outside the session, optional meters,
    optional reported charging end and idle end."""
    start, stop = draw(spans())
    seconds = int((stop - start).total_seconds())
    readings = draw(
        st.lists(st.tuples(st.integers(-600, seconds + 600), st.integers(0, 200_000)), max_size=12)
    )
    samples = [(start + dt.timedelta(seconds=s), v) for s, v in readings]
    end = draw(st.none() | st.integers(0, seconds))
    idle = draw(st.none() | st.integers(0, seconds + 6 * 3600))
    return ChargingSessionData(
        start=start,
        stop=stop,
        samples=samples,
        meter_start_wh=draw(st.none() | st.integers(0, 200_000)),
        meter_stop_wh=draw(st.none() | st.integers(0, 200_000)),
        charging_end=None if end is None else start + dt.timedelta(seconds=end),
        idle_end=None if idle is None else start + dt.timedelta(seconds=idle),
    )


def positive_rises(session: ChargingSessionData) -> int:
    """Σ of every rise of the raw readings in [start, stop], sorted: an upper bound."""
    raw = list(session.samples)
    if session.meter_start_wh is not None:
        raw.append((session.start, session.meter_start_wh))
    if session.meter_stop_wh is not None:
        raw.append((session.stop, session.meter_stop_wh))
    inside = sorted(
        (t.astimezone(dt.UTC), v) for t, v in set(raw) if session.start <= t <= session.stop
    )
    return sum(max(0, b[1] - a[1]) for a, b in itertools.pairwise(inside))


def check_bill(b: Bill, session: ChargingSessionData) -> None:
    assert b.total_fen == sum(line.amount_fen for line in b.lines)
    assert b.total_fen == b.energy_fen + b.service_fen + b.idle_fen
    energy = [line for line in b.lines if line.kind == "energy"]
    service = [line for line in b.lines if line.kind == "service"]
    assert sum(line.wh for line in energy) == b.energy_wh
    assert sum(line.wh for line in service) == b.energy_wh
    for line in b.lines:
        assert line.amount_fen >= 0 and line.wh >= 0 and line.start <= line.end and line.rule
    for a, c in itertools.pairwise(energy):
        assert a.end <= c.start
        assert a.end < c.start or a.band != c.band  # adjacent pieces of one band are merged
    if energy:
        assert energy[0].start >= session.start and energy[-1].end <= b.charging_end
    assert session.start <= b.charging_end <= session.stop
    assert 0 <= b.energy_wh <= positive_rises(session)  # never more than the meter moved


@FAST
@given(st.sampled_from(CASES), anything())
def test_total_is_the_sum_of_the_lines(case: Case, session: ChargingSessionData) -> None:
    check_bill(bill(*case, session), session)


@FAST
@given(st.sampled_from(CASES), monotone())
def test_monotone_energy_is_the_meter_difference(case: Case, session: ChargingSessionData) -> None:
    b = bill(*case, session)
    check_bill(b, session)
    assert session.meter_stop_wh is not None and session.meter_start_wh is not None
    assert b.energy_wh == session.meter_stop_wh - session.meter_start_wh


@FAST
@given(st.sampled_from(CASES), st.one_of(anything(), monotone()), st.data())
def test_order_and_duplicates_do_not_change_the_bill(
    case: Case, session: ChargingSessionData, data: st.DataObject
) -> None:
    samples = list(session.samples)
    late = data.draw(st.permutations(samples))
    again = data.draw(st.lists(st.sampled_from(samples), max_size=5)) if samples else []
    zone = data.draw(zones)
    moved = [(t.astimezone(zone), v) for t, v in [*late, *again]]  # same instants, other zone
    assert bill(*case, replace(session, samples=moved)) == bill(*case, session)
    version = case[0].version_at(session.start)
    assert energy_by_band(moved, version) == energy_by_band(samples, version)


@FAST
@given(st.sampled_from(IDLE_CASES), monotone(), st.data())
def test_more_energy_never_costs_less(
    case: Case, session: ChargingSessionData, data: st.DataObject
) -> None:
    # More energy in one reading interval: every later reading (and the stop) is higher.
    k = data.draw(st.integers(0, len(session.samples)))
    extra = data.draw(st.integers(0, 3) | st.integers(0, 50_000))
    seconds = int((session.stop - session.start).total_seconds())
    end = session.start + dt.timedelta(seconds=data.draw(st.integers(0, seconds)))
    idle = session.stop + dt.timedelta(seconds=data.draw(st.integers(0, 4 * 3600)))
    base = replace(session, charging_end=end, idle_end=idle)  # the idle clock held fixed
    assert base.meter_stop_wh is not None
    more = replace(
        base,
        samples=[(t, v + extra * (i >= k)) for i, (t, v) in enumerate(base.samples)],
        meter_stop_wh=base.meter_stop_wh + extra,
    )
    a, b = bill(*case, base), bill(*case, more)
    assert b.energy_wh == a.energy_wh + extra
    assert a.energy_fen <= b.energy_fen
    assert a.service_fen <= b.service_fen
    assert a.idle_fen <= b.idle_fen
    assert a.total_fen <= b.total_fen

    def by_piece(x: Bill) -> dict[tuple[dt.datetime, str | None], int]:
        return {(line.start, line.band): line.wh for line in x.lines if line.kind == "energy"}

    pieces_b = by_piece(b)
    assert all(wh <= pieces_b[key] for key, wh in by_piece(a).items())  # no Alabama paradox


@FAST
@given(st.sampled_from(IDLE_CASES), monotone(), st.integers(0, 12 * 3600), st.integers(0, 3600))
def test_idle_fee_grows_with_idle_time_and_never_passes_the_cap(
    case: Case, session: ChargingSessionData, after: int, more: int
) -> None:
    first = replace(session, idle_end=session.stop + dt.timedelta(seconds=after))
    later = replace(session, idle_end=session.stop + dt.timedelta(seconds=after + more))
    a, b = bill(*case, first), bill(*case, later)
    assert a.idle_fen <= b.idle_fen
    rates = case[0].version_at(session.start).rates_for(case[1], case[2])
    assert rates.idle is not None and rates.idle.cap_fen is not None
    assert b.idle_fen <= rates.idle.cap_fen
    assert (a.energy_fen, a.service_fen) == (b.energy_fen, b.service_fen)


@FAST
@given(st.sampled_from(CASES), monotone(), monotone())
def test_a_meter_reset_starts_a_new_baseline(
    case: Case, one: ChargingSessionData, two: ChargingSessionData
) -> None:
    # The register of ``two`` (shifted into the time after ``one``) restarts from below
    # ``one``'s last value: both runs are counted, once each.
    assert one.meter_stop_wh is not None and one.meter_start_wh is not None
    assert two.meter_stop_wh is not None and two.meter_start_wh is not None
    top = one.meter_stop_wh
    # keep the second run below the first one's last reading
    assume(two.meter_stop_wh - two.meter_start_wh < top)
    shift = -two.meter_start_wh if two.meter_stop_wh >= top else 0
    gap = one.stop - two.start + dt.timedelta(seconds=1)
    second = [(two.start + gap, two.meter_start_wh + shift)]
    second += [(t + gap, v + shift) for t, v in two.samples]
    second.append((two.stop + gap, two.meter_stop_wh + shift))
    samples = [*one.samples, (one.stop, top), *second]
    session = replace(one, stop=two.stop + gap, samples=samples, meter_stop_wh=None)
    b = bill(*case, session)
    check_bill(b, session)
    assert b.energy_wh == (top - one.meter_start_wh) + (two.meter_stop_wh - two.meter_start_wh)


def band_at_minute(version: ChargingTariffVersion, local: dt.datetime) -> str:
    minute = local.hour * 60 + local.minute
    for window in version.windows:
        a, b = window.start_min, window.end_min
        if (a <= minute < b) if a < b else (minute >= a or minute < b):
            return window.name
    raise AssertionError("windows do not cover the day")


@FAST
@given(st.sampled_from(CASES), monotone(minute_aligned=True))
def test_band_split_matches_exact_proportions(case: Case, session: ChargingSessionData) -> None:
    """Minute by minute, each rise spread evenly: every band's Wh is within the rounding
    allowance (fewer than the band pieces a rise crosses) of the exact share."""
    version = case[0].version_at(session.start)
    b = bill(*case, session)
    got: defaultdict[str, int] = defaultdict(int)
    for line in b.lines:
        if line.kind == "energy" and line.band is not None:
            got[line.band] += line.wh
    assert session.meter_start_wh is not None and session.meter_stop_wh is not None
    readings = sorted(
        {
            (session.start, session.meter_start_wh),
            *session.samples,
            (session.stop, session.meter_stop_wh),
        }
    )
    exact: defaultdict[str, Fraction] = defaultdict(Fraction)
    allowance = 0
    for (t0, v0), (t1, v1) in itertools.pairwise(readings):
        if v1 == v0:
            continue
        minutes = int((t1 - t0).total_seconds()) // 60
        if minutes == 0:  # delivered up to t0: the band of the minute before (or the start's)
            at = t0 if t0 == session.start else t0 - dt.timedelta(minutes=1)
            exact[band_at_minute(version, at.astimezone(version.zone))] += v1 - v0
            continue
        bands = [
            band_at_minute(version, (t0 + dt.timedelta(minutes=m)).astimezone(version.zone))
            for m in range(minutes)
        ]
        for band in bands:
            exact[band] += Fraction(v1 - v0, minutes)
        allowance += 1 + sum(x != y for x, y in itertools.pairwise(bands))
    for band in set(got) | set(exact):
        assert abs(got[band] - exact[band]) < max(allowance, 1)


@FAST
@given(st.lists(st.integers(1, 10**6), min_size=1, max_size=8), st.integers(0, 10**5))
def test_a_rise_is_apportioned_exactly_and_monotonically(weights: list[int], rise: int) -> None:
    shares = billing._apportion(rise, weights)
    more = billing._apportion(rise + 1, weights)
    assert sum(shares) == rise and sum(more) == rise + 1
    assert all(a <= b for a, b in zip(shares, more, strict=True))  # no Alabama paradox
    total = sum(weights)
    assert all(s >= rise * w // total for s, w in zip(shares, weights, strict=True))
