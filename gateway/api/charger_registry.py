"""The charger registry for technicians (token): register a charger, rotate its OCPP
password, move or retire it. The same directory functions as ``citygate chargers``; each
change goes through the change feed, so every gateway instance follows it within seconds.

An OCPP password is in the answer of the request that made it, once; it is stored hashed and
never shown again.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, status

from gateway.api import problems
from gateway.api.auth import actor_of, require
from gateway.api.state import AppState, get_state
from gateway.directory.chargers import (
    ChargerCreate,
    ChargerError,
    ChargerPatch,
    LifecycleRefused,
    add_charger,
    charger_at,
    set_password,
    update_charger,
)
from gateway.directory.tokens import Role, TokenInfo
from gateway.infra.storage.schema import ChargerRow

router = APIRouter(prefix="/api/v1", tags=["EV chargers"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _out(row: ChargerRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "site_id": row.site_id,
        "place": row.place,
        "lat": row.lat,
        "lon": row.lon,
        "vendor": row.vendor,
        "model": row.model,
        "current": row.current,
        "power_kw": row.power_kw,
        "connectors": row.connectors,
        "lifecycle": row.lifecycle,
        "password_set_at": _iso(row.password_set_at),
        "updated_at": _iso(row.updated_at),
    }


_CODES = {404: "no_charger", 409: "conflict", 422: "invalid"}


def _refused(exc: ChargerError) -> problems.ProblemError:
    return problems.ProblemError(exc.status, str(exc), _CODES.get(exc.status))


@router.post(
    "/chargers",
    status_code=status.HTTP_201_CREATED,
    summary="Register a charger; its OCPP password is in this answer, once",
    responses=problems.responses(409, s409="the id exists, or is retired (code conflict)"),
)
async def create_charger(body: ChargerCreate, state: StateDep, who: Technician) -> dict[str, Any]:
    now = state.clock()
    fields = body.model_dump(exclude={"id", "site_id", "place", "lat", "lon"})
    try:
        async with state.sessions.begin() as db:
            new = await charger_at(
                db, body.id, body.site_id, body.place, body.lat, body.lon, **fields
            )
            password = await add_charger(db, new, now, actor=actor_of(who))
            row = await db.get(ChargerRow, body.id)
            assert row is not None
            out = _out(row)
    except ChargerError as exc:
        raise _refused(exc) from None
    state.changed()
    return {**out, "password": password}


@router.post(
    "/chargers/{charger_id}/password",
    summary="Rotate a charger's OCPP password; the new one is in this answer, once",
    responses=problems.responses(409, s409="the charger is retired (code conflict)"),
)
async def rotate_password(charger_id: str, state: StateDep, who: Technician) -> dict[str, Any]:
    try:
        async with state.sessions.begin() as db:
            password = await set_password(db, charger_id, state.clock(), actor=actor_of(who))
    except ChargerError as exc:
        raise _refused(exc) from None
    state.changed()
    return {"id": charger_id, "password": password}


@router.patch(
    "/chargers/{charger_id}",
    summary="Move a charger, or move it in the device lifecycle",
    description="`lifecycle` is an operator's move of the device lifecycle (docs/lifecycle.md): "
    "a move it refuses, such as any move of a retired charger (retired is final), is a 409 "
    "whose detail says what to do instead. An empty body (nothing to change) is a 422 with "
    "code `nothing_to_change`.",
    responses=problems.responses(
        409,
        s409="the lifecycle refuses the move, e.g. the charger is retired (code "
        "refused_transition)",
    ),
)
async def patch_charger(
    charger_id: str, body: ChargerPatch, state: StateDep, who: Technician
) -> dict[str, Any]:
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise problems.invalid("nothing to change", "nothing_to_change", ("body",))
    try:
        async with state.sessions.begin() as db:
            out = _out(
                await update_charger(db, charger_id, changes, state.clock(), actor=actor_of(who))
            )
    except LifecycleRefused as exc:  # as POST /api/v1/devices/{id}/lifecycle refuses a move
        raise problems.ProblemError(409, str(exc), "refused_transition") from None
    except ChargerError as exc:
        raise _refused(exc) from None
    state.changed()
    return out
