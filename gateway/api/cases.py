"""Case reports: the case system's signed status callback, and the operators' view.

``POST /api/v1/cases/callback`` carries no bearer token: the case system proves itself with
the shared-secret signature over the raw body, checked before the body is even parsed.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError

from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.cases.mirror import CallbackPayload, CaseStep, UnknownCase, apply_callback
from gateway.cases.outbox import get_case, requeue
from gateway.cases.signing import HEADER, SignatureError, verify
from gateway.cases.view import (
    CaseDetailOut,
    CaseOut,
    CasesOut,
    DeliveryOut,
    DeliveryState,
    PlaceOut,
    StatusOut,
    case_detail,
    case_out,
    cases_page,
)
from gateway.directory.tokens import Role, TokenInfo

__all__ = [
    "CaseDetailOut",
    "CaseOut",
    "CasesOut",
    "DeliveryOut",
    "PlaceOut",
    "StatusOut",
    "case_detail",
    "case_out",
    "router",
]

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])

StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.OPERATOR, Role.INSPECTOR))]
Operator = Annotated[TokenInfo, Depends(require(Role.OPERATOR))]


# -- models -----------------------------------------------------------------------------


class CallbackOut(BaseModel):
    result: Literal["advanced", "recorded", "duplicate"] = Field(
        description="advanced: status moved on; recorded: an older step, history only; "
        "duplicate: already known"
    )
    case: CaseDetailOut


# -- the case system's callback ---------------------------------------------------------


@router.post(
    "/callback",
    response_model=CallbackOut,
    summary="Status update from the case system (HMAC-signed, no token)",
    responses=problems.responses(
        401,
        404,
        503,
        s401="bad, missing or stale signature (code bad_signature)",
        s404="no such case report (code no_case)",
        s503="case callbacks are not configured (code not_configured)",
    ),
)
async def callback(request: Request, state: StateDep) -> CallbackOut:
    runtime = state.cases
    if not runtime.secret:
        runtime.metrics.callbacks.labels("unconfigured").inc()
        raise problems.ProblemError(
            503, "case callbacks are not configured (no [cases] secret)", "not_configured"
        )
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
        raise problems.ProblemError(401, f"{HEADER} {exc.reason}", "bad_signature") from None
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
            raise problems.ProblemError(404, str(exc), "no_case") from None
        out = CallbackOut(result=applied.result, case=await case_detail(session, applied.case))
    runtime.metrics.callbacks.labels(applied.result).inc()
    return out


# -- operators --------------------------------------------------------------------------


@router.get(
    "",
    response_model=CasesOut,
    summary="Case reports, newest first",
    description="Page with `before` (older) or `after` (newer), not both: both is a 422 (code "
    "`one_of`) whose `errors` name both.",
)
async def get_cases(
    state: StateDep,
    _: Reader,
    status: Annotated[CaseStep | None, Query(description="current step")] = None,
    category: Annotated[str | None, Query(max_length=16)] = None,
    delivery: Annotated[DeliveryState | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before: Annotated[
        str | None, Query(max_length=100, description="next_before of a page; not with `after`")
    ] = None,
    after: Annotated[
        str | None, Query(max_length=100, description="next_after of a page; not with `before`")
    ] = None,
) -> CasesOut:
    if before is not None and after is not None:
        raise problems.invalid(
            "give before or after, not both", "one_of", ("query", "before"), ("query", "after")
        )
    async with state.sessions() as session:
        try:
            return await cases_page(
                session,
                status=status,
                category=category,
                delivery=delivery,
                limit=limit,
                before=before,
                after=after,
            )
        except ValueError as exc:
            raise problems.invalid(
                str(exc), "bad_cursor", ("query", "before" if before else "after")
            ) from None


@router.get("/{case_id}", response_model=CaseDetailOut, summary="One case report, with history")
async def get_one(case_id: str, state: StateDep, _: Reader) -> CaseDetailOut:
    async with state.sessions() as session:
        row = await get_case(session, case_id)
        if row is None:
            raise problems.ProblemError(404, f"no case report {case_id[:64]!r}", "no_case")
        return await case_detail(session, row)


@router.post(
    "/{case_id}/redeliver",
    response_model=CaseDetailOut,
    summary="Send a rejected report again (after fixing why the case system refused it)",
    responses=problems.responses(409, s409="the report is not rejected (code not_rejected)"),
)
async def redeliver(case_id: str, state: StateDep, _: Operator) -> CaseDetailOut:
    async with state.sessions.begin() as session:
        row = await get_case(session, case_id)
        if row is None:
            raise problems.ProblemError(404, f"no case report {case_id[:64]!r}", "no_case")
        if not await requeue(session, case_id, state.clock()):
            raise problems.ProblemError(
                409,
                f"case report {case_id!r} is {row.delivery_state}, not rejected",
                "not_rejected",
            )
        await session.refresh(row)
        out = await case_detail(session, row)
    runtime = state.cases
    if runtime is not None and runtime.delivery is not None:
        runtime.delivery.kick()
    return out
