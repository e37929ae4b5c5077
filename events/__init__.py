"""The one event vocabulary of citygate.

Every event is an immutable record with the id of the device (or controller) that caused it and
a timezone-aware UTC timestamp. Drivers produce them, the domain packages (parking, charging)
consume and produce them, the gateway moves them around. Nothing here does I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

__all__ = [
    "BerthState",
    "BerthStateChanged",
    "CarParkCount",
    "CaseRaised",
    "CommsLost",
    "CommsRestored",
    "Event",
    "InputRejected",
    "MagnetometerSample",
    "PlateRead",
    "SensorHeartbeat",
    "SensorStartup",
    "SensorStatus",
    "SiteCountsChanged",
    "utc",
]


def utc(ts: datetime) -> datetime:
    """Return *ts* as an aware UTC datetime; naive input is refused, not guessed."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError("naive datetime: every timestamp must carry a UTC offset")
    return ts.astimezone(UTC)


class BerthState(enum.StrEnum):
    FREE = "free"
    OCCUPIED = "occupied"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every event: who caused it and when (UTC)."""

    device_id: str
    ts: datetime

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None or self.ts.utcoffset() is None:
            raise ValueError(f"{type(self).__name__}.ts must be timezone-aware")

    @property
    def kind(self) -> str:
        return type(self).__name__


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorEvent(Event):
    """Anything a berth sensor reported, with the radio facts of the uplink that carried it."""

    model: str
    fcnt: int | None = None
    rssi: float | None = None
    snr: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorStatus(SensorEvent):
    """The sensor says the berth above it is occupied (or not)."""

    occupied: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorHeartbeat(SensorEvent):
    """Periodic sign of life with the device's health; may repeat the current status."""

    battery_mv: int | None = None
    temperature_c: float | None = None
    occupied: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SensorStartup(SensorEvent):
    """The sensor (re)booted: firmware and reset cause, for the technician."""

    firmware: str | None = None
    reset_cause: str | None = None
    occupied: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MagnetometerSample(SensorEvent):
    """Raw and baseline magnetometer vectors of an NB-IoT sensor, kept for diagnosis."""

    raw: tuple[int, int, int]
    baseline: tuple[int, int, int]
    battery_mv: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BerthStateChanged(Event):
    """A berth's occupancy changed (free / occupied / unknown)."""

    site_id: str
    berth_id: str
    state: BerthState
    previous: BerthState
    since: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CommsLost(Event):
    """A sensor stayed silent for longer than its heartbeat period x 2.5 (CDS ``comms_lost``)."""

    site_id: str
    berth_id: str | None
    last_seen: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CommsRestored(Event):
    """A sensor that had been declared lost spoke again (CDS ``comms_restored``)."""

    site_id: str
    berth_id: str | None
    silent_s: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CarParkCount(Event):
    """A car park controller's lane counts: vehicles in and out since its last report, and
    optionally its own absolute count (used to correct drift)."""

    site_id: str
    entered: int = 0
    exited: int = 0
    occupied: int | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SiteCountsChanged(Event):
    """A site's live counts after a change; ``free`` is already clamped to 0..capacity."""

    site_id: str
    capacity: int
    free: int
    occupied: int
    unknown: int


@dataclass(frozen=True, slots=True, kw_only=True)
class InputRejected(Event):
    """Input refused at the edge, with a short machine-readable reason."""

    source: str
    reason: str
    detail: str = field(default="")


@dataclass(frozen=True, slots=True, kw_only=True)
class PlateRead(Event):
    """A lane camera read a plate at a car park's entry or exit (``device_id``: the camera).

    The plate keeps its province character (粤B12345). ``colour`` is the plate colour when the
    camera reports it (blue, yellow, green, white, black); it decides the vehicle class.
    """

    site_id: str
    direction: Literal["in", "out"]
    plate: str
    colour: str | None = None
    confidence: float | None = None
    lane: str | None = None
    image_ref: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CaseRaised(Event):
    """A situation the town's case system must hear about, raised by a rule in any domain
    (parking enforcement, charger maintenance, drones). ``device_id`` is who saw it (a sensor,
    camera, charger, or ``rule:<id>``), ``ts`` when it was observed.

    ``dedup_key`` names the situation (category + place); a second report with the same key
    within ``dedup_window_s`` of an earlier one is the same situation and is not filed again.
    """

    category: str
    rule_id: str
    title: str
    dedup_key: str
    dedup_window_s: int
    site_id: str | None = None
    berth_id: str | None = None
    zone_id: str | None = None
    lon: float | None = None
    lat: float | None = None
    plate: str | None = None
    evidence: tuple[str, ...] = ()
    details: Mapping[str, str | int | float | bool | None] = field(default_factory=dict)


def now_utc() -> datetime:
    """The current time, aware UTC. Only edges call this; pure logic takes time as input."""
    return datetime.now(UTC)
