"""Hostile input on the MAVLink datagram path: random bytes, damaged real frames and real frames
with any field values never raise; every refusal is counted under a known reason; whatever is
reported stays within the bounds of the globe. Plus a burst of random datagrams over real UDP
that leaves the link serving."""

from __future__ import annotations

import random
import socket
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dronelink.mavlink import MavlinkLink
from dronelink.mavlink.core import MavlinkCore
from dronelink.mavlink.wire import Encoder
from dronelink.model import DroneReport, LinkState
from tests.conftest import wait_for

AT = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
ADDR = ("127.0.0.1", 40000)
KNOWN = {
    "bad_crc",
    "bad_prefix",
    "bad_length",
    "bad_signature",
    "bad_frame",
    "truncated",
    "oversize",
    "bad_system_id",
    "unexpected_system",
    "no_position",
    "bad_coordinates",
    "bad_battery",
}
FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _core() -> MavlinkCore:
    return MavlinkCore(
        Encoder(255, 190), link_timeout_s=1.0, stream_intervals={33: 1.0}, allowed_system_ids=None
    )


def _valid() -> bytes:
    enc = Encoder(1, 1)
    return b"".join(
        [
            enc.heartbeat(type=2, autopilot=3, base_mode=129, custom_mode=3, system_status=4),
            enc.sys_status(battery_remaining=50),
            enc.global_position_int(
                time_boot_ms=1,
                lat=387_800_000,
                lon=1_010_800_000,
                alt=1_500_000,
                relative_alt=60_000,
                vx=1,
                vy=1,
                vz=0,
                hdg=100,
            ),
            enc.statustext(severity=6, text="ok"),
            enc.command_ack(command=20, result=0, target_system=255, target_component=190),
        ]
    )


def _check(core: MavlinkCore, reports: list[DroneReport], rejects: list[str]) -> None:
    assert set(core.counts) <= KNOWN
    assert sum(core.counts.values()) == len(rejects)
    for report in reports:
        if report.fix is not None:
            assert -90 <= report.fix.lat <= 90 and -180 <= report.fix.lon <= 180
        if report.battery_percent is not None:
            assert 0 <= report.battery_percent <= 100


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes(data: bytes) -> None:
    core = _core()
    step = core.receive(data, ADDR, 0.0, AT)
    _check(core, step.reports, step.rejects)


@FUZZ
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.integers(0, 255), st.sampled_from(["flip", "cut"])),
        min_size=1,
        max_size=8,
    )
)
def test_damaged_real_frames(edits: list[tuple[int, int, str]]) -> None:
    data = bytearray(_valid())
    for where, value, how in edits:
        if not data:
            break
        i = where % len(data)
        if how == "flip":
            data[i] ^= value or 1
        else:
            del data[i:]
    core = _core()
    step = core.receive(bytes(data), ADDR, 0.0, AT)
    _check(core, step.reports, step.rejects)


i32 = st.integers(-(2**31), 2**31 - 1)
i16 = st.integers(-(2**15), 2**15 - 1)
u16 = st.integers(0, 2**16 - 1)


@FUZZ
@given(
    lat=i32,
    lon=i32,
    alt=i32,
    rel=i32,
    vx=i16,
    vy=i16,
    hdg=u16,
    battery=st.integers(-128, 127),
    fix_type=st.integers(0, 255),
    sysid=st.integers(0, 255),
    custom_mode=st.integers(0, 2**32 - 1),
    base_mode=st.integers(0, 255),
    autopilot=st.integers(0, 255),
    vtype=st.integers(0, 255),
)
def test_any_field_values(
    lat: int,
    lon: int,
    alt: int,
    rel: int,
    vx: int,
    vy: int,
    hdg: int,
    battery: int,
    fix_type: int,
    sysid: int,
    custom_mode: int,
    base_mode: int,
    autopilot: int,
    vtype: int,
) -> None:
    enc = Encoder(sysid, 1)
    data = b"".join(
        [
            enc.heartbeat(
                type=vtype,
                autopilot=autopilot,
                base_mode=base_mode,
                custom_mode=custom_mode,
                system_status=4,
            ),
            enc.gps_raw_int(
                fix_type=fix_type, lat=lat, lon=lon, alt=alt, vel=0, cog=0, satellites=0
            ),
            enc.global_position_int(
                time_boot_ms=0,
                lat=lat,
                lon=lon,
                alt=alt,
                relative_alt=rel,
                vx=vx,
                vy=vy,
                vz=0,
                hdg=hdg,
            ),
            enc.sys_status(battery_remaining=battery),
        ]
    )
    core = _core()
    step = core.receive(data, ADDR, 0.0, AT)
    _check(core, step.reports, step.rejects)
    if step.reports:
        assert {r.key for r in step.reports} == {str(sysid)}


async def test_a_burst_of_random_datagrams_over_udp_leaves_the_link_serving() -> None:
    reports: list[DroneReport] = []
    link = MavlinkLink(reports.append, lambda: datetime.now(UTC), port=0)
    port = await link.start()
    rng = random.Random(28181)
    valid = _valid()
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for n in range(300):
                if n % 3 == 0:
                    data = rng.randbytes(rng.randrange(0, 400))
                else:
                    damaged = bytearray(valid)
                    for _ in range(rng.randrange(1, 4)):
                        damaged[rng.randrange(len(damaged))] ^= rng.randrange(1, 256)
                    data = bytes(damaged)
                sock.sendto(data, ("127.0.0.1", port))
            sock.sendto(valid, ("127.0.0.1", port))
        await wait_for(
            lambda: sum(link.counts.values()) >= 100 and any(r.text == "ok" for r in reports),
            5,
            what="the damage counted and the good datagram reported",
        )
        assert set(link.counts) <= KNOWN
        assert link.vehicles["1"].link is LinkState.ONLINE
    finally:
        link.close()
