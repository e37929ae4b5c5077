"""MAVLink datagrams, the bytes -> frames path the UDP link uses: a short sequence of
datagrams from one address into one fresh ``MavlinkCore.receive`` (``parse_datagram`` under
it). Damage comes back as counted reasons (``bad_crc``, ``bad_prefix``, ``truncated``, ...);
nothing may raise."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import strategies as st

from dronelink.mavlink.core import MavlinkCore
from dronelink.mavlink.wire import Encoder
from fuzz.core import Reasons, Target
from fuzz.mutate import hostile_bytes

AT = datetime(2026, 5, 1, 8, 0, tzinfo=UTC)
ADDR = ("127.0.0.1", 40000)


def _samples() -> list[bytes]:
    enc = Encoder(1, 1)
    heartbeat = enc.heartbeat(type=2, autopilot=3, base_mode=129, custom_mode=3, system_status=4)
    position = enc.global_position_int(
        time_boot_ms=1, lat=387_800_000, lon=1_010_800_000, alt=1_500_000, relative_alt=60_000,
        vx=1, vy=1, vz=0, hdg=100,
    )  # fmt: skip
    gps = enc.gps_raw_int(
        fix_type=3, lat=387_800_000, lon=1_010_800_000, alt=1_500_000, vel=100, cog=9000,
        satellites=12,
    )  # fmt: skip
    status = enc.sys_status(battery_remaining=50)
    text = enc.statustext(severity=6, text="PreArm: Battery below minimum arming level")
    ack = enc.command_ack(command=20, result=0, target_system=255, target_component=190)
    return [
        heartbeat + status + position,
        heartbeat + gps + text,
        heartbeat,
        ack,
        heartbeat + position + gps + status + text + ack,
    ]


SAMPLES = _samples()
_datagram = hostile_bytes(SAMPLES, max_random=600)


def check_core(datagrams: list[bytes]) -> Reasons:
    core = MavlinkCore(
        Encoder(255, 190), link_timeout_s=1.0, stream_intervals={33: 1.0}, allowed_system_ids=None
    )
    reasons: list[str] = []
    for i, data in enumerate(datagrams):
        step = core.receive(data, ADDR, float(i), AT)
        reasons.extend(step.rejects)
    return reasons


TARGETS = (
    Target(
        "mavlink.datagram",
        "dronelink.mavlink.core.MavlinkCore.receive (wire.parse_datagram)",
        st.lists(_datagram, min_size=1, max_size=3),
        check_core,
    ),
)
