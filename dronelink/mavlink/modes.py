"""A HEARTBEAT's flight mode in words, as the operator knows it from the autopilot's own GCS.

``custom_mode`` means something only per autopilot and vehicle type: ArduPilot numbers its
modes per firmware (copter, plane, rover), PX4 packs a main and a sub mode into bytes 2 and 3.
Where neither applies, the standard MAV_MODE flags say roughly what the vehicle does. PX4's
AUTO sub modes are named by the sub mode alone ("RTL", "MISSION") so a return home reads
"RTL" whatever the autopilot. Pure tables, no I/O.
"""

from __future__ import annotations

from types import MappingProxyType

from dronelink.mavlink.wire import (
    MAV_AUTOPILOT_ARDUPILOTMEGA,
    MAV_AUTOPILOT_PX4,
    MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
)

__all__ = ["ARDUCOPTER", "ARDUPLANE", "ARDUROVER", "PX4_AUTO", "PX4_MAIN", "mode_name"]

ARDUCOPTER = MappingProxyType(
    {
        0: "STABILIZE",
        1: "ACRO",
        2: "ALT_HOLD",
        3: "AUTO",
        4: "GUIDED",
        5: "LOITER",
        6: "RTL",
        7: "CIRCLE",
        9: "LAND",
        11: "DRIFT",
        13: "SPORT",
        14: "FLIP",
        15: "AUTOTUNE",
        16: "POSHOLD",
        17: "BRAKE",
        18: "THROW",
        19: "AVOID_ADSB",
        20: "GUIDED_NOGPS",
        21: "SMART_RTL",
        22: "FLOWHOLD",
        23: "FOLLOW",
        24: "ZIGZAG",
        25: "SYSTEMID",
        26: "AUTOROTATE",
        27: "AUTO_RTL",
        28: "TURTLE",
    }
)
ARDUPLANE = MappingProxyType(
    {
        0: "MANUAL",
        1: "CIRCLE",
        2: "STABILIZE",
        3: "TRAINING",
        4: "ACRO",
        5: "FBWA",
        6: "FBWB",
        7: "CRUISE",
        8: "AUTOTUNE",
        10: "AUTO",
        11: "RTL",
        12: "LOITER",
        13: "TAKEOFF",
        14: "AVOID_ADSB",
        15: "GUIDED",
        17: "QSTABILIZE",
        18: "QHOVER",
        19: "QLOITER",
        20: "QLAND",
        21: "QRTL",
        22: "QAUTOTUNE",
        23: "QACRO",
        24: "THERMAL",
        25: "LOITER_ALT_QLAND",
    }
)
ARDUROVER = MappingProxyType(
    {
        0: "MANUAL",
        1: "ACRO",
        3: "STEERING",
        4: "HOLD",
        5: "LOITER",
        6: "FOLLOW",
        7: "SIMPLE",
        8: "DOCK",
        9: "CIRCLE",
        10: "AUTO",
        11: "RTL",
        12: "SMART_RTL",
        15: "GUIDED",
    }
)
PX4_MAIN = MappingProxyType(
    {
        1: "MANUAL",
        2: "ALTCTL",
        3: "POSCTL",
        4: "AUTO",
        5: "ACRO",
        6: "OFFBOARD",
        7: "STABILIZED",
        8: "RATTITUDE",
        9: "SIMPLE",
        10: "TERMINATION",
    }
)
PX4_AUTO = MappingProxyType(
    {
        1: "READY",
        2: "TAKEOFF",
        3: "LOITER",
        4: "MISSION",
        5: "RTL",
        6: "LAND",
        7: "RTGS",
        8: "FOLLOW_TARGET",
        9: "PRECLAND",
        10: "VTOL_TAKEOFF",
    }
)

# MAV_TYPE → the ArduPilot firmware that flies it.
_COPTERS = frozenset({2, 3, 4, 13, 14, 15, 29, 35})  # quad, coax, heli, hexa, octo, tri, 12, 10
_PLANES = frozenset({1, 19, 20, 21, 22, 23, 24, 25})  # fixed wing and the VTOL (QuadPlane) kinds
_ROVERS = frozenset({10, 11})  # ground rover, surface boat

# MAV_MODE_FLAG bits, most telling first.
_FLAGS = ((4, "AUTO"), (8, "GUIDED"), (16, "STABILIZE"), (64, "MANUAL"), (2, "TEST"))


def _ardupilot(vehicle_type: int, custom_mode: int) -> str | None:
    if vehicle_type in _COPTERS:
        return ARDUCOPTER.get(custom_mode)
    if vehicle_type in _PLANES:
        return ARDUPLANE.get(custom_mode)
    if vehicle_type in _ROVERS:
        return ARDUROVER.get(custom_mode)
    return None


def _px4(custom_mode: int) -> str | None:
    main = (custom_mode >> 16) & 0xFF
    sub = (custom_mode >> 24) & 0xFF
    if main == 4:
        return PX4_AUTO.get(sub, "AUTO")
    return PX4_MAIN.get(main)


def _flags(base_mode: int) -> str | None:
    for bit, name in _FLAGS:
        if base_mode & bit:
            return name
    return None


def mode_name(autopilot: int, vehicle_type: int, base_mode: int, custom_mode: int) -> str | None:
    """The readable mode; ``None`` when the heartbeat says nothing one could name. An unknown
    custom mode of a known autopilot reads ``CUSTOM_<n>`` (news for the operator, not noise)."""
    if base_mode & MAV_MODE_FLAG_CUSTOM_MODE_ENABLED:
        if autopilot == MAV_AUTOPILOT_ARDUPILOTMEGA:
            name = _ardupilot(vehicle_type, custom_mode)
            return name if name is not None else f"CUSTOM_{custom_mode}"
        if autopilot == MAV_AUTOPILOT_PX4:
            name = _px4(custom_mode)
            return name if name is not None else f"CUSTOM_{custom_mode}"
    return _flags(base_mode)
