"""The body cam registry for technicians (token): register a cam for an officer and set or
rotate its digest password. The same directory functions as ``citygate bodycams``; each
change goes through the change feed, so the SIP platform takes it within seconds.

A password is in the answer of the request that set it, once; only HA1 is stored.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, status

from gateway.api import problems
from gateway.api.auth import actor_of, require
from gateway.api.state import AppState, get_state
from gateway.directory.bodycams import (
    BodycamCreate,
    BodycamError,
    BodycamPassword,
    add_bodycam,
    registry_view,
    set_password,
)
from gateway.directory.tokens import Role, TokenInfo

router = APIRouter(prefix="/api/v1", tags=["Body cams"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
_CODES = {404: "no_bodycam", 409: "conflict", 422: "invalid"}


def _refused(exc: BodycamError) -> problems.ProblemError:
    return problems.ProblemError(exc.status, str(exc), _CODES.get(exc.status))


@router.get("/devices/bodycams", summary="The registered body cams and their officers")
async def list_bodycams(state: StateDep, _: Technician) -> dict[str, Any]:
    async with state.sessions() as db:
        return {"bodycams": await registry_view(db)}


@router.post(
    "/devices/bodycams",
    status_code=status.HTTP_201_CREATED,
    summary="Register a body cam; its digest password is in this answer, once",
    responses=problems.responses(409, s409="the id exists (code conflict)"),
)
async def create_bodycam(body: BodycamCreate, state: StateDep, who: Technician) -> dict[str, Any]:
    realm = state.bodycams_config.effective_realm
    try:
        async with state.sessions.begin() as db:
            password = await add_bodycam(
                db,
                body.id,
                body.officer_id,
                realm,
                body.password,
                state.clock(),
                actor=actor_of(who),
            )
    except BodycamError as exc:
        raise _refused(exc) from None
    state.changed()
    return {"id": body.id, "officer_id": body.officer_id, "realm": realm, "password": password}


@router.post(
    "/devices/bodycams/{device_id}/password",
    summary="Set or rotate a body cam's digest password; the new one is in this answer, once",
    responses=problems.responses(404, s404="no such body cam (code no_bodycam)"),
)
async def rotate_bodycam_password(
    device_id: str,
    state: StateDep,
    who: Technician,
    body: Annotated[BodycamPassword | None, Body()] = None,
) -> dict[str, Any]:
    realm = state.bodycams_config.effective_realm
    given = body.password if body is not None else None
    try:
        async with state.sessions.begin() as db:
            password = await set_password(
                db, device_id, realm, given, state.clock(), actor=actor_of(who)
            )
    except BodycamError as exc:
        raise _refused(exc) from None
    state.changed()
    return {"id": device_id, "realm": realm, "password": password}
