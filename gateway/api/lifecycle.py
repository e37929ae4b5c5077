"""The device lifecycle for technicians: ``POST /api/v1/devices/{device_id}/lifecycle`` moves
any kind of device (berth sensor, plate camera, charger, body cam, drone, or a lane's gate
controller by the lane's id) and answers exactly what ``citygate devices lifecycle DEVICE
STATE --json`` prints (``gateway.services.lifecycle.move``). A move the lifecycle does not
allow is a 409 whose detail says what to do instead (``docs/lifecycle.md``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import actor_of, require
from gateway.api.problems import ProblemError, responses
from gateway.api.state import AppState, get_state
from gateway.directory.devices import Lifecycle
from gateway.directory.lifecycle import LifeKind
from gateway.directory.registry import Registry
from gateway.directory.tokens import Role, TokenInfo
from gateway.services import lifecycle

router = APIRouter(prefix="/api/v1", tags=["devices (token)"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
DeviceId = Annotated[str, Path(min_length=1, max_length=64)]


class LifecycleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    state: Lifecycle = Field(description="the state to move to")
    reason: str = Field("", max_length=500, description="why (kept in the audit log)")
    kind: LifeKind | None = Field(None, description="only look for a device of this kind")


class LifecycleOut(BaseModel):
    device_id: str
    kind: str = Field(description="sensor | camera | charger | bodycam | drone | gate")
    from_: str = Field(alias="from", description="its state before")
    to: str = Field(description="its state now")
    changed: bool = Field(description="false when it was already in that state")
    reason: str
    at: str


@router.post(
    "/devices/{device_id}/lifecycle",
    response_model=LifecycleOut,
    response_model_by_alias=True,
    summary="Move a device of any kind through its lifecycle",
    description="provisioned -> commissioned (the commissioning checks do this) -> active "
    "(its first good message, or this) <-> maintenance; any -> retired (final). Audited and "
    "live on every instance through the change feed.",
    responses=responses(
        404,
        409,
        s404="no such device (code no_device)",
        s409="a move the lifecycle does not allow (code refused_transition; the detail says "
        "what to do instead), or an id several kinds share (code ambiguous_device)",
    ),
)
async def move_lifecycle(
    device_id: DeviceId, body: LifecycleRequest, state: StateDep, who: Technician
) -> dict[str, Any]:
    now = state.clock()
    try:
        out = await lifecycle.move(
            state.sessions, device_id, body.state, now, kind=body.kind, actor=actor_of(who),
            reason=body.reason,
        )  # fmt: skip
    except lifecycle.NoSuchDevice as exc:
        raise ProblemError(404, str(exc), "no_device") from None
    except lifecycle.AmbiguousDevice as exc:
        raise ProblemError(409, str(exc), "ambiguous_device") from None
    except lifecycle.Refused as exc:
        raise ProblemError(409, str(exc), "refused_transition") from None
    if out["changed"]:
        if out["kind"] in ("sensor", "camera"):  # this instance's views follow at once
            registry = Registry(state.sessions, state.directory, state.book)
            for e in await registry.refresh(out["device_id"], now):
                state.bus.publish(e)
        state.changed()  # the other kinds (and the other instances) through the feed
    return out
