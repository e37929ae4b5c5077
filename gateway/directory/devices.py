"""The in-memory view of the device registry used on the ingest hot path.

The database is the record; this directory mirrors the fields ingest needs (model, binding,
lifecycle) and collects the health facts uplinks bring (last seen, battery, radio), which the
write-behind persister flushes in batches.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Lifecycle(StrEnum):
    PROVISIONED = "provisioned"
    COMMISSIONED = "commissioned"  # its commissioning checks passed; active at its next message
    ACTIVE = "active"
    MAINTENANCE = "maintenance"
    RETIRED = "retired"


@dataclass(slots=True)
class DeviceEntry:
    id: str
    kind: str
    model: str
    lifecycle: Lifecycle
    berth_id: str | None = None
    site_id: str | None = None
    heartbeat_s: int | None = None
    last_seen: datetime | None = None
    battery_mv: int | None = None
    battery_pct: float | None = None  # the network server's report (ChirpStack status event)
    rssi: float | None = None
    snr: float | None = None
    # plate cameras: push format, SHA-256 of the URL secret, lane, lane direction
    vendor: str | None = None
    secret_hash: str | None = None
    lane_id: str | None = None
    direction: str | None = None


class DeviceDirectory:
    def __init__(self) -> None:
        self._by_id: dict[str, DeviceEntry] = {}
        self._dirty: set[str] = set()
        # called once per device moved commissioned -> active by a message (the activator)
        self.on_activated: Callable[[DeviceEntry], None] | None = None

    def put(self, entry: DeviceEntry) -> None:
        self._by_id[entry.id] = entry

    def remove(self, device_id: str) -> None:
        self._by_id.pop(device_id, None)
        self._dirty.discard(device_id)

    def get(self, device_id: str) -> DeviceEntry | None:
        return self._by_id.get(device_id)

    def ids(self) -> list[str]:
        return list(self._by_id)

    def __len__(self) -> int:
        return len(self._by_id)

    def seen(
        self,
        entry: DeviceEntry,
        ts: datetime,
        *,
        rssi: float | None = None,
        snr: float | None = None,
        battery_mv: int | None = None,
        battery_pct: float | None = None,
    ) -> None:
        """Record a sign of life; a commissioned device becomes active on its first one (in
        memory at once; ``on_activated`` makes it durable and audited, once)."""
        if entry.last_seen is None or ts > entry.last_seen:
            entry.last_seen = ts
            if rssi is not None:
                entry.rssi = rssi
            if snr is not None:
                entry.snr = snr
        if battery_mv is not None:
            entry.battery_mv = battery_mv
        if battery_pct is not None:
            entry.battery_pct = battery_pct
        if entry.lifecycle is Lifecycle.COMMISSIONED:
            entry.lifecycle = Lifecycle.ACTIVE
            if self.on_activated is not None:
                self.on_activated(entry)
        self._dirty.add(entry.id)

    def take_dirty(self) -> list[DeviceEntry]:
        out = [self._by_id[i] for i in self._dirty if i in self._by_id]
        self._dirty.clear()
        return out
