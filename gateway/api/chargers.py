"""EV chargers: health for inspectors (token), commands for operators and technicians
(token), availability per location, the posted charging tariff and charging bills (public)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query
from sqlalchemy import select

from charging.billing import summary
from charging.health import liveness, ocpi_status
from drivers.ocpp.commands import COMMANDS
from gateway.api import problems
from gateway.api.auth import actor_of, require
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.infra.storage.schema import ChargerEventRow, ChargingSessionRow
from gateway.services.charging.commands import Refused, send_command
from gateway.services.charging.pricing import bill_json
from gateway.services.charging.views import charger_view, fleet_view, recent_sessions

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
    if charger_id not in state.charging.chargers:
        raise _no_charger(charger_id)
    return charger_view(state.charging, charger_id, state.clock())


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
    async with state.sessions() as db:
        out = await recent_sessions(db, charger_id, limit)
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
    who: Commander,
    params: Annotated[dict[str, Any] | None, Body()] = None,
) -> dict[str, Any]:
    try:
        sent = await send_command(
            state.charging, state.sessions, state.clock, actor_of(who), charger_id, command,
            params or {},
        )  # fmt: skip
    except Refused as exc:
        if exc.code == "bad_params":
            raise problems.invalid(exc.message, "bad_params", ("body",)) from None
        raise problems.ProblemError(exc.status, exc.message, exc.code) from None
    return {
        "charger_id": charger_id,
        "command": command,
        "status": sent.status,
        "payload": sent.payload,
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
