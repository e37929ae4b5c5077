"""What operators see of the drones: one function behind ``GET /api/v1/drones``,
``GET /api/v1/drones/{id}``, the drones of ``GET /api/v1/field`` and ``citygate drones``, read
from the database (the running service flushes its state first), so all show the same thing.

A drone's ``link`` (and its dock's) is ``online`` when its link said so within
``presence_timeout_s``, ``lost`` when the link said lost or it has been silent longer,
``unknown`` when it was never heard.
Positions are WGS-84 degrees, as the vehicles send them (``datum``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.infra.storage.schema import DroneCommandRow, DroneRow, DroneStateRow
from gateway.services.drones.store import command_json, record_of

__all__ = ["DATUM", "drone_lines", "drones_view"]

DATUM = "WGS-84"


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def link_state(st: DroneStateRow | None, now: datetime, timeout_s: float) -> str:
    if st is None or st.last_heard is None:
        return "unknown" if st is None or st.link != "lost" else "lost"
    if st.link == "lost" or (now - st.last_heard).total_seconds() > timeout_s:
        return "lost"
    return "online"


def _line(d: DroneRow, st: DroneStateRow | None, now: datetime, timeout_s: float) -> dict[str, Any]:
    position = None
    if st is not None and st.lat is not None and st.lon is not None:
        position = {
            "lat": st.lat,
            "lon": st.lon,
            "height_m": st.height_m,
            "elevation_m": st.elevation_m,
            "speed_mps": st.speed_mps,
            "heading_deg": st.heading_deg,
            "at": _iso(st.position_at),
        }
    dock = None
    if d.kind == "dji":
        dock_link = "unknown" if st is None or st.dock_link is None else st.dock_link
        heard = None if st is None else st.dock_heard
        if heard is not None and (now - heard).total_seconds() > timeout_s:
            dock_link = "lost"
        dock = {
            "sn": d.dock_sn,
            "link": dock_link,
            "last_seen": _iso(st.dock_heard) if st else None,
            "mode": st.dock_mode if st else None,
            "drone_in_dock": st.drone_in_dock if st else None,
            "drone_charging": st.drone_charging if st else None,
            "cover_state": st.cover_state if st else None,
        }
    return {
        "id": d.id,
        "name": d.name,
        "kind": d.kind,
        "lifecycle": d.lifecycle,
        "aircraft_sn": d.aircraft_sn,
        "system_id": d.system_id,
        "link": link_state(st, now, timeout_s),
        "last_seen": _iso(st.last_heard) if st else None,
        "flying": st.flying if st else None,
        "mode": st.mode if st else None,
        "battery_percent": st.battery_percent if st else None,
        "position": position,
        "home": {"lat": d.home_lat, "lon": d.home_lon},
        "dock": dock,
        "alerts": list(st.alerts or []) if st else [],
    }


async def drone_lines(db: AsyncSession, now: datetime, timeout_s: float) -> list[dict[str, Any]]:
    """Every drone of the town, by id (the field picture's ``drones``)."""
    return (await drones_view(db, now, timeout_s))["drones"]  # type: ignore[no-any-return]


async def drones_view(
    db: AsyncSession,
    now: datetime,
    timeout_s: float,
    drone_id: str | None = None,
    recent: int = 10,
) -> dict[str, Any]:
    """Every drone (or the one *drone_id*, with its patrol area and last *recent* commands,
    newest first; ``drones`` empty when unknown)."""
    q = select(DroneRow).where(DroneRow.lifecycle != "retired").order_by(DroneRow.id)
    if drone_id is not None:
        q = q.where(DroneRow.id == drone_id)
    drones = list((await db.execute(q)).scalars())
    ids = [d.id for d in drones]
    states = {
        s.drone_id: s
        for s in (
            await db.execute(select(DroneStateRow).where(DroneStateRow.drone_id.in_(ids)))
        ).scalars()
    }
    lines = [_line(d, states.get(d.id), now, timeout_s) for d in drones]
    if drone_id is not None and drones:
        rows = (
            await db.execute(
                select(DroneCommandRow)
                .where(DroneCommandRow.drone_id == drone_id)
                .order_by(DroneCommandRow.requested_at.desc(), DroneCommandRow.id)
                .limit(recent)
            )
        ).scalars()
        lines[0]["patrol_area"] = drones[0].patrol_area
        lines[0]["commands"] = [command_json(record_of(r)) for r in rows]
    return {
        "at": now.isoformat(),
        "datum": DATUM,
        "total": len(lines),
        "online": sum(1 for x in lines if x["link"] == "online"),
        "drones": lines,
    }
