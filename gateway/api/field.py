"""The field picture for operators and inspectors: the officers' body cams, online or not,
battery and storage, last position (WGS-84) and recent alarms. The same view function as
``citygate field`` (``gateway.services.bodycams.views.field_view``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends

from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.bodycams.views import field_view

router = APIRouter(prefix="/api/v1", tags=["Body cams"])
StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.OPERATOR, Role.INSPECTOR))]


async def _view(state: AppState, device_id: str | None = None) -> dict[str, Any]:
    if state.bodycams is not None:
        await state.bodycams.flush()  # what the platform knows now, not a second ago
    c = state.bodycams_config
    async with state.sessions() as db:
        return await field_view(
            db, state.clock(), c.keepalive_interval_s, c.keepalive_count, device_id
        )


@router.get(
    "/field",
    summary="The officers' body cams: online, battery, storage, last position, alarms",
    description="Positions are WGS-84 degrees, as the cams send them (`datum`).",
)
async def field(state: StateDep, _: Reader) -> dict[str, Any]:
    return await _view(state)


@router.get(
    "/field/{device_id}",
    summary="One body cam of the field picture",
    responses=problems.responses(404, s404="no such body cam (code no_bodycam)"),
)
async def field_cam(device_id: str, state: StateDep, _: Reader) -> dict[str, Any]:
    view = await _view(state, device_id)
    if not view["cams"]:
        raise problems.ProblemError(404, f"no body cam {device_id!r}", "no_bodycam")
    cam: dict[str, Any] = view["cams"][0]
    return {"at": view["at"], "datum": view["datum"], **cam}
