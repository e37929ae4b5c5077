"""Table tests for charger health (charging/health.py): liveness and the probe, status with
back-dated and duplicate reports, overall state and its order, availability windows, energy
today across local midnight, OCPI EVSE status, and the maintenance rule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from charging.health import (
    DAY,
    SEVERITY_ORDER,
    WEEK,
    ChargerBook,
    ChargerChanged,
    ChargerState,
    ConnectorChanged,
    ConnectorState,
    EvseStatus,
    HealthState,
    Outage,
    OutageEnded,
    OutageStarted,
    StatusRecorded,
    StatusReport,
    UnknownCharger,
    availability,
    canonical_status,
    connector_timeline,
    energy_today_wh,
    evse_statuses,
    fault_history,
    fleet_summary,
    health,
    liveness,
    maintenance_due,
    ocpi_status,
    outage_start,
    site_availability,
)
from events import (
    BerthState,
    BerthStateChanged,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerHeartbeat,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    MeterSample,
)

CST = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
S = timedelta(seconds=1)
MIN = timedelta(minutes=1)
H = timedelta(hours=1)
CP = "sd-cp-001"


def at(offset: timedelta) -> datetime:
    return T0 + offset


def book(*connectors: int, heartbeat_s: int = 300) -> ChargerBook:
    b = ChargerBook(CST)
    b.register(CP, "sd-shimin", heartbeat_s=heartbeat_s, connector_ids=connectors or (1, 2))
    return b


def online(b: ChargerBook, ts: datetime = T0) -> None:
    b.apply(ChargerConnected(device_id=CP, ts=ts, protocol="ocpp1.6"))


def status(
    b: ChargerBook,
    ts: datetime,
    connector: int,
    value: str,
    code: str | None = None,
    vendor: str | None = None,
    info: str | None = None,
) -> tuple[object, ...]:
    return b.apply(
        ConnectorStatusChanged(
            device_id=CP,
            ts=ts,
            connector_id=connector,
            status=value,
            error_code=code,
            vendor_error_code=vendor,
            info=info,
        )
    )


def charger(**kw: object) -> ChargerState:
    """A hand-made charger state: connected, heard at T0, heartbeat 300 s, unless told."""
    base: dict[str, object] = {
        "charger_id": CP,
        "site_id": "sd-shimin",
        "heartbeat_s": 300,
        "connected": True,
        "connected_at": T0,
        "last_message_at": T0,
        "connectors": {1: ConnectorState(1, "Available", T0, T0)},
    }
    base.update(kw)
    return ChargerState(**base)  # type: ignore[arg-type]


def conn(cid: int, value: str | None, since: datetime = T0, **kw: object) -> ConnectorState:
    return ConnectorState(cid, value, since, since, **kw)  # type: ignore[arg-type]


# -- liveness --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "now", "expected"),
    [
        # socket up: heard within heartbeat * factor (2 x 300 s = 600 s), boundary included
        (charger(), at(600 * S), "online"),
        (charger(), at(600 * S + timedelta(microseconds=1)), "probing"),
        (charger(heartbeat_s=60), at(120 * S), "online"),
        (charger(heartbeat_s=60), at(121 * S), "probing"),
        # probe unanswered: offline whatever the age
        (charger(probe_state="failed", probe_at=at(11 * MIN)), at(12 * MIN), "offline"),
        (charger(probe_state="pending", probe_at=at(11 * MIN)), at(12 * MIN), "probing"),
        # socket down: a reconnect within the grace (60 s, included) is normal
        (charger(connected=False, disconnected_at=at(10 * S)), at(70 * S), "online"),
        (
            charger(connected=False, disconnected_at=at(10 * S)),
            at(70 * S + timedelta(microseconds=1)),
            "offline",
        ),
        # down within the grace but silent too long: in doubt, not yet offline
        (charger(connected=False, disconnected_at=at(11 * MIN)), at(11 * MIN + S), "probing"),
        # never connected
        (charger(connected=False, connected_at=None, last_message_at=None), T0, "offline"),
    ],
)
def test_liveness_boundaries(state: ChargerState, now: datetime, expected: str) -> None:
    assert liveness(state, now) == expected


def test_liveness_factor_and_grace_are_parameters() -> None:
    s = charger()
    assert liveness(s, at(900 * S), factor=3.0) == "online"
    assert liveness(s, at(901 * S), factor=3.0) == "probing"
    down = charger(connected=False, disconnected_at=T0)
    assert liveness(down, at(2 * MIN), grace=2 * MIN) == "online"
    assert liveness(down, at(2 * MIN + S), grace=2 * MIN) == "offline"


def test_probe_flow_answered() -> None:
    b = book()
    online(b)
    status(b, T0, 1, "Available")
    status(b, T0, 2, "Available")
    assert b.due_probes(at(600 * S)) == ()
    assert b.due_probes(at(601 * S)) == (CP,)
    assert b.health(CP, at(601 * S)).state is HealthState.WARNING  # probing is a warning
    b.probe_sent(CP, at(601 * S))
    assert b.due_probes(at(602 * S)) == ()  # in flight
    changes = b.probe_result(CP, True, at(605 * S))
    assert not any(isinstance(c, OutageStarted | OutageEnded) for c in changes)
    s = b.state(CP)
    assert (s.probe_state, s.last_message_at) == ("idle", at(605 * S))
    assert liveness(s, at(605 * S)) == "online"


def test_probes_and_sweeps_in_slices_find_what_a_whole_pass_finds() -> None:
    """The watch loop walks a big fleet in slices (``among``) to keep the event loop free;
    the slices together must find exactly what one pass over the book finds."""
    b = ChargerBook(CST)
    ids = [f"CP{n:03}" for n in range(10)]
    for n, cid in enumerate(ids):
        b.register(cid, "sd-shimin", heartbeat_s=300, connector_ids=(1,))
        b.apply(ChargerConnected(device_id=cid, ts=T0, protocol="ocpp1.6"))
        if n % 3 == 0:  # these go silent; the rest keep talking
            continue
        b.apply(ChargerHeartbeat(device_id=cid, ts=at(8 * MIN)))
    for n in (4, 7):  # and these lose their socket
        b.apply(ChargerDisconnected(device_id=ids[n], ts=at(8 * MIN), reason="closed"))
    now = at(11 * MIN)
    assert b.charger_ids() == tuple(ids)
    whole = set(b.due_probes(now))
    sliced = {c for k in range(0, 10, 4) for c in b.due_probes(now, ids[k : k + 4])}
    assert whole == sliced == {ids[0], ids[3], ids[6], ids[9]}
    assert b.due_probes(now, ["nobody", ids[3]]) == (ids[3],)  # unknown ids are passed over
    later = at(20 * MIN)
    per_slice = [c for k in range(0, 10, 3) for c in b.sweep(later, ids[k : k + 3])]
    assert {c.charger_id for c in per_slice} == {ids[4], ids[7]}
    assert b.sweep(later) == ()  # declared once, whichever way it was looked at


def test_probe_flow_unanswered_then_back() -> None:
    b = book()
    online(b)
    b.apply(ChargerHeartbeat(device_id=CP, ts=at(5 * MIN)))
    b.probe_sent(CP, at(16 * MIN))
    changes = b.probe_result(CP, False, at(16 * MIN + 30 * S))
    assert changes[0] == OutageStarted(
        CP, at(5 * MIN), "no message for 11 min (heartbeat 300 s), probe unanswered"
    )
    assert b.sweep(at(20 * MIN)) == ()  # declared once
    h = b.health(CP, at(42 * MIN))
    assert h.state is HealthState.OFFLINE
    assert h.reason == "no message for 37 min (heartbeat 300 s), probe unanswered"
    assert h.since == at(5 * MIN)
    assert b.due_probes(at(42 * MIN)) == ()  # offline chargers are not probed again
    back = b.apply(ChargerHeartbeat(device_id=CP, ts=at(50 * MIN)))
    assert back[0] == OutageEnded(CP, Outage(at(5 * MIN), at(50 * MIN)))
    assert b.health(CP, at(50 * MIN)).liveness == "online"
    assert b.outages(CP, at(51 * MIN)) == (Outage(at(5 * MIN), at(50 * MIN)),)


def test_probe_timeout_loses_to_a_message_in_between() -> None:
    b = book()
    online(b)
    b.probe_sent(CP, at(11 * MIN))
    b.apply(ChargerHeartbeat(device_id=CP, ts=at(11 * MIN + 2 * S)))
    changes = b.probe_result(CP, False, at(11 * MIN + 30 * S))
    assert not any(isinstance(c, OutageStarted) for c in changes)
    assert b.state(CP).probe_state == "idle"
    assert liveness(b.state(CP), at(12 * MIN)) == "online"


def test_probe_in_flight_too_long_is_offered_again() -> None:
    b = book()
    online(b)
    b.probe_sent(CP, at(11 * MIN))
    assert b.due_probes(at(13 * MIN - S)) == ()
    assert b.due_probes(at(13 * MIN)) == (CP,)


def test_disconnected_chargers_are_not_probed() -> None:
    b = book()
    online(b)
    b.apply(ChargerDisconnected(device_id=CP, ts=at(10 * MIN + 30 * S), reason="1006"))
    assert b.due_probes(at(10 * MIN + 40 * S)) == ()


def test_reconnect_within_grace_is_no_outage() -> None:
    b = book()
    online(b)
    b.apply(ChargerDisconnected(device_id=CP, ts=at(MIN), reason="1006"))
    assert b.sweep(at(2 * MIN)) == ()
    changes = b.apply(ChargerConnected(device_id=CP, ts=at(2 * MIN), protocol="ocpp1.6"))
    assert not any(isinstance(c, OutageEnded) for c in changes)
    assert b.outages(CP, at(3 * MIN)) == ()


def test_socket_down_past_grace_is_an_outage_from_the_disconnect() -> None:
    b = book()
    online(b)
    b.apply(ChargerDisconnected(device_id=CP, ts=at(MIN), reason="1006 abnormal closure"))
    assert b.sweep(at(2 * MIN)) == ()
    started = b.sweep(at(2 * MIN + S))
    assert started == (OutageStarted(CP, at(MIN), "disconnected for 61 s (1006 abnormal closure)"),)
    assert b.sweep(at(5 * MIN)) == ()
    h = b.health(CP, at(13 * MIN))
    assert (h.state, h.reason) == (
        HealthState.OFFLINE,
        "disconnected for 12 min (1006 abnormal closure)",
    )
    # no sweep needed for the outage to be closed correctly
    changes = b.apply(ChargerConnected(device_id=CP, ts=at(20 * MIN), protocol="ocpp1.6"))
    assert changes[0] == OutageEnded(CP, Outage(at(MIN), at(20 * MIN)))


def test_replaced_socket_and_stale_closes_do_not_disconnect() -> None:
    b = book()
    online(b)
    b.apply(ChargerConnected(device_id=CP, ts=at(MIN), protocol="ocpp2.0.1"))  # new socket
    assert b.apply(ChargerDisconnected(device_id=CP, ts=at(MIN + S), reason="replaced")) == ()
    assert b.apply(ChargerDisconnected(device_id=CP, ts=at(30 * S), reason="1006")) == ()  # old
    assert b.apply(ChargerDisconnected(device_id=CP, ts=at(MIN), reason="1006")) == ()  # tie
    s = b.state(CP)
    assert (s.connected, s.protocol) == (True, "ocpp2.0.1")
    # two closes without an opening between them: the earlier one is when it went down
    b.apply(ChargerDisconnected(device_id=CP, ts=at(5 * MIN), reason="1006"))
    b.apply(ChargerDisconnected(device_id=CP, ts=at(4 * MIN), reason="1001"))
    assert b.state(CP).disconnected_at == at(4 * MIN)
    # a connect older than the newest close is old news
    b.apply(ChargerConnected(device_id=CP, ts=at(3 * MIN), protocol="x"))
    assert (b.state(CP).connected, b.state(CP).protocol) == (False, "ocpp2.0.1")


def test_received_at_is_the_sign_of_life_for_back_dated_messages() -> None:
    b = book()
    online(b)
    # a queued StopTransaction stamped 2 h ago, received now, is a sign of life now
    b.apply(
        ChargingEnded(device_id=CP, ts=at(-2 * H), connector_id=1, transaction_id="7"),
        received_at=at(30 * MIN),
    )
    assert b.state(CP).last_message_at == at(30 * MIN)
    # without received_at a back-dated timestamp never moves last_message_at back
    b.apply(ChargerHeartbeat(device_id=CP, ts=at(MIN)))
    assert b.state(CP).last_message_at == at(30 * MIN)


def test_a_clock_far_ahead_is_read_as_the_receive_time() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Available")
    b.apply(
        ConnectorStatusChanged(device_id=CP, ts=at(24 * H), connector_id=1, status="Faulted"),
        received_at=at(2 * MIN),
    )
    status(b, at(3 * MIN), 1, "Available")
    c = b.state(CP).connectors[1]
    assert (c.status, c.since) == ("Available", at(3 * MIN))
    assert [r.ts for r in b.history(CP, 1)] == [at(MIN), at(2 * MIN), at(3 * MIN)]


def test_restore_after_restart() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Faulted", "GroundFailure")
    status(b, at(2 * MIN), 1, "Faulted", "GroundFailure")
    saved = b.state(CP)
    history = {1: b.history(CP, 1)}

    fresh = ChargerBook(CST)
    s = fresh.restore(saved, now=at(3 * MIN), history=history)
    assert (s.connected, s.disconnected_at, s.disconnect_reason, s.restarted_at) == (
        False,
        at(3 * MIN),
        "gateway restart",
        at(3 * MIN),
    )
    assert s.connectors[1].since == at(MIN)
    assert liveness(s, at(4 * MIN)) == "reconnecting"  # within the grace of the restart
    assert liveness(s, at(4 * MIN + S)) == "offline"
    assert "disconnected for 61 s (gateway restart)" in health(s, at(4 * MIN + S)).reasons
    changes = fresh.apply(ChargerConnected(device_id=CP, ts=at(3 * MIN + 30 * S), protocol="x"))
    assert not any(isinstance(c, OutageEnded) for c in changes)
    assert fresh.state(CP).restarted_at is None
    # a gateway down for an hour: its chargers get the grace from the restart to reconnect
    assert liveness(ChargerBook(CST).restore(saved, now=at(H)), at(H + S)) == "reconnecting"
    # a snapshot without history seeds it
    other = ChargerBook(CST)
    s2 = other.restore(saved, now=at(H))
    assert s2.connectors[1] == saved.connectors[1]
    assert [r.ts for r in other.history(CP, 1)] == [at(MIN), at(2 * MIN)]


def test_within_the_grace_after_a_restart_a_charger_is_reconnecting() -> None:
    """Issue 9: after a restart chargers read "reconnecting (gateway restarted N s ago)", never
    "probe unanswered" for a probe that was never sent."""
    up = charger(connectors={1: conn(1, "Charging")})
    closed = charger(
        connected=False,
        disconnected_at=at(50 * S),
        disconnect_reason="1000",
        last_message_at=at(50 * S),
    )  # closed normally as the old gateway stopped
    legacy = charger(connected=False, connected_at=None)  # heard, socket never recorded
    restart = at(55 * S)
    for saved in (up, closed, legacy):
        s = ChargerBook(CST).restore(saved, now=restart)
        h = health(s, restart + 12 * S)
        assert (h.liveness, h.state, h.since) == ("reconnecting", HealthState.WARNING, restart)
        assert h.reason == "reconnecting (gateway restarted 12 s ago)"
        after = health(s, restart + 61 * S)
        assert after.state == HealthState.OFFLINE and "probe unanswered" not in after.reason
        assert after.since == (s.disconnected_at or s.last_message_at)
    # the outage of one that closed before the restart counts from its own close
    s = ChargerBook(CST).restore(closed, now=restart)
    assert outage_start(s, restart + 61 * S) == at(50 * S)
    # a charger long gone before the restart is not given a new grace
    gone = charger(connected=False, disconnected_at=at(-H), last_message_at=at(-H))
    assert liveness(ChargerBook(CST).restore(gone, now=restart), restart) == "offline"
    # a probe that went unanswered before the restart still stands
    silent = charger(probe_state="failed", probe_at=at(11 * MIN), last_message_at=T0)
    h = health(ChargerBook(CST).restore(silent, now=at(12 * MIN)), at(12 * MIN))
    assert h.state == HealthState.OFFLINE and h.reason.endswith("probe unanswered")
    # a reader of the running gateway's book (the CLI) takes the state as persisted
    assert ChargerBook(CST).restore(up, now=restart, restart=False).connected


def test_not_connected_without_a_recorded_disconnect_is_no_probe_unanswered() -> None:
    s = charger(connected=False, connected_at=None, last_message_at=T0)
    h = health(s, at(37 * MIN))
    assert h.reason == "no message for 37 min (heartbeat 300 s), not connected"
    assert h.since == T0


def test_energy_today_last_meter_and_the_transaction_survive_a_restart() -> None:
    b = book()
    online(b, local(2026, 11, 29, 7))
    b.apply(
        ChargingStarted(
            device_id=CP, ts=local(2026, 11, 29, 8), connector_id=2, transaction_id="tx-9",
            meter_start_wh=1_000,
        )
    )  # fmt: skip
    meter(b, local(2026, 11, 29, 9), 4_000, connector=2)
    saved = b.state(CP)
    fresh = ChargerBook(CST)
    fresh.register(CP, "sd-shimin", connector_ids=(1, 2))
    fresh.restore(saved, now=local(2026, 11, 29, 9, 30))
    assert fresh.energy_today_wh(CP, local(2026, 11, 29, 9, 30)) == 3_000
    c2 = fresh.state(CP).connectors[2]
    assert (c2.last_meter_wh, c2.transaction_id) == (4_000, "tx-9")
    # 2.0.1 TransactionEvent Ended without evse after the restart: connector 0, the book knows
    meter(fresh, local(2026, 11, 29, 10), 6_000, connector=0)
    fresh.apply(
        MeterSample(
            device_id=CP, ts=local(2026, 11, 29, 10, 30), connector_id=0, energy_wh=7_500,
            transaction_id="tx-9",
        )
    )  # fmt: skip
    fresh.apply(
        ChargingEnded(
            device_id=CP, ts=local(2026, 11, 29, 11), connector_id=0, transaction_id="tx-9",
            meter_stop_wh=8_000,
        )
    )  # fmt: skip
    c2 = fresh.state(CP).connectors[2]
    assert (c2.last_meter_wh, c2.transaction_id) == (8_000, None)
    assert fresh.energy_today_wh(CP, local(2026, 11, 29, 12)) == 7_000
    # a late reading of the ended transaction still finds its connector
    fresh.apply(
        MeterSample(
            device_id=CP, ts=local(2026, 11, 29, 11, 30), connector_id=0, energy_wh=8_200,
            transaction_id="tx-9",
        )
    )  # fmt: skip
    assert fresh.state(CP).connectors[2].last_meter_wh == 8_200


def test_unknown_charger_and_other_events() -> None:
    b = book()
    with pytest.raises(UnknownCharger):
        b.apply(ChargerHeartbeat(device_id="nope", ts=T0))
    with pytest.raises(UnknownCharger):
        b.state("nope")
    other = BerthStateChanged(
        device_id="s1",
        ts=T0,
        site_id="x",
        berth_id="b",
        state=BerthState.FREE,
        previous=BerthState.UNKNOWN,
        since=T0,
    )
    assert b.apply(other) == ()


# -- status, back-dated and duplicate reports ------------------------------------------------


def test_back_dated_status_goes_into_history_only() -> None:
    b = book()
    online(b)
    status(b, at(10 * MIN), 1, "Available")
    changes = status(b, at(5 * MIN), 1, "Faulted", "GroundFailure")
    recorded = [c for c in changes if isinstance(c, StatusRecorded)]
    assert recorded == [
        StatusRecorded(CP, 1, StatusReport(at(5 * MIN), "Faulted", "GroundFailure"), False)
    ]
    assert not any(isinstance(c, ConnectorChanged) for c in changes)
    c = b.state(CP).connectors[1]
    assert (c.status, c.since, c.error_code) == ("Available", at(10 * MIN), None)
    assert [r.status for r in b.history(CP, 1)] == ["Faulted", "Available"]


def test_back_dated_same_status_moves_since_back() -> None:
    b = book()
    online(b)
    status(b, at(10 * MIN), 1, "Faulted", "GroundFailure")
    changes = status(b, at(4 * MIN), 1, "Faulted", "GroundFailure")
    changed = [c for c in changes if isinstance(c, ConnectorChanged)]
    assert [c.fields for c in changed] == [frozenset({"since"})]
    assert b.state(CP).connectors[1].since == at(4 * MIN)
    # ... unless something else came between
    status(b, at(6 * MIN), 1, "Available")
    assert b.state(CP).connectors[1].since == at(10 * MIN)


def test_duplicates_change_nothing() -> None:
    b = book()
    online(b)
    first = status(b, at(MIN), 2, "Faulted", "GroundFailure", "0x1F")
    assert first
    assert status(b, at(MIN), 2, "Faulted", "GroundFailure", "0x1F") == ()
    assert status(b, at(MIN), 2, "faulted", "GroundFailure", " 0x1F ") == ()  # same, spelled so
    assert b.apply(ChargerHeartbeat(device_id=CP, ts=T0)) == ()
    assert len(b.history(CP, 2)) == 1


def test_same_instant_later_arrival_wins() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Finishing")
    status(b, at(MIN), 1, "Available")  # 1.6 timestamps: one-second precision
    assert b.state(CP).connectors[1].status == "Available"


def test_repeated_status_keeps_since_and_updates_codes() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Charging")
    changes = status(b, at(5 * MIN), 1, "Charging", "HighTemperature", "E12")
    (changed,) = [c for c in changes if isinstance(c, ConnectorChanged)]
    assert changed.fields == {"reported_at", "error_code", "vendor_error_code"}
    c = b.state(CP).connectors[1]
    assert (c.since, c.reported_at) == (at(MIN), at(5 * MIN))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("Available", "Available"), ("suspendedevse", "SuspendedEVSE"), (" FAULTED ", "Faulted"),
     ("Bogus", "Bogus"), ("", None), (None, None)],
)  # fmt: skip
def test_canonical_status(raw: str | None, expected: str | None) -> None:
    assert canonical_status(raw) == expected


def test_no_error_is_no_code() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Available", "NoError")
    assert b.state(CP).connectors[1].error_code is None
    assert b.health(CP, at(MIN)).state is HealthState.UNKNOWN  # connector 2 never reported


def test_boot_firmware_and_notices() -> None:
    b = book()
    online(b)
    b.apply(
        ChargerBooted(
            device_id=CP, ts=at(MIN), vendor="XJ", model="DC60", firmware="2.1.0",
            reason="PowerUp", serial="SN1",
        )
    )  # fmt: skip
    b.apply(ChargerBooted(device_id=CP, ts=at(30 * S), vendor="old", model="old", firmware="1"))
    b.apply(ChargerNotice(device_id=CP, ts=at(2 * MIN), notice="firmware", status="Installing"))
    b.apply(ChargerNotice(device_id=CP, ts=at(90 * S), notice="firmware", status="Downloading"))
    b.apply(ChargerNotice(device_id=CP, ts=at(3 * MIN), notice="security", status="TamperDetected"))
    s = b.state(CP)
    assert (s.vendor, s.model, s.firmware, s.serial) == ("XJ", "DC60", "2.1.0", "SN1")
    assert (s.last_boot_reason, s.last_boot_at) == ("PowerUp", at(MIN))
    assert s.firmware_status == "Installing"
    assert s.last_message_at == at(3 * MIN)
    changes = b.apply(ChargerBooted(device_id=CP, ts=at(4 * MIN), vendor="XJ", model="DC60"))
    (changed,) = [c for c in changes if isinstance(c, ChargerChanged)]
    assert changed.fields == {"last_boot_at", "last_boot_reason", "last_message_at"}
    assert b.state(CP).firmware == "2.1.0"  # a boot without firmware keeps what we knew


def test_transactions_in_any_order() -> None:
    b = book()
    online(b)
    start = ChargingStarted(device_id=CP, ts=at(MIN), connector_id=1, transaction_id="41")
    end = ChargingEnded(device_id=CP, ts=at(30 * MIN), connector_id=1, transaction_id="41")
    b.apply(start)
    assert b.state(CP).connectors[1].transaction_id == "41"
    b.apply(end)
    assert b.state(CP).connectors[1].transaction_id is None
    b.apply(start)  # a re-delivered start of an ended transaction does not reopen it
    assert b.state(CP).connectors[1].transaction_id is None
    b.apply(ChargingEnded(device_id=CP, ts=at(50 * MIN), connector_id=2, transaction_id="42"))
    b.apply(ChargingStarted(device_id=CP, ts=at(40 * MIN), connector_id=2, transaction_id="42"))
    assert b.state(CP).connectors[2].transaction_id is None  # the end came first


# -- overall state, reasons and the fleet ----------------------------------------------------

FAULT = conn(2, "Faulted", error_code="GroundFailure", vendor_error_code="0x1F")


@pytest.mark.parametrize(
    ("connectors", "state_kw", "expected", "reason"),
    [
        ({1: conn(1, "Available"), 2: FAULT}, {}, HealthState.FAULTED,
         "connector 2 Faulted: GroundFailure (vendor 0x1F)"),
        ({0: conn(0, "Faulted", error_code="InternalError"), 1: conn(1, "Available")}, {},
         HealthState.FAULTED, "charger Faulted: InternalError"),
        ({1: conn(1, "Faulted", vendor_error_code="E42", info="RCD")}, {},
         HealthState.FAULTED, "connector 1 Faulted (vendor E42, RCD)"),
        ({1: conn(1, "Available")}, {"probe_state": "failed", "last_message_at": at(-36 * MIN)},
         HealthState.OFFLINE, "no message for 37 min (heartbeat 300 s), probe unanswered"),
        ({1: conn(1, "Available")}, {"connected": False, "connected_at": None,
         "last_message_at": None}, HealthState.OFFLINE, "never connected"),
        ({1: conn(1, "Unavailable")}, {}, HealthState.UNAVAILABLE, "connector 1 Unavailable"),
        ({0: conn(0, "Unavailable"), 1: conn(1, "Available")}, {}, HealthState.UNAVAILABLE,
         "charger Unavailable"),
        ({1: conn(1, "Unavailable", error_code="HighTemperature")}, {}, HealthState.UNAVAILABLE,
         "connector 1 Unavailable: HighTemperature"),
        ({1: conn(1, "Available"), 2: conn(2, None)}, {}, HealthState.UNKNOWN,
         "connector 2 has not reported a status"),
        ({1: conn(1, "Broken")}, {}, HealthState.UNKNOWN,
         "connector 1 reports unknown status 'Broken'"),
        ({}, {}, HealthState.UNKNOWN, "no connector has reported a status"),
        ({1: conn(1, "Charging", error_code="HighTemperature", vendor_error_code="E12")}, {},
         HealthState.WARNING, "connector 1 Charging, warning HighTemperature (vendor E12)"),
        ({0: conn(0, "Available", error_code="WeakSignal"), 1: conn(1, "Available")}, {},
         HealthState.WARNING, "charger Available, warning WeakSignal"),
        ({1: conn(1, "Charging"), 2: conn(2, "Preparing")}, {}, HealthState.CHARGING,
         "connector 1 Charging"),
        ({1: conn(1, "Available"), 2: conn(2, "SuspendedEV")}, {}, HealthState.OCCUPIED,
         "connector 2 SuspendedEV"),
        ({1: conn(1, "Reserved")}, {}, HealthState.OCCUPIED, "connector 1 Reserved"),
        ({1: conn(1, "Occupied")}, {}, HealthState.OCCUPIED, "connector 1 Occupied"),
        ({0: conn(0, "Available"), 1: conn(1, "Available")}, {}, HealthState.AVAILABLE,
         "connector 1 Available"),
    ],
)  # fmt: skip
def test_overall_state_and_reason(
    connectors: dict[int, ConnectorState],
    state_kw: dict[str, object],
    expected: HealthState,
    reason: str,
) -> None:
    h = health(charger(connectors=connectors, **state_kw), at(MIN))
    assert (h.state, h.reason) == (expected, reason)
    assert h.reasons[0] == reason


def test_probing_is_a_warning_below_faults() -> None:
    s = charger(connectors={1: conn(1, "Available")})
    h = health(s, at(11 * MIN))
    assert (h.state, h.reason) == (
        HealthState.WARNING,
        "no message for 11 min (heartbeat 300 s), probe due",
    )
    assert h.since == T0
    faulted = health(charger(connectors={1: FAULT}), at(11 * MIN))
    assert faulted.state is HealthState.FAULTED
    assert "probe due" in faulted.reasons[1]


def test_faulted_outranks_offline_and_says_it_is_last_known() -> None:
    s = charger(connectors={2: FAULT}, connected=False, disconnected_at=at(MIN))
    h = health(s, at(H))
    assert h.state is HealthState.FAULTED
    assert h.reasons == (
        "connector 2 Faulted: GroundFailure (vendor 0x1F) (last known)",
        "disconnected for 59 min",
    )


def test_severity_order_is_the_documented_one() -> None:
    assert [s.value for s in SEVERITY_ORDER] == [
        "faulted", "offline", "unavailable", "unknown", "warning", "charging", "occupied",
        "available",
    ]  # fmt: skip
    assert [s.severity for s in SEVERITY_ORDER] == list(range(8))


def test_fleet_summary_worst_first() -> None:
    now = at(H)
    states = [
        charger(charger_id="a-avail", connectors={1: conn(1, "Available")}, last_message_at=now),
        charger(charger_id="b-charging", connectors={1: conn(1, "Charging")}, last_message_at=now),
        charger(charger_id="c-fault-new", connectors={1: conn(1, "Faulted", at(50 * MIN))},
                last_message_at=now),
        charger(charger_id="d-fault-old", connectors={1: conn(1, "Faulted", at(10 * MIN))},
                last_message_at=now),
        charger(charger_id="e-offline", connected=False, disconnected_at=at(20 * MIN)),
        charger(charger_id="f-unavail", connectors={1: conn(1, "Unavailable")},
                last_message_at=now),
        charger(charger_id="g-warn", connectors={1: conn(1, "Available", error_code="WeakSignal")},
                last_message_at=now),
        charger(charger_id="h-occupied", connectors={1: conn(1, "Finishing")}, last_message_at=now),
    ]  # fmt: skip
    summary = fleet_summary(states, now)
    assert [h.charger_id for h in summary.chargers] == [
        "d-fault-old", "c-fault-new", "e-offline", "f-unavail", "g-warn", "b-charging",
        "h-occupied", "a-avail",
    ]  # fmt: skip
    assert list(summary.counts) == list(SEVERITY_ORDER)
    assert summary.counts[HealthState.FAULTED] == 2
    assert summary.counts[HealthState.UNKNOWN] == 0
    assert sum(summary.counts.values()) == len(states)
    assert summary.chargers[2].reason == "disconnected for 40 min"


# -- availability ----------------------------------------------------------------------------


def test_availability_intervals_crossing_the_window_edges() -> None:
    history = [
        (at(-2 * H), "Available"),  # starts before the window
        (at(H), "Faulted"),
        (at(2 * H), "Charging"),
        (at(3 * H), "Offline"),
        (at(4 * H), "SuspendedEV"),  # lasts past the window's end
    ]
    # window [0 h, 5 h): usable 0-1 (Available), 2-3 (Charging), 4-5 (SuspendedEV) = 3 of 5
    assert availability(history, T0, at(5 * H)) == pytest.approx(3 / 5)
    # window [30 min, 90 min): 30 min Available, 30 min Faulted
    assert availability(history, at(30 * MIN), at(90 * MIN)) == pytest.approx(0.5)
    # before the first point nothing is known: unusable
    assert availability(history, at(-3 * H), at(-2 * H)) == 0.0
    assert availability([], T0, at(H)) == 0.0
    # unsorted input and statuses in any case
    assert availability([(at(H), "faulted"), (T0, "available")], T0, at(2 * H)) == 0.5


@pytest.mark.parametrize(
    ("status", "usable"),
    [("Available", True), ("Preparing", True), ("Charging", True), ("SuspendedEV", True),
     ("SuspendedEVSE", True), ("Finishing", True), ("Occupied", True), ("Reserved", True),
     ("Faulted", False), ("Unavailable", False), ("Offline", False), ("Unknown", False),
     ("Bogus", False)],
)  # fmt: skip
def test_availability_counts_operative_statuses(status: str, usable: bool) -> None:
    assert availability([(T0, status)], T0, at(H)) == (1.0 if usable else 0.0)


def test_availability_refuses_an_empty_window() -> None:
    with pytest.raises(ValueError, match="empty window"):
        availability([(T0, "Available")], T0, T0)


def test_timeline_merges_charger_status_and_outages() -> None:
    own = [(T0, "Available"), (at(3 * H), "Charging")]
    whole = [(T0, "Available"), (at(H), "Faulted"), (at(2 * H), "Available")]
    outages = [Outage(at(4 * H), at(5 * H)), Outage(at(6 * H))]
    assert connector_timeline(own, whole, outages) == (
        (T0, "Available"),
        (at(H), "Faulted"),
        (at(2 * H), "Available"),
        (at(3 * H), "Charging"),
        (at(4 * H), "Offline"),
        (at(5 * H), "Charging"),
        (at(6 * H), "Offline"),
    )
    assert connector_timeline([], [], []) == ()
    assert connector_timeline([(at(H), "Available")], [(T0, "Available")]) == (
        (T0, "Unknown"),
        (at(H), "Available"),
    )


def test_book_availability_24h_and_7d() -> None:
    b = book()
    start = T0 - 8 * DAY
    online(b, start)
    status(b, start, 1, "Available")
    status(b, start, 2, "Available")
    # connector 2 faulted for the whole last day
    status(b, T0 - DAY, 2, "Faulted", "GroundFailure")
    # the charger was offline 6 h three days ago (socket down, back later)
    b.apply(ChargerDisconnected(device_id=CP, ts=T0 - 3 * DAY, reason="1006"))
    b.apply(ChargerConnected(device_id=CP, ts=T0 - 3 * DAY + 6 * H, protocol="ocpp1.6"))
    b.apply(ChargerHeartbeat(device_id=CP, ts=T0))
    a = b.availability(CP, T0)
    assert a.connectors[1] == (pytest.approx(1.0), pytest.approx(1 - 6 / 168))
    assert a.connectors[2] == (pytest.approx(0.0), pytest.approx(1 - 30 / 168))
    assert a.day == pytest.approx(0.5)  # the mean of the connectors: connector-hours
    assert a.week == pytest.approx(1 - 36 / 336)


def test_docs_availability_example() -> None:
    """docs/charger-health.md: 96 %, 71 %, charger 83 %."""
    b = book()
    online(b, T0 - 2 * DAY)
    status(b, T0 - 2 * DAY, 1, "Available")
    status(b, T0 - 2 * DAY, 2, "Available")
    status(b, at(2 * H), 2, "Faulted", "GroundFailure")
    status(b, at(8 * H), 2, "Available")
    b.apply(ChargerDisconnected(device_id=CP, ts=at(12 * H), reason="1006"))
    b.apply(ChargerConnected(device_id=CP, ts=at(13 * H), protocol="ocpp1.6"))
    a = b.availability(CP, at(DAY))
    assert round(a.connectors[1][0] * 100) == 96  # type: ignore[operator]
    assert round(a.connectors[2][0] * 100) == 71  # type: ignore[operator]
    assert round(a.day * 100) == 83  # type: ignore[operator]


def test_book_availability_measures_from_first_known() -> None:
    b = book(1)
    online(b)
    status(b, T0, 1, "Available")
    status(b, at(3 * H), 1, "Faulted")
    a = b.availability(CP, at(4 * H))
    assert a.connectors[1] == (pytest.approx(0.75), pytest.approx(0.75))
    assert book(1).availability(CP, T0) == type(a)(None, None, {1: (None, None)})


def test_connector_zero_fault_makes_every_connector_unusable() -> None:
    b = book()
    online(b)
    status(b, T0, 1, "Available")
    status(b, T0, 2, "Available")
    status(b, at(H), 0, "Faulted", "InternalError")
    status(b, at(2 * H), 0, "Available")
    a = b.availability(CP, at(4 * H))
    assert a.connectors == {1: (0.75, 0.75), 2: (0.75, 0.75)}


def test_history_pruned_but_long_runs_keep_their_since() -> None:
    b = book(1)
    online(b, T0 - 30 * DAY)
    status(b, T0 - 30 * DAY, 1, "Faulted", "GroundFailure")
    for day in range(29, 0, -1):
        status(b, T0 - day * DAY, 1, "Faulted", "GroundFailure")
    status(b, T0, 1, "Faulted", "GroundFailure")
    hist = b.history(CP, 1)
    assert hist[0].ts == T0 - 30 * DAY  # the run's first report survives
    assert len(hist) <= 10
    assert b.state(CP).connectors[1].since == T0 - 30 * DAY


def test_fault_history() -> None:
    b = book()
    online(b)
    status(b, at(MIN), 1, "Available")
    status(b, at(2 * MIN), 1, "Faulted", "GroundFailure", "0x1F")
    status(b, at(3 * MIN), 1, "Faulted", "GroundFailure", "0x1F")  # same episode
    status(b, at(4 * MIN), 1, "Available")
    status(b, at(5 * MIN), 2, "Charging", "HighTemperature")
    faults = b.faults(CP)
    assert [(f.connector_id, f.start, f.end, f.error_code) for f in faults] == [
        (2, at(5 * MIN), None, "HighTemperature"),
        (1, at(2 * MIN), at(4 * MIN), "GroundFailure"),
    ]
    assert fault_history(1, []) == ()


# -- energy today -----------------------------------------------------------------------------


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=CST)


def meter(b: ChargerBook, ts: datetime, wh: float, connector: int = 1) -> None:
    b.apply(MeterSample(device_id=CP, ts=ts, connector_id=connector, energy_wh=wh, power_w=7000))


def test_energy_today_across_local_midnight() -> None:
    b = book()
    online(b, local(2026, 11, 28, 22))
    meter(b, local(2026, 11, 28, 23, 0), 10_000)
    meter(b, local(2026, 11, 28, 23, 50), 15_000)
    assert b.energy_today_wh(CP, local(2026, 11, 28, 23, 55)) == 5_000
    # 23:50 -> 00:10 local: 4 kWh, split evenly at midnight (16:00 UTC)
    meter(b, local(2026, 11, 29, 0, 10), 19_000)
    c = b.state(CP).connectors[1]
    assert (c.energy_day.isoformat(), c.energy_today_wh) == ("2026-11-29", 2_000)  # type: ignore[union-attr]
    meter(b, local(2026, 11, 29, 1, 0), 20_000)
    assert b.energy_today_wh(CP, local(2026, 11, 29, 9)) == 3_000
    assert c.last_power_w == 7000
    # the next day, with no reading yet, is zero
    assert b.energy_today_wh(CP, local(2026, 11, 30, 0, 1)) == 0
    assert energy_today_wh(b.state(CP).connectors[1], local(2026, 11, 30, 0, 1), CST) == 0


def test_energy_never_double_counts() -> None:
    b = book()
    online(b, local(2026, 11, 29, 7))
    meter(b, local(2026, 11, 29, 8), 1_000)
    meter(b, local(2026, 11, 29, 9), 3_000)
    meter(b, local(2026, 11, 29, 9), 3_000)  # duplicate
    meter(b, local(2026, 11, 29, 8, 30), 2_000)  # late: already counted
    assert b.energy_today_wh(CP, local(2026, 11, 29, 10)) == 2_000
    meter(b, local(2026, 11, 29, 10), 50)  # the meter was reset: no negative energy
    meter(b, local(2026, 11, 29, 11), 1_050)
    b.apply(
        ChargingEnded(
            device_id=CP, ts=local(2026, 11, 29, 12), connector_id=1, transaction_id="9",
            meter_stop_wh=1_550,
        )
    )  # fmt: skip
    meter(b, local(2026, 11, 29, 12), 1_700, connector=2)  # first reading: a baseline only
    assert b.energy_today_wh(CP, local(2026, 11, 29, 13)) == 3_500
    c = b.state(CP).connectors[1]
    assert (c.last_meter_wh, c.last_meter_at) == (1_550, local(2026, 11, 29, 12))


# -- OCPI --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ocpp", "ocpi"),
    [("Available", EvseStatus.AVAILABLE), ("Preparing", EvseStatus.CHARGING),
     ("Charging", EvseStatus.CHARGING), ("SuspendedEV", EvseStatus.CHARGING),
     ("SuspendedEVSE", EvseStatus.CHARGING), ("Finishing", EvseStatus.CHARGING),
     ("Occupied", EvseStatus.CHARGING), ("Reserved", EvseStatus.RESERVED),
     ("Unavailable", EvseStatus.INOPERATIVE), ("Faulted", EvseStatus.OUTOFORDER),
     ("Bogus", EvseStatus.UNKNOWN), (None, EvseStatus.UNKNOWN)],
)  # fmt: skip
def test_ocpi_mapping(ocpp: str | None, ocpi: EvseStatus) -> None:
    assert ocpi_status(ocpp) is ocpi


def test_ocpi_offline_and_whole_charger() -> None:
    assert ocpi_status("Available", offline=True) is EvseStatus.UNKNOWN
    assert ocpi_status("Faulted", offline=True) is EvseStatus.UNKNOWN
    assert ocpi_status("Available", charger_status="Faulted") is EvseStatus.OUTOFORDER
    assert ocpi_status("Charging", charger_status="Unavailable") is EvseStatus.INOPERATIVE
    assert ocpi_status("Charging", charger_status="Available") is EvseStatus.CHARGING
    s = charger(connectors={0: conn(0, "Faulted"), 1: conn(1, "Available"), 2: conn(2, None)})
    assert evse_statuses(s, T0) == {1: EvseStatus.OUTOFORDER, 2: EvseStatus.OUTOFORDER}
    down = charger(connected=False, disconnected_at=T0)
    assert evse_statuses(down, at(2 * MIN)) == {1: EvseStatus.UNKNOWN}
    # probing is not offline: the public still sees the last status
    assert evse_statuses(charger(), at(11 * MIN)) == {1: EvseStatus.AVAILABLE}


def test_site_availability_counts_evses() -> None:
    states = [
        charger(charger_id="a", connectors={1: conn(1, "Available"), 2: conn(2, "Charging")}),
        charger(charger_id="b", connectors={1: conn(1, "Faulted"), 2: conn(2, "Available")}),
        charger(charger_id="c", site_id="sd-hotel", connected=False, disconnected_at=T0),
    ]
    sites = site_availability(states, at(5 * MIN))
    assert list(sites) == ["sd-hotel", "sd-shimin"]
    shimin = sites["sd-shimin"]
    assert (shimin.total, shimin.available) == (4, 2)
    assert shimin.counts[EvseStatus.CHARGING] == 1
    assert shimin.counts[EvseStatus.OUTOFORDER] == 1
    assert sites["sd-hotel"].counts[EvseStatus.UNKNOWN] == 1
    assert sum(sites["sd-hotel"].counts.values()) == 1


# -- maintenance -------------------------------------------------------------------------------


def test_maintenance_faulted_threshold_is_strict() -> None:
    s = charger(connectors={1: conn(1, "Available"), 2: FAULT}, last_message_at=at(2 * H))
    assert maintenance_due(s, at(H), H, H) is None
    f = maintenance_due(s, at(H + S), H, H)
    assert f is not None
    assert (f.kind, f.connector_id, f.since, f.observed_at) == ("faulted", 2, T0, at(H))
    case = f.to_case(category="0399", dedup_window=12 * H)
    assert case.category == "0399"
    assert case.rule_id == "charger-faulted"
    assert case.title == "充电桩故障 GroundFailure"
    assert case.dedup_key == f"charger|{CP}|faulted"
    assert case.dedup_window_s == 12 * 3600
    assert (case.device_id, case.site_id, case.ts) == (CP, "sd-shimin", at(H))
    assert case.details["error_code"] == "GroundFailure"
    assert case.details["vendor_error_code"] == "0x1F"
    assert case.details["minutes"] == 60
    assert case.details["reason"] == "connector 2 Faulted: GroundFailure (vendor 0x1F)"
    # the same episode seen on a later sweep is the same report
    later = maintenance_due(s, at(5 * H), H, H)
    assert later is not None
    assert later.to_case().ts == case.ts
    assert later.to_case().dedup_window_s == 86400


def test_maintenance_offline_threshold() -> None:
    s = charger(connected=False, disconnected_at=at(MIN))
    assert maintenance_due(s, at(MIN + H), timedelta(hours=1), H) is None
    f = maintenance_due(s, at(MIN + H + S), H, H)
    assert f is not None
    assert (f.kind, f.since, f.title) == ("offline", at(MIN), "充电桩离线")
    case = f.to_case()
    assert (case.rule_id, case.dedup_key, case.category) == (
        "charger-offline",
        f"charger|{CP}|offline",
        "charger",
    )
    assert case.details["reason"] == "disconnected for 60 min"
    # probe unanswered: measured from the last sign of life
    p = charger(probe_state="failed", probe_at=at(11 * MIN))
    found = maintenance_due(p, at(H + S), DAY, H)
    assert found is not None
    assert found.since == T0


@pytest.mark.parametrize(
    ("code", "vendor", "title"),
    [("GroundFailure", "0x1F", "充电桩故障 GroundFailure"), ("OtherError", "E42", "充电桩故障 E42"),
     (None, "E42", "充电桩故障 E42"), (None, None, "充电桩故障")],
)  # fmt: skip
def test_maintenance_titles(code: str | None, vendor: str | None, title: str) -> None:
    s = charger(connectors={1: conn(1, "Faulted", error_code=code, vendor_error_code=vendor)})
    f = maintenance_due(s, at(2 * H), H, H)
    assert f is not None
    assert f.title == title


def test_maintenance_priorities_and_silence() -> None:
    # faulted and offline: the fault is reported (the longest-faulted connector)
    s = charger(
        connectors={1: conn(1, "Faulted", at(30 * MIN)), 2: conn(2, "Faulted", at(10 * MIN))},
        connected=False,
        disconnected_at=T0,
    )
    f = maintenance_due(s, at(2 * H), H, H)
    assert f is not None
    assert (f.kind, f.connector_id, f.connectors) == ("faulted", 2, (1, 2))
    # a fresh fault on an old outage: the outage is reported
    s2 = charger(connectors={1: conn(1, "Faulted", at(90 * MIN))}, connected=False,
                 disconnected_at=T0)  # fmt: skip
    f2 = maintenance_due(s2, at(2 * H), H, H)
    assert f2 is not None
    assert f2.kind == "offline"
    # never connected: nothing to report; probing (not yet offline): nothing
    never = charger(connected=False, connected_at=None, last_message_at=None)
    assert maintenance_due(never, at(30 * DAY), H, H) is None
    assert outage_start(never, at(30 * DAY)) is None
    assert maintenance_due(charger(), at(3 * H), H, H) is None


def test_book_maintenance_sweeps_every_charger() -> None:
    b = ChargerBook(CST)
    for cid in ("x", "y"):
        b.register(cid, "s", connector_ids=(1,))
        b.apply(ChargerConnected(device_id=cid, ts=T0, protocol="ocpp1.6"))
    b.apply(ConnectorStatusChanged(device_id="y", ts=T0, connector_id=1, status="Faulted"))
    b.apply(ChargerHeartbeat(device_id="x", ts=at(2 * H)))
    b.apply(ChargerHeartbeat(device_id="y", ts=at(2 * H)))
    found = b.maintenance(at(2 * H), H, H)
    assert [(f.charger_id, f.kind) for f in found] == [("y", "faulted")]


def test_book_rejects_bad_settings() -> None:
    with pytest.raises(ValueError, match="keep"):
        ChargerBook(CST, keep=DAY)
    with pytest.raises(ValueError, match="heartbeat_s"):
        ChargerBook(CST).register(CP, "s", heartbeat_s=0)
    assert WEEK == 7 * DAY
