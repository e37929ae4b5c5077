"""The inspectors' views of the chargers: the fleet (behind ``GET /api/v1/chargers``,
``citygate chargers health`` and the web page's fleet page), one charger and its recent
sessions (behind ``GET /api/v1/chargers/{id}[/sessions]`` and the web page's charger page), so
all show the same thing from the same state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from charging.health import ChargerHealth
from gateway.infra.storage.schema import ChargingSessionRow
from gateway.services.charging.fleet import ChargerFleet


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def fleet_line(h: ChargerHealth, rt: ChargerFleet) -> dict[str, Any]:
    """One charger's line of the fleet view (and the head of its detail view)."""
    info = rt.chargers.get(h.charger_id)
    return {
        "id": h.charger_id,
        "site_id": info.site_id if info else None,
        "place": info.place if info else None,
        "lifecycle": info.lifecycle if info else None,
        "state": h.state.value,
        "reason": h.reason,
        "since": _iso(h.since),
        "online": h.liveness == "online",
        "liveness": h.liveness,
    }


def fleet_view(rt: ChargerFleet, now: datetime) -> dict[str, Any]:
    """The inspectors' fleet view at ``now``: counts by state, chargers worst first. The one
    function behind ``GET /api/v1/chargers`` and ``citygate chargers health``, so both show
    the same thing from the same state."""
    fleet = rt.book.fleet(now)
    return {
        "at": fleet.at.isoformat(),
        "total": len(fleet.chargers),
        "counts": {k.value: v for k, v in fleet.counts.items()},
        "chargers": [fleet_line(h, rt) for h in fleet.chargers],
    }


def charger_view(rt: ChargerFleet, charger_id: str, now: datetime) -> dict[str, Any]:
    """One charger's health, connectors, availability and recent faults at ``now``: the body
    of ``GET /api/v1/chargers/{id}`` and what the web page's charger page shows. KeyError for
    a charger the registry does not know."""
    info = rt.chargers[charger_id]
    s = rt.book.state(charger_id)
    h = rt.book.health(charger_id, now)
    avail = rt.book.availability(charger_id, now)
    session = rt.live.get(charger_id)
    return {
        **fleet_line(h, rt),
        "last_seen": _iso(s.last_message_at),
        "reasons": list(h.reasons),
        "protocol": s.protocol,
        "remote": session.remote if session else None,
        # several instances (PostgreSQL): the one the charger is connected to
        "instance": rt.cluster.holder(charger_id) if rt.cluster is not None else None,
        "vendor": info.vendor,
        "model": info.model,
        "reported_vendor": s.vendor,
        "reported_model": s.model,
        "serial": s.serial,
        "firmware": s.firmware,
        "firmware_status": s.firmware_status,
        "last_boot_reason": s.last_boot_reason,
        "last_boot_at": _iso(s.last_boot_at),
        "power_kw": info.power_kw,
        "current": info.current,
        "lat": info.lat,
        "lon": info.lon,
        "heartbeat_s": s.heartbeat_s,
        "energy_today_wh": rt.book.energy_today_wh(charger_id, now),
        "availability": {
            "day": avail.day,
            "week": avail.week,
            "connectors": {str(k): {"day": d, "week": w} for k, (d, w) in avail.connectors.items()},
        },
        "connectors": [
            {
                "id": c.connector_id,
                "status": c.status,
                "error_code": c.error_code,
                "vendor_error_code": c.vendor_error_code,
                "info": c.info,
                "since": _iso(c.since),
                "last_meter_wh": c.last_meter_wh,
                "last_meter_at": _iso(c.last_meter_at),
                "transaction_id": c.transaction_id,
            }
            for c in sorted(s.connectors.values(), key=lambda c: c.connector_id)
            if c.connector_id > 0 or c.status is not None
        ],
        "faults": [
            {
                "connector_id": f.connector_id,
                "start": f.start.isoformat(),
                "end": _iso(f.end),
                "status": f.status,
                "error_code": f.error_code,
                "vendor_error_code": f.vendor_error_code,
                "info": f.info,
            }
            for f in rt.book.faults(charger_id)[:50]
        ],
    }


async def recent_sessions(
    db: AsyncSession, charger_id: str, limit: int, since: datetime | None = None
) -> list[dict[str, Any]]:
    """A charger's charging sessions, newest first (started at or after *since*, if given):
    ``GET /api/v1/chargers/{id}/sessions`` and the web page's charger page."""
    S = ChargingSessionRow
    query = select(S).where(S.charger_id == charger_id)
    if since is not None:
        query = query.where(S.started_at >= since)
    rows = (await db.execute(query.order_by(S.started_at.desc()).limit(limit))).scalars()
    return [
        {
            "id": r.id,
            "connector_id": r.connector_id,
            "transaction_id": r.transaction_id,
            "state": r.state,
            "started_at": r.started_at.isoformat(),
            "ended_at": _iso(r.ended_at),
            "meter_start_wh": r.meter_start_wh,
            "meter_stop_wh": r.meter_stop_wh,
            "total_fen": r.total_fen,
        }
        for r in rows
    ]
