"""Case reports: the case system's signed status callback, and the operators' view.

``POST /api/v1/cases/callback`` carries no bearer token: the case system proves itself with
the shared-secret signature over the raw body, checked before the body is even parsed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.cases.mirror import CallbackPayload, CaseStep, UnknownCase, apply_callback, history
from gateway.cases.outbox import get_case, list_cases, requeue
from gateway.cases.signing import HEADER, SignatureError, verify
from gateway.directory.tokens import Role, TokenInfo
from gateway.infra.storage.schema import CaseReportRow

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.OPERATOR, Role.INSPECTOR))]
Operator = Annotated[TokenInfo, Depends(require(Role.OPERATOR))]
DeliveryState = Literal["pending", "delivered", "rejected"]


# -- models -----------------------------------------------------------------------------


class PlaceOut(BaseModel):
    site_id: str | None
    berth_id: str | None
    zone_id: str | None
    lat: float | None
    lon: float | None


class DeliveryOut(BaseModel):
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="when a pending report is tried next")
    delivered_at: datetime | None
    last_error: str = Field(description="why the last attempt failed or was refused")


class StatusOut(BaseModel):
    status: str
    at: datetime = Field(description="when the case system says the step happened")
    note: str
    received_at: datetime


class CaseOut(BaseModel):
    id: str = Field(description="citygate's id, also the Idempotency-Key of the report")
    remote_id: str | None = Field(description="the case system's own case id, once known")
    category: str
    rule_id: str
    title: str
    observed_at: datetime
    reported_at: datetime
    place: PlaceOut
    device_id: str
    plate: str | None
    prior_offences: int = Field(description="earlier reports of the same plate (两轻一免)")
    evidence: list[str]
    details: dict[str, Any]
    status: str = Field(description="current step of the seven-step loop (never moves back)")
    status_at: datetime | None
    delivery: DeliveryOut


class CaseDetailOut(CaseOut):
    history: list[StatusOut] = Field(description="the case system's updates, in step order")


class CasesOut(BaseModel):
    cases: list[CaseOut]
    next_before: str | None = Field(description="cursor of the next (older) page; null at end")
    next_after: str | None = Field(description="cursor to poll for newer reports")


class CallbackOut(BaseModel):
    result: Literal["advanced", "recorded", "duplicate"] = Field(
        description="advanced: status moved on; recorded: an older step, history only; "
        "duplicate: already known"
    )
    case: CaseDetailOut


def case_out(row: CaseReportRow) -> CaseOut:
    return CaseOut(**_fields(row))


def _fields(row: CaseReportRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "remote_id": row.remote_id,
        "category": row.category,
        "rule_id": row.rule_id,
        "title": row.title,
        "observed_at": row.observed_at,
        "reported_at": row.created_at,
        "place": PlaceOut(
            site_id=row.site_id,
            berth_id=row.berth_id,
            zone_id=row.zone_id,
            lat=row.lat,
            lon=row.lon,
        ),
        "device_id": row.device_id,
        "plate": row.plate,
        "prior_offences": row.prior_offences,
        "evidence": list(row.evidence),
        "details": dict(row.details),
        "status": row.status,
        "status_at": row.status_at,
        "delivery": DeliveryOut(
            state=row.delivery_state,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            last_error=row.last_error,
        ),
    }


async def case_detail(session: AsyncSession, row: CaseReportRow) -> CaseDetailOut:
    steps = await history(session, row.id)
    return CaseDetailOut(
        **_fields(row),
        history=[
            StatusOut(status=s.status, at=s.at, note=s.note, received_at=s.received_at)
            for s in steps
        ],
    )


# -- the case system's callback ---------------------------------------------------------


@router.post(
    "/callback",
    response_model=CallbackOut,
    summary="Status update from the case system (HMAC-signed, no token)",
    responses={401: {"description": "bad, missing or stale signature"}, 404: {}, 503: {}},
)
async def callback(request: Request, state: StateDep) -> CallbackOut:
    runtime = state.cases
    if not runtime.secret:
        runtime.metrics.callbacks.labels("unconfigured").inc()
        raise HTTPException(503, "case callbacks are not configured (no [cases] secret)")
    body = await request.body()
    now = state.clock()
    try:
        verify(
            runtime.secret,
            request.headers.get(HEADER),
            body,
            int(now.timestamp()),
            runtime.tolerance_s,
        )
    except SignatureError as exc:
        runtime.metrics.callbacks.labels(f"signature_{exc.reason}").inc()
        raise HTTPException(401, f"{HEADER} {exc.reason}") from None
    try:
        payload = CallbackPayload.model_validate_json(body)
    except ValidationError as exc:
        runtime.metrics.callbacks.labels("invalid").inc()
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    async with state.sessions.begin() as session:
        try:
            applied = await apply_callback(session, payload, now)
        except UnknownCase as exc:
            runtime.metrics.callbacks.labels("unknown_case").inc()
            raise HTTPException(404, str(exc)) from None
        out = CallbackOut(result=applied.result, case=await case_detail(session, applied.case))
    runtime.metrics.callbacks.labels(applied.result).inc()
    return out


# -- operators --------------------------------------------------------------------------


@router.get("", response_model=CasesOut, summary="Case reports, newest first")
async def get_cases(
    state: StateDep,
    _: Reader,
    status: Annotated[CaseStep | None, Query(description="current step")] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    delivery: Annotated[DeliveryState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[
        str | None, Query(max_length=100, description="next_before of a page")
    ] = None,
    after: Annotated[str | None, Query(max_length=100, description="next_after of a page")] = None,
) -> CasesOut:
    async with state.sessions() as session:
        try:
            page = await list_cases(
                session,
                status=status,
                category=category,
                delivery=delivery,
                limit=limit,
                before=before,
                after=after,
            )
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
    return CasesOut(
        cases=[case_out(r) for r in page.cases],
        next_before=page.next_before,
        next_after=page.next_after,
    )


@router.get("/{case_id}", response_model=CaseDetailOut, summary="One case report, with history")
async def get_one(case_id: str, state: StateDep, _: Reader) -> CaseDetailOut:
    async with state.sessions() as session:
        row = await get_case(session, case_id)
        if row is None:
            raise HTTPException(404, f"no case report with id {case_id!r}")
        return await case_detail(session, row)


@router.post(
    "/{case_id}/redeliver",
    response_model=CaseDetailOut,
    summary="Send a rejected report again (after fixing why the case system refused it)",
)
async def redeliver(case_id: str, state: StateDep, _: Operator) -> CaseDetailOut:
    async with state.sessions.begin() as session:
        row = await get_case(session, case_id)
        if row is None:
            raise HTTPException(404, f"no case report with id {case_id!r}")
        if not await requeue(session, case_id, state.clock()):
            raise HTTPException(
                409, f"case report {case_id!r} is {row.delivery_state}, not rejected"
            )
        await session.refresh(row)
        out = await case_detail(session, row)
    runtime = state.cases
    if runtime is not None and runtime.delivery is not None:
        runtime.delivery.kick()
    return out
