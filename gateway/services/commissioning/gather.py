"""Commissioning facts, gathered at the edges: the database (what each kind persists) and a
gate controller probed live over Modbus. The rules (``rules.py``) judge them.

Which kind a device id is: a berth sensor or plate camera (``devices``), a charger
(``chargers``), a body cam (``bodycams``) or a lane's gate controller (``lanes``: a gate is
named by its lane's id, as the gateway names it).
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.backoff import Backoff
from drivers.gates.bus import BusUrlError, SerialBus, parse_bus_url
from drivers.gates.controller import GateController
from drivers.gates.hub import BusError, ModbusHub
from drivers.gates.models import MapError, shipped_model
from drivers.gates.registers import DecodeError
from gateway.infra.storage.schema import (
    BerthRow,
    BodycamRow,
    BodycamStateRow,
    CameraReadRow,
    ChargerRow,
    ConnectorRow,
    DeviceRow,
    LaneRow,
)
from gateway.services.commissioning.rules import (
    BodycamFacts,
    CameraFacts,
    ChargerFacts,
    Facts,
    GateFacts,
    GateMove,
    GateProbe,
    SensorFacts,
)
from gateway.services.lanes.config import LaneConfig, lane_from_row

Kind = Literal["sensor", "camera", "charger", "bodycam", "gate"]
KINDS: tuple[Kind, ...] = ("sensor", "camera", "charger", "bodycam", "gate")
DEVICE_KINDS: dict[str, Kind] = {"berth_sensor": "sensor", "camera": "camera"}
PULSE_END_MAX_S = 10.5  # the longest pulse a map may hold (10 s), and a margin
log = logging.getLogger(__name__)


class NoSuchDevice(LookupError):
    """No device of that id (of that kind)."""


class CannotCommission(ValueError):
    """A device whose kind has no commissioning checks, or an id several kinds share."""


@dataclass(frozen=True, slots=True)
class Found:
    kind: Kind
    device_id: str  # as stored (sensors' DevEUIs are lower case)


async def resolve(db: AsyncSession, device_id: str, kind: Kind | None) -> Found:
    """Which device *device_id* is (only of *kind* when given)."""
    hits: list[Found] = []
    other: str | None = None
    if kind in (None, "sensor", "camera"):
        dev = await db.get(DeviceRow, device_id.lower())
        if dev is not None:
            k = DEVICE_KINDS.get(dev.kind)
            if k is None:
                other = dev.kind
            elif kind in (None, k):
                hits.append(Found(k, dev.id))
    if kind in (None, "charger") and await db.get(ChargerRow, device_id) is not None:
        hits.append(Found("charger", device_id))
    if kind in (None, "bodycam") and await db.get(BodycamRow, device_id) is not None:
        hits.append(Found("bodycam", device_id))
    if kind in (None, "gate") and await db.get(LaneRow, device_id) is not None:
        hits.append(Found("gate", device_id))
    if len(hits) > 1:
        kinds = ", ".join(h.kind for h in hits)
        raise CannotCommission(f"{device_id!r} is a {kinds}: say which with --kind")
    if hits:
        return hits[0]
    if other is not None and kind is None:
        raise CannotCommission(f"{device_id!r} is a {other}: it has no commissioning checks")
    raise NoSuchDevice(f"no {kind or 'device'} {device_id!r}")


async def sensor_facts(db: AsyncSession, device_id: str) -> SensorFacts:
    dev = await db.get(DeviceRow, device_id)
    assert dev is not None
    berth = await db.get(BerthRow, dev.berth_id) if dev.berth_id else None
    return SensorFacts(
        device_id=dev.id, protocol=dev.protocol, lifecycle=dev.lifecycle, berth_id=dev.berth_id,
        last_seen=dev.last_seen, rssi=dev.rssi, snr=dev.snr, battery_pct=dev.battery_pct,
        battery_mv=dev.battery_mv,
        berth_state=None if berth is None else berth.state,
        berth_status_at=None if berth is None else berth.last_seen,
    )  # fmt: skip


async def camera_facts(db: AsyncSession, device_id: str) -> CameraFacts:
    dev = await db.get(DeviceRow, device_id)
    assert dev is not None
    last = (
        await db.execute(
            select(CameraReadRow)
            .where(CameraReadRow.camera_id == device_id)
            .order_by(CameraReadRow.received_at.desc(), CameraReadRow.id.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    return CameraFacts(
        camera_id=dev.id, lifecycle=dev.lifecycle, site_id=dev.site_id, lane_id=dev.lane_id,
        secret_set=dev.secret_hash is not None,
        last_push_at=None if last is None else last.received_at,
        last_push_status=None if last is None else last.status,
        last_push_plate=None if last is None else last.plate,
    )  # fmt: skip


async def charger_facts(db: AsyncSession, charger_id: str) -> ChargerFacts:
    row = await db.get(ChargerRow, charger_id)
    assert row is not None
    conns = (
        await db.execute(select(ConnectorRow).where(ConnectorRow.charger_id == charger_id))
    ).scalars()
    return ChargerFacts(
        charger_id=row.id, lifecycle=row.lifecycle, password_set=row.password_hash is not None,
        connected=row.connected, last_boot_at=row.last_boot_at,
        last_boot_reason=row.last_boot_reason, last_seen=row.last_seen,
        heartbeat_s=row.heartbeat_s, connectors_expected=row.connectors,
        connectors=tuple((c.connector_id, c.status) for c in conns if c.connector_id >= 1),
    )  # fmt: skip


async def bodycam_facts(db: AsyncSession, device_id: str, timeout_s: float) -> BodycamFacts:
    cam = await db.get(BodycamRow, device_id)
    assert cam is not None
    st = await db.get(BodycamStateRow, device_id)
    return BodycamFacts(
        device_id=cam.id, lifecycle=cam.lifecycle, password_set=cam.ha1 is not None,
        officer_id=cam.officer_id,
        registered_until=None if st is None else st.registered_until,
        last_keepalive=None if st is None else st.last_keepalive,
        keepalive_timeout_s=timeout_s,
    )  # fmt: skip


# -- gates ---------------------------------------------------------------------------------


class GateSource(Protocol):
    """Gives the controller of a lane's gate for the probe (and gives it back after)."""

    def controller(self, lane: LaneConfig) -> AbstractAsyncContextManager[GateController]: ...


class FreshGates:
    """A controller on a bus connection of its own, closed after: the CLI's way (and the API's
    when the gateway does not drive that gate)."""

    def __init__(
        self, clock: Callable[[], datetime], timeout_s: float, serial_ports: dict[str, str]
    ) -> None:
        self._clock = clock
        self._timeout = timeout_s
        self._serial_ports = serial_ports

    @contextlib.asynccontextmanager
    async def controller(self, lane: LaneConfig) -> AsyncIterator[GateController]:
        spec = parse_bus_url(lane.gate_bus)
        if isinstance(spec, SerialBus) and spec.device in self._serial_ports:
            spec = spec.model_copy(update={"device": self._serial_ports[spec.device]})
        hub = ModbusHub(spec, timeout=self._timeout, backoff=Backoff(base=0.2, cap=1.0))
        async with hub:
            await hub.wait_online(self._timeout)
            controller = GateController(
                hub, lane.gate_unit, shipped_model(lane.gate_model), clock=self._clock,
                gate_id=lane.id,
            )  # fmt: skip
            try:
                yield controller
            finally:  # no relay left closed when this bus closes: the pulses are ended
                if not await controller.released(self._timeout + PULSE_END_MAX_S):
                    log.warning("gate %s: a pulse end could not be written", lane.id)


async def lane_config(db: AsyncSession, lane_id: str) -> LaneConfig:
    row = await db.get(LaneRow, lane_id)
    assert row is not None
    return lane_from_row(row)


async def gate_facts(
    lane: LaneConfig, gates: GateSource, cycle: bool, timeout_s: float
) -> GateFacts:
    """Probe the lane's gate controller (no database session is held meanwhile)."""
    base: dict[str, Any] = {
        "lane_id": lane.id, "bus": lane.gate_bus, "unit": lane.gate_unit, "model": lane.gate_model,
    }  # fmt: skip
    try:
        shipped_model(lane.gate_model)
        parse_bus_url(lane.gate_bus)
    except (MapError, BusUrlError) as exc:
        return GateFacts(**base, map_error=str(exc), probe=None, cycle=None)
    async with gates.controller(lane) as controller:
        try:
            state = await controller.read(wait=timeout_s, urgent=True)
        except (BusError, DecodeError) as exc:
            error = str(exc) or type(exc).__name__
            hub_error = controller.hub.last_error
            if hub_error and hub_error not in error:
                error = f"{error} ({hub_error})"
            return GateFacts(**base, map_error=None, probe=GateProbe(error=error), cycle=None)
        probe = GateProbe(state.position, state.vehicle_present, state.fault)
        if not cycle:
            return GateFacts(**base, map_error=None, probe=probe, cycle=None)
        moves: list[GateMove] = []
        run = uuid.uuid4().hex[:12]
        for action in ("raise", "lower"):
            done = await controller.command(action, f"commission-{run}-{action}")
            moves.append(GateMove(action, done.outcome, done.error or "", done.elapsed_s))
            if done.outcome != "confirmed":
                break
    return GateFacts(**base, map_error=None, probe=probe, cycle=tuple(moves))


async def db_facts(db: AsyncSession, found: Found, keepalive_timeout_s: float) -> Facts:
    """The facts of a device that is not a gate, from what the database holds."""
    if found.kind == "sensor":
        return await sensor_facts(db, found.device_id)
    if found.kind == "camera":
        return await camera_facts(db, found.device_id)
    if found.kind == "charger":
        return await charger_facts(db, found.device_id)
    assert found.kind == "bodycam"
    return await bodycam_facts(db, found.device_id, keepalive_timeout_s)
