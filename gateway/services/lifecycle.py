"""The device lifecycle at the edges (issue 14): one move of any kind of device, recorded
with its audit entry and its change-feed entry in one transaction, so every running instance
follows it; and the ``Activator``, which makes a commissioned device's first good message
durable (commissioned -> active) without a database write on any other message.

Where each kind keeps its state: ``devices.lifecycle`` (berth sensors, plate cameras),
``chargers.lifecycle``, ``bodycams.lifecycle``, ``drones.lifecycle`` and, for a lane's barrier
gate controller (named by its lane's id), ``lanes.gate_lifecycle``. The moves themselves are
``gateway.directory.lifecycle``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.backoff import Backoff
from gateway.directory.audit import SYSTEM, Actor, record_audit, snapshot
from gateway.directory.devices import Lifecycle
from gateway.directory.lifecycle import Cause, LifeKind, Move, Refused, decide
from gateway.directory.registry import audit_kind, device_fields
from gateway.infra.changes import record_change, transient
from gateway.infra.storage.schema import BodycamRow, ChargerRow, DeviceRow, DroneRow, LaneRow
from gateway.logs import OnceLogger

if TYPE_CHECKING:
    from gateway.directory.devices import DeviceDirectory
    from gateway.services.bodycams import BodycamService
    from gateway.services.charging.backend import ChargingRuntime
    from gateway.services.drones import DroneService

__all__ = [
    "Activator",
    "AmbiguousDevice",
    "Found",
    "NoSuchDevice",
    "Refused",
    "move",
    "resolve",
    "wire",
]

log = logging.getLogger(__name__)
DEVICE_KINDS = {"berth_sensor": LifeKind.SENSOR, "camera": LifeKind.CAMERA}
# kind -> (row class, the column holding its state, its change-feed kind)
_WHERE: dict[LifeKind, tuple[type[Any], str, str]] = {
    LifeKind.SENSOR: (DeviceRow, "lifecycle", "device"),
    LifeKind.CAMERA: (DeviceRow, "lifecycle", "device"),
    LifeKind.CHARGER: (ChargerRow, "lifecycle", "charger"),
    LifeKind.BODYCAM: (BodycamRow, "lifecycle", "bodycam"),
    LifeKind.DRONE: (DroneRow, "lifecycle", "drone"),
    LifeKind.GATE: (LaneRow, "gate_lifecycle", "lane"),
}


class NoSuchDevice(LookupError):
    """No device of that id (of that kind)."""


class AmbiguousDevice(ValueError):
    """An id several kinds share (say which), or a device with no lifecycle of its own."""


@dataclass(frozen=True, slots=True)
class Found:
    kind: LifeKind
    device_id: str  # as stored (sensors' DevEUIs are lower case)


async def resolve(db: AsyncSession, device_id: str, kind: LifeKind | None = None) -> Found:
    """Which device *device_id* is (only of *kind* when given), as ``citygate commission``
    finds it, drones included; a gate controller is named by its lane's id."""
    hits: list[Found] = []
    other: str | None = None
    if kind in (None, LifeKind.SENSOR, LifeKind.CAMERA):
        dev = await db.get(DeviceRow, device_id.lower())
        if dev is not None:
            k = DEVICE_KINDS.get(dev.kind)
            if k is None:
                other = dev.kind
            elif kind in (None, k):
                hits.append(Found(k, dev.id))
    for k, (cls, _, _) in _WHERE.items():
        if cls is DeviceRow or kind not in (None, k):
            continue
        if await db.get(cls, device_id) is not None:
            hits.append(Found(k, device_id))
    if len(hits) > 1:
        kinds = ", ".join(h.kind.value for h in hits)
        raise AmbiguousDevice(f"{device_id!r} is a {kinds}: say which with --kind")
    if hits:
        return hits[0]
    if other is not None and kind is None:
        raise AmbiguousDevice(
            f"{device_id!r} is a {other}: its lifecycle follows the town file, not this command"
        )
    raise NoSuchDevice(f"no {kind.value if kind else 'device'} {device_id!r}")


def _fields(kind: LifeKind, row: Any) -> dict[str, Any]:
    if isinstance(row, DeviceRow):
        return device_fields(row)
    if kind is LifeKind.GATE:
        return {
            "lane_id": row.id, "bus": row.gate_bus, "unit": row.gate_unit,
            "model": row.gate_model, "lifecycle": row.gate_lifecycle,
        }  # fmt: skip
    return snapshot(row)  # secrets (password hashes, HA1) are redacted in the audit log


def _audit_kind(kind: LifeKind, row: Any) -> str:
    return audit_kind(row) if isinstance(row, DeviceRow) else kind.value


async def _apply(
    db: AsyncSession,
    found: Found,
    new: Lifecycle,
    cause: Cause,
    actor: Actor,
    reason: str,
    now: datetime,
    *,
    only_from: Lifecycle | None = None,
) -> Move | None:
    """Move *found* to *new* in *db*'s transaction (row locked), with its audit and feed
    entries; None when the row is gone or is not in *only_from*."""
    cls, column, feed = _WHERE[found.kind]
    row = await db.get(cls, found.device_id, with_for_update=True)
    if row is None:
        return None
    old = Lifecycle(getattr(row, column))
    if only_from is not None and old is not only_from:
        return None
    decided = decide(found.kind, found.device_id, old, new, cause)
    if not decided.changed:
        return decided
    before = _fields(found.kind, row)
    setattr(row, column, new.value)
    if found.kind is LifeKind.SENSOR and new is Lifecycle.RETIRED:
        row.berth_id = None  # a retired sensor frees its berth for the replacement
    row.updated_at = now
    await db.flush()
    after = {**_fields(found.kind, row), "cause": cause.value, "reason": reason}
    await record_change(db, feed, found.device_id, new.value, now)
    kind = _audit_kind(found.kind, row)
    await record_audit(db, actor, kind, found.device_id, new.value, before, after, now)
    return decided


async def move(
    sessions: async_sessionmaker[Any],
    device_id: str,
    new: Lifecycle,
    now: datetime,
    *,
    kind: LifeKind | None = None,
    cause: Cause = Cause.OPERATOR,
    actor: Actor = SYSTEM,
    reason: str = "",
) -> dict[str, Any]:
    """Move one device of any kind; raises ``NoSuchDevice``, ``AmbiguousDevice`` or
    ``Refused`` (nothing is written then). The answer of the CLI's ``--json`` and the API."""
    async with sessions.begin() as db:
        found = await resolve(db, device_id, kind)
        decided = await _apply(db, found, new, cause, actor, reason, now)
    if decided is None:  # deleted between resolving and locking
        raise NoSuchDevice(f"no {found.kind.value} {device_id!r}")
    return {
        "device_id": found.device_id,
        "kind": found.kind.value,
        "from": decided.old.value,
        "to": decided.new.value,
        "changed": decided.changed,
        "reason": reason,
        "at": now.isoformat(),
    }


async def commissioned(
    sessions: async_sessionmaker[Any],
    kind: LifeKind,
    device_id: str,
    now: datetime,
    actor: Actor,
) -> tuple[str | None, bool]:
    """The commissioning checks passed: a provisioned device becomes commissioned (any other
    state stays as it is). Its state after, and whether it moved."""
    async with sessions.begin() as db:
        found = Found(kind, device_id)
        decided = await _apply(
            db, found, Lifecycle.COMMISSIONED, Cause.CHECKS, actor, "commissioning checks passed",
            now, only_from=Lifecycle.PROVISIONED,
        )  # fmt: skip
        if decided is not None:
            return decided.new.value, decided.changed
        return await state_of(db, kind, device_id), False


class Activator:
    """Makes the first good message of a commissioned device durable: the ingest paths flip
    their in-memory state to active at once and ``note`` the device (once: the state they
    check is no longer commissioned); this writes each move in the background, audited and
    on the change feed, and only if the device is still commissioned in the database (a
    technician may have moved it meanwhile: then their move stands)."""

    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        clock: Callable[[], datetime],
        on_committed: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self._clock = clock
        self._on_committed = on_committed
        self._pending: dict[tuple[LifeKind, str], datetime] = {}
        self._wake = asyncio.Event()
        self._warn = OnceLogger(log, "lifecycle activations")
        self._retry = Backoff(base=0.05, cap=2.0, rng=random.Random())
        self.activated = 0

    def note(self, kind: LifeKind, device_id: str) -> None:
        """A commissioned device's first good message was accepted (cheap, never waits)."""
        self._pending.setdefault((kind, device_id), self._clock())
        self._wake.set()

    @property
    def pending(self) -> int:
        return len(self._pending)

    async def run(self) -> None:
        try:
            while True:
                if not self._pending:
                    with contextlib.suppress(TimeoutError):
                        await wait_for(self._wake.wait(), 5.0)
                self._wake.clear()
                if self._pending and not await self.flush():
                    await asyncio.sleep(self._retry.next_delay())
                else:
                    self._retry.reset()
        finally:
            await asyncio.shield(self.flush())

    async def flush(self) -> bool:
        """Write what is noted, in one transaction; False (kept for later) when it failed."""
        taken, self._pending = self._pending, {}
        if not taken:
            return True
        actor_of = {k: Actor(f"{k[0].value}:{k[1]}", None, "system", "system", "") for k in taken}
        moved = 0
        try:
            async with self._sessions.begin() as db:
                for (kind, device_id), at in taken.items():
                    done = await _apply(
                        db, Found(kind, device_id), Lifecycle.ACTIVE, Cause.MESSAGE,
                        actor_of[(kind, device_id)], "first good message", at,
                        only_from=Lifecycle.COMMISSIONED,
                    )  # fmt: skip
                    moved += done is not None and done.changed
        except Exception as exc:
            if not transient(exc):
                log.error("lifecycle activations not written: %s: %s", type(exc).__name__, exc)
                return True  # the devices stay commissioned in the database; not retried
            for k, v in taken.items():
                self._pending.setdefault(k, v)
            self._warn.failed(f"{type(exc).__name__}: {exc}")
            return False
        self._warn.recovered()
        self.activated += moved
        if moved:
            self._on_committed()
        return True


def wire(
    activator: Activator,
    directory: DeviceDirectory,
    charging: ChargingRuntime,
    bodycams: BodycamService,
    drones: DroneService,
) -> None:
    """Where each kind's first good message is accepted, to the activator (the gate has no
    messages of its own: an operator activates it, see docs/lifecycle.md)."""
    directory.on_activated = lambda entry: activator.note(
        LifeKind.CAMERA if entry.kind == "camera" else LifeKind.SENSOR, entry.id
    )
    charging.activate = lambda charger_id: activator.note(LifeKind.CHARGER, charger_id)
    bodycams.activate = lambda cam_id: activator.note(LifeKind.BODYCAM, cam_id)
    drones.activate = lambda drone_id: activator.note(LifeKind.DRONE, drone_id)


async def state_of(db: AsyncSession, kind: LifeKind, device_id: str) -> str | None:
    """The stored state of a device of *kind* (None: no such device)."""
    cls, column, _ = _WHERE[kind]
    row = await db.get(cls, device_id)
    return None if row is None else str(getattr(row, column))
