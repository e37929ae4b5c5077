"""A drone as the service holds it: what the town says of it (``DroneInfo``) and what its link
last reported (``DroneLive``), with the alert rules' memory and a dirty flag for the
write-behind. Reports merge field by field: a report without a battery keeps the last one."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dronelink.model import DockReport, DroneFix, DroneReport, LinkState
from dronelink.patrol import AlertKind, PatrolArea, Watch
from gateway.infra.storage.schema import DroneRow, DroneStateRow

__all__ = ["DroneInfo", "DroneLive", "info_from_row", "live_from_row", "row_values"]


@dataclass(frozen=True, slots=True)
class DroneInfo:
    id: str
    name: str
    kind: str  # dji | mavlink: the link it is flown over
    key: str  # the key its link reports it by
    dock_sn: str | None
    area: PatrolArea | None  # None: the stored ring is unusable (logged at load)
    home_lat: float
    home_lon: float
    lifecycle: str = "active"  # gateway.directory.lifecycle; retired drones are not loaded


def info_from_row(row: DroneRow) -> DroneInfo:
    key = row.aircraft_sn if row.kind == "dji" else str(row.system_id)
    try:
        area: PatrolArea | None = PatrolArea.of(row.patrol_area)
    except (TypeError, ValueError):
        area = None
    return DroneInfo(
        row.id, row.name, row.kind, key or "", row.dock_sn, area, row.home_lat, row.home_lon,
        row.lifecycle,
    )  # fmt: skip


@dataclass
class DroneLive:
    drone_id: str
    link: LinkState = LinkState.UNKNOWN
    fix: DroneFix | None = None
    position_at: datetime | None = None
    battery_percent: float | None = None
    mode: str | None = None
    flying: bool | None = None
    armed: bool | None = None
    text: str | None = None
    dock_link: LinkState | None = None
    dock_heard: datetime | None = None
    dock_mode: str | None = None
    drone_in_dock: bool | None = None
    drone_charging: bool | None = None
    cover_state: int | None = None
    watch: Watch = field(default_factory=Watch)
    dirty: bool = False
    published: tuple[Any, ...] | None = None  # the last DronePosition's values

    def apply(self, r: DroneReport) -> None:
        self.link = r.link
        if r.fix is not None:
            self.fix, self.position_at = r.fix, r.at
        for name in ("battery_percent", "mode", "flying", "armed", "text"):
            value = getattr(r, name)
            if value is not None:
                setattr(self, name, value)
        self.dirty = True

    def apply_dock(self, d: DockReport) -> None:
        self.dock_link, self.dock_heard = d.link, d.at
        for name in ("mode", "drone_in_dock", "drone_charging", "cover_state"):
            value = getattr(d, name)
            if value is not None:
                setattr(self, "dock_mode" if name == "mode" else name, value)
        if d.drone_in_dock and d.drone_battery_percent is not None:
            self.battery_percent = d.drone_battery_percent  # the dock reads it while docked
        self.dirty = True


def row_values(d: DroneLive, now: datetime) -> dict[str, Any]:
    f = d.fix
    return {
        "drone_id": d.drone_id,
        "link": d.link.value,
        "last_heard": d.watch.last_heard,
        "lat": f.lat if f else None,
        "lon": f.lon if f else None,
        "height_m": f.height_m if f else None,
        "elevation_m": f.elevation_m if f else None,
        "speed_mps": f.speed_mps if f else None,
        "heading_deg": f.heading_deg if f else None,
        "position_at": d.position_at,
        "battery_percent": d.battery_percent,
        "mode": None if d.mode is None else d.mode[:32],
        "flying": d.flying,
        "armed": d.armed,
        "text": None if d.text is None else d.text[:256],
        "dock_link": None if d.dock_link is None else d.dock_link.value,
        "dock_heard": d.dock_heard,
        "dock_mode": None if d.dock_mode is None else d.dock_mode[:32],
        "drone_in_dock": d.drone_in_dock,
        "drone_charging": d.drone_charging,
        "cover_state": d.cover_state,
        "alerts": sorted(a.value for a in d.watch.active),
        "updated_at": now,
    }


def _link(value: str | None) -> LinkState:
    if value is None:
        return LinkState.UNKNOWN
    try:
        return LinkState(value)
    except ValueError:
        return LinkState.UNKNOWN


def live_from_row(r: DroneStateRow) -> DroneLive:
    fix = None
    if r.lat is not None and r.lon is not None:
        fix = DroneFix(r.lat, r.lon, r.height_m, r.elevation_m, r.speed_mps, r.heading_deg)
    active = frozenset(AlertKind(a) for a in (r.alerts or []) if a in set(AlertKind))
    return DroneLive(
        drone_id=r.drone_id,
        link=_link(r.link),
        fix=fix,
        position_at=r.position_at,
        battery_percent=r.battery_percent,
        mode=r.mode,
        flying=r.flying,
        armed=r.armed,
        text=r.text,
        dock_link=None if r.dock_link is None else _link(r.dock_link),
        dock_heard=r.dock_heard,
        dock_mode=r.dock_mode,
        drone_in_dock=r.drone_in_dock,
        drone_charging=r.drone_charging,
        cover_state=r.cover_state,
        watch=Watch(active, r.last_heard),
    )
