"""The book's vocabulary: constants, OCPP statuses, the immutable records of chargers and
connectors, and the ``Change`` records the book hands the gateway to persist."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Literal, TypeAlias

Liveness = Literal["online", "reconnecting", "probing", "offline"]
ProbeState = Literal["idle", "pending", "failed"]
MaintenanceKind = Literal["faulted", "offline"]
StatusPoint: TypeAlias = tuple[datetime, str]
"""``(since, status)``: the status holds from ``since`` until the next point's ``since``."""

DEFAULT_FACTOR = 2.0  # heartbeat periods of silence before a probe ([ocpp] silence_factor)
DEFAULT_GRACE = timedelta(seconds=60)  # a socket down this long is not yet an outage
DEFAULT_KEEP = timedelta(days=8)  # status history kept in memory: the 7-day window and a margin
PROBE_RETRY = timedelta(minutes=2)  # a probe without an answer this long is offered again
MAX_CLOCK_SKEW = timedelta(minutes=5)  # a charger timestamp further ahead is its clock, not news
MAX_HISTORY = 4096  # reports per connector at most: a flapping charger must not eat the memory
DAY = timedelta(hours=24)
WEEK = timedelta(days=7)

# OCPP 1.6 ChargePointStatus and 2.0.1 ConnectorStatusEnumType, in their canonical spelling.
AVAILABLE, PREPARING, CHARGING, FINISHING = "Available", "Preparing", "Charging", "Finishing"
SUSPENDED_EV, SUSPENDED_EVSE, RESERVED = "SuspendedEV", "SuspendedEVSE", "Reserved"
OCCUPIED, UNAVAILABLE, FAULTED = "Occupied", "Unavailable", "Faulted"
OCPP_STATUSES: tuple[str, ...] = (
    AVAILABLE,
    PREPARING,
    CHARGING,
    SUSPENDED_EVSE,
    SUSPENDED_EV,
    FINISHING,
    RESERVED,
    OCCUPIED,
    UNAVAILABLE,
    FAULTED,
)
# OCPP 1.6 calls these "operative": the equipment works (whether or not a car is plugged in).
USABLE_STATUSES: frozenset[str] = frozenset(OCPP_STATUSES) - {UNAVAILABLE, FAULTED}
IN_USE: frozenset[str] = USABLE_STATUSES - {AVAILABLE, CHARGING}
OFFLINE_STATUS = "Offline"  # timeline pseudo-status: the charger was offline
UNKNOWN_STATUS = "Unknown"  # timeline pseudo-status: nothing reported
_CANON: dict[str, str] = {s.casefold(): s for s in (*OCPP_STATUSES, OFFLINE_STATUS, UNKNOWN_STATUS)}


def canonical_status(status: str | None) -> str | None:
    """The canonical spelling of an OCPP status (``"faulted"`` → ``"Faulted"``); an unknown
    word is kept as sent (stripped), so an inspector sees what the charger said."""
    if status is None:
        return None
    text = status.strip()
    return _CANON.get(text.casefold(), text) if text else None


def clean_code(value: str | None) -> str | None:
    """An error code, or None for none: 1.6 ``NoError`` and empty strings are no code."""
    if value is None:
        return None
    text = value.strip()
    return None if not text or text.casefold() == "noerror" else text


def clean_text(value: str | None) -> str | None:
    if value is None:
        return None
    return value.strip() or None


# -- the records ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StatusReport:
    """One StatusNotification of one connector, as kept in the history."""

    ts: datetime
    status: str
    error_code: str | None = None
    vendor_error_code: str | None = None
    info: str | None = None


@dataclass(frozen=True, slots=True)
class Outage:
    """A stretch the charger was offline: ``[start, end)``; ``end`` None while it lasts."""

    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class ConnectorState:
    """A connector (1.6 connectorId, 2.0.1 evseId; 0 is the charger itself) as the book sees it.

    ``status``/``error_code``/... are the newest report; ``since`` the first report of its run.
    ``energy_today_wh`` counts the local day ``energy_day``; read it with ``energy_today_wh()``,
    which knows that a new day starts at zero.
    """

    connector_id: int
    status: str | None = None
    since: datetime | None = None
    reported_at: datetime | None = None
    error_code: str | None = None
    vendor_error_code: str | None = None
    info: str | None = None
    last_meter_wh: float | None = None
    last_meter_at: datetime | None = None
    last_power_w: float | None = None
    energy_today_wh: float = 0.0
    energy_day: date | None = None
    transaction_id: str | None = None
    transaction_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ChargerState:
    """One charger: its socket, its last sign of life, the probe, what it said at boot, and its
    connectors. Immutable: the book replaces it on every change, so a snapshot handed to the API
    never moves underneath it.

    ``restarted_at`` is when the gateway restarted while this charger's socket was up (or had
    just closed): no socket survives a restart, so the charger has the reconnect grace from then
    before it counts as offline. Cleared when it connects again."""

    charger_id: str
    site_id: str
    heartbeat_s: int = 300
    connectors: Mapping[int, ConnectorState] = field(default_factory=dict)
    connected: bool = False
    protocol: str | None = None
    connected_at: datetime | None = None
    disconnected_at: datetime | None = None
    disconnect_reason: str | None = None
    last_message_at: datetime | None = None
    restarted_at: datetime | None = None
    probe_state: ProbeState = "idle"
    probe_at: datetime | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    last_boot_reason: str | None = None
    last_boot_at: datetime | None = None
    firmware_status: str | None = None
    firmware_status_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """A fault or warning episode of a connector: Faulted, or an error code with any status,
    from ``start`` until the connector reported something else (``end`` None: still on)."""

    connector_id: int
    start: datetime
    end: datetime | None
    status: str
    error_code: str | None
    vendor_error_code: str | None
    info: str | None


# -- changes: what ``apply`` and friends tell the gateway to persist -----------------------------
@dataclass(frozen=True, slots=True)
class ChargerChanged:
    """Charger-level fields changed; ``fields`` names them. A change of ``last_message_at``
    alone happens on every message: persist it lazily (it only feeds liveness after a restart)."""

    state: ChargerState
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class ConnectorChanged:
    """A connector's fields changed (status, since, codes, meter, energy, transaction)."""

    charger_id: str
    connector: ConnectorState
    fields: frozenset[str]


@dataclass(frozen=True, slots=True)
class StatusRecorded:
    """A new StatusNotification for the history (and ``/events``); ``current`` says whether it
    became the connector's status (False: back-dated behind a newer one)."""

    charger_id: str
    connector_id: int
    report: StatusReport
    current: bool


@dataclass(frozen=True, slots=True)
class OutageStarted:
    """The book declared the charger offline; the outage began at ``start`` (in the past)."""

    charger_id: str
    start: datetime
    reason: str


@dataclass(frozen=True, slots=True)
class OutageEnded:
    """The charger spoke again: the outage ``[start, end)`` is over (keep it: availability)."""

    charger_id: str
    outage: Outage


Change: TypeAlias = ChargerChanged | ConnectorChanged | StatusRecorded | OutageStarted | OutageEnded


class UnknownCharger(KeyError):
    """An event or call named a charger that was never registered with the book."""
