"""Plate cameras push their reads here, each to its own URL with its secret.

``POST /cameras/{camera_id}/{secret}/hikvision`` (ISAPI alarm server), ``/vzenith``, and
``/NotificationInfo/TollgateInfo`` + ``/NotificationInfo/KeepAlive`` (Dahua ITSAPI, whose
base URL is ``/cameras/{camera_id}/{secret}``). Cameras cannot send bearer tokens.

A push is admitted (unknown camera or wrong secret: 403, the same for both, counted), parsed
by the vendor's pure parser (bad input: 422 problem with the reason as ``code``, counted, and
the body kept under the evidence directory's ``rejected/``), stored durably with its
pictures, and only then decided by the lane (``LaneDecider``) and answered in the vendor's
shape. A read whose plate is unreadable or impossible is still stored and answered (status
``unread`` / ``bad_plate``): refusing it would only make a Vzenith camera re-send it forever.
A duplicate resend is answered as a success (with ``ContinuePushOffline``) and not decided again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError

from drivers.cameras import (
    DAHUA_REPLY,
    CameraError,
    CameraHeartbeat,
    CameraRead,
    build_response,
    parse_hikvision,
    parse_keepalive,
    parse_tollgate,
    parse_vzenith,
    serial_items,
)
from drivers.cameras.framing import DisplayModelError, Framing, display_model
from gateway.api.problems import problem, responses
from gateway.api.state import AppState, get_state
from gateway.directory.cameras import admit
from gateway.directory.devices import DeviceEntry
from gateway.services.cameras.store import status_of
from gateway.services.lanes.contract import NO_ACTION, LaneAnswer

log = logging.getLogger(__name__)
PREFIX = "/cameras"
router = APIRouter(prefix=PREFIX, tags=["plate cameras (per-camera URL secret)"])
StateDep = Annotated[AppState, Depends(get_state)]
Parsed = CameraRead | CameraHeartbeat
Render = Callable[[CameraRead | None, LaneAnswer], dict[str, Any]]
_ERRORS = responses(403, 413, 422, 503)


def _body(content: dict[str, Any]) -> dict[str, Any]:
    """What a vendor's push carries, for the OpenAPI document (the route reads it raw: the
    pure parser decides, and what it cannot take is a 422 naming why)."""
    return {"requestBody": {"required": True, "content": content}}


_JSON = _body({"application/json": {"schema": {"type": "object"}}})
_HIKVISION = _body(
    {
        "multipart/form-data": {"schema": {"type": "object"}},
        "application/xml": {"schema": {"type": "string"}},
    }
)


def redacted(path: str) -> str:
    """*path* with a camera URL's secret masked, for logs."""
    parts = path.split("/")
    if path.startswith(PREFIX + "/") and len(parts) > 3:
        parts[3] = "***"
    return "/".join(parts)


def _note(state: AppState, camera: str, reason: str, text: str) -> None:
    """One log line per camera and reason a minute (a broken camera pushes every second)."""
    quiet = state.camera_reads.quiet
    now = time.monotonic()
    if now - quiet.get((camera, reason), -1e9) >= 60:
        if len(quiet) > 10_000:
            quiet.clear()
        quiet[camera, reason] = now
        log.warning("camera %s: %s", camera, text)


def _refused(state: AppState, reason: str) -> JSONResponse:
    state.metrics.camera_refused.labels(reason).inc()
    return problem(403, "unknown camera or wrong secret", "camera_refused")


async def _push(
    request: Request,
    state: AppState,
    camera_id: str,
    secret: str,
    vendor: str,
    parse: Callable[[bytes, str], Parsed],
    render: Render,
) -> Response:
    entry = state.directory.get(camera_id.lower()) if len(camera_id) <= 64 else None
    camera, reason = admit(entry, secret, vendor)
    if camera is None:
        return _refused(state, reason)
    body = await request.body()
    now = state.clock()
    try:
        parsed = parse(body, camera.id)
    except CameraError as exc:
        return await _rejected(state, camera, vendor, exc, body)
    state.directory.seen(camera, now)
    if isinstance(parsed, CameraHeartbeat):
        state.metrics.camera_pushes.labels(vendor, "heartbeat").inc()
        return JSONResponse(render(None, NO_ACTION))
    try:
        stored, answer = await state.lane_decider.on_push(parsed, camera)
    except Exception as exc:  # the database or the disk is away (or a bug: logged in full)
        state.metrics.camera_pushes.labels(vendor, "store_failed").inc()
        if not isinstance(exc, SQLAlchemyError | OSError):
            log.error("camera %s: read not stored", camera.id, exc_info=exc)
        _note(
            state, camera.id, "store_failed", f"read not stored: {type(exc).__name__}: {exc}"[:300]
        )
        return problem(
            503,
            "the read could not be stored: send it again",
            "unavailable",
            headers={"Retry-After": "5"},
        )
    if stored.duplicate or answer is None:
        state.metrics.camera_pushes.labels(vendor, "duplicate").inc()
        return JSONResponse(render(stored.read, LaneAnswer(open=False, reason="duplicate")))
    state.metrics.camera_pushes.labels(vendor, status_of(stored.read)).inc()
    if answer.reason == "decider_failed":
        state.metrics.camera_pushes.labels(vendor, "decider_failed").inc()
    return JSONResponse(render(stored.read, answer))


async def _rejected(
    state: AppState, camera: DeviceEntry, vendor: str, exc: CameraError, body: bytes
) -> JSONResponse:
    state.metrics.camera_pushes.labels(vendor, exc.reason).inc()
    kept = ""
    try:
        kept = await state.camera_reads.evidence.save_rejected(
            camera.id, state.clock(), exc.reason, body
        )
    except OSError as err:
        _note(state, camera.id, "rejected_not_kept", f"rejected body not kept: {err}")
    _note(state, camera.id, exc.reason, f"push rejected ({exc.reason}): {exc.message} [{kept}]")
    # 422, as every body the API cannot take (FastAPI's own malformed JSON included): the
    # request reached the gateway whole, its content is what is wrong.
    return problem(422, exc.message, exc.reason)


def _ack(read: CameraRead | None, answer: LaneAnswer) -> dict[str, Any]:
    return {"ok": True}


def _dahua(read: CameraRead | None, answer: LaneAnswer) -> dict[str, Any]:
    return dict(DAHUA_REPLY)


def _framing(answer: LaneAnswer) -> Framing:
    try:
        return display_model(answer.display_model)
    except DisplayModelError:  # validated at import; an older row falls back to plain text
        return display_model("text-crlf")


def _vzenith(read: CameraRead | None, answer: LaneAnswer) -> dict[str, Any]:
    resend = read is not None and read.offline and read.record_id is not None
    return build_response(
        open_gate=answer.open,
        serial=serial_items(answer.display, answer.voice, framing=_framing(answer)),
        continue_plateid=read.record_id if resend and read else None,
    )


@router.post(
    "/{camera_id}/{secret}/hikvision",
    summary="Hikvision ISAPI ANPR push (EventNotificationAlert, multipart or XML)",
    responses=_ERRORS,
    openapi_extra=_HIKVISION,
)
async def hikvision(camera_id: str, secret: str, request: Request, state: StateDep) -> Response:
    ctype = request.headers.get("content-type", "")

    def parse(body: bytes, cam: str) -> Parsed:
        return parse_hikvision(
            body, ctype, cam, zone=state.zone, max_image_bytes=state.camera_image_bytes
        )

    return await _push(request, state, camera_id, secret, "hikvision", parse, _ack)


@router.post(
    "/{camera_id}/{secret}/vzenith",
    summary="Vzenith AlarmInfoPlate push or heartbeat; the reply drives the lane",
    responses=_ERRORS,
    openapi_extra=_JSON,
)
async def vzenith(camera_id: str, secret: str, request: Request, state: StateDep) -> Response:
    def parse(body: bytes, cam: str) -> Parsed:
        return parse_vzenith(body, cam, max_image_bytes=state.camera_image_bytes)

    return await _push(request, state, camera_id, secret, "vzenith", parse, _vzenith)


@router.post(
    "/{camera_id}/{secret}/NotificationInfo/TollgateInfo",
    summary="Dahua ITSAPI TollgateInfo (a plate read)",
    responses=_ERRORS,
    openapi_extra=_JSON,
)
async def dahua_tollgate(
    camera_id: str, secret: str, request: Request, state: StateDep
) -> Response:
    def parse(body: bytes, cam: str) -> Parsed:
        return parse_tollgate(body, cam, zone=state.zone, max_image_bytes=state.camera_image_bytes)

    return await _push(request, state, camera_id, secret, "dahua", parse, _dahua)


@router.post(
    "/{camera_id}/{secret}/NotificationInfo/KeepAlive",
    summary="Dahua ITSAPI KeepAlive",
    responses=_ERRORS,
    openapi_extra=_JSON,
)
async def dahua_keepalive(
    camera_id: str, secret: str, request: Request, state: StateDep
) -> Response:
    return await _push(request, state, camera_id, secret, "dahua", parse_keepalive, _dahua)
