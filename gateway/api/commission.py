"""Commissioning checks for field technicians: ``POST /api/v1/commission/{device_id}`` answers
exactly what ``citygate commission DEVICE --json`` prints (one function builds both,
``gateway.services.commissioning.service``), with the running gateway's fresher facts: the
state written behind is flushed first, the live directory's sensor facts win over the row, and
a gate the gateway drives is probed through its own controller."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import actor_of, require
from gateway.api.problems import ProblemError, responses
from gateway.api.state import AppState, get_state
from gateway.directory.registry import Registry
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.commissioning.gather import (
    CannotCommission,
    FreshGates,
    Kind,
    NoSuchDevice,
)
from gateway.services.commissioning.service import (
    Commissioner,
    LiveGates,
    directory_overlay,
    keepalive_timeout,
)
from gateway.services.lanes.cluster_gates import ClusterGates
from gateway.services.lanes.modbus_gates import ModbusGates

router = APIRouter(prefix="/api/v1", tags=["commissioning"])
StateDep = Annotated[AppState, Depends(get_state)]
Technician = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
DeviceId = Annotated[str, Path(min_length=1, max_length=64)]


class CommissionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # "cycle": "yes" moves nothing
    cycle: bool = Field(
        False, description="gate: also raise and lower the barrier, confirmed by read-back"
    )
    kind: Kind | None = Field(None, description="only look for a device of this kind")


class CheckOut(BaseModel):
    name: str
    status: str = Field(description="passed | failed | skipped")
    observed: str
    expected: str
    hint: str = Field(description="what to do when it failed; why, when it was skipped")


class CommissionOut(BaseModel):
    device_id: str
    kind: str = Field(description="sensor | camera | charger | bodycam | gate")
    at: str
    passed: bool = Field(description="no check failed")
    counts: dict[str, int]
    checks: list[CheckOut]
    lifecycle: str | None = Field(
        description="its lifecycle state after the checks (passing moves a provisioned device "
        "to commissioned)"
    )
    commissioned_now: bool = Field(description="these checks moved it to commissioned")


def commissioner(state: AppState) -> Commissioner:
    c = state.commissioning
    fresh = FreshGates(state.clock, c.gate_timeout_s, dict(state.serial_ports))
    gates = state.lanes.gates
    local = gates.local if isinstance(gates, ClusterGates) else gates  # PostgreSQL: its own
    live = local.controller if isinstance(local, ModbusGates) else (lambda lane_id: None)

    async def prepare(kind: Kind) -> None:
        if kind == "charger":
            await state.charging.flushed()
        elif kind == "bodycam" and state.bodycams is not None:
            await state.bodycams.flush()

    return Commissioner(
        state.sessions, c, keepalive_timeout(state.bodycams_config), state.clock,
        LiveGates(live, fresh), prepare, directory_overlay(state.directory),
    )  # fmt: skip


@router.post(
    "/commission/{device_id}",
    response_model=CommissionOut,
    summary="Commissioning checks of one device (pass/fail table)",
    description="A berth sensor, plate camera, charger, body cam, or a lane's gate controller "
    "(by the lane's id). `passed` is true when no check failed (skipped ones say why in "
    "`hint`). With `cycle`, a gate's barrier is raised and lowered.",
    responses=responses(
        404,
        409,
        s404="no such device (code no_device)",
        s409="a device with no checks, or an id several kinds share (code cannot_commission)",
    ),
)
async def commission(
    device_id: DeviceId,
    state: StateDep,
    who: Technician,
    body: Annotated[CommissionRequest | None, Body()] = None,
) -> dict[str, Any]:
    req = body or CommissionRequest()
    try:
        out = await commissioner(state).commission(
            device_id, kind=req.kind, cycle=req.cycle, actor=actor_of(who)
        )
    except NoSuchDevice as exc:
        raise ProblemError(404, str(exc), "no_device") from None
    except CannotCommission as exc:
        raise ProblemError(409, str(exc), "cannot_commission") from None
    if out["commissioned_now"]:
        if out["kind"] in ("sensor", "camera"):  # this instance's directory follows at once
            registry = Registry(state.sessions, state.directory, state.book)
            for e in await registry.refresh(str(out["device_id"]), state.clock()):
                state.bus.publish(e)
        state.changed()
    return out
