"""Typed MAVLink frames to the fields of a ``DroneReport``, with the bounds of the edge.

A vehicle's numbers are checked here, once: coordinates beyond the globe, a 0/0 position from
a vehicle without a GPS fix (an autopilot's "no estimate yet"), battery and heading sentinels.
A refusal is a ``Reject`` with a countable reason, never an exception. Pure: no I/O, no clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dronelink.mavlink.modes import mode_name
from dronelink.mavlink.wire import (
    MAV_AUTOPILOT_INVALID,
    MAV_MODE_FLAG_SAFETY_ARMED,
    MAV_TYPE_GCS,
    GlobalPosition,
    GpsRaw,
    Heartbeat,
    StatusText,
    SysStatus,
)
from dronelink.model import DroneFix

__all__ = [
    "GPS_FIX_2D",
    "HeartbeatFields",
    "Reject",
    "battery_percent",
    "gps_fix",
    "heartbeat_fields",
    "is_vehicle",
    "position_fix",
    "satellites",
    "status_text",
]

GPS_FIX_2D = 2  # GPS_FIX_TYPE: 0 no GPS, 1 no fix, 2 2D, 3 3D, 4 DGPS, 5/6 RTK, 7 static, 8 PPP
_UINT16_MAX = 0xFFFF
_UINT8_MAX = 0xFF
# MAV_STATE: the vehicle is (or may be) in the air.
_AIRBORNE_STATES = frozenset({4, 5, 6})  # ACTIVE, CRITICAL, EMERGENCY
_GROUND_STATES = frozenset({0, 1, 2, 3, 7, 8})  # UNINIT, BOOT, CALIBRATING, STANDBY, POWEROFF, ...
_MAX_ABS_ALT_M = 100_000.0  # beyond any drone: a corrupt or unit-confused altitude


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str


@dataclass(frozen=True, slots=True)
class HeartbeatFields:
    mode: str | None
    armed: bool
    flying: bool | None


def is_vehicle(hb: Heartbeat) -> bool:
    """A flight controller's heartbeat. A GCS, a gimbal or a companion computer on the same
    network also beats (autopilot INVALID): it says nothing of the vehicle's link."""
    return hb.autopilot != MAV_AUTOPILOT_INVALID and hb.type != MAV_TYPE_GCS


def heartbeat_fields(hb: Heartbeat) -> HeartbeatFields:
    if hb.system_status in _AIRBORNE_STATES:
        flying: bool | None = True
    elif hb.system_status in _GROUND_STATES:
        flying = False
    else:
        flying = None
    return HeartbeatFields(
        mode=mode_name(hb.autopilot, hb.type, hb.base_mode, hb.custom_mode),
        armed=bool(hb.base_mode & MAV_MODE_FLAG_SAFETY_ARMED),
        flying=flying,
    )


def battery_percent(ss: SysStatus) -> float | Reject | None:
    """``None``: the vehicle does not know (-1); beyond 0..100: rejected."""
    if ss.battery_remaining == -1:
        return None
    if not 0 <= ss.battery_remaining <= 100:
        return Reject("bad_battery")
    return float(ss.battery_remaining)


def _coordinates(lat_e7: int, lon_e7: int, fix_type: int | None) -> tuple[float, float] | Reject:
    lat, lon = lat_e7 / 1e7, lon_e7 / 1e7
    if abs(lat) > 90 or abs(lon) > 180:
        return Reject("bad_coordinates")
    if lat_e7 == 0 and lon_e7 == 0 and (fix_type is None or fix_type < GPS_FIX_2D):
        return Reject("no_position")
    return lat, lon


def _heading(cdeg: int) -> float | None:
    if cdeg == _UINT16_MAX or not 0 <= cdeg <= 36000:
        return None
    return (cdeg / 100.0) % 360.0


def _altitude(mm: int) -> float | None:
    metres = mm / 1000.0
    return metres if abs(metres) <= _MAX_ABS_ALT_M else None


def position_fix(gp: GlobalPosition, fix_type: int | None) -> DroneFix | Reject:
    """GLOBAL_POSITION_INT (the autopilot's fused estimate). *fix_type*: the vehicle's last
    GPS_RAW_INT fix type, if any (0/0 counts as a place only with a fix)."""
    where = _coordinates(gp.lat, gp.lon, fix_type)
    if isinstance(where, Reject):
        return where
    return DroneFix(
        lat=where[0],
        lon=where[1],
        height_m=_altitude(gp.alt),
        elevation_m=_altitude(gp.relative_alt),
        speed_mps=math.hypot(gp.vx, gp.vy) / 100.0,
        heading_deg=_heading(gp.hdg),
    )


def gps_fix(gr: GpsRaw) -> DroneFix | Reject | None:
    """GPS_RAW_INT's position: ``None`` without a fix (the receiver says so: nothing to count)."""
    if gr.fix_type < GPS_FIX_2D:
        return None
    where = _coordinates(gr.lat, gr.lon, gr.fix_type)
    if isinstance(where, Reject):
        return where
    return DroneFix(
        lat=where[0],
        lon=where[1],
        height_m=_altitude(gr.alt),
        speed_mps=None if gr.vel == _UINT16_MAX else gr.vel / 100.0,
        heading_deg=_heading(gr.cog),
    )


def satellites(gr: GpsRaw) -> int | None:
    return None if gr.satellites == _UINT8_MAX else gr.satellites


def status_text(st: StatusText) -> str | None:
    """The line without control characters (pymavlink already cut it at the NUL); ``None``
    when nothing printable is left."""
    return clean_text(st.text)


def clean_text(text: str) -> str | None:
    """*text* without control characters, stripped; ``None`` when nothing is left."""
    kept = "".join(ch for ch in text if ch.isprintable()).strip()
    return kept or None
