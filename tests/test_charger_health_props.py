"""Property tests for charger health (charging/health.py).

Availability is a share of time, so it stays in 0..1 and a window's figure is the
duration-weighted mean of its halves'. The fleet summary accounts for every charger exactly
once. And the network may deliver a charger's StatusNotifications in any order, twice, or late
and back-dated: the book must end with the same current status, the same ``since`` and the same
history as if they had come in timestamp order, and a second delivery of everything changes
nothing.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from charging.health import (
    OCPP_STATUSES,
    OFFLINE_STATUS,
    SEVERITY_ORDER,
    UNKNOWN_STATUS,
    ChargerBook,
    ChargerState,
    ConnectorState,
    availability,
    fleet_summary,
)
from events import ChargerConnected, ChargerHeartbeat, ConnectorStatusChanged, Event, MeterSample

T0 = datetime(2026, 11, 28, tzinfo=UTC)
CP = "sd-cp-007"
STATUSES = (*OCPP_STATUSES, OFFLINE_STATUS, UNKNOWN_STATUS, "Bogus")
MINUTES = st.integers(min_value=-3 * 24 * 60, max_value=10 * 24 * 60)


def t(minutes: int, seconds: int = 0) -> datetime:
    return T0 + timedelta(minutes=minutes, seconds=seconds)


histories = st.lists(st.tuples(MINUTES.map(t), st.sampled_from(STATUSES)), max_size=30)


def window(data: st.DataObject) -> tuple[datetime, datetime]:
    a = data.draw(MINUTES, label="start")
    b = data.draw(st.integers(min_value=a + 1, max_value=a + 14 * 24 * 60), label="end")
    return t(a), t(b)


@given(histories, st.data())
def test_availability_is_a_share(history: list[tuple[datetime, str]], data: st.DataObject) -> None:
    start, end = window(data)
    assert 0.0 <= availability(history, start, end) <= 1.0


@given(histories, st.data())
def test_availability_of_a_window_is_the_weighted_mean_of_its_halves(
    history: list[tuple[datetime, str]], data: st.DataObject
) -> None:
    start, end = window(data)
    span = int((end - start).total_seconds())  # at least 60 s
    cut = start + timedelta(seconds=data.draw(st.integers(1, span - 1), label="cut"))
    whole = availability(history, start, end)
    left = availability(history, start, cut)
    right = availability(history, cut, end)
    mean = (left * (cut - start).total_seconds() + right * (end - cut).total_seconds()) / span
    assert math.isclose(whole, mean, rel_tol=1e-9, abs_tol=1e-9)


# -- the fleet --------------------------------------------------------------------------------

connector_states = st.builds(
    lambda cid, status, minutes, code: ConnectorState(
        cid, status, None if status is None else t(minutes), None, code
    ),
    st.integers(0, 3),
    st.none() | st.sampled_from(STATUSES),
    st.integers(-600, 0),
    st.none() | st.sampled_from(("GroundFailure", "HighTemperature", "OtherError")),
)


@st.composite
def charger_states(draw: st.DrawFn, charger_id: str) -> ChargerState:
    conns = draw(st.lists(connector_states, max_size=4, unique_by=lambda c: c.connector_id))
    connected = draw(st.booleans())
    heard = draw(st.none() | st.integers(-120, 0))
    return ChargerState(
        charger_id=charger_id,
        site_id=draw(st.sampled_from(("s1", "s2"))),
        heartbeat_s=draw(st.sampled_from((60, 300))),
        connectors={c.connector_id: c for c in conns},
        connected=connected,
        connected_at=None if heard is None else t(heard),
        disconnected_at=None if connected or heard is None else t(heard),
        last_message_at=None if heard is None else t(heard),
        probe_state=draw(st.sampled_from(("idle", "pending", "failed"))),
    )


@st.composite
def fleets(draw: st.DrawFn) -> list[ChargerState]:
    n = draw(st.integers(0, 12))
    return [draw(charger_states(f"cp-{i:02d}")) for i in range(n)]


@given(fleets(), st.integers(0, 120))
def test_fleet_counts_sum_to_the_number_of_chargers(fleet: list[ChargerState], now: int) -> None:
    summary = fleet_summary(fleet, t(now))
    assert sum(summary.counts.values()) == len(fleet)
    assert list(summary.counts) == list(SEVERITY_ORDER)
    assert sorted(h.charger_id for h in summary.chargers) == sorted(s.charger_id for s in fleet)
    ranks = [h.state.severity for h in summary.chargers]
    assert ranks == sorted(ranks)
    for h in summary.chargers:
        assert summary.counts[h.state] >= 1
        assert h.reason == h.reasons[0]


# -- any order, any duplicates ------------------------------------------------------------------

CODES = st.none() | st.sampled_from(("GroundFailure", "HighTemperature"))


@st.composite
def traffic(draw: st.DrawFn) -> list[Event]:
    """A charger's StatusNotifications on connectors 0..2 (distinct timestamps per connector,
    within the book's retention), heartbeats and meter readings, some delivered twice."""
    events: list[Event] = []
    for cid in (0, 1, 2):
        seconds = draw(st.lists(st.integers(0, 6 * 24 * 3600), unique=True, max_size=12))
        for s in seconds:
            events.append(
                ConnectorStatusChanged(
                    device_id=CP,
                    ts=t(0, s),
                    connector_id=cid,
                    status=draw(st.sampled_from((*OCPP_STATUSES, "Bogus"))),
                    error_code=draw(CODES),
                )
            )
    for s in draw(st.lists(st.integers(0, 6 * 24 * 3600), max_size=6)):
        events.append(ChargerHeartbeat(device_id=CP, ts=t(0, s)))
    for s, wh in draw(
        st.lists(st.tuples(st.integers(0, 6 * 24 * 3600), st.integers(0, 10**6)), max_size=6)
    ):
        events.append(MeterSample(device_id=CP, ts=t(0, s), connector_id=1, energy_wh=float(wh)))
    if events:
        events += draw(st.lists(st.sampled_from(events), max_size=5))
    return events


def fresh() -> ChargerBook:
    b = ChargerBook(ZoneInfo("Asia/Shanghai"))
    b.register(CP, "s1", connector_ids=(1, 2))
    b.apply(ChargerConnected(device_id=CP, ts=t(-1), protocol="ocpp1.6"))
    return b


def statuses(b: ChargerBook) -> dict[int, tuple[object, ...]]:
    return {
        cid: (c.status, c.since, c.reported_at, c.error_code, c.vendor_error_code, c.info)
        for cid, c in b.state(CP).connectors.items()
    }


@settings(max_examples=200)
@given(traffic(), st.randoms(use_true_random=False))
def test_any_order_gives_the_status_of_timestamp_order(events: list[Event], rnd: object) -> None:
    in_order = fresh()
    for e in sorted(events, key=lambda e: e.ts):
        in_order.apply(e)
    shuffled = list(events)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    any_order = fresh()
    for e in shuffled:
        any_order.apply(e)
    assert statuses(any_order) == statuses(in_order)
    for cid in (0, 1, 2):
        assert any_order.history(CP, cid) == in_order.history(CP, cid)
    now = t(7 * 24 * 60)
    assert any_order.availability(CP, now) == in_order.availability(CP, now)
    assert any_order.health(CP, now) == in_order.health(CP, now)
    assert any_order.state(CP).last_message_at == in_order.state(CP).last_message_at
    # delivering everything again changes nothing
    for e in shuffled:
        assert any_order.apply(e) == ()


@st.composite
def readings(draw: st.DrawFn) -> list[MeterSample]:
    """Register readings of connector 1 within one local day (T0 is 08:00 in Shanghai), the
    register sometimes reset, some delivered twice."""
    seconds = draw(st.lists(st.integers(0, 8 * 3600 - 1), unique=True, max_size=15))
    samples = [
        MeterSample(
            device_id=CP,
            ts=t(0, s),
            connector_id=1,
            energy_wh=float(draw(st.integers(0, 10**6))),
        )
        for s in seconds
    ]
    return samples + draw(st.lists(st.sampled_from(samples), max_size=5)) if samples else []


@given(readings(), st.randoms(use_true_random=False))
def test_energy_in_any_order_never_exceeds_timestamp_order(
    samples: list[MeterSample], rnd: object
) -> None:
    ordered = sorted(set(samples), key=lambda e: e.ts)
    truth = sum(
        max(0.0, (b.energy_wh or 0.0) - (a.energy_wh or 0.0))
        for a, b in itertools.pairwise(ordered)
    )
    in_order = fresh()
    for e in sorted(samples, key=lambda e: e.ts):
        in_order.apply(e)
    now = t(8 * 60)
    assert in_order.energy_today_wh(CP, now) == truth
    shuffled = list(samples)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    any_order = fresh()
    for e in shuffled:
        any_order.apply(e)
    assert 0.0 <= any_order.energy_today_wh(CP, now) <= truth
