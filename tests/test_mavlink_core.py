"""The retry policy of a command and the sans-I/O vehicle core of dronelink.mavlink: link up
and lost, stream-rate requests, reports, counted rejections, commands (no sockets, no clock)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from drivers.sip.flood import TokenBuckets
from dronelink.mavlink.commands import Attempt, Resend, status_of
from dronelink.mavlink.core import MAX_DATAGRAM, MavlinkCore
from dronelink.mavlink.wire import CommandLong, Encoder, Heartbeat, parse_datagram
from dronelink.model import CommandStatus, LinkState

AT = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
ADDR = ("127.0.0.1", 40000)
ARDU, QUAD, GCS = 3, 2, 6


# -- the retry policy ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("result", "status"),
    [
        (0, CommandStatus.OK),
        (1, CommandStatus.REJECTED),
        (2, CommandStatus.REJECTED),
        (3, CommandStatus.REJECTED),
        (4, CommandStatus.FAILED),
        (5, CommandStatus.IN_PROGRESS),
        (6, CommandStatus.CANCELED),
        (7, CommandStatus.REJECTED),
        (200, CommandStatus.FAILED),
    ],
)
def test_results(result: int, status: CommandStatus) -> None:
    assert status_of(result) is status


def test_resends_with_the_next_confirmation_then_times_out() -> None:
    a = Attempt(ack_timeout_s=1.0, retries=2, now=10.0)
    assert a.poll(10.5) is None
    assert a.poll(11.0) == Resend(1)
    assert a.poll(11.9) is None
    assert a.poll(12.0) == Resend(2)
    out = a.poll(13.0)
    assert not isinstance(out, Resend) and out is not None
    assert (out.status, out.attempts) == (CommandStatus.TIMEOUT, 3)
    assert a.poll(99.0) is out  # final stays final
    assert a.on_ack(0, 99.0) is out  # a late ACCEPTED changes nothing


def test_an_answer_after_a_resend_counts_the_attempts() -> None:
    a = Attempt(ack_timeout_s=1.0, retries=3, now=0.0)
    assert a.poll(1.0) == Resend(1)
    out = a.on_ack(0, 1.2)
    assert out is not None and (out.status, out.attempts, out.result_code) == (
        CommandStatus.OK,
        2,
        0,
    )


def test_in_progress_waits_without_resending() -> None:
    a = Attempt(ack_timeout_s=1.0, retries=3, now=0.0)
    assert a.on_ack(5, 0.8) is None
    assert a.poll(1.5) is None  # deadline moved to 1.8; no resend while in progress
    out = a.on_ack(0, 1.6)
    assert out is not None and out.status is CommandStatus.OK


def test_in_progress_then_silence_times_out() -> None:
    a = Attempt(ack_timeout_s=1.0, retries=3, now=0.0)
    a.on_ack(5, 0.5)
    out = a.poll(1.5)
    assert out is not None and not isinstance(out, Resend)
    assert out.status is CommandStatus.TIMEOUT and out.attempts == 1


def test_zero_retries_times_out_at_the_first_deadline() -> None:
    a = Attempt(ack_timeout_s=0.5, retries=0, now=0.0)
    out = a.poll(0.5)
    assert out is not None and not isinstance(out, Resend) and out.status is CommandStatus.TIMEOUT


@pytest.mark.parametrize(("timeout", "retries"), [(0.0, 1), (1.0, -1), (1.0, 256)])
def test_bad_policy_fails_fast(timeout: float, retries: int) -> None:
    with pytest.raises(ValueError, match="retries"):
        Attempt(ack_timeout_s=timeout, retries=retries, now=0.0)


# -- the vehicle core ------------------------------------------------------------------------------
def _core(allowed: set[int] | None = None) -> MavlinkCore:
    return MavlinkCore(
        Encoder(255, 190),
        link_timeout_s=3.0,
        stream_intervals={33: 0.5, 1: 2.0},
        allowed_system_ids=allowed,
    )


def _hb(enc: Encoder, custom_mode: int = 3, autopilot: int = ARDU, vtype: int = QUAD) -> bytes:
    return enc.heartbeat(
        type=vtype, autopilot=autopilot, base_mode=129, custom_mode=custom_mode, system_status=4
    )


def test_first_heartbeat_brings_the_link_up_and_asks_for_streams() -> None:
    core, enc = _core(), Encoder(3, 1)
    step = core.receive(_hb(enc), ADDR, 0.0, AT)
    assert [(r.key, r.link, r.mode, r.armed, r.flying) for r in step.reports] == [
        ("3", LinkState.ONLINE, "AUTO", True, True)
    ]
    asked = [parse_datagram(d).frames[0] for d, _ in step.sends]
    assert {(c.command, c.params[0], c.params[1]) for c in asked if isinstance(c, CommandLong)} == {
        (511, 33.0, 500_000.0),
        (511, 1.0, 2_000_000.0),
    }
    assert all(a == ADDR for _, a in step.sends)
    assert core.receive(_hb(enc), ADDR, 1.0, AT).sends == []  # only on the way up


def test_silence_loses_the_link_once_and_a_heartbeat_recovers_it() -> None:
    core, enc = _core(), Encoder(3, 1)
    core.receive(_hb(enc), ADDR, 0.0, AT)
    assert core.check(2.9, AT).reports == []
    lost = core.check(3.0, AT).reports
    assert [(r.key, r.link) for r in lost] == [("3", LinkState.LOST)]
    assert core.check(10.0, AT).reports == []  # once
    battery = core.receive(enc.sys_status(battery_remaining=40), ADDR, 10.5, AT)
    assert battery.reports == []  # no report contradicts the loss before a heartbeat
    vehicle = core.vehicle(3)
    assert vehicle is not None and vehicle.battery_percent == 40.0
    back = core.receive(_hb(enc, 6), ("127.0.0.1", 40001), 11.0, AT)
    assert [(r.link, r.mode) for r in back.reports] == [(LinkState.ONLINE, "RTL")]
    assert len(back.sends) == 2  # the stream rates are asked for again
    vehicle = core.vehicle(3)
    assert vehicle is not None and vehicle.address == ("127.0.0.1", 40001)


def test_reports_of_position_battery_and_text() -> None:
    core, enc = _core(), Encoder(4, 1)
    core.receive(_hb(enc), ADDR, 0.0, AT)
    data = b"".join(
        [
            enc.sys_status(battery_remaining=80),
            enc.global_position_int(
                time_boot_ms=0,
                lat=387_800_000,
                lon=1_010_800_000,
                alt=0,
                relative_alt=30_000,
                vx=0,
                vy=0,
                vz=0,
                hdg=0,
            ),
            enc.statustext(severity=5, text="Mode RTL"),
        ]
    )
    reports = core.receive(data, ADDR, 0.1, AT).reports
    assert reports[0].battery_percent == 80.0
    assert reports[1].fix is not None and reports[1].fix.lat == 38.78
    assert reports[2].text == "Mode RTL"
    assert {r.source for r in reports} == {"mavlink"}


def test_gps_raw_position_only_without_global_position() -> None:
    core, enc = _core(), Encoder(5, 1)
    gps = enc.gps_raw_int(
        fix_type=3, lat=387_000_000, lon=1_010_000_000, alt=0, vel=0, cog=0, satellites=9
    )
    assert core.receive(gps, ADDR, 0.0, AT).reports == []  # no heartbeat yet: the view only
    before = core.vehicle(5)
    assert before is not None and before.link is LinkState.UNKNOWN
    assert before.fix is not None and before.fix.lat == 38.7
    core.receive(_hb(enc), ADDR, 0.0, AT)
    first = core.receive(gps, ADDR, 0.0, AT).reports
    assert first[0].fix is not None and first[0].fix.lat == 38.7
    gp = enc.global_position_int(
        time_boot_ms=0, lat=387_100_000, lon=1_010_000_000, alt=0, relative_alt=0, vx=0, vy=0,
        vz=0, hdg=0,
    )  # fmt: skip
    core.receive(gp, ADDR, 0.1, AT)
    assert core.receive(gps, ADDR, 0.2, AT).reports == []
    vehicle = core.vehicle(5)
    assert vehicle is not None and (vehicle.gps_fix_type, vehicle.satellites) == (3, 9)


def test_rejections_are_counted_by_reason() -> None:
    core, enc = _core(allowed={1}), Encoder(1, 1)
    stranger = Encoder(9, 1)
    zero = enc.global_position_int(
        time_boot_ms=0, lat=0, lon=0, alt=0, relative_alt=0, vx=0, vy=0, vz=0, hdg=0
    )
    steps = [
        core.receive(_hb(stranger), ADDR, 0.0, AT),
        core.receive(zero, ADDR, 0.0, AT),
        core.receive(enc.sys_status(battery_remaining=120), ADDR, 0.0, AT),
        core.receive(b"\x00" * (MAX_DATAGRAM + 1), ADDR, 0.0, AT),
        core.receive(b"rubbish", ADDR, 0.0, AT),
        core.receive(Encoder(0, 1).statustext(severity=1, text="x"), ADDR, 0.0, AT),
    ]
    assert dict(core.counts) == {
        "unexpected_system": 1,
        "no_position": 1,
        "bad_battery": 1,
        "oversize": 1,
        "bad_prefix": 1,
        "bad_system_id": 1,
    }
    assert all(s.reports == [] for s in steps)
    assert 9 not in core.vehicles


def test_ground_stations_and_gimbals_are_not_vehicles() -> None:
    core = _core()
    gcs = _hb(Encoder(200, 190), autopilot=8, vtype=GCS)
    gimbal = _hb(Encoder(1, 154), autopilot=8, vtype=26)
    assert core.receive(gcs + gimbal, ADDR, 0.0, AT).reports == []
    assert core.vehicles == {} and not core.counts


def test_acks_for_another_ground_station_are_not_ours() -> None:
    core, enc = _core(), Encoder(1, 1)
    ours = enc.command_ack(command=20, result=0, target_system=255, target_component=190)
    broadcast = enc.command_ack(command=20, result=0, target_system=0, target_component=0)
    theirs = enc.command_ack(command=20, result=0, target_system=254, target_component=190)
    assert len(core.receive(ours + broadcast + theirs, ADDR, 0.0, AT).acks) == 2


def test_gcs_heartbeat_and_commands_go_to_the_last_address() -> None:
    core, enc = _core(), Encoder(6, 1)
    assert core.gcs_heartbeats() == []
    assert core.command(6, 20, 0) is None
    core.receive(_hb(enc), ADDR, 0.0, AT)
    [(beat, addr)] = core.gcs_heartbeats()
    frame = parse_datagram(beat).frames[0]
    assert isinstance(frame, Heartbeat) and (frame.sysid, frame.type, addr) == (255, GCS, ADDR)
    out = core.command(6, 20, 2)
    assert out is not None
    cmd = parse_datagram(out[0]).frames[0]
    assert isinstance(cmd, CommandLong)
    assert (cmd.target_system, cmd.target_component, cmd.command, cmd.confirmation) == (6, 1, 20, 2)


def test_a_flooding_address_is_refused_before_parsing_and_refills() -> None:
    core = MavlinkCore(
        Encoder(255, 190),
        link_timeout_s=3.0,
        stream_intervals={},
        flood=TokenBuckets(10.0, 2),
    )
    other = ("127.0.0.2", 1)
    reasons = [core.receive(b"x", ADDR, 0.0, AT).rejects for _ in range(4)]
    assert reasons == [["bad_prefix"], ["bad_prefix"], ["rate_limited"], ["rate_limited"]]
    assert core.receive(b"x", other, 0.0, AT).rejects == ["bad_prefix"]  # costs nobody else
    assert core.receive(b"x", ADDR, 0.1, AT).rejects == ["bad_prefix"]  # a token back


def test_only_the_heartbeat_moves_the_command_address() -> None:
    core, enc = _core(), Encoder(8, 1)
    core.receive(_hb(enc), ADDR, 0.0, AT)
    elsewhere = ("10.0.0.9", 5000)
    core.receive(enc.statustext(severity=6, text="spoof?"), elsewhere, 0.1, AT)
    vehicle = core.vehicle(8)
    assert vehicle is not None and vehicle.address == ADDR
    core.receive(_hb(enc), elsewhere, 0.2, AT)
    vehicle = core.vehicle(8)
    assert vehicle is not None and vehicle.address == elsewhere


def test_a_long_statustext_in_chunks_is_reported_as_one_line() -> None:
    core, enc = _core(), Encoder(3, 1)
    core.receive(_hb(enc), ADDR, 0.0, AT)
    line = "PreArm: Battery 1 below minimum arming voltage, check the pack and wiring"
    first = core.receive(enc.statustext(severity=3, text=line[:50], text_id=11), ADDR, 0.1, AT)
    assert [r.text for r in first.reports] == []
    last = enc.statustext(severity=3, text=line[50:], text_id=11, chunk_seq=1)
    assert [r.text for r in core.receive(last, ADDR, 0.2, AT).reports] == [line]
    cut = core.receive(enc.statustext(severity=3, text="y" * 50, text_id=12), ADDR, 0.3, AT)
    assert cut.reports == []
    core.receive(_hb(enc), ADDR, 2.5, AT)  # the link stays up
    late = core.check(2.4, AT)  # past the joiner's 2 s since the cut chunk at 0.3
    assert [r.text for r in late.reports] == ["y" * 50 + "…"]
