"""Liveness, readiness and Prometheus metrics.

``/metrics`` tells how many devices, chargers and cams there are, why messages are refused
and which subscribers lag: internals, not public data. By default (``[api]
metrics_token_required``) it takes a bearer token of an inspector, an operator or an admin
(Prometheus: ``authorization: {credentials: ...}`` in the scrape config), as every other
non-public read does. ``/healthz`` and ``/readyz`` stay open: probes carry no token and they
tell nothing but up or down."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel

from gateway.api.auth import bearer_scheme, require
from gateway.api.problems import responses
from gateway.api.state import AppState, get_state
from gateway.directory.tokens import Role

router = APIRouter(tags=["operations"])
StateDep = Annotated[AppState, Depends(get_state)]


@router.get("/healthz", summary="The process is alive and its loop is responsive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, bool]
    degraded: list[str]


@router.get(
    "/readyz",
    summary="Ready to serve: database reachable, transports connected",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "not ready: a check fails"}},
)
async def readyz(state: StateDep) -> JSONResponse:
    """503 while a readiness check fails. A degraded check (telemetry: its spool or status
    file cannot be written) shows as false in ``checks`` and is named in ``degraded``, but
    leaves the gateway ready: ingest, the API and OCPP still work, and taking the gateway out
    of a load balancer for a full telemetry disk would stop exactly those."""
    checks = {name: bool(check()) for name, check in state.ready_checks.items()}
    ok = all(checks.values())
    soft = {name: bool(check()) for name, check in state.degraded_checks.items()}
    body = {
        "ready": ok,
        "checks": {**checks, **soft},
        "degraded": sorted(name for name, good in soft.items() if not good),
    }
    return JSONResponse(body, status_code=200 if ok else 503)


SCRAPERS = (Role.INSPECTOR, Role.OPERATOR)  # and admin: read-only staff roles
_scraper = require(*SCRAPERS)


async def scraper(
    request: Request,
    state: StateDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> None:
    """A token of a scraper role, unless ``[api] metrics_token_required = false``."""
    if state.api.metrics_token_required:
        await _scraper(request, creds, state)


@router.get(
    "/metrics",
    summary="Prometheus metrics (bearer token of an inspector, operator or admin by default)",
    response_class=Response,
    dependencies=[Depends(scraper)],
    responses=responses(401, 403),
)
async def metrics(state: StateDep) -> Response:
    for name, depth in state.bus.depths().items():
        state.metrics.queue_depth.labels(f"bus:{name}").set(depth)
    return Response(state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
