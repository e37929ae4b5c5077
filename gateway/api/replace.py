"""``POST /api/v1/devices/{old}/replace``: a failed device out, its replacement in, in one
step (technicians and admins). Answers exactly what ``citygate devices replace --json``
prints (``gateway.directory.replace``), and this instance applies the change at once: the
sensor or camera bindings directly, the rest from the change feed it is kicked to read now
(other instances follow the same feed within seconds)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from gateway.api.auth import actor_of, require
from gateway.api.problems import ProblemError, responses
from gateway.api.state import AppState, get_state
from gateway.directory.registry import Registry
from gateway.directory.replace import replace_device
from gateway.directory.replace_rules import Refused, ReplaceRequest
from gateway.directory.tokens import Role, TokenInfo

router = APIRouter(prefix="/api/v1/devices", tags=["devices (token)"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
OldId = Annotated[str, Path(min_length=1, max_length=64)]


class ReplaceOut(BaseModel):
    kind: str = Field(description="sensor | camera | gate | charger | bodycam")
    old: dict[str, Any] = Field(description="the old device: id and lifecycle (retired)")
    new: dict[str, Any] = Field(
        description="the new device: id, lifecycle, created (registered by this replacement)"
    )
    place: dict[str, Any] = Field(
        description="what moved: berth_id, lane_id (and direction), the charger bay (site_id, "
        "place, lat, lon) or officer_id; site_id where there is one"
    )
    at: str
    credentials: dict[str, str] | None = Field(
        None, description="a new device's OCPP or digest password, or push URL secret: once"
    )


@router.post(
    "/{device_id}/replace",
    response_model=ReplaceOut,
    response_model_exclude_none=True,
    summary="Replace a failed device: retire it and move its place to the new one",
    description="One transaction: the old device is retired and its berth (sensor), lane "
    "(camera; a gate controller is named by its lane's id and `new` is the new controller's "
    "bus URL), charger bay (site, place, position) or officer (body cam) moves to `new`, which "
    "is provisioned already or registered here from the inline fields. `credentials` (a new "
    "device's password or push URL secret) are shown this once.",
    responses=responses(
        404,
        409,
        422,
        s404="no such (old) device (code no_device)",
        s409="the old device is retired or serves no place, the new one serves another place "
        "or is retired, a concurrent replacement won, or an id of several kinds",
        s422="invalid body, the new device is unknown (give its inline fields) or of another kind",
    ),
)
async def replace(
    device_id: OldId, body: ReplaceRequest, state: StateDep, who: Technician
) -> dict[str, Any]:
    try:
        done = await replace_device(
            state.sessions,
            device_id,
            body,
            state.clock(),
            realm=state.bodycams_config.effective_realm,
            actor=actor_of(who),
        )
    except Refused as exc:
        raise ProblemError(exc.status, exc.message, exc.code) from None
    if done.kind in ("sensor", "camera"):
        registry = Registry(state.sessions, state.directory, state.book)
        now = state.clock()
        for key in (done.old["id"], done.new["id"]):
            for event in await registry.refresh(key, now):
                state.bus.publish(event)
    state.changed()
    return done.as_dict()
