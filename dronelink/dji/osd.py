"""Dock and aircraft osd (and state) to ``DockReport`` / ``DroneReport``.

A dock splits its osd over several partial messages (position and mode in one, the
aircraft's charge in another, the cover in a third...), so a dock's report is the merge of
everything heard from it: ``DockMerge`` keeps the last value of each field. An aircraft's
osd is whole; it is checked and mapped as it comes. Coordinates are WGS-84 degrees; 0/0 is
what an aircraft without a GNSS fix sends, so it means "no fix", not the Gulf of Guinea.
Out-of-range numbers are a rejection (``bad_coordinates``, ``bad_field``), never a report.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from dronelink.dji.envelope import Rejection
from dronelink.model import DockReport, DroneFix, DroneReport

__all__ = [
    "AIRCRAFT_MODES",
    "DOCK_MODES",
    "DockMerge",
    "aircraft_report",
    "fix_of",
]

AIRCRAFT_MODES: dict[int, str] = {
    0: "standby",
    1: "takeoff_preparation",
    2: "takeoff_ready",
    3: "manual",
    4: "auto_takeoff",
    5: "wayline",
    6: "panorama",
    7: "tracking",
    8: "adsb_avoidance",
    9: "returning_home",
    10: "landing",
    11: "forced_landing",
    12: "three_blade_landing",
    13: "upgrading",
    14: "disconnected",
    15: "apas",
    16: "virtual_stick",
    17: "live_flight_control",
    18: "rtk_fixing",
    19: "dock_address_selecting",
    20: "poi",
}
ON_GROUND = {0, 1, 2, 13, 14, 19}
DOCK_MODES: dict[int, str] = {
    0: "idle",
    1: "on_site_debug",
    2: "remote_debug",
    3: "upgrading",
    4: "working",
}
# The fields a dock report is made of (others are kept but not read).
DOCK_FIELDS = (
    "latitude",
    "longitude",
    "height",
    "mode_code",
    "drone_in_dock",
    "drone_charge_state",
    "cover_state",
    "sub_device",
)
MAX_HEIGHT_M = 12_000.0  # above any aircraft's ceiling
MIN_HEIGHT_M = -1_000.0  # below the Dead Sea shore


def _num(data: dict[str, Any], name: str) -> float | Rejection | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return Rejection("bad_field", f"{name} is not a finite number")
    return float(value)


def _code(data: dict[str, Any], name: str) -> int | Rejection | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1000:
        return Rejection("bad_field", f"{name} is not a small integer")
    return value


def fix_of(data: dict[str, Any]) -> DroneFix | Rejection | None:
    """The position in *data* (None: none, or 0/0 = no fix yet)."""
    got: dict[str, float | None] = {}
    for name in (
        "latitude",
        "longitude",
        "height",
        "elevation",
        "horizontal_speed",
        "attitude_head",
    ):
        v = _num(data, name)
        if isinstance(v, Rejection):
            return v
        got[name] = v
    lat, lon = got["latitude"], got["longitude"]
    if lat is None or lon is None:
        return None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        return Rejection("bad_coordinates", f"{lat},{lon}")
    if lat == 0 and lon == 0:
        return None
    for name in ("height", "elevation"):
        h = got[name]
        if h is not None and not MIN_HEIGHT_M <= h <= MAX_HEIGHT_M:
            return Rejection("bad_coordinates", f"{name} {h}")
    speed, head = got["horizontal_speed"], got["attitude_head"]
    if speed is not None and not 0 <= speed <= 200:
        return Rejection("bad_field", f"horizontal_speed {speed}")
    if head is not None:
        if not -360 <= head <= 360:
            return Rejection("bad_field", f"attitude_head {head}")
        head = head % 360  # DJI sends -180..180
    return DroneFix(lat, lon, got["height"], got["elevation"], speed, head)


def _percent(obj: Any, name: str) -> float | Rejection | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        return Rejection("bad_field", f"{name} is not an object")
    v = _num(obj, "capacity_percent")
    if isinstance(v, float) and not 0 <= v <= 100:
        return Rejection("bad_field", f"{name}.capacity_percent {v}")
    return v


def aircraft_report(
    sn: str, data: dict[str, Any], at: datetime, dock_sn: str | None
) -> DroneReport | Rejection:
    """One aircraft osd message as a report (fields it lacks stay None)."""
    fix = fix_of(data)
    if isinstance(fix, Rejection):
        return fix
    battery = _percent(data.get("battery"), "battery")
    if isinstance(battery, Rejection):
        return battery
    mode_code = _code(data, "mode_code")
    if isinstance(mode_code, Rejection):
        return mode_code
    mode = None if mode_code is None else AIRCRAFT_MODES.get(mode_code, f"mode_{mode_code}")
    flying = None if mode_code is None else mode_code not in ON_GROUND
    return DroneReport(
        source="dji",
        key=sn,
        at=at,
        fix=fix,
        battery_percent=battery,
        mode=mode,
        flying=flying,
        dock_key=dock_sn,
    )


class DockMerge:
    """The merged osd of every dock heard: each partial message updates the fields it
    carries; the report is built from the merge. A message with a bad field changes nothing
    (checked whole before merging)."""

    def __init__(self) -> None:
        self._docks: dict[str, dict[str, Any]] = {}

    def fields(self, sn: str) -> dict[str, Any]:
        return dict(self._docks.get(sn, {}))

    def forget(self, sn: str) -> None:
        self._docks.pop(sn, None)

    def merge(
        self, sn: str, data: dict[str, Any], at: datetime, aircraft_sn: str | None
    ) -> DockReport | Rejection:
        """Fold *data* into dock *sn*'s state; the report of the whole. *aircraft_sn*: the
        aircraft the topology says is at this dock (None: none online)."""
        merged = {**self._docks.get(sn, {}), **{k: data[k] for k in DOCK_FIELDS if k in data}}
        report = self._report(sn, merged, at, aircraft_sn)
        if not isinstance(report, Rejection):
            self._docks[sn] = merged
        return report

    def report(self, sn: str, at: datetime, aircraft_sn: str | None) -> DockReport:
        """The merged state as it stands (for presence and topology changes)."""
        report = self._report(sn, self._docks.get(sn, {}), at, aircraft_sn)
        assert not isinstance(report, Rejection)  # only merged when it passed
        return report

    @staticmethod
    def _report(
        sn: str, m: dict[str, Any], at: datetime, aircraft_sn: str | None
    ) -> DockReport | Rejection:
        fix = fix_of(m)
        if isinstance(fix, Rejection):
            return fix
        mode_code = _code(m, "mode_code")
        if isinstance(mode_code, Rejection):
            return mode_code
        cover = _code(m, "cover_state")
        if isinstance(cover, Rejection):
            return cover
        in_dock = _code(m, "drone_in_dock")
        if isinstance(in_dock, Rejection):
            return in_dock
        charge = m.get("drone_charge_state")
        battery = _percent(charge, "drone_charge_state")
        if isinstance(battery, Rejection):
            return battery
        charging: bool | None = None
        if isinstance(charge, dict):
            state = _code(charge, "state")
            if isinstance(state, Rejection):
                return state
            charging = None if state is None else state == 1
        return DockReport(
            key=sn,
            at=at,
            fix=fix,
            mode=None if mode_code is None else DOCK_MODES.get(mode_code, f"mode_{mode_code}"),
            drone_in_dock=None if in_dock is None else in_dock == 1,
            drone_charging=charging,
            drone_battery_percent=battery,
            cover_state=cover,
            aircraft_key=aircraft_sn,
        )
