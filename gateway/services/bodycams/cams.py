"""One body cam as the platform holds it in memory: presence, where to reach it, power,
position, and its position subscription's dialog. Pure updates; times are passed in.

``CamLive`` is restored from ``bodycam_state`` at boot (``PresenceState.restore``: online
until the stored deadline, then confirmed or not by the next keepalive) and written back
behind the signalling: a change (registration, power, a new address) at the next flush
(``dirty``), a routine one (a keepalive's time, a new position: a few a minute from every
cam) once it is ``persist_routine_s`` old (``routine_since``), so 2,000 cams cost a few
hundred row writes a minute, not a second. The API flushes everything before it answers.

On PostgreSQL with several instances, a cam another instance wrote last is mirrored from its
row (``elsewhere``: that instance's id): shown, never written, asked or subscribed from here,
until the cam REGISTERs with this instance, which then holds it (or its holder dies:
``gateway.services.bodycams.shared``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from drivers.gb28181.manscdp import DeviceInfo, DeviceStatus, Position, Power
from drivers.gb28181.presence import PresenceState
from drivers.sip.transport import Peer
from gateway.infra.storage.schema import BodycamStateRow

__all__ = ["CamLive", "Dialog", "cam_from_row", "due_cams", "routine_values", "row_values"]


@dataclass(slots=True)
class Dialog:
    """The MobilePosition subscription's dialog (RFC 6665): refreshed in it, never in a stale
    one; a 481 answer ends it and a new SUBSCRIBE starts a new one."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    cseq: int
    expires_at: float  # monotonic
    confirmed: bool = False
    expires_s: int = 0  # as granted by the cam

    def refresh_at(self) -> float:
        """When to refresh: a fifth of the granted time before expiry (at most 60 s before),
        and never sooner than a second after the last grant."""
        lead = min(60.0, self.expires_s * 0.2)
        return max(self.expires_at - lead, self.expires_at - self.expires_s + 1.0)


@dataclass(slots=True)
class CamLive:
    device_id: str
    presence: PresenceState
    peer: Peer | None = None
    contact: str | None = None
    battery_percent: float | None = None
    storage_free_mb: float | None = None
    storage_total_mb: float | None = None
    position: Position | None = None
    status: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    catalog_items: int | None = None
    subscription: Dialog | None = None
    subscribing: bool = False
    queried: bool = False  # DeviceInfo/DeviceStatus asked since the last registration
    dirty: bool = False  # a change to write at the next flush
    routine_since: datetime | None = None  # a routine change (keepalive, position) unwritten
    elsewhere: str | None = None  # mirrored: the instance that holds it (wrote it last)
    extra: dict[str, Any] = field(default_factory=dict)

    def registered(self, now: datetime, expires_s: int, peer: Peer, contact: str | None) -> None:
        self.presence = self.presence.registered(now, expires_s)
        self.peer, self.contact = peer, contact
        self.queried = False
        self.dirty = True
        self.elsewhere = None

    def unregistered(self) -> None:
        self.presence = self.presence.unregistered()
        self.subscription = None
        self.dirty = True
        self.elsewhere = None

    def seen(self, now: datetime, peer: Peer) -> None:
        """A message from the cam: a routine change, unless it now speaks from elsewhere."""
        self.presence = self.presence.seen(now)
        if peer != self.peer:
            self.peer = peer
            self.dirty = True
        self._routine(now)

    def _routine(self, now: datetime) -> None:
        if self.routine_since is None:
            self.routine_since = now

    def due(self, now: datetime, routine_s: float) -> bool:
        """Whether the next flush writes this cam: a change, or a routine one that is
        *routine_s* old (negative: any routine change)."""
        since = self.routine_since
        return self.dirty or (
            since is not None and (routine_s < 0 or (now - since).total_seconds() >= routine_s)
        )

    def unwritten(self) -> bool:
        """A change of this instance not yet written (a mirror must not overwrite it)."""
        return self.dirty or self.routine_since is not None

    def written(self) -> None:
        self.dirty, self.routine_since = False, None

    def power(self, p: Power) -> None:
        if p.battery_percent is not None:
            self.battery_percent = float(p.battery_percent)
        if p.storage_free_mb is not None:
            self.storage_free_mb = p.storage_free_mb
        if p.storage_total_mb is not None:
            self.storage_total_mb = p.storage_total_mb
        self.dirty = True

    def info(self, m: DeviceInfo) -> None:
        self.manufacturer = m.manufacturer or self.manufacturer
        self.model = m.model or self.model
        self.firmware = m.firmware or self.firmware
        self.power(m.power)

    def device_status(self, m: DeviceStatus) -> None:
        self.status = m.status or m.result or self.status
        self.power(m.power)

    def moved(self, p: Position) -> bool:
        """Take *p* if it is newer than the last one; True when it was taken."""
        if self.position is not None and p.time <= self.position.time:
            return False
        self.position = p
        self._routine(p.time)
        return True


def due_cams(cams: Iterable[CamLive], now: datetime, routine_s: float) -> list[CamLive]:
    """The cams the next flush writes, as ``CamLive.due`` says, in one pass over every cam
    (once a second: one comparison with a cutoff each, not a time difference)."""
    if routine_s < 0:
        return [c for c in cams if c.dirty or c.routine_since is not None]
    cutoff = now - timedelta(seconds=routine_s)
    return [
        c for c in cams if c.dirty or (c.routine_since is not None and c.routine_since <= cutoff)
    ]


def _peer(transport: str | None, source: str | None) -> Peer | None:
    if transport not in ("UDP", "TCP") or not source or ":" not in source:
        return None
    host, _, port = source.rpartition(":")
    return Peer(transport, host, int(port)) if port.isdigit() else None  # type: ignore[arg-type]


def cam_from_row(row: BodycamStateRow, interval_s: float, count: int) -> CamLive:
    """The cam as stored: presence restored (unconfirmed), its last position and power."""
    position = None
    if row.lat is not None and row.lon is not None and row.position_at is not None:
        position = Position(
            row.device_id, row.position_at, row.lon, row.lat, row.speed_kmh, row.direction_deg
        )
    presence = PresenceState.restore(row.last_keepalive, row.registered_until, interval_s, count)
    return CamLive(
        device_id=row.device_id,
        presence=presence,
        peer=_peer(row.transport, row.source_addr),
        contact=row.contact,
        battery_percent=row.battery_percent,
        storage_free_mb=row.storage_free_mb,
        storage_total_mb=row.storage_total_mb,
        position=position,
        status=row.status,
        manufacturer=row.manufacturer,
        model=row.model,
        firmware=row.firmware,
        elsewhere=row.instance_id,
    )


def row_values(cam: CamLive, now: datetime) -> dict[str, Any]:
    """The ``bodycam_state`` row of *cam* (for a bulk insert or update)."""
    p = cam.position
    return {
        "device_id": cam.device_id,
        "contact": (cam.contact or "")[:256] or None,
        "transport": cam.peer.transport if cam.peer else None,
        "source_addr": f"{cam.peer.host}:{cam.peer.port}" if cam.peer else None,
        "registered_until": cam.presence.registered_until,
        "last_keepalive": cam.presence.last_keepalive,
        "battery_percent": cam.battery_percent,
        "storage_free_mb": cam.storage_free_mb,
        "storage_total_mb": cam.storage_total_mb,
        "lat": p.latitude if p else None,
        "lon": p.longitude if p else None,
        "position_at": p.time if p else None,
        "speed_kmh": p.speed_kmh if p else None,
        "direction_deg": p.direction_deg if p else None,
        "status": (cam.status or "")[:32] or None,
        "manufacturer": cam.manufacturer,
        "model": cam.model,
        "firmware": cam.firmware,
        "updated_at": now,
    }


def routine_values(cam: CamLive, now: datetime) -> dict[str, Any]:
    """The columns of *cam*'s ``bodycam_state`` row that a routine change alone moves (the
    last keepalive, the position): the update of a cam that is not ``dirty``, whose other
    columns are as last written (every other change marks it dirty)."""
    p = cam.position
    return {
        "device_id": cam.device_id,
        "last_keepalive": cam.presence.last_keepalive,
        "lat": p.latitude if p else None,
        "lon": p.longitude if p else None,
        "position_at": p.time if p else None,
        "speed_kmh": p.speed_kmh if p else None,
        "direction_deg": p.direction_deg if p else None,
        "updated_at": now,
    }
