"""The field picture: officers' cams with presence, power, last position and recent alarms,
and the patrol drones (``gateway.services.drones.views``; in the whole picture only).
One function behind ``GET /api/v1/field``, ``GET /api/v1/field/{id}`` and ``citygate field``,
read from the database (the running platform flushes its state first), so all three show the
same thing. Online is the presence rule of ``drivers.gb28181.presence`` at ``now``.
Positions are WGS-84 degrees, as the cams send them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.gb28181.presence import is_online
from gateway.infra.storage.schema import BodycamAlarmRow, BodycamRow, BodycamStateRow, OfficerRow
from gateway.services.drones.views import drone_lines

__all__ = ["DATUM", "field_view"]

DATUM = "WGS-84"
RECENT_ALARMS = 5


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _alarm(a: BodycamAlarmRow) -> dict[str, Any]:
    return {
        "at": _iso(a.at),
        "received_at": _iso(a.received_at),
        "priority": a.priority,
        "method": a.method,
        "alarm_type": a.alarm_type,
        "description": a.description,
        "lat": a.lat,
        "lon": a.lon,
        "case_id": a.case_id,
    }


def _line(
    cam: BodycamRow,
    officer: OfficerRow | None,
    st: BodycamStateRow | None,
    alarms: list[BodycamAlarmRow],
    now: datetime,
    interval_s: float,
    count: int,
) -> dict[str, Any]:
    position = None
    if st is not None and st.lat is not None and st.lon is not None:
        position = {
            "lat": st.lat,
            "lon": st.lon,
            "at": _iso(st.position_at),
            "speed_kmh": st.speed_kmh,
            "direction_deg": st.direction_deg,
        }
    online = st is not None and is_online(
        st.last_keepalive, st.registered_until, now, interval_s, count
    )
    return {
        "device_id": cam.id,
        "officer_id": cam.officer_id,
        "officer": officer.name if officer else None,
        "squad": officer.squad if officer else None,
        "role": officer.role if officer else None,
        "lifecycle": cam.lifecycle,
        "online": online,
        "last_seen": _iso(st.last_keepalive) if st else None,
        "registered_until": _iso(st.registered_until) if st else None,
        "battery_percent": st.battery_percent if st else None,
        "storage_free_mb": st.storage_free_mb if st else None,
        "storage_total_mb": st.storage_total_mb if st else None,
        "position": position,
        "alarms": [_alarm(a) for a in alarms[:RECENT_ALARMS]],
    }


async def field_view(
    db: AsyncSession,
    now: datetime,
    interval_s: float,
    count: int,
    device_id: str | None = None,
    drone_presence_s: float = 10.0,
) -> dict[str, Any]:
    """Every cam (or the one *device_id*; ``cams`` empty when unknown), by squad and officer,
    and (for every cam) the drones, by id (``[drones] presence_timeout_s``)."""
    q = select(BodycamRow)
    if device_id is not None:
        q = q.where(BodycamRow.id == device_id)
    cams = list((await db.execute(q)).scalars())
    ids = [c.id for c in cams]
    officers = {o.id: o for o in (await db.execute(select(OfficerRow))).scalars()}
    states = {
        s.device_id: s
        for s in (
            await db.execute(select(BodycamStateRow).where(BodycamStateRow.device_id.in_(ids)))
        ).scalars()
    }
    alarms: dict[str, list[BodycamAlarmRow]] = {}
    recent = select(BodycamAlarmRow).order_by(BodycamAlarmRow.received_at.desc()).limit(500)
    if device_id is not None:
        recent = recent.where(BodycamAlarmRow.device_id == device_id)
    for a in (await db.execute(recent)).scalars():
        alarms.setdefault(a.device_id, []).append(a)
    lines = []
    for c in cams:
        officer, state = officers.get(c.officer_id or ""), states.get(c.id)
        lines.append(_line(c, officer, state, alarms.get(c.id, []), now, interval_s, count))
    lines.sort(key=lambda x: (x["squad"] or "~", x["officer_id"] or "~", x["device_id"]))
    view = {
        "at": now.isoformat(),
        "datum": DATUM,
        "total": len(lines),
        "online": sum(1 for x in lines if x["online"]),
        "cams": lines,
    }
    if device_id is None:
        view["drones"] = await drone_lines(db, now, drone_presence_s)
    return view
