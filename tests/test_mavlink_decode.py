"""The pure decoding of dronelink.mavlink: pymavlink frames both ways, the mode tables and the
bounds of each report field."""

from __future__ import annotations

import pytest

from dronelink.mavlink import decode, wire
from dronelink.mavlink.modes import mode_name
from dronelink.mavlink.wire import (
    CommandAck,
    CommandLong,
    Encoder,
    GlobalPosition,
    GpsRaw,
    Heartbeat,
    StatusText,
    SysStatus,
    parse_datagram,
)

ARDU, PX4, GENERIC_AP = 3, 12, 0
QUAD, PLANE, ROVER, GCS = 2, 1, 10, 6
CUSTOM, ARMED = 1, 128


# -- wire ------------------------------------------------------------------------------------------
def test_frames_survive_the_wire() -> None:
    enc = Encoder(7, 1)
    data = b"".join(
        [
            enc.heartbeat(type=QUAD, autopilot=ARDU, base_mode=129, custom_mode=6, system_status=4),
            enc.sys_status(battery_remaining=57, voltage_mv=15800),
            enc.global_position_int(
                time_boot_ms=5,
                lat=387_812_345,
                lon=1_010_812_345,
                alt=1_560_000,
                relative_alt=60_000,
                vx=300,
                vy=-400,
                vz=10,
                hdg=27_000,
            ),
            enc.gps_raw_int(
                fix_type=3, lat=1, lon=2, alt=3, vel=4, cog=5, satellites=12, time_usec=9
            ),
            enc.statustext(severity=5, text="Mode RTL"),
            enc.command_ack(command=20, result=0, target_system=255, target_component=190),
            enc.command_long(
                target_system=7, target_component=1, command=511, confirmation=2, params=(33, 1e6)
            ),
        ]
    )
    parsed = parse_datagram(data)
    assert parsed.bad == []
    assert parsed.frames == [
        Heartbeat(7, 1, QUAD, ARDU, 129, 6, 4),
        SysStatus(7, 1, 57, 15800),
        GlobalPosition(7, 1, 387_812_345, 1_010_812_345, 1_560_000, 60_000, 300, -400, 10, 27_000),
        GpsRaw(7, 1, 3, 1, 2, 3, 4, 5, 12),
        StatusText(7, 1, 5, "Mode RTL"),
        CommandAck(7, 1, 20, 0, 0, 255, 190),
        CommandLong(7, 1, 7, 1, 511, 2, (33.0, 1e6, 0.0, 0.0, 0.0, 0.0, 0.0)),
    ]


def test_mavlink_1_frames_are_read_too() -> None:
    enc = Encoder(2, 1)
    msg = enc._mav.heartbeat_encode(QUAD, ARDU, 129, 4, 4)
    data = bytes(msg.pack(enc._mav, force_mavlink1=True))
    assert data[0] == 0xFE
    assert parse_datagram(data).frames == [Heartbeat(2, 1, QUAD, ARDU, 129, 4, 4)]


def test_sequence_numbers_advance() -> None:
    enc = Encoder(1, 1)
    a = enc.statustext(severity=6, text="x")
    b = enc.statustext(severity=6, text="x")
    assert a[4] + 1 == b[4]  # MAVLink 2: seq is byte 4


def _beat() -> bytes:
    return Encoder(1, 1).heartbeat(
        type=QUAD, autopilot=ARDU, base_mode=129, custom_mode=3, system_status=4
    )


@pytest.mark.parametrize(
    ("data", "reasons", "frames"),
    [
        (b"", [], 0),
        (b"hello world", ["bad_prefix"], 0),
        (_beat()[:-1], ["truncated"], 0),  # a cut frame
        (_beat()[:-2] + b"\x00\x00", ["bad_crc"], 0),
        (b"junk" + _beat(), ["bad_prefix"], 1),  # garbage before a good frame
        (_beat() + _beat()[:5], ["truncated"], 1),
    ],
)
def test_damage_is_counted_and_good_frames_kept(
    data: bytes, reasons: list[str], frames: int
) -> None:
    parsed = parse_datagram(data)
    assert parsed.bad == reasons
    assert len(parsed.frames) == frames


def test_unused_messages_are_skipped_not_counted() -> None:
    enc = Encoder(1, 1)
    data = enc._pack(enc._mav.attitude_encode(0, 0.1, 0.2, 0.3, 0, 0, 0))
    parsed = parse_datagram(data)
    assert (parsed.frames, parsed.bad, parsed.skipped) == ([], [], 1)


def test_message_ids_by_name() -> None:
    assert wire.message_id("GLOBAL_POSITION_INT") == 33
    assert wire.message_id("sys_status") == 1
    assert wire.message_id("NO_SUCH_THING") is None


# -- modes -----------------------------------------------------------------------------------------
def _px4(main: int, sub: int = 0) -> int:
    return (main << 16) | (sub << 24)


@pytest.mark.parametrize(
    ("autopilot", "vtype", "base", "custom", "expected"),
    [
        (ARDU, QUAD, CUSTOM | ARMED, 3, "AUTO"),
        (ARDU, QUAD, CUSTOM, 4, "GUIDED"),
        (ARDU, QUAD, CUSTOM, 6, "RTL"),
        (ARDU, QUAD, CUSTOM, 9, "LAND"),
        (ARDU, 13, CUSTOM, 21, "SMART_RTL"),  # hexarotor
        (ARDU, 4, CUSTOM, 16, "POSHOLD"),  # helicopter
        (ARDU, QUAD, CUSTOM, 99, "CUSTOM_99"),
        (ARDU, PLANE, CUSTOM, 11, "RTL"),
        (ARDU, PLANE, CUSTOM, 10, "AUTO"),
        (ARDU, 20, CUSTOM, 21, "QRTL"),  # VTOL quadrotor flies plane firmware
        (ARDU, ROVER, CUSTOM, 4, "HOLD"),
        (ARDU, 11, CUSTOM, 11, "RTL"),  # boat
        (ARDU, 0, CUSTOM, 3, "CUSTOM_3"),  # generic type: no table to trust
        (PX4, QUAD, CUSTOM, _px4(4, 5), "RTL"),
        (PX4, QUAD, CUSTOM, _px4(4, 4), "MISSION"),
        (PX4, QUAD, CUSTOM, _px4(4, 6), "LAND"),
        (PX4, QUAD, CUSTOM, _px4(4, 0), "AUTO"),
        (PX4, QUAD, CUSTOM, _px4(3), "POSCTL"),
        (PX4, QUAD, CUSTOM, _px4(6), "OFFBOARD"),
        (PX4, QUAD, CUSTOM, _px4(42), f"CUSTOM_{_px4(42)}"),
        (GENERIC_AP, QUAD, 4 | 8, 0, "AUTO"),  # flags: AUTO before GUIDED
        (GENERIC_AP, QUAD, 8 | 16, 0, "GUIDED"),
        (GENERIC_AP, QUAD, 16 | 64, 0, "STABILIZE"),
        (GENERIC_AP, QUAD, 64, 0, "MANUAL"),
        (GENERIC_AP, QUAD, 0, 0, None),
        (ARDU, QUAD, 0, 6, None),  # custom mode not enabled: the number means nothing
        (PX4, QUAD, ARMED | 4, _px4(3), "AUTO"),
    ],
)
def test_mode_names(
    autopilot: int, vtype: int, base: int, custom: int, expected: str | None
) -> None:
    assert mode_name(autopilot, vtype, base, custom) == expected


# -- report fields ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("base", "status", "armed", "flying"),
    [(129, 4, True, True), (1, 3, False, False), (129, 5, True, True), (1, 99, False, None)],
)
def test_heartbeat_fields(base: int, status: int, armed: bool, flying: bool | None) -> None:
    fields = decode.heartbeat_fields(Heartbeat(1, 1, QUAD, ARDU, base, 3, status))
    assert (fields.mode, fields.armed, fields.flying) == ("AUTO", armed, flying)


@pytest.mark.parametrize(
    ("autopilot", "vtype", "vehicle"), [(ARDU, QUAD, True), (8, 26, False), (ARDU, GCS, False)]
)
def test_what_counts_as_a_vehicle(autopilot: int, vtype: int, vehicle: bool) -> None:
    assert decode.is_vehicle(Heartbeat(1, 1, vtype, autopilot, 0, 0, 4)) is vehicle


@pytest.mark.parametrize(
    ("remaining", "expected"),
    [(57, 57.0), (0, 0.0), (100, 100.0), (-1, None), (101, "bad_battery"), (-5, "bad_battery")],
)
def test_battery(remaining: int, expected: float | str | None) -> None:
    got = decode.battery_percent(SysStatus(1, 1, remaining, 0))
    assert (got.reason if isinstance(got, decode.Reject) else got) == expected


def _gp(lat: int, lon: int, **kw: int) -> GlobalPosition:
    values = {"alt": 1_560_000, "relative_alt": 60_000, "vx": 300, "vy": 400, "vz": 0, "hdg": 9_000}
    values.update(kw)
    return GlobalPosition(1, 1, lat, lon, **values)


def test_global_position_units() -> None:
    fix = decode.position_fix(_gp(387_812_345, 1_010_812_345), None)
    assert not isinstance(fix, decode.Reject)
    assert fix.lat == pytest.approx(38.7812345)
    assert fix.lon == pytest.approx(101.0812345)
    assert fix.height_m == pytest.approx(1560.0)
    assert fix.elevation_m == pytest.approx(60.0)
    assert fix.speed_mps == pytest.approx(5.0)  # hypot(3, 4) m/s
    assert fix.heading_deg == pytest.approx(90.0)


@pytest.mark.parametrize(
    ("lat", "lon", "fix_type", "reason"),
    [
        (900_000_001, 0, 3, "bad_coordinates"),
        (-900_000_001, 10, 3, "bad_coordinates"),
        (10, 1_800_000_001, 3, "bad_coordinates"),
        (10, -1_800_000_001, 3, "bad_coordinates"),
        (0, 0, None, "no_position"),
        (0, 0, 1, "no_position"),
        (0, 0, 3, None),  # with a fix, 0/0 is a (strange) place
        (900_000_000, -1_800_000_000, None, None),  # the edges of the globe are on it
    ],
)
def test_position_bounds(lat: int, lon: int, fix_type: int | None, reason: str | None) -> None:
    got = decode.position_fix(_gp(lat, lon), fix_type)
    assert (got.reason if isinstance(got, decode.Reject) else None) == reason


@pytest.mark.parametrize(("hdg", "heading"), [(0, 0.0), (35_999, 359.99), (36_000, 0.0)])
def test_heading(hdg: int, heading: float) -> None:
    fix = decode.position_fix(_gp(1, 1, hdg=hdg), 3)
    assert not isinstance(fix, decode.Reject)
    assert fix.heading_deg == pytest.approx(heading)


@pytest.mark.parametrize("hdg", [65_535, 40_000])
def test_unknown_heading_is_none(hdg: int) -> None:
    fix = decode.position_fix(_gp(1, 1, hdg=hdg), 3)
    assert not isinstance(fix, decode.Reject)
    assert fix.heading_deg is None


def test_absurd_altitude_is_dropped_not_the_fix() -> None:
    fix = decode.position_fix(_gp(1, 1, alt=2_000_000_000), 3)
    assert not isinstance(fix, decode.Reject)
    assert fix.height_m is None and fix.elevation_m == pytest.approx(60.0)


def test_gps_raw() -> None:
    good = GpsRaw(1, 1, 3, 387_800_000, 1_010_800_000, 1_500_000, 250, 18_000, 14)
    fix = decode.gps_fix(good)
    assert not isinstance(fix, decode.Reject) and fix is not None
    assert (fix.lat, fix.lon, fix.height_m) == (38.78, 101.08, 1500.0)
    assert (fix.speed_mps, fix.heading_deg, fix.elevation_m) == (2.5, 180.0, None)
    assert decode.satellites(good) == 14
    assert decode.gps_fix(GpsRaw(1, 1, 1, 0, 0, 0, 0, 0, 3)) is None  # no fix: nothing to say
    unknown = GpsRaw(1, 1, 3, 10, 10, 0, 65_535, 65_535, 255)
    fix = decode.gps_fix(unknown)
    assert not isinstance(fix, decode.Reject) and fix is not None
    assert (fix.speed_mps, fix.heading_deg, decode.satellites(unknown)) == (None, None, None)
    bad = decode.gps_fix(GpsRaw(1, 1, 3, 10, 1_900_000_000, 0, 0, 0, 9))
    assert isinstance(bad, decode.Reject) and bad.reason == "bad_coordinates"


@pytest.mark.parametrize(
    ("text", "expected"),
    [("Mode RTL", "Mode RTL"), ("  padded \t", "padded"), ("\x01\x02", None), ("", None)],
)
def test_status_text(text: str, expected: str | None) -> None:
    assert decode.status_text(StatusText(1, 1, 6, text)) == expected
