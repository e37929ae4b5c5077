"""The telemetry pipeline's status for inspectors and operators: the same view, computed by
the same function, as ``citygate telemetry status``."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends

from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role, TokenInfo
from gateway.services.telemetry import TelemetryStatus, telemetry_status
from telemetry.spool import SpoolError

router = APIRouter(prefix="/api/v1/telemetry", tags=["operations"])

StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.INSPECTOR, Role.OPERATOR))]


@router.get(
    "/status",
    response_model=TelemetryStatus,
    summary="Telemetry: pending, spooled, dropped, dead-lettered, delivered",
    responses=problems.responses(
        503, s503="no telemetry spool yet, or it is unreadable (code no_spool)"
    ),
)
async def get_status(state: StateDep, _: Reader) -> TelemetryStatus:
    try:
        out = await asyncio.to_thread(telemetry_status, state.telemetry, state.clock().timestamp())
    except (OSError, SpoolError) as exc:
        raise problems.ProblemError(
            503, f"telemetry spool unreadable: {type(exc).__name__}", "no_spool"
        ) from None
    if out is None:
        raise problems.ProblemError(503, "no telemetry spool yet", "no_spool")
    return out
