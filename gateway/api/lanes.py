"""Car-park lanes for operators: state, camera and gate, the last decisions; and the
operator's open, which is always honoured (a driver is never trapped) and always recorded
with its reason and the operator's token id.

Errors answer the problem shape (``gateway.api.problems``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, ConfigDict, Field

from gateway.api.auth import require
from gateway.api.problems import ProblemError, responses
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.lanes.runtime import UnknownLane
from gateway.services.lanes.views import decision_json, lane_json

router = APIRouter(prefix="/api/v1", tags=["lanes"])
StateDep = Annotated[AppState, Depends(get_state)]
Viewer = Annotated[TokenInfo, Depends(require(Role.OPERATOR, Role.INSPECTOR, Role.TECHNICIAN))]
Operator = Annotated[TokenInfo, Depends(require(Role.OPERATOR))]
LaneId = Annotated[str, Path(min_length=1, max_length=64)]


class OpenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(
        min_length=3, max_length=200, description="why the operator opens (recorded)"
    )


def _lane(state: AppState, lane_id: str) -> Any:
    rt = state.lanes.lanes.get(lane_id)
    if rt is None:
        raise ProblemError(404, f"no lane {lane_id!r}", "no_such_lane")
    return rt


@router.get(
    "/lanes",
    summary="Every lane: state, camera, gate (operators, inspectors, technicians)",
    responses=responses(401, 403),
)
async def list_lanes(state: StateDep, token: Viewer) -> dict[str, Any]:
    lanes = sorted(state.lanes.lanes.values(), key=lambda rt: rt.config.id)
    gates = state.lanes.gates
    return {"lanes": [lane_json(rt, gate=gates.status(rt.config.id)) for rt in lanes]}


@router.get(
    "/lanes/{lane_id}",
    summary="One lane with its last decisions, newest first",
    responses=responses(401, 403, 404),
)
async def get_lane(lane_id: LaneId, state: StateDep, token: Viewer) -> dict[str, Any]:
    return lane_json(_lane(state, lane_id), decisions=True, gate=state.lanes.gates.status(lane_id))


@router.post(
    "/lanes/{lane_id}/open",
    status_code=202,
    summary="An operator opens the lane's gate, whatever its state (reason recorded)",
    description="Answers once the decision is recorded (state `pending` or `sent`); follow it "
    "on `GET /api/v1/lanes/{id}` to its outcome.",
    responses=responses(401, 403, 404, 422, 503),
)
async def open_lane(
    lane_id: LaneId, body: OpenRequest, state: StateDep, token: Operator
) -> dict[str, Any]:
    _lane(state, lane_id)
    reason = " ".join(body.reason.split())
    if len(reason) < 3:
        raise ProblemError(422, "reason must say why (at least 3 characters)", "invalid")
    try:
        decision = await state.lanes.operator_open(lane_id, reason, token.id)
    except UnknownLane:
        raise ProblemError(404, f"no lane {lane_id!r}", "no_such_lane") from None
    except RuntimeError as exc:
        raise ProblemError(503, str(exc), "not_recorded") from None
    lane = lane_json(_lane(state, lane_id), gate=state.lanes.gates.status(lane_id))
    return {"lane": lane, "decision": decision_json(decision)}
