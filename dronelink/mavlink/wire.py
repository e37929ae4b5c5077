"""The one place pymavlink is touched: bytes to typed frames and typed frames to bytes.

pymavlink ships no type hints and builds messages with dynamic attributes, so everything of
it is wrapped here in small typed functions and frozen records; the rest of ``dronelink.mavlink``
(and the simulated vehicle) never sees a pymavlink object. Only the messages the gateway uses
are turned into records; any other valid message is skipped quietly (an autopilot streams
dozens), while damaged input comes back as a reason to count.

A datagram is parsed by a fresh parser: a truncated frame at the end of one datagram must not
swallow the start of the next (MAVLink over UDP puts whole frames in each datagram).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymavlink.dialects.v20 import common as _mav  # type: ignore[import-untyped]

__all__ = [
    "MAV_AUTOPILOT_ARDUPILOTMEGA",
    "MAV_AUTOPILOT_INVALID",
    "MAV_AUTOPILOT_PX4",
    "MAV_CMD_NAV_RETURN_TO_LAUNCH",
    "MAV_CMD_SET_MESSAGE_INTERVAL",
    "MAV_MODE_FLAG_CUSTOM_MODE_ENABLED",
    "MAV_MODE_FLAG_SAFETY_ARMED",
    "MAV_RESULT_ACCEPTED",
    "MAV_RESULT_DENIED",
    "MAV_RESULT_FAILED",
    "MAV_RESULT_IN_PROGRESS",
    "MAV_RESULT_TEMPORARILY_REJECTED",
    "MAV_RESULT_UNSUPPORTED",
    "MAV_STATE_ACTIVE",
    "MAV_STATE_STANDBY",
    "MAV_TYPE_GCS",
    "MAV_TYPE_QUADROTOR",
    "CommandAck",
    "CommandLong",
    "Encoder",
    "Frame",
    "GlobalPosition",
    "GpsRaw",
    "Heartbeat",
    "Parsed",
    "StatusText",
    "SysStatus",
    "message_id",
    "parse_datagram",
]

# The few protocol numbers used here (values of the common dialect, spelled out so mypy sees ints).
MAV_CMD_NAV_RETURN_TO_LAUNCH = 20
MAV_CMD_SET_MESSAGE_INTERVAL = 511
MAV_RESULT_ACCEPTED = 0
MAV_RESULT_TEMPORARILY_REJECTED = 1
MAV_RESULT_DENIED = 2
MAV_RESULT_UNSUPPORTED = 3
MAV_RESULT_FAILED = 4
MAV_RESULT_IN_PROGRESS = 5
MAV_AUTOPILOT_ARDUPILOTMEGA = 3
MAV_AUTOPILOT_INVALID = 8
MAV_AUTOPILOT_PX4 = 12
MAV_TYPE_QUADROTOR = 2
MAV_TYPE_GCS = 6
MAV_MODE_FLAG_CUSTOM_MODE_ENABLED = 1
MAV_MODE_FLAG_SAFETY_ARMED = 128
MAV_STATE_STANDBY = 3
MAV_STATE_ACTIVE = 4


@dataclass(frozen=True, slots=True)
class Heartbeat:
    sysid: int
    compid: int
    type: int  # MAV_TYPE
    autopilot: int  # MAV_AUTOPILOT
    base_mode: int  # MAV_MODE_FLAG bits
    custom_mode: int
    system_status: int  # MAV_STATE


@dataclass(frozen=True, slots=True)
class SysStatus:
    sysid: int
    compid: int
    battery_remaining: int  # %, -1 = unknown
    voltage_mv: int  # UINT16_MAX = unknown


@dataclass(frozen=True, slots=True)
class GlobalPosition:
    sysid: int
    compid: int
    lat: int  # degE7
    lon: int  # degE7
    alt: int  # mm above MSL
    relative_alt: int  # mm above home
    vx: int  # cm/s north
    vy: int  # cm/s east
    vz: int  # cm/s down
    hdg: int  # cdeg, UINT16_MAX = unknown


@dataclass(frozen=True, slots=True)
class GpsRaw:
    sysid: int
    compid: int
    fix_type: int  # GPS_FIX_TYPE: 0/1 no fix, 2 2D, 3 3D, ...
    lat: int  # degE7
    lon: int  # degE7
    alt: int  # mm above MSL
    vel: int  # cm/s over ground, UINT16_MAX = unknown
    cog: int  # cdeg, UINT16_MAX = unknown
    satellites: int  # UINT8_MAX = unknown


@dataclass(frozen=True, slots=True)
class StatusText:
    sysid: int
    compid: int
    severity: int  # MAV_SEVERITY, 0 emergency .. 7 debug
    text: str
    text_id: int = 0  # MAVLink 2: a line in chunks shares a non-zero id (0: a line of its own)
    chunk_seq: int = 0


@dataclass(frozen=True, slots=True)
class CommandAck:
    sysid: int
    compid: int
    command: int
    result: int  # MAV_RESULT
    progress: int
    target_system: int
    target_component: int


@dataclass(frozen=True, slots=True)
class CommandLong:
    sysid: int
    compid: int
    target_system: int
    target_component: int
    command: int
    confirmation: int
    params: tuple[float, float, float, float, float, float, float]


Frame = Heartbeat | SysStatus | GlobalPosition | GpsRaw | StatusText | CommandAck | CommandLong


@dataclass(slots=True)
class Parsed:
    """What one datagram held: the frames of interest, and one reason per damaged piece."""

    frames: list[Frame] = field(default_factory=list)
    bad: list[str] = field(default_factory=list)
    skipped: int = 0  # valid messages the gateway has no use for


def message_id(name: str) -> int | None:
    """The id of a common-dialect message by name (``GLOBAL_POSITION_INT`` → 33), or None."""
    value = getattr(_mav, f"MAVLINK_MSG_ID_{name.upper()}", None)
    return value if isinstance(value, int) else None


class _Sink:
    """pymavlink wants a file to write to; the transports send the bytes themselves."""

    def write(self, data: bytes) -> None:
        pass


def _reason(text: str) -> str:
    """A short, countable reason for pymavlink's free-text complaint."""
    low = text.lower()
    if "crc" in low:
        return "bad_crc"
    if "prefix" in low:
        return "bad_prefix"
    if "length" in low:
        return "bad_length"
    if "signature" in low:
        return "bad_signature"
    return "bad_frame"


def _frame(msg: Any) -> Frame | None:
    kind = msg.get_type()
    sysid = int(msg.get_srcSystem())
    compid = int(msg.get_srcComponent())
    if kind == "HEARTBEAT":
        return Heartbeat(
            sysid,
            compid,
            int(msg.type),
            int(msg.autopilot),
            int(msg.base_mode),
            int(msg.custom_mode),
            int(msg.system_status),
        )
    if kind == "SYS_STATUS":
        return SysStatus(sysid, compid, int(msg.battery_remaining), int(msg.voltage_battery))
    if kind == "GLOBAL_POSITION_INT":
        return GlobalPosition(
            sysid,
            compid,
            int(msg.lat),
            int(msg.lon),
            int(msg.alt),
            int(msg.relative_alt),
            int(msg.vx),
            int(msg.vy),
            int(msg.vz),
            int(msg.hdg),
        )
    if kind == "GPS_RAW_INT":
        return GpsRaw(
            sysid,
            compid,
            int(msg.fix_type),
            int(msg.lat),
            int(msg.lon),
            int(msg.alt),
            int(msg.vel),
            int(msg.cog),
            int(msg.satellites_visible),
        )
    if kind == "STATUSTEXT":
        return StatusText(
            sysid, compid, int(msg.severity), str(msg.text),
            int(getattr(msg, "id", 0) or 0), int(getattr(msg, "chunk_seq", 0) or 0),
        )  # fmt: skip
    if kind == "COMMAND_ACK":
        return CommandAck(
            sysid,
            compid,
            int(msg.command),
            int(msg.result),
            int(msg.progress),
            int(msg.target_system),
            int(msg.target_component),
        )
    if kind == "COMMAND_LONG":
        params = (
            float(msg.param1),
            float(msg.param2),
            float(msg.param3),
            float(msg.param4),
            float(msg.param5),
            float(msg.param6),
            float(msg.param7),
        )
        return CommandLong(
            sysid,
            compid,
            int(msg.target_system),
            int(msg.target_component),
            int(msg.command),
            int(msg.confirmation),
            params,
        )
    return None


def parse_datagram(data: bytes) -> Parsed:
    """Every frame in *data* (MAVLink 1 or 2). Never raises: damage becomes ``bad`` reasons."""
    out = Parsed()
    parser = _mav.MAVLink(_Sink())
    parser.robust_parsing = True
    try:
        messages = parser.parse_buffer(data) or []
    except Exception as exc:  # pymavlink raises odd things on odd input: count, never crash
        out.bad.append(_reason(str(exc)))
        return out
    for msg in messages:
        if msg.get_type() == "BAD_DATA":
            out.bad.append(_reason(str(msg.reason)))
            continue
        try:
            frame = _frame(msg)
        except (AttributeError, TypeError, ValueError):
            out.bad.append("bad_frame")
            continue
        if frame is None:
            out.skipped += 1
        else:
            out.frames.append(frame)
    if parser.buf_len() > 0:
        out.bad.append("truncated")
    return out


class Encoder:
    """Frames from one sender (system and component id) as MAVLink 2 bytes, with its own
    sequence numbers."""

    def __init__(self, system_id: int, component_id: int) -> None:
        self.system_id = system_id
        self.component_id = component_id
        self._mav = _mav.MAVLink(_Sink(), srcSystem=system_id, srcComponent=component_id)

    def _pack(self, msg: Any) -> bytes:
        data = bytes(msg.pack(self._mav))
        self._mav.seq = (self._mav.seq + 1) % 256
        return data

    def heartbeat(
        self, *, type: int, autopilot: int, base_mode: int, custom_mode: int, system_status: int
    ) -> bytes:
        return self._pack(
            self._mav.heartbeat_encode(type, autopilot, base_mode, custom_mode, system_status)
        )

    def sys_status(self, *, battery_remaining: int, voltage_mv: int = 0xFFFF) -> bytes:
        return self._pack(
            self._mav.sys_status_encode(
                0, 0, 0, 0, voltage_mv, -1, battery_remaining, 0, 0, 0, 0, 0, 0
            )
        )

    def global_position_int(
        self,
        *,
        time_boot_ms: int,
        lat: int,
        lon: int,
        alt: int,
        relative_alt: int,
        vx: int,
        vy: int,
        vz: int,
        hdg: int,
    ) -> bytes:
        return self._pack(
            self._mav.global_position_int_encode(
                time_boot_ms, lat, lon, alt, relative_alt, vx, vy, vz, hdg
            )
        )

    def gps_raw_int(
        self,
        *,
        fix_type: int,
        lat: int,
        lon: int,
        alt: int,
        vel: int,
        cog: int,
        satellites: int,
        time_usec: int = 0,
    ) -> bytes:
        return self._pack(
            self._mav.gps_raw_int_encode(
                time_usec, fix_type, lat, lon, alt, 0xFFFF, 0xFFFF, vel, cog, satellites
            )
        )

    def statustext(
        self, *, severity: int, text: str, text_id: int = 0, chunk_seq: int = 0
    ) -> bytes:
        raw = text.encode("ascii", errors="replace")[:50]
        return self._pack(self._mav.statustext_encode(severity, raw, text_id, chunk_seq))

    def command_long(
        self,
        *,
        target_system: int,
        target_component: int,
        command: int,
        confirmation: int,
        params: Sequence[float] = (),
    ) -> bytes:
        p = [*params, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0][:7]
        return self._pack(
            self._mav.command_long_encode(
                target_system, target_component, command, confirmation, *p
            )
        )

    def command_ack(
        self,
        *,
        command: int,
        result: int,
        target_system: int,
        target_component: int,
        progress: int = 0,
    ) -> bytes:
        return self._pack(
            self._mav.command_ack_encode(
                command, result, progress, 0, target_system, target_component
            )
        )
