"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from gateway.api.state import AppState, get_state

router = APIRouter(tags=["operations"])
StateDep = Annotated[AppState, Depends(get_state)]


@router.get("/healthz", summary="The process is alive and its loop is responsive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", summary="Ready to serve: database reachable, transports connected")
async def readyz(state: StateDep) -> JSONResponse:
    checks = {name: bool(check()) for name, check in state.ready_checks.items()}
    ok = all(checks.values())
    return JSONResponse({"ready": ok, "checks": checks}, status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(state: StateDep) -> Response:
    for name, depth in state.bus.depths().items():
        state.metrics.queue_depth.labels(f"bus:{name}").set(depth)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
