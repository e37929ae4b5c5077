"""Parking sessions for the app (public, read-only), payments (payment backend token), refunds
(operators) and lane plate reads (device token).

What a session lookup shows depends on the caller. Anyone who knows a plate (it is written on
the car) may learn what that car owes, not where it stands: the **public view** has the
session's id, kind, plate, vehicle class, state, entry and exit times, the amounts (fee, paid,
due, grace) and the bill's lines as times and amounts. It has no ``site_id``, ``berth_id``,
``berth_number``, ``note``, line ``rule`` (a deduction is named after its car park) and a
pricing error only as a fixed text (the real one can name the site). The amount can still
hint at the tariff class of the place, a group of sites; that is the price of answering
"what do I owe" at all. The **full view** adds them, for a bearer token of the app's payment
backend (``payments``), ``operator``, ``inspector`` or ``admin``; a token of another role gets
the public view, an invalid one 401. ``GET /sessions/{id}`` follows the same rule: a plate
lookup hands out the id, so the id must not show more than the plate does.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from events import PlateRead
from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.bounds import Instant
from gateway.directory.tokens import Role, TokenError, TokenInfo, verify_token
from gateway.services.parking.payments import PaymentError, PaymentRecord
from gateway.services.parking.sessions import SessionView
from parking.sessions import PlateError, normalise_plate

router = APIRouter(prefix="/api/v1", tags=["sessions and payments"])
StateDep = Annotated[AppState, Depends(get_state)]
Payer = Annotated[TokenInfo, Depends(require(Role.PAYMENTS, Role.OPERATOR))]
Operator = Annotated[TokenInfo, Depends(require(Role.OPERATOR))]
Camera = Annotated[TokenInfo, Depends(require(Role.DEVICE, Role.TECHNICIAN))]
IdempotencyKey = Annotated[
    str,
    Header(
        alias="Idempotency-Key",
        min_length=8,
        max_length=128,
        pattern=r"^[A-Za-z0-9._:-]+$",
        description="unique per payment attempt; the same key again returns the same result",
    ),
]
RECENT = timedelta(hours=24)
FULL_VIEW = frozenset({Role.PAYMENTS, Role.OPERATOR, Role.INSPECTOR, Role.ADMIN})
PRIVATE = ("site_id", "berth_id", "berth_number", "note")
UNPRICED = "the stay cannot be priced now"
_bearer = HTTPBearer(
    auto_error=False,
    description="optional: a payments, operator or inspector token gets the full view",
)


async def sees_all(
    request: Request,
    state: StateDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> bool:
    """True for a caller that gets the full view (see the module's docstring)."""
    if creds is None:
        if "authorization" in request.headers:  # sent, but not a bearer token
            state.metrics.api_auth_failures.labels("malformed").inc()
            raise problems.ProblemError(
                401,
                "the Authorization header is not a bearer token",
                "invalid_token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        return False
    try:
        async with state.sessions() as session:
            info = await verify_token(session, creds.credentials)
    except TokenError as exc:
        state.metrics.api_auth_failures.labels(exc.reason).inc()
        raise problems.ProblemError(
            401,
            "invalid or revoked token",
            "invalid_token",
            headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
        ) from None
    return info.role in FULL_VIEW


FullView = Annotated[bool, Depends(sees_all)]
OPTIONAL_TOKEN: dict[str, Any] = {"security": [{}]}  # appended: the token is optional
VIEWS = (
    "Without a token (or with one of another role) the **public view**: what is owed "
    "(id, kind, plate, vehicle class, state, entry/exit, fee, paid, due, grace, the bill's "
    "lines as times and amounts) but not where the car stands: no `site_id`, `berth_id`, "
    "`berth_number`, `note` or line `rule`, and `pricing_error` only as a fixed text. "
    "A `payments`, `operator`, `inspector` or `admin` token gets the **full view**. "
    "`view` says which one the answer is."
)


def session_json(v: SessionView) -> dict[str, Any]:
    s = v.settlement
    return {
        "id": v.id,
        "kind": v.kind,
        "site_id": v.site_id,
        "berth_id": v.berth_id,
        "berth_number": v.berth_number,
        "plate": v.plate,
        "vehicle_class": v.vehicle_class,
        "state": v.state,
        "entry": v.entry.isoformat(),
        "exit": v.exit.isoformat() if v.exit else None,
        "priced_at": v.priced_at.isoformat(),
        "priced_until": s.priced_until.isoformat() if s else None,
        "tariff_version": s.quote.tariff_version if s else None,
        "fee_fen": s.quote.total_fen if s else None,
        "paid_fen": v.paid_fen,
        "due_fen": s.due_fen if s else None,
        "paid_at": v.paid_at.isoformat() if v.paid_at else None,
        "exit_grace_until": s.grace_until.isoformat() if s and s.grace_until else None,
        "pricing_error": v.pricing_error,
        "note": v.note,
        "lines": [
            {
                "start": ln.start.isoformat(),
                "end": ln.end.isoformat(),
                "rule": ln.rule,
                "units": ln.units,
                "amount_fen": ln.amount_fen,
            }
            for ln in v.lines
        ],
    }


def shown_json(v: SessionView, full: bool) -> dict[str, Any]:
    """The full view, or the public one (see the module's docstring)."""
    body = session_json(v)
    if full:
        return {**body, "view": "full"}
    for key in PRIVATE:
        del body[key]
    if body["pricing_error"] is not None:
        body["pricing_error"] = UNPRICED
    for line in body["lines"]:
        del line["rule"]
    return {**body, "view": "public"}


def payment_json(p: PaymentRecord) -> dict[str, Any]:
    return {
        "id": p.id,
        "session_id": p.session_id,
        "kind": p.kind,
        "amount_fen": p.amount_fen,
        "method": p.method,
        "provider": p.provider,
        "provider_ref": p.provider_ref,
        "refund_of": p.refund_of,
        "reason": p.reason,
        "created_at": p.created_at.isoformat(),
    }


@router.get(
    "/sessions/{session_id}",
    summary="One parking session, priced now",
    description="The app's handle on a stay (ids are random, 112 bits). " + VIEWS,
    openapi_extra=OPTIONAL_TOKEN,
)
async def get_session(session_id: str, state: StateDep, full: FullView) -> dict[str, Any]:
    if len(session_id) > 64:
        raise problems.ProblemError(404, "no such session", "no_session")
    v = await state.session_store.get(session_id)
    if v is None:
        raise problems.ProblemError(404, "no such session", "no_session")
    body = shown_json(v, full)
    if state.payments is not None:
        body["payments"] = [
            {"kind": p.kind, "amount_fen": p.amount_fen, "created_at": p.created_at.isoformat()}
            for p in await state.payments.of_session(session_id)
        ]
    return body


@router.get(
    "/sessions",
    summary="Find the open (and last 24 h) sessions of a plate or a berth",
    description="Exactly one of `plate` or `berth_id`; the app's 'what do I owe' lookup. "
    "Neither or both is a 422 (code `one_of`) whose `errors` name both parameters. " + VIEWS,
    responses=problems.responses(404, s404="no such berth (code no_berth)"),
    openapi_extra=OPTIONAL_TOKEN,
)
async def find_sessions(
    state: StateDep,
    full: FullView,
    plate: Annotated[
        str | None,
        Query(max_length=16, description="a plate, e.g. 甘G12345; not with `berth_id`"),
    ] = None,
    berth_id: Annotated[
        str | None, Query(max_length=64, description="a berth id; not with `plate`")
    ] = None,
) -> dict[str, Any]:
    if (plate is None) == (berth_id is None):
        raise problems.invalid(
            "give exactly one of plate or berth_id",
            "one_of",
            ("query", "plate"),
            ("query", "berth_id"),
        )
    if plate is not None:
        try:
            plate = normalise_plate(plate)
        except PlateError as exc:
            raise problems.invalid(str(exc), "bad_plate", ("query", "plate")) from None
    if berth_id is not None and berth_id not in state.berths:
        raise problems.ProblemError(404, f"no berth {berth_id!r}", "no_berth")
    views = await state.session_store.find(
        plate=plate, berth_id=berth_id, since=state.clock() - RECENT, limit=20
    )
    return {"sessions": [shown_json(v, full) for v in views]}


class PaymentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    session_id: str = Field(min_length=1, max_length=64)
    amount_fen: int = Field(gt=0, le=100_000_000)
    method: str = Field("app", min_length=1, max_length=32, pattern=r"^[a-z0-9_]+$")
    provider_ref: str | None = Field(
        None,
        min_length=1,
        max_length=128,
        description="the payment backend's transaction id (required with the external provider)",
    )


class RefundRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    amount_fen: int = Field(gt=0, le=100_000_000)
    reason: str = Field(min_length=1, max_length=200)


def _refused(exc: PaymentError) -> JSONResponse:
    return problems.problem(exc.status, exc.message, exc.code, extensions=exc.extra)


@router.post(
    "/payments",
    status_code=201,
    summary="Record a payment of a session (idempotent by Idempotency-Key)",
    responses={
        200: {"description": "replay of an earlier request with the same key"},
        **problems.responses(
            402,
            404,
            409,
            422,
            s402="declined by the payment provider (code declined)",
            s404="no such session (code no_session)",
            s409="nothing is due, or the session cannot be priced (nothing_due, not_priced)",
            s422="invalid, more than is due (over_due), or the key was used for a different "
            "request (idempotency_conflict)",
        ),
    },
)
async def post_payment(
    body: PaymentRequest,
    key: IdempotencyKey,
    token: Payer,
    state: StateDep,
    response: Response,
) -> Any:
    try:
        record, replayed = await state.payments.pay(
            session_id=body.session_id,
            amount_fen=body.amount_fen,
            method=body.method,
            key=key,
            actor=token.id,
            provider_ref=body.provider_ref,
        )
    except PaymentError as exc:
        return _refused(exc)
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return payment_json(record)


@router.post(
    "/payments/{payment_id}/refunds",
    status_code=201,
    summary="Refund (part of) a payment (operators; idempotent by Idempotency-Key)",
    responses=problems.responses(402, s402="declined by the payment provider (code declined)"),
)
async def post_refund(
    payment_id: Annotated[str, Path(max_length=128)],
    body: RefundRequest,
    key: IdempotencyKey,
    token: Operator,
    state: StateDep,
    response: Response,
) -> Any:
    try:
        record, replayed = await state.payments.refund(
            payment_id=payment_id,
            amount_fen=body.amount_fen,
            reason=body.reason,
            key=key,
            actor=token.id,
        )
    except PaymentError as exc:
        return _refused(exc)
    if replayed:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    return payment_json(record)


class PlateReadRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    camera_id: str = Field(min_length=1, max_length=64)
    site_id: str = Field(min_length=1, max_length=64)
    direction: Literal["in", "out"]
    plate: str = Field(min_length=2, max_length=16)
    colour: Literal["blue", "yellow", "green", "yellow_green", "white", "black"] | None = None
    confidence: float | None = Field(None, ge=0, le=1, strict=True)
    lane: str | None = Field(None, max_length=32)
    image_ref: str | None = Field(None, max_length=500)
    ts: Instant = Field(description="when the camera read the plate (ISO 8601 with offset)")


@router.post(
    "/plate-reads",
    summary="A lane camera's plate read at a car park entry or exit (device token)",
)
async def post_plate_read(body: PlateReadRequest, token: Camera, state: StateDep) -> dict[str, Any]:
    if body.site_id not in state.sites:
        state.metrics.sessions.labels("plate", "unknown_site").inc()
        raise problems.invalid(
            f"unknown site {body.site_id!r}", "unknown_site", ("body", "site_id")
        )
    try:
        plate = normalise_plate(body.plate)
    except PlateError as exc:
        state.metrics.sessions.labels("plate", "bad_plate").inc()
        raise problems.invalid(str(exc), "bad_plate", ("body", "plate")) from None
    if body.confidence is not None and body.confidence < state.min_plate_confidence:
        state.metrics.sessions.labels("plate", "low_confidence").inc()
        raise problems.invalid(
            f"confidence {body.confidence} is below the configured minimum "
            f"{state.min_plate_confidence}",
            "low_confidence",
            ("body", "confidence"),
        )
    if body.ts > state.clock() + timedelta(minutes=5):
        state.metrics.sessions.labels("plate", "future").inc()
        raise problems.invalid(
            "ts is in the future (check the camera's clock)", "future", ("body", "ts")
        )
    read = PlateRead(
        device_id=body.camera_id,
        ts=body.ts,
        site_id=body.site_id,
        direction=body.direction,
        plate=plate,
        colour=body.colour,
        confidence=body.confidence,
        lane=body.lane,
        image_ref=body.image_ref,
    )
    result = await state.session_store.on_plate_read(read)
    state.bus.publish(read)
    return {"outcome": result.outcome, "session_id": result.session_id, "plate": plate}
