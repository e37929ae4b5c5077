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
    "BodycamPosition",
    "CarParkCount",
    "CaseRaised",
    "ChargerBooted",
    "ChargerConnected",
    "ChargerDisconnected",
    "ChargerHeartbeat",
    "ChargerNotice",
    "ChargingEnded",
    "ChargingStarted",
    "CommsLost",
    "CommsRestored",
    "ConnectorStatusChanged",
    "DroneAlert",
    "DronePosition",
    "Event",
    "InputRejected",
    "MagnetometerSample",
    "MeterSample",
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
    # Another instance's change, mirrored for this one's live view: it wrote the telemetry.
    mirrored: bool = False


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


# -- EV chargers (OCPP) -------------------------------------------------------------------------
# ``device_id`` is the charge point id; ``ts`` is the charger's own timestamp where the message
# carries one (queued messages arrive late and back-dated), else the time it was received.
# ``connector_id`` is the charger-wide connector number: OCPP 1.6 connectorId (0 = the charger
# itself), OCPP 2.0.1 evseId.


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerConnected(Event):
    """A charger opened its websocket (``protocol``: ocpp1.6, ocpp2.0.1, ...)."""

    protocol: str
    remote: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerDisconnected(Event):
    """A charger's websocket closed (``reason``: close code/text, or ``replaced`` by a new one)."""

    reason: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerBooted(Event):
    """BootNotification: who the charger is and why it (re)started (2.0.1 BootReason)."""

    vendor: str
    model: str
    serial: str | None = None
    firmware: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerHeartbeat(Event):
    """A Heartbeat (any message is a sign of life; this one carries nothing else)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectorStatusChanged(Event):
    """StatusNotification: a connector's OCPP status with the charger's error codes.

    ``error_code`` is ``None`` for 1.6 ``NoError``; a code with a non-Faulted status is a
    warning. ``vendor_error_code`` and ``info`` are the vendor's own words.
    """

    connector_id: int
    status: str
    error_code: str | None = None
    vendor_error_code: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MeterSample(Event):
    """One sampled meter reading of a connector (register energy in Wh, power in W...)."""

    connector_id: int
    transaction_id: str | None = None
    energy_wh: float | None = None
    power_w: float | None = None
    current_a: float | None = None
    voltage_v: float | None = None
    soc_pct: float | None = None
    context: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingStarted(Event):
    """A charging transaction started (1.6 StartTransaction, 2.0.1 TransactionEvent Started)."""

    connector_id: int
    transaction_id: str
    id_tag: str | None = None
    meter_start_wh: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargingEnded(Event):
    """A charging transaction ended (1.6 StopTransaction, 2.0.1 TransactionEvent Ended)."""

    connector_id: int
    transaction_id: str
    meter_stop_wh: float | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChargerNotice(Event):
    """Anything else a charger reports that an inspector may need: ``notice`` is security,
    firmware, diagnostics, log, notify or data_transfer; ``status`` the reported state or
    event type; ``severity`` where the protocol gives one (2.0.1 NotifyEvent: 0 worst).
    (Not named ``kind``: that is every event's type name.)"""

    notice: str
    status: str
    detail: str = ""
    severity: int | None = None


def now_utc() -> datetime:
    """The current time, aware UTC. Only edges call this; pure logic takes time as input."""
    return datetime.now(UTC)


# -- body cams (GB/T 28181) ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class BodycamPosition(Event):
    """A body cam's position (``device_id``: its 20-digit id; ``ts``: the cam's fix time).
    WGS-84 degrees as the cam sends them; ``officer_id``/``squad`` of the officer carrying it."""

    lat: float
    lon: float
    officer_id: str | None = None
    squad: str | None = None
    speed_kmh: float | None = None
    direction_deg: float | None = None
    altitude_m: float | None = None
    # Another instance's cam, mirrored for this one's live map: that instance wrote the telemetry.
    mirrored: bool = False


# -- patrol drones (DJI Cloud API, MAVLink) -------------------------------------------------------
@dataclass(frozen=True, slots=True, kw_only=True)
class DronePosition(Event):
    """A patrol drone's position (``device_id``: the town's drone id, e.g. ``drone-1``; ``ts``:
    when the gateway received the fix). WGS-84 degrees as the vehicle sends them; ``height_m``
    above the ellipsoid / sea level as the vehicle reports it, ``elevation_m`` above take-off."""

    lat: float
    lon: float
    height_m: float | None = None
    elevation_m: float | None = None
    speed_mps: float | None = None
    heading_deg: float | None = None
    battery_percent: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DroneAlert(Event):
    """A patrol drone's alert raised or cleared. ``alert`` is its kind: left_area,
    low_battery or link_lost (not ``kind``: every event's ``kind`` is its type name)."""

    alert: str
    raised: bool
    detail: str = ""
