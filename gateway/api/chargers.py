"""EV chargers: health for inspectors (token), commands for operators and technicians
(token), availability per location, the posted charging tariff and charging bills (public)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select

from charging.billing import summary
from charging.health import liveness, ocpi_status
from drivers.ocpp.commands import COMMANDS, ChargerGone, CommandError, CommandTimeout
from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.infra.storage.schema import ChargerEventRow, ChargingSessionRow
from gateway.services.charging.pricing import bill_json
from gateway.services.charging.views import fleet_line, fleet_view

router = APIRouter(prefix="/api/v1", tags=["EV chargers"])
StateDep = Annotated[AppState, Depends(get_state)]
Inspector = Annotated[TokenInfo, Depends(require(Role.INSPECTOR, Role.OPERATOR, Role.TECHNICIAN))]
Commander = Annotated[TokenInfo, Depends(require(Role.OPERATOR, Role.TECHNICIAN))]


def _no_charger(charger_id: str) -> problems.ProblemError:
    return problems.ProblemError(404, f"no charger {charger_id[:64]!r}", "no_charger")


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


@router.get("/chargers", summary="Fleet summary: counts by state, chargers worst first")
async def fleet(state: StateDep, _: Inspector) -> dict[str, Any]:
    return fleet_view(state.charging, state.clock())


@router.get("/chargers/{charger_id}", summary="One charger's health, connectors and history")
async def charger(charger_id: str, state: StateDep, _: Inspector) -> dict[str, Any]:
    rt = state.charging
    if charger_id not in rt.chargers:
        raise _no_charger(charger_id)
    now = state.clock()
    s = rt.book.state(charger_id)
    h = rt.book.health(charger_id, now)
    info = rt.chargers[charger_id]
    avail = rt.book.availability(charger_id, now)
    session = rt.live.get(charger_id)
    return {
        **fleet_line(h, rt),
        "last_seen": _iso(s.last_message_at),
        "reasons": list(h.reasons),
        "protocol": s.protocol,
        "remote": session.remote if session else None,
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


@router.get("/chargers/{charger_id}/events", summary="What the charger reported, newest first")
async def charger_events(
    charger_id: str,
    state: StateDep,
    _: Inspector,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> dict[str, Any]:
    rt = state.charging
    if charger_id not in rt.chargers:
        raise _no_charger(charger_id)
    E = ChargerEventRow
    async with state.sessions() as db:
        rows = (
            await db.execute(
                select(E)
                .where(E.charger_id == charger_id)
                .order_by(E.ts.desc(), E.id.desc())
                .limit(limit)
            )
        ).scalars()
        events = [
            {
                "ts": r.ts.isoformat(),
                "received_at": r.received_at.isoformat(),
                "kind": r.kind,
                "connector_id": r.connector_id,
                "status": r.status,
                "error_code": r.error_code,
                "vendor_error_code": r.vendor_error_code,
                "detail": r.detail,
            }
            for r in rows
        ]
    return {"charger_id": charger_id, "events": events}


@router.get("/chargers/{charger_id}/sessions", summary="Recent charging sessions, newest first")
async def charger_sessions(
    charger_id: str,
    state: StateDep,
    _: Inspector,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    rt = state.charging
    if charger_id not in rt.chargers:
        raise _no_charger(charger_id)
    S = ChargingSessionRow
    async with state.sessions() as db:
        rows = (
            await db.execute(
                select(S)
                .where(S.charger_id == charger_id)
                .order_by(S.started_at.desc())
                .limit(limit)
            )
        ).scalars()
        out = [
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
    return {"charger_id": charger_id, "sessions": out}


@router.post(
    "/chargers/{charger_id}/commands/{command}",
    summary="Send a command to a connected charger and return its answer",
    description="Commands: "
    + ", ".join(COMMANDS)
    + ". The body holds the command's parameters (checked against the command's own schema: "
    "a 422 with code `bad_params`).",
    responses=problems.responses(
        409,
        504,
        s404="no such charger (code no_charger) or command (no_command)",
        s409="the charger is not connected, or went away before answering (not_connected)",
        s504="the charger did not answer in time (code no_answer)",
    ),
)
async def command(
    charger_id: str,
    command: str,
    state: StateDep,
    _: Commander,
    params: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    rt = state.charging
    if charger_id not in rt.chargers:
        raise _no_charger(charger_id)
    if command not in COMMANDS:
        raise problems.ProblemError(
            404, f"no command {command[:64]!r}; commands: {', '.join(COMMANDS)}", "no_command"
        )
    session = rt.live.get(charger_id)
    if session is None:
        raise problems.ProblemError(
            409, f"charger {charger_id!r} is not connected", "not_connected"
        )
    try:
        # The call runs in its own task: the HTTP handler waits for the answer, never the
        # charger's receive loop.
        result = await session.command(command, params or {}, timeout=rt.config.command_timeout_s)
    except CommandError as exc:
        raise problems.invalid(str(exc), "bad_params", ("body",)) from None
    except CommandTimeout:
        raise problems.ProblemError(
            504, f"charger {charger_id!r} did not answer in time", "no_answer"
        ) from None
    except ChargerGone:
        raise problems.ProblemError(
            409, f"charger {charger_id!r} disconnected before answering", "not_connected"
        ) from None
    return {
        "charger_id": charger_id,
        "command": command,
        "status": result.status,
        "payload": result.payload,
    }


# -- public ---------------------------------------------------------------------------------


@router.get(
    "/charging/locations",
    summary="Charger availability per location, OCPI-style EVSE statuses (public)",
)
async def locations(state: StateDep) -> dict[str, Any]:
    rt = state.charging
    now = state.clock()
    by_location: dict[str, dict[str, Any]] = {}
    for s in rt.book.states():
        info = rt.chargers.get(s.charger_id)
        if info is None or info.lifecycle == "retired":
            continue
        loc = by_location.setdefault(
            info.location,
            {
                "id": info.location,
                "site_id": info.site_id,
                "name": info.place,
                "lat": info.lat,
                "lon": info.lon,
                "evses": [],
                "counts": {},
            },
        )
        offline = liveness(s, now, rt.book.factor, rt.book.grace) == "offline"
        whole = s.connectors.get(0)
        for cid in range(1, info.connectors + 1):
            c = s.connectors.get(cid)
            status = ocpi_status(
                c.status if c else None,
                charger_status=whole.status if whole else None,
                offline=offline,
            ).value
            loc["evses"].append(
                {
                    "uid": f"{s.charger_id}*{cid}",
                    "status": status,
                    "power_kw": info.power_kw,
                    "current": info.current,
                }
            )
            loc["counts"][status] = loc["counts"].get(status, 0) + 1
    return {"at": now.isoformat(), "locations": sorted(by_location.values(), key=lambda x: x["id"])}


@router.get("/charging/tariff", summary="The posted charging tariff, with summaries (public)")
async def charging_tariff(state: StateDep) -> dict[str, Any]:
    rt = state.charging
    now = state.clock()
    try:
        current = rt.tariffs.version_at(now).version
    except ValueError:
        current = rt.tariffs.versions[0].version
    return {
        "current": current,
        "versions": [
            {
                "version": v.version,
                "effective_from": v.effective_from.isoformat(),
                "summary_zh": summary(v, "zh"),
                "summary_en": summary(v, "en"),
            }
            for v in rt.tariffs.versions
        ],
    }


@router.get(
    "/charging/sessions/{session_id}",
    summary="A charging session with its itemised bill (public: the id is the handle)",
)
async def charging_session(session_id: str, state: StateDep) -> dict[str, Any]:
    rt = state.charging
    if len(session_id) > 36:
        raise problems.ProblemError(404, "no such charging session", "no_session")
    async with state.sessions() as db:
        row = await db.get(ChargingSessionRow, session_id)
        if row is None:
            raise problems.ProblemError(404, "no such charging session", "no_session")
        b = row.bill
        if b is None:
            priced = await rt.price(db, row, state.clock())
            b = bill_json(priced) if priced is not None else None
        waiver = await rt.waiver(db, row, state.clock())
    return {
        "id": row.id,
        "charger_id": row.charger_id,
        "connector_id": row.connector_id,
        "state": row.state,
        "started_at": row.started_at.isoformat(),
        "ended_at": _iso(row.ended_at),
        "charging_ended_at": _iso(row.charging_ended_at),
        "meter_start_wh": row.meter_start_wh,
        "meter_stop_wh": row.meter_stop_wh,
        "stop_reason": row.stop_reason,
        "bill": b,
        "parking_waiver": waiver,
    }
