"""The field picture for operators and inspectors: the officers' body cams, online or not,
battery and storage, last position (WGS-84) and recent alarms, and the patrol drones. The same
view function as ``citygate field`` (``gateway.services.bodycams.views.field_view``)."""

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
    if state.drones is not None and device_id is None:
        await state.drones.flush()
    c = state.bodycams_config
    async with state.sessions() as db:
        return await field_view(
            db, state.clock(), c.keepalive_interval_s, c.keepalive_count, device_id,
            state.drones_config.presence_timeout_s,
        )  # fmt: skip


@router.get(
    "/field",
    summary="The officers' body cams (online, battery, storage, last position, alarms) and the "
    "patrol drones",
    description="Positions are WGS-84 degrees, as the cams and drones send them (`datum`). "
    "`drones` is the list of `GET /api/v1/drones`.",
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
