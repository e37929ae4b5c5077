"""Device registry API for field technicians (token required)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, status

from events import Event
from gateway.api import problems
from gateway.api.auth import actor_of, require
from gateway.api.models import (
    CameraCreate,
    CameraCredentials,
    DeviceCreate,
    DeviceOut,
    DevicePatch,
    DevicesOut,
)
from gateway.api.problems import problem, responses
from gateway.api.state import AppState, get_state
from gateway.directory.registry import Registry, RegistryError
from gateway.directory.tokens import Role, TokenInfo

router = APIRouter(prefix="/api/v1/devices", tags=["devices (token)"])

StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN, Role.INSPECTOR, Role.OPERATOR))]
Writer = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]


def _registry(state: AppState) -> Registry:
    return Registry(state.sessions, state.directory, state.book)


_CODES = {404: "no_device", 409: "conflict", 422: "invalid"}


def _refused(exc: RegistryError) -> problems.ProblemError:
    return problems.ProblemError(exc.status, exc.message, _CODES.get(exc.status))


def _publish(state: AppState, events: list[Event]) -> None:
    for e in events:
        state.bus.publish(e)


@router.get("", response_model=DevicesOut, summary="List devices")
async def list_devices(
    state: StateDep,
    _: Reader,
    kind: Annotated[str | None, Query(max_length=32)] = None,
    site_id: Annotated[str | None, Query(max_length=64)] = None,
    lifecycle: Annotated[str | None, Query(max_length=16)] = None,
) -> DevicesOut:
    rows = await _registry(state).list_devices(kind, site_id, lifecycle)
    return DevicesOut(devices=[DeviceOut.model_validate(r, from_attributes=True) for r in rows])


@router.get("/{device_id}", response_model=DeviceOut, summary="One device")
async def get_device(device_id: str, state: StateDep, _: Reader) -> DeviceOut:
    try:
        row = await _registry(state).get(device_id)
    except RegistryError as exc:
        raise _refused(exc) from None
    return DeviceOut.model_validate(row, from_attributes=True)


@router.post(
    "",
    response_model=DeviceOut,
    status_code=status.HTTP_201_CREATED,
    summary="Register (provision) a berth sensor, optionally bound to a berth",
    responses=problems.responses(409, s409="a device with this DevEUI exists (code conflict)"),
)
async def create_device(body: DeviceCreate, state: StateDep, who: Writer) -> DeviceOut:
    try:
        row, events = await _registry(state).provision(
            body.dev_eui,
            body.model,
            state.clock(),
            berth_id=body.berth_id,
            heartbeat_s=body.heartbeat_s,
            notes=body.notes,
            actor=actor_of(who),
        )
    except RegistryError as exc:
        raise _refused(exc) from None
    _publish(state, events)
    return DeviceOut.model_validate(row, from_attributes=True)


@router.patch(
    "/{device_id}",
    response_model=DeviceOut,
    summary="Bind/unbind, change lifecycle state, annotate",
    responses=problems.responses(
        409, s409="the change conflicts with the device's or berth's state (code conflict)"
    ),
)
async def patch_device(
    device_id: str, body: DevicePatch, state: StateDep, who: Writer
) -> DeviceOut:
    changes = body.model_dump(include=body.model_fields_set)
    try:
        row, events = await _registry(state).update(
            device_id, changes, state.clock(), actor=actor_of(who)
        )
    except RegistryError as exc:
        raise _refused(exc) from None
    _publish(state, events)
    return DeviceOut.model_validate(row, from_attributes=True)


# Dahua's is the ITSAPI base URL: the camera appends /NotificationInfo/TollgateInfo itself.
PUSH_PATHS = {"hikvision": "/hikvision", "vzenith": "/vzenith", "dahua": ""}


def camera_credentials(row: Any, secret: str) -> CameraCredentials:
    path = f"/cameras/{row.id}/{secret}{PUSH_PATHS.get(row.vendor, '')}"
    return CameraCredentials(
        device=DeviceOut.model_validate(row, from_attributes=True), secret=secret, push_path=path
    )


@router.post(
    "/cameras",
    response_model=CameraCredentials,
    status_code=status.HTTP_201_CREATED,
    summary="Register a plate camera (its push URL's secret is in the answer, once)",
    responses=responses(409, 422),
)
async def create_camera(body: CameraCreate, state: StateDep, who: Writer) -> Any:
    try:
        row, secret = await _registry(state).provision_camera(
            body.id,
            body.vendor,
            body.site_id,
            state.clock(),
            lane_id=body.lane_id,
            direction=body.direction,
            notes=body.notes,
            actor=actor_of(who),
        )
    except RegistryError as exc:
        return problem(exc.status, exc.message)
    state.changed()
    return camera_credentials(row, secret)


@router.post(
    "/{device_id}/secret",
    response_model=CameraCredentials,
    summary="Give a plate camera a new push URL secret (the old one stops working)",
    responses=responses(404),
)
async def rotate_camera_secret(device_id: str, state: StateDep, who: Writer) -> Any:
    try:
        row, secret = await _registry(state).rotate_camera_secret(
            device_id, state.clock(), actor=actor_of(who)
        )
    except RegistryError as exc:
        return problem(exc.status, exc.message)
    state.changed()
    return camera_credentials(row, secret)
