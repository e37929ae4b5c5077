"""Device registry operations (provision, bind, lifecycle) shared by the API and the CLI.

Each operation commits to the database (with its entry in the change feed) first and then
updates this process's live directory and occupancy book, so what the API shows never runs
ahead of what is recorded; other instances (and this one, again, harmlessly) apply the same
change from the feed with ``refresh``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.sensors.messages import CodecError
from drivers.sensors.registry import get_codec
from events import Event
from gateway.directory.audit import SYSTEM, Actor, record_audit, snapshot
from gateway.directory.cameras import hash_secret, new_secret
from gateway.directory.devices import DeviceDirectory, DeviceEntry, Lifecycle
from gateway.directory.lifecycle import Cause, LifeKind, Refused, decide
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import BerthRow, DeviceRow, SiteRow
from parking.occupancy import OccupancyBook, SensorBinding


class RegistryError(Exception):
    """A request the registry refuses; ``status`` is the HTTP status that fits."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def entry_from_row(row: DeviceRow) -> DeviceEntry:
    return DeviceEntry(
        id=row.id,
        kind=row.kind,
        model=row.model,
        lifecycle=Lifecycle(row.lifecycle),
        berth_id=row.berth_id,
        site_id=row.site_id,
        heartbeat_s=row.heartbeat_s,
        last_seen=row.last_seen,
        battery_mv=row.battery_mv,
        battery_pct=row.battery_pct,
        rssi=row.rssi,
        snr=row.snr,
        vendor=row.vendor,
        secret_hash=row.secret_hash,
        lane_id=row.lane_id,
        direction=row.direction,
    )


_OUT_OF_SERVICE = ("retired", "maintenance")
REFRESH_CHUNK = 500  # ids per query of refresh_many (well under any bound-parameter limit)
_RUNTIME = ("last_seen", "battery_mv", "battery_pct", "rssi", "snr")


def device_fields(row: DeviceRow) -> dict[str, Any]:
    """A device's audited fields: what provisioning sets, not what the device reports."""
    return snapshot(row, exclude=_RUNTIME)


def audit_kind(row: DeviceRow) -> str:
    """Plate cameras are devices in the change feed and ``camera`` in the audit log."""
    return "camera" if row.kind == "camera" else "device"


def binding_for(row: DeviceRow | DeviceEntry) -> SensorBinding | None:
    """The occupancy binding of a bound berth sensor that is not retired or in maintenance (a
    sensor under maintenance keeps its berth, but its berth is unknown meanwhile: its reports
    do not count for occupancy)."""
    if row.kind != "berth_sensor" or row.berth_id is None or row.lifecycle in _OUT_OF_SERVICE:
        return None
    hb = row.heartbeat_s or get_codec(row.model).default_heartbeat_s
    return SensorBinding(dev_eui=row.id, berth_id=row.berth_id, model=row.model, heartbeat_s=hb)


class Registry:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        directory: DeviceDirectory | None = None,
        book: OccupancyBook | None = None,
    ) -> None:
        self._sessions = sessions
        self._directory = directory
        self._book = book

    async def list_devices(
        self, kind: str | None = None, site_id: str | None = None, lifecycle: str | None = None
    ) -> list[DeviceRow]:
        q = select(DeviceRow).order_by(DeviceRow.id)
        if kind:
            q = q.where(DeviceRow.kind == kind)
        if site_id:
            q = q.where(DeviceRow.site_id == site_id)
        if lifecycle:
            q = q.where(DeviceRow.lifecycle == lifecycle)
        async with self._sessions() as session:
            rows = list((await session.execute(q)).scalars())
        return [self._overlay(r) for r in rows]

    async def get(self, device_id: str) -> DeviceRow:
        async with self._sessions() as session:
            row = await session.get(DeviceRow, device_id.lower())
        if row is None:
            raise RegistryError(404, f"no device {device_id!r}")
        return self._overlay(row)

    def _overlay(self, row: DeviceRow) -> DeviceRow:
        """Health facts not yet flushed by the write-behind persister win over the row."""
        live = self._directory.get(row.id) if self._directory else None
        if live is not None:
            row.last_seen, row.battery_mv = live.last_seen, live.battery_mv
            row.battery_pct = live.battery_pct
            row.rssi, row.snr, row.lifecycle = live.rssi, live.snr, live.lifecycle.value
        return row

    async def _check_berth(self, session: AsyncSession, berth_id: str, dev_id: str) -> str:
        berth = await session.get(BerthRow, berth_id)
        if berth is None:
            raise RegistryError(422, f"no berth {berth_id!r}")
        holder = (
            await session.execute(select(DeviceRow).where(DeviceRow.berth_id == berth_id))
        ).scalar_one_or_none()
        if holder is not None and holder.id != dev_id:
            raise RegistryError(
                409, f"berth {berth_id} is bound to {holder.id}: unbind or retire it first"
            )
        return berth.site_id

    async def provision(
        self,
        dev_eui: str,
        model: str,
        now: datetime,
        *,
        berth_id: str | None = None,
        heartbeat_s: int | None = None,
        notes: str = "",
        actor: Actor = SYSTEM,
    ) -> tuple[DeviceRow, list[Event]]:
        dev_id = dev_eui.lower()
        try:
            codec = get_codec(model)
        except CodecError:
            raise RegistryError(422, f"unsupported sensor model {model!r}") from None
        async with self._sessions.begin() as session:
            if await session.get(DeviceRow, dev_id) is not None:
                raise RegistryError(409, f"device {dev_id} already exists")
            site_id = await self._check_berth(session, berth_id, dev_id) if berth_id else None
            row = DeviceRow(
                id=dev_id,
                kind="berth_sensor",
                protocol=codec.transport,
                model=model,
                address=dev_id,
                berth_id=berth_id,
                site_id=site_id,
                heartbeat_s=heartbeat_s,
                lifecycle=Lifecycle.PROVISIONED.value,
                notes=notes,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            await record_change(session, "device", dev_id, "provision", now)
            after = device_fields(row)
            await record_audit(session, actor, "device", dev_id, "provision", None, after, now)
        return row, self._sync(row, now)

    async def provision_camera(
        self,
        camera_id: str,
        vendor: str,
        site_id: str,
        now: datetime,
        *,
        lane_id: str | None = None,
        direction: str | None = None,
        notes: str = "",
        actor: Actor = SYSTEM,
    ) -> tuple[DeviceRow, str]:
        """Register a plate camera at a site; returns its row and the clear URL secret
        (shown once: only its hash is stored)."""
        cam_id = camera_id.lower()
        secret = new_secret()
        async with self._sessions.begin() as session:
            if await session.get(DeviceRow, cam_id) is not None:
                raise RegistryError(409, f"device {cam_id} already exists")
            if await session.get(SiteRow, site_id) is None:
                raise RegistryError(422, f"no site {site_id!r}")
            row = DeviceRow(
                id=cam_id,
                kind="camera",
                protocol="http-push",
                model=vendor,
                address=f"/cameras/{cam_id}/",
                site_id=site_id,
                lifecycle=Lifecycle.PROVISIONED.value,
                notes=notes,
                vendor=vendor,
                secret_hash=hash_secret(secret),
                lane_id=lane_id,
                direction=direction,
                created_at=now,
                updated_at=now,
            )
            session.add(row)
            await session.flush()
            await record_change(session, "device", cam_id, "provision", now)
            after = device_fields(row)
            await record_audit(session, actor, "camera", cam_id, "provision", None, after, now)
        self._sync(row, now)
        return row, secret

    async def rotate_camera_secret(
        self, camera_id: str, now: datetime, *, actor: Actor = SYSTEM
    ) -> tuple[DeviceRow, str]:
        """A new URL secret for a camera (the old one stops working at once)."""
        cam_id = camera_id.lower()
        secret = new_secret()
        async with self._sessions.begin() as session:
            row = await session.get(DeviceRow, cam_id)
            if row is None or row.kind != "camera":
                raise RegistryError(404, f"no camera {camera_id!r}")
            before = device_fields(row)
            row.secret_hash = hash_secret(secret)
            row.updated_at = now
            await session.flush()
            await record_change(session, "device", cam_id, "secret", now)
            after = device_fields(row)
            await record_audit(session, actor, "camera", cam_id, "secret", before, after, now)
        self._sync(row, now)
        return row, secret

    async def update(
        self, device_id: str, changes: dict[str, Any], now: datetime, *, actor: Actor = SYSTEM
    ) -> tuple[DeviceRow, list[Event]]:
        dev_id = device_id.lower()
        async with self._sessions.begin() as session:
            row = await session.get(DeviceRow, dev_id)
            if row is None:
                raise RegistryError(404, f"no device {device_id!r}")
            before = device_fields(row)
            if "berth_id" in changes:
                berth_id = changes["berth_id"]
                if berth_id is not None:
                    if row.kind != "berth_sensor":
                        raise RegistryError(422, f"{row.kind} devices are not bound to berths")
                    row.site_id = await self._check_berth(session, berth_id, dev_id)
                row.berth_id = berth_id
            if changes.get("lifecycle") is not None:
                kind = LifeKind.CAMERA if row.kind == "camera" else LifeKind.SENSOR
                try:  # the one lifecycle (gateway.directory.lifecycle), as an operator's move
                    decide(kind, dev_id, Lifecycle(row.lifecycle), Lifecycle(changes["lifecycle"]),
                           Cause.OPERATOR)  # fmt: skip
                except Refused as exc:
                    raise RegistryError(409, str(exc)) from None
                row.lifecycle = Lifecycle(changes["lifecycle"]).value
                if row.lifecycle == Lifecycle.RETIRED.value:
                    row.berth_id = None  # a retired sensor frees its berth for the replacement
            if "heartbeat_s" in changes:
                row.heartbeat_s = changes["heartbeat_s"]
            if changes.get("notes") is not None:
                row.notes = changes["notes"]
            row.updated_at = now
            await session.flush()
            op = changes.get("lifecycle") or ("bind" if "berth_id" in changes else "update")
            await record_change(session, "device", dev_id, op, now)
            after = device_fields(row)
            await record_audit(session, actor, audit_kind(row), dev_id, op, before, after, now)
        return row, self._sync(row, now)

    async def refresh(self, device_id: str, now: datetime) -> list[Event]:
        """Mirror the device's current row (a change from the feed); a device gone from the
        database leaves the book and the directory."""
        async with self._sessions() as session:
            row = await session.get(DeviceRow, device_id)
        if row is not None:
            return self._sync(row, now)
        events: list[Event] = []
        if self._book is not None:
            events.extend(self._book.unbind(device_id, now))
        if self._directory is not None:
            self._directory.remove(device_id)
        return events

    async def refresh_many(self, device_ids: Iterable[str], now: datetime) -> list[Event]:
        """``refresh`` of many devices (a batch change: an import's), a few queries in all."""
        ids = list(dict.fromkeys(device_ids))
        events: list[Event] = []
        for i in range(0, len(ids), REFRESH_CHUNK):
            chunk = ids[i : i + REFRESH_CHUNK]
            async with self._sessions() as session:
                stmt = select(DeviceRow).where(DeviceRow.id.in_(chunk))
                rows = {r.id: r for r in (await session.execute(stmt)).scalars()}
            for device_id in chunk:
                row = rows.get(device_id)
                if row is not None:
                    events.extend(self._sync(row, now))
                    continue
                if self._book is not None:
                    events.extend(self._book.unbind(device_id, now))
                if self._directory is not None:
                    self._directory.remove(device_id)
        return events

    def _sync(self, row: DeviceRow, now: datetime) -> list[Event]:
        """Mirror a committed row into the live directory and occupancy book."""
        events: list[Event] = []
        if self._directory is not None:
            old = self._directory.get(row.id)
            entry = entry_from_row(row)
            if old is not None:
                entry.last_seen, entry.battery_mv = old.last_seen, old.battery_mv
                entry.battery_pct = old.battery_pct
                entry.rssi, entry.snr = old.rssi, old.snr
                if old.lifecycle is Lifecycle.ACTIVE and entry.lifecycle is Lifecycle.COMMISSIONED:
                    entry.lifecycle = Lifecycle.ACTIVE  # heard from, the activator is writing it
            self._directory.put(entry)
        if self._book is not None and row.kind == "berth_sensor":
            binding = binding_for(row)
            if binding is None:
                events.extend(self._book.unbind(row.id, now))
            else:
                events.extend(self._book.bind(binding, now))
        return events
