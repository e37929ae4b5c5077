"""Charger health: which of the town's chargers work, which are faulted or offline, and why.

The pure logic behind the inspectors' view (issue 5). No I/O and no clock: every instant is an
argument (an event's ``ts``, a ``received_at``, a ``now``), so replaying the same inputs gives
the same book and the same changes. The gateway feeds ``ChargerBook.apply`` the charger events
of ``events``, persists the ``Change`` records it returns, runs the OCPP TriggerMessage probes
the book asks for (``due_probes``), and files the ``CaseRaised`` of ``maintenance_due``.

The rules, explained for inspectors in docs/charger-health.md:

* **Status.** A connector's status is its newest StatusNotification. Chargers queue messages
  while offline and deliver them late and back-dated: such a report goes into the history but
  never overrides a newer one. The same report twice changes nothing; at the same timestamp the
  later arrival wins (1.6 timestamps often have one-second precision and a charger sends in
  order). ``since`` is the first report of the current run of the same status.
* **Liveness.** Any message is a sign of life. Socket up and heard within ``heartbeat_s *
  factor``: online. Socket up but silent for longer: probing (the gateway sends TriggerMessage
  and reports the answer). Probe unanswered, or socket down for longer than ``grace`` (a
  reconnect is normal): offline. An outage starts at the last sign of life (probe) or at the
  disconnect (socket) and ends at the next sign of life.
* **Overall state**, worst first: faulted > offline > unavailable > unknown > warning >
  charging > occupied > available. An error code with a non-Faulted status is a warning.
* **Availability** is the share of time a connector (an EVSE) was usable; connector 0 (the
  charger itself) Faulted or Unavailable makes every connector unusable, and an outage counts
  as unusable. A charger's figure is the mean of its connectors' (connector-hours).
* **OCPI** EVSE status for the public app, and the **maintenance** rule that raises a report
  for a charger faulted or offline for longer than the configured time.
"""

from __future__ import annotations

import bisect
import enum
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import date, datetime, time, timedelta
from typing import Literal, TypeAlias
from zoneinfo import ZoneInfo

from events import (
    CaseRaised,
    ChargerBooted,
    ChargerConnected,
    ChargerDisconnected,
    ChargerHeartbeat,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    Event,
    MeterSample,
    utc,
)

__all__ = [
    "DAY",
    "DEFAULT_FACTOR",
    "DEFAULT_GRACE",
    "DEFAULT_KEEP",
    "MAX_CLOCK_SKEW",
    "MAX_HISTORY",
    "OCPP_STATUSES",
    "OFFLINE_STATUS",
    "PROBE_RETRY",
    "SEVERITY_ORDER",
    "SHANGHAI",
    "UNKNOWN_STATUS",
    "USABLE_STATUSES",
    "WEEK",
    "Availability",
    "Change",
    "ChargerBook",
    "ChargerChanged",
    "ChargerHealth",
    "ChargerState",
    "ConnectorChanged",
    "ConnectorState",
    "EvseStatus",
    "FaultRecord",
    "FleetSummary",
    "HealthState",
    "Liveness",
    "MaintenanceFinding",
    "MaintenanceKind",
    "Outage",
    "OutageEnded",
    "OutageStarted",
    "ProbeState",
    "SiteAvailability",
    "StatusPoint",
    "StatusRecorded",
    "StatusReport",
    "UnknownCharger",
    "availability",
    "canonical_status",
    "charger_energy_today_wh",
    "connector_timeline",
    "energy_today_wh",
    "evse_statuses",
    "fault_history",
    "fleet_summary",
    "health",
    "liveness",
    "maintenance_due",
    "ocpi_status",
    "outage_start",
    "site_availability",
]

Liveness = Literal["online", "probing", "offline"]
ProbeState = Literal["idle", "pending", "failed"]
MaintenanceKind = Literal["faulted", "offline"]
StatusPoint: TypeAlias = tuple[datetime, str]
"""``(since, status)``: the status holds from ``since`` until the next point's ``since``."""

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_FACTOR = 2.0  # heartbeat periods of silence before a probe ([ocpp] silence_factor)
DEFAULT_GRACE = timedelta(seconds=60)  # a socket down this long is not yet an outage
DEFAULT_KEEP = timedelta(days=8)  # status history kept in memory: the 7-day window and a margin
PROBE_RETRY = timedelta(minutes=2)  # a probe without an answer this long is offered again
MAX_CLOCK_SKEW = timedelta(minutes=5)  # a charger timestamp further ahead is its clock, not news
MAX_HISTORY = 4096  # reports per connector at most: a flapping charger must not eat the memory
DAY = timedelta(hours=24)
WEEK = timedelta(days=7)
_ENDED_KEPT = 32  # ended transaction ids remembered per connector, so a late start stays ended

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
_IN_USE: frozenset[str] = USABLE_STATUSES - {AVAILABLE, CHARGING}
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


def _code(value: str | None) -> str | None:
    """An error code, or None for none: 1.6 ``NoError`` and empty strings are no code."""
    if value is None:
        return None
    text = value.strip()
    return None if not text or text.casefold() == "noerror" else text


def _text(value: str | None) -> str | None:
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
    never moves underneath it."""

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


# -- liveness -------------------------------------------------------------------------------------
def liveness(
    state: ChargerState,
    now: datetime,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> Liveness:
    """Online, probing or offline at ``now``. Boundaries are inclusive on the good side: heard
    exactly ``heartbeat_s * factor`` ago is online, down exactly ``grace`` is not yet offline."""
    now = utc(now)
    if not state.connected and (
        state.disconnected_at is None or now - state.disconnected_at > grace
    ):
        return "offline"
    if state.probe_state == "failed":
        return "offline"
    limit = timedelta(seconds=state.heartbeat_s * factor)
    if state.last_message_at is not None and now - state.last_message_at <= limit:
        return "online"
    return "probing"


def outage_start(
    state: ChargerState,
    now: datetime,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> datetime | None:
    """When the current outage began if the charger is offline at ``now``: the last sign of life
    before an unanswered probe, or the disconnect, whichever is earlier. None when online,
    probing, or never heard of (nothing to measure from)."""
    if liveness(state, now, factor, grace) != "offline":
        return None
    starts: list[datetime] = []
    if state.probe_state == "failed":
        heard = state.last_message_at or state.probe_at
        if heard is not None:
            starts.append(heard)
    if not state.connected and state.disconnected_at is not None:
        starts.append(state.disconnected_at)
    return min(starts) if starts else None


# -- energy ---------------------------------------------------------------------------------------
def energy_today_wh(connector: ConnectorState, now: datetime, zone: ZoneInfo = SHANGHAI) -> float:
    """Energy delivered by the connector on ``now``'s local day (0 once a new day has begun)."""
    if connector.energy_day is None or connector.energy_day != utc(now).astimezone(zone).date():
        return 0.0
    return connector.energy_today_wh


def charger_energy_today_wh(state: ChargerState, now: datetime, zone: ZoneInfo = SHANGHAI) -> float:
    """The charger's energy today: the sum over its connectors 1..n (connector 0's meter, the
    charger's main meter if it reports one, would count the same energy twice)."""
    return sum(energy_today_wh(c, now, zone) for cid, c in state.connectors.items() if cid >= 1)


def _tally(conn: ConnectorState, ts: datetime, wh: float, zone: ZoneInfo) -> ConnectorState:
    """Count a register reading: the increase since the previous reading belongs to today, split
    linearly at local midnight. A reading not newer than the last is late or a duplicate and
    counts nothing (queued readings never double-count); a decrease is a meter reset."""
    if conn.last_meter_at is not None and ts <= conn.last_meter_at:
        return conn
    day = ts.astimezone(zone).date()
    today = conn.energy_today_wh if conn.energy_day == day else 0.0
    if conn.last_meter_wh is not None and conn.last_meter_at is not None:
        delta = wh - conn.last_meter_wh
        if delta > 0:
            midnight = datetime.combine(day, time(), tzinfo=zone)
            if conn.last_meter_at < midnight:
                delta *= (ts - midnight) / (ts - conn.last_meter_at)
            today += delta
    return replace(conn, last_meter_wh=wh, last_meter_at=ts, energy_today_wh=today, energy_day=day)


# -- availability ---------------------------------------------------------------------------------
def _usable(status: str) -> bool:
    return canonical_status(status) in USABLE_STATUSES


def availability(history: Sequence[StatusPoint], start: datetime, end: datetime) -> float:
    """The share of ``[start, end)`` spent in a usable status (0..1). ``history`` is a sequence
    of ``(since, status)``; each holds until the next ``since`` (the last until ``end``), before
    the first nothing is known (unusable). Points at the same instant: the last one holds."""
    start, end = utc(start), utc(end)
    if end <= start:
        raise ValueError(f"empty window: {start.isoformat()} .. {end.isoformat()}")
    points = sorted(history, key=lambda p: p[0])
    usable = timedelta(0)
    for i, (since, status) in enumerate(points):
        if not _usable(status):
            continue
        until = points[i + 1][0] if i + 1 < len(points) else end
        lo, hi = max(since, start), min(until, end)
        if hi > lo:
            usable += hi - lo
    return usable / (end - start)


def connector_timeline(
    reports: Sequence[StatusPoint],
    charger: Sequence[StatusPoint] = (),
    outages: Sequence[Outage] = (),
) -> tuple[StatusPoint, ...]:
    """What a connector effectively was, over time: ``Offline`` during an outage, else connector
    0's status (``charger``) when that is Faulted or Unavailable (the whole charger is down),
    else the connector's own status, else ``Unknown``. Consecutive equal statuses are merged."""
    own = sorted(reports, key=lambda p: p[0])
    whole = sorted(charger, key=lambda p: p[0])
    own_at = [p[0] for p in own]
    whole_at = [p[0] for p in whole]
    instants = set(own_at) | set(whole_at)
    for o in outages:
        instants.add(o.start)
        if o.end is not None:
            instants.add(o.end)

    def at(points: list[StatusPoint], keys: list[datetime], t: datetime) -> str | None:
        i = bisect.bisect_right(keys, t) - 1
        return canonical_status(points[i][1]) if i >= 0 else None

    out: list[StatusPoint] = []
    for t in sorted(instants):
        if any(o.start <= t and (o.end is None or t < o.end) for o in outages):
            status = OFFLINE_STATUS
        else:
            top = at(whole, whole_at, t)
            status = top if top in (FAULTED, UNAVAILABLE) else at(own, own_at, t) or UNKNOWN_STATUS
        if not out or out[-1][1] != status:
            out.append((t, status))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Availability:
    """Availability over the last 24 h and 7 days (0..1; None: nothing known yet), per
    connector and for the charger (the mean of its connectors: connector-hours usable)."""

    day: float | None
    week: float | None
    connectors: Mapping[int, tuple[float | None, float | None]]


def _window(timeline: Sequence[StatusPoint], now: datetime, span: timedelta) -> float | None:
    """Availability over ``span`` before ``now``, measured from the first thing known of the
    connector if that is later: a charger installed yesterday is not 'down' the week before."""
    if not timeline:
        return None
    start = max(now - span, timeline[0][0])
    return availability(timeline, start, now) if start < now else None


def _mean(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


# -- overall state for inspectors -----------------------------------------------------------------
class HealthState(enum.StrEnum):
    """A charger's overall state; declared worst first (``SEVERITY_ORDER``)."""

    FAULTED = "faulted"  # a connector (or connector 0) Faulted
    OFFLINE = "offline"  # no connection, or silent and the probe unanswered
    UNAVAILABLE = "unavailable"  # taken out of service (Unavailable / Inoperative)
    UNKNOWN = "unknown"  # online, but a connector never reported (or reported nonsense)
    WARNING = "warning"  # an error code with a working status, or silent and being probed
    CHARGING = "charging"  # a connector is charging
    OCCUPIED = "occupied"  # in use without energy flowing: Preparing, Suspended*, Reserved...
    AVAILABLE = "available"  # every connector free and working

    @property
    def severity(self) -> int:
        """0 for the worst state; sort ascending for worst first."""
        return _SEVERITY[self]


SEVERITY_ORDER: tuple[HealthState, ...] = tuple(HealthState)
_SEVERITY: dict[HealthState, int] = {s: i for i, s in enumerate(SEVERITY_ORDER)}


@dataclass(frozen=True, slots=True)
class ChargerHealth:
    """The inspector's line for one charger: the worst finding decides ``state``, ``reason`` and
    ``since``; ``reasons`` lists every finding, worst first."""

    charger_id: str
    site_id: str
    state: HealthState
    reason: str
    since: datetime | None
    liveness: Liveness
    reasons: tuple[str, ...]


def _human(span: timedelta) -> str:
    s = max(0, int(span.total_seconds()))
    if s < 120:
        return f"{s} s"
    m = s // 60
    if m < 120:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < 48:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def _name(connector_id: int) -> str:
    return "charger" if connector_id == 0 else f"connector {connector_id}"


def _codes(c: ConnectorState) -> str:
    """``GroundFailure (vendor 0x1F, RCD tripped)``: the code, then the vendor's own words."""
    extra = [x for x in (c.vendor_error_code and f"vendor {c.vendor_error_code}", c.info) if x]
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{c.error_code}{tail}" if c.error_code else tail.strip()


def _status_text(c: ConnectorState) -> str:
    """``connector 2 Faulted: GroundFailure (vendor 0x1F)``, ``connector 1 Charging, warning
    HighTemperature``, ``charger Unavailable``."""
    head = f"{_name(c.connector_id)} {c.status}"
    codes = _codes(c)
    if not codes:
        return head
    if c.error_code is None:
        return f"{head} {codes}"
    if c.status in (FAULTED, UNAVAILABLE):
        return f"{head}: {codes}"
    return f"{head}, warning {codes}"


def _silence_text(state: ChargerState, now: datetime) -> str:
    quiet = (
        "no message yet"
        if state.last_message_at is None
        else (f"no message for {_human(now - state.last_message_at)}")
    )
    return f"{quiet} (heartbeat {state.heartbeat_s} s)"


def _offline_text(state: ChargerState, now: datetime) -> str:
    """``no message for 37 min (heartbeat 300 s), probe unanswered``, ``disconnected for 2 h``."""
    if state.last_message_at is None and state.disconnected_at is None:
        return "never connected"
    probe_first = state.probe_state == "failed" and (
        state.connected
        or state.disconnected_at is None
        or (state.last_message_at is not None and state.last_message_at <= state.disconnected_at)
    )
    if probe_first or state.disconnected_at is None:
        return f"{_silence_text(state, now)}, probe unanswered"
    why = f" ({state.disconnect_reason})" if state.disconnect_reason else ""
    return f"disconnected for {_human(now - state.disconnected_at)}{why}"


def health(
    state: ChargerState,
    now: datetime,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> ChargerHealth:
    """The charger's overall state at ``now``, with the reason an inspector reads."""
    now = utc(now)
    live = liveness(state, now, factor, grace)
    found: list[tuple[HealthState, int, datetime | None, str]] = []
    if live == "offline":
        found.append(
            (
                HealthState.OFFLINE,
                -1,
                outage_start(state, now, factor, grace),
                _offline_text(state, now),
            )
        )
    elif live == "probing":
        doing = "probe sent" if state.probe_state == "pending" else "probe due"
        found.append(
            (
                HealthState.WARNING,
                -1,
                state.last_message_at,
                f"{_silence_text(state, now)}, {doing}",
            )
        )
    stale = " (last known)" if live == "offline" else ""
    for cid in sorted(state.connectors):
        c = state.connectors[cid]
        status = canonical_status(c.status)
        if status is None:
            if cid != 0:
                found.append(
                    (HealthState.UNKNOWN, cid, None, f"{_name(cid)} has not reported a status")
                )
            continue
        text = _status_text(replace(c, status=status)) + stale
        if status == FAULTED:
            kind = HealthState.FAULTED
        elif status == UNAVAILABLE:
            kind = HealthState.UNAVAILABLE
        elif status not in USABLE_STATUSES:
            kind, text = HealthState.UNKNOWN, f"{_name(cid)} reports unknown status {status!r}"
        elif c.error_code is not None:
            kind = HealthState.WARNING
        elif cid == 0:
            continue  # the charger itself Available (or any working status) says nothing new
        elif status == CHARGING:
            kind = HealthState.CHARGING
        elif status in _IN_USE:
            kind = HealthState.OCCUPIED
        else:
            kind = HealthState.AVAILABLE
        found.append((kind, cid, c.since, text))
    if not any(cid >= 1 for cid in state.connectors):
        found.append((HealthState.UNKNOWN, 0, None, "no connector has reported a status"))
    found.sort(key=lambda f: (f[0].severity, f[1]))
    worst = found[0][0]
    sinces = [f[2] for f in found if f[0] == worst and f[2] is not None]
    return ChargerHealth(
        charger_id=state.charger_id,
        site_id=state.site_id,
        state=worst,
        reason=found[0][3],
        since=min(sinces) if sinces else None,
        liveness=live,
        reasons=tuple(f[3] for f in found),
    )


@dataclass(frozen=True, slots=True)
class FleetSummary:
    """Counts by state (every state, worst first, zeros included) and the chargers worst first:
    by severity, then longest in that state, then id."""

    at: datetime
    counts: Mapping[HealthState, int]
    chargers: tuple[ChargerHealth, ...]


def fleet_summary(
    states: Iterable[ChargerState],
    now: datetime,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> FleetSummary:
    """The inspectors' overview: ``sum(counts.values()) == len(chargers)``."""
    now = utc(now)
    rows = [health(s, now, factor=factor, grace=grace) for s in states]
    rows.sort(key=lambda h: (h.state.severity, h.since is not None, h.since or now, h.charger_id))
    counts = dict.fromkeys(SEVERITY_ORDER, 0)
    for row in rows:
        counts[row.state] += 1
    return FleetSummary(at=now, counts=counts, chargers=tuple(rows))


# -- OCPI-style EVSE status for the public app ----------------------------------------------------
class EvseStatus(enum.StrEnum):
    """OCPI 2.2.1 EVSE status (mod_locations, Status enum)."""

    AVAILABLE = "AVAILABLE"  # able to start a new charging session
    BLOCKED = "BLOCKED"  # not accessible because of a physical barrier, i.e. a car
    CHARGING = "CHARGING"  # in use
    INOPERATIVE = "INOPERATIVE"  # not yet active, or temporarily not available, but not broken
    OUTOFORDER = "OUTOFORDER"  # out of order, some part may be broken
    PLANNED = "PLANNED"  # planned, will be operating soon (registry, not OCPP)
    REMOVED = "REMOVED"  # discontinued / removed (registry, not OCPP)
    RESERVED = "RESERVED"  # reserved for a particular driver
    UNKNOWN = "UNKNOWN"  # no status information available (also used when offline)


# Preparing (a driver plugged in or presented a card, no transaction yet), Finishing (the session
# is ending, the cable still in) and the Suspended states are a session in progress: "in use"
# (CHARGING). BLOCKED means a barrier with no session (a car parked in the bay), which OCPP does
# not report.
_OCPI: dict[str, EvseStatus] = {
    AVAILABLE: EvseStatus.AVAILABLE,
    PREPARING: EvseStatus.CHARGING,
    CHARGING: EvseStatus.CHARGING,
    SUSPENDED_EV: EvseStatus.CHARGING,
    SUSPENDED_EVSE: EvseStatus.CHARGING,
    FINISHING: EvseStatus.CHARGING,
    OCCUPIED: EvseStatus.CHARGING,
    RESERVED: EvseStatus.RESERVED,
    UNAVAILABLE: EvseStatus.INOPERATIVE,
    FAULTED: EvseStatus.OUTOFORDER,
}


def ocpi_status(
    status: str | None, *, charger_status: str | None = None, offline: bool = False
) -> EvseStatus:
    """The public status of one EVSE: UNKNOWN when the charger is offline (its last word may be
    stale), then connector 0 Faulted/Unavailable for the whole charger, then the connector's."""
    if offline:
        return EvseStatus.UNKNOWN
    whole = canonical_status(charger_status)
    if whole in (FAULTED, UNAVAILABLE):
        return _OCPI[whole]
    own = canonical_status(status)
    return _OCPI.get(own, EvseStatus.UNKNOWN) if own is not None else EvseStatus.UNKNOWN


def evse_statuses(
    state: ChargerState,
    now: datetime,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> dict[int, EvseStatus]:
    """The public status of each EVSE (connector 1..n) of a charger at ``now``."""
    offline = liveness(state, now, factor, grace) == "offline"
    whole = state.connectors.get(0)
    return {
        cid: ocpi_status(c.status, charger_status=whole.status if whole else None, offline=offline)
        for cid, c in sorted(state.connectors.items())
        if cid >= 1
    }


@dataclass(frozen=True, slots=True)
class SiteAvailability:
    """A site's EVSEs by public status (every status, zeros included)."""

    site_id: str
    counts: Mapping[EvseStatus, int]

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def available(self) -> int:
        return self.counts[EvseStatus.AVAILABLE]


def site_availability(
    states: Iterable[ChargerState],
    now: datetime,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> dict[str, SiteAvailability]:
    """Per site, how many EVSEs are AVAILABLE, CHARGING, OUTOFORDER... for the parking app."""
    tallies: dict[str, dict[EvseStatus, int]] = {}
    for s in states:
        tally = tallies.setdefault(s.site_id, dict.fromkeys(EvseStatus, 0))
        for status in evse_statuses(s, now, factor=factor, grace=grace).values():
            tally[status] += 1
    return {site: SiteAvailability(site, counts) for site, counts in sorted(tallies.items())}


# -- maintenance reports --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class MaintenanceFinding:
    """A charger faulted or offline for longer than allowed. ``observed_at`` is the instant it
    crossed the threshold (``since + after``): the same on every sweep of the same episode, so
    the case store files one report per episode."""

    charger_id: str
    site_id: str
    kind: MaintenanceKind
    since: datetime
    observed_at: datetime
    now: datetime
    reason: str
    connector_id: int | None = None
    connectors: tuple[int, ...] = ()
    status: str | None = None
    error_code: str | None = None
    vendor_error_code: str | None = None
    info: str | None = None
    vendor: str | None = None
    model: str | None = None
    firmware: str | None = None

    @property
    def duration(self) -> timedelta:
        return self.now - self.since

    @property
    def title(self) -> str:
        """``充电桩故障 GroundFailure`` / ``充电桩离线`` (the vendor code when the code is only
        OtherError or absent)."""
        if self.kind == "offline":
            return "充电桩离线"
        code = self.error_code
        if code in (None, "OtherError") and self.vendor_error_code:
            code = self.vendor_error_code
        return f"充电桩故障 {code}" if code else "充电桩故障"

    def to_case(self, *, category: str = "charger", dedup_window: timedelta = DAY) -> CaseRaised:
        """The report for the case outbox; ``category`` is the town's code for charger
        maintenance ([ocpp] configuration of the gateway)."""
        details: dict[str, str | int | float | bool | None] = {
            "charger_id": self.charger_id,
            "kind": self.kind,
            "since": self.since.isoformat(),
            "minutes": int(self.duration.total_seconds() // 60),
            "reason": self.reason,
        }
        if self.kind == "faulted":
            details |= {
                "connector_id": self.connector_id,
                "connectors": ",".join(str(c) for c in self.connectors),
                "status": self.status,
                "error_code": self.error_code,
                "vendor_error_code": self.vendor_error_code,
                "info": self.info,
            }
        details |= {"vendor": self.vendor, "model": self.model, "firmware": self.firmware}
        where = (
            f"{self.charger_id}/{self.connector_id}"
            if self.connector_id is not None
            else (self.charger_id)
        )
        return CaseRaised(
            device_id=self.charger_id,
            ts=self.observed_at,
            category=category,
            rule_id=f"charger-{self.kind}",
            title=self.title,
            dedup_key=f"charger|{self.charger_id}|{self.kind}",
            dedup_window_s=int(dedup_window.total_seconds()),
            site_id=self.site_id,
            evidence=(
                f"{'status' if self.kind == 'faulted' else 'outage'}:{where}@"
                f"{self.since.isoformat()}",
            ),
            details=details,
        )


def maintenance_due(
    state: ChargerState,
    now: datetime,
    faulted_after: timedelta,
    offline_after: timedelta,
    *,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> MaintenanceFinding | None:
    """A finding when a connector has been Faulted for longer than ``faulted_after`` (the
    longest-faulted one; faults come first), else when the charger has been offline for longer
    than ``offline_after``. A charger never heard of raises nothing: commissioning is not a
    fault."""
    now = utc(now)
    faulted = sorted(
        (c.since, cid, c)
        for cid, c in state.connectors.items()
        if canonical_status(c.status) == FAULTED and c.since is not None
    )
    if faulted and now - faulted[0][0] > faulted_after:
        since, cid, c = faulted[0]
        return MaintenanceFinding(
            charger_id=state.charger_id,
            site_id=state.site_id,
            kind="faulted",
            since=since,
            observed_at=since + faulted_after,
            now=now,
            reason=_status_text(replace(c, status=FAULTED)),
            connector_id=cid,
            connectors=tuple(sorted(f[1] for f in faulted)),
            status=FAULTED,
            error_code=c.error_code,
            vendor_error_code=c.vendor_error_code,
            info=c.info,
            vendor=state.vendor,
            model=state.model,
            firmware=state.firmware,
        )
    start = outage_start(state, now, factor, grace)
    if start is not None and now - start > offline_after:
        return MaintenanceFinding(
            charger_id=state.charger_id,
            site_id=state.site_id,
            kind="offline",
            since=start,
            observed_at=start + offline_after,
            now=now,
            reason=_offline_text(state, now),
            vendor=state.vendor,
            model=state.model,
            firmware=state.firmware,
        )
    return None


# -- history helpers -----------------------------------------------------------------------------
def fault_history(connector_id: int, reports: Sequence[StatusReport]) -> tuple[FaultRecord, ...]:
    """Fault and warning episodes in a connector's reports (sorted by ``ts``), newest first. Works
    on the book's history or on a longer one read back from storage."""
    out: list[FaultRecord] = []
    open_: FaultRecord | None = None
    for r in reports:
        key = (r.status, r.error_code, r.vendor_error_code)
        if open_ is not None:
            if key == (open_.status, open_.error_code, open_.vendor_error_code):
                continue
            out.append(replace(open_, end=r.ts))
            open_ = None
        if r.status == FAULTED or r.error_code is not None or r.vendor_error_code is not None:
            open_ = FaultRecord(
                connector_id, r.ts, None, r.status, r.error_code, r.vendor_error_code, r.info
            )
    if open_ is not None:
        out.append(open_)
    return tuple(reversed(out))


def _run_start(history: Sequence[StatusReport]) -> int:
    """Index of the first report of the last run of equal statuses."""
    i = len(history) - 1
    while i > 0 and history[i - 1].status == history[-1].status:
        i -= 1
    return i


def _from_history(conn: ConnectorState, history: Sequence[StatusReport]) -> ConnectorState:
    last = history[-1]
    return replace(
        conn,
        status=last.status,
        since=history[_run_start(history)].ts,
        reported_at=last.ts,
        error_code=last.error_code,
        vendor_error_code=last.vendor_error_code,
        info=last.info,
    )


def _prune(history: list[StatusReport], keep: timedelta) -> None:
    """Drop reports older than ``keep`` before the newest, but keep the first report of the run
    that spans the cutoff: it holds the status at the cutoff and a long run's true ``since``."""
    cutoff = history[-1].ts - keep
    if len(history) >= 2 and history[1].ts < cutoff:
        i = bisect.bisect_left(history, cutoff, key=lambda r: r.ts)
        j = i - 1
        while j > 0 and history[j - 1].status == history[j].status:
            j -= 1
        history[:] = [history[j], *history[i:]]
    if len(history) > MAX_HISTORY:
        del history[: len(history) - MAX_HISTORY]


_CHARGER_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(ChargerState) if f.name != "connectors"
)
_CONNECTOR_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ConnectorState))
_CHARGER_EVENTS = (
    ChargerConnected,
    ChargerDisconnected,
    ChargerBooted,
    ChargerHeartbeat,
    ChargerNotice,
    ConnectorStatusChanged,
    MeterSample,
    ChargingStarted,
    ChargingEnded,
)


def _changed(old: object, new: object, names: Iterable[str]) -> frozenset[str]:
    return frozenset(n for n in names if getattr(old, n) != getattr(new, n))


def _alive(state: ChargerState, at: datetime) -> ChargerState:
    """A sign of life at ``at``: the newest one is ``last_message_at``, and it answers a probe
    sent (or failed) no later than it."""
    last = state.last_message_at
    new = state if last is not None and last >= at else replace(state, last_message_at=at)
    if new.probe_state != "idle" and (new.probe_at is None or at >= new.probe_at):
        new = replace(new, probe_state="idle", probe_at=None)
    return new


# -- the book -------------------------------------------------------------------------------------
class ChargerBook:
    """Every charger's health, fed by events. Not thread-safe; one instance per gateway process
    (chargers are sticky to an instance). ``apply`` does O(connectors) work, plus a bisect into
    the connector's history for a StatusNotification.

    Keeps in memory ``keep`` of status history per connector (and of outages), enough for the
    7-day availability; the gateway stores the ``StatusRecorded``/``OutageEnded`` changes for
    longer history and hands the recent part back to ``restore`` after a restart.
    """

    def __init__(
        self,
        zone: ZoneInfo = SHANGHAI,
        *,
        factor: float = DEFAULT_FACTOR,
        grace: timedelta = DEFAULT_GRACE,
        keep: timedelta = DEFAULT_KEEP,
        probe_retry: timedelta = PROBE_RETRY,
    ) -> None:
        if factor <= 0 or grace < timedelta(0) or keep < WEEK or probe_retry <= timedelta(0):
            raise ValueError("factor and probe_retry must be > 0, grace >= 0, keep >= 7 days")
        self.zone = zone
        self.factor = factor
        self.grace = grace
        self.keep = keep
        self.probe_retry = probe_retry
        self._states: dict[str, ChargerState] = {}
        self._history: dict[tuple[str, int], list[StatusReport]] = {}
        self._outages: dict[str, list[Outage]] = {}
        self._announced: dict[str, datetime] = {}
        self._ended: dict[tuple[str, int], deque[str]] = {}

    # -- setting up

    def register(
        self,
        charger_id: str,
        site_id: str,
        *,
        heartbeat_s: int = 300,
        connector_ids: Iterable[int] = (),
    ) -> ChargerState:
        """Add a charger from the registry, or update its site, heartbeat interval (the one the
        gateway gives it at boot) and connectors; live state is kept."""
        if heartbeat_s <= 0:
            raise ValueError("heartbeat_s must be > 0")
        old = self._states.get(charger_id) or ChargerState(charger_id, site_id)
        conns = dict(old.connectors)
        for cid in connector_ids:
            if cid < 0:
                raise ValueError(f"connector id must be >= 0, got {cid}")
            conns.setdefault(cid, ConnectorState(cid))
        new = replace(old, site_id=site_id, heartbeat_s=heartbeat_s, connectors=conns)
        self._states[charger_id] = new
        return new

    def restore(
        self,
        state: ChargerState,
        *,
        now: datetime,
        history: Mapping[int, Iterable[StatusReport]] | None = None,
        outages: Iterable[Outage] = (),
    ) -> ChargerState:
        """Load a persisted charger after a restart at ``now``. No socket survives a restart: a
        charger that was connected counts as disconnected at ``now`` (its reconnect within the
        grace is no outage); an unanswered probe is forgotten. ``history`` (recent reports per
        connector) and closed ``outages`` feed availability; without history a connector's
        snapshot seeds it."""
        now = utc(now)
        s = state
        if s.connected:
            s = replace(s, connected=False, disconnected_at=now, disconnect_reason="restart")
        if s.probe_state == "pending":
            s = replace(s, probe_state="idle", probe_at=None)
        given = {cid: sorted(rs, key=lambda r: r.ts) for cid, rs in (history or {}).items()}
        conns = dict(s.connectors)
        for cid in sorted(set(conns) | set(given)):
            conn = conns.get(cid) or ConnectorState(cid)
            reports = given.get(cid) or []
            if not reports and conn.status is not None and conn.since is not None:
                reports = _seed(conn, conn.since)
            if reports:
                _prune(reports, self.keep)
                conns[cid] = _from_history(conn, reports)
            self._history[(s.charger_id, cid)] = reports
            self._ended.pop((s.charger_id, cid), None)
        self._announced.pop(s.charger_id, None)
        s = replace(s, connectors=conns)
        self._outages[s.charger_id] = sorted(
            (o for o in outages if o.end is not None), key=lambda o: o.start
        )
        self._states[s.charger_id] = s
        return s

    # -- reading

    def __contains__(self, charger_id: object) -> bool:
        return charger_id in self._states

    def __len__(self) -> int:
        return len(self._states)

    def state(self, charger_id: str) -> ChargerState:
        try:
            return self._states[charger_id]
        except KeyError:
            raise UnknownCharger(charger_id) from None

    def states(self) -> tuple[ChargerState, ...]:
        return tuple(self._states[k] for k in sorted(self._states))

    def history(self, charger_id: str, connector_id: int) -> tuple[StatusReport, ...]:
        """The connector's recent reports (oldest first), back-dated ones in their place."""
        self.state(charger_id)
        return tuple(self._history.get((charger_id, connector_id), ()))

    def outages(self, charger_id: str, now: datetime) -> tuple[Outage, ...]:
        """Recent closed outages and, if the charger is offline at ``now``, the open one."""
        s = self.state(charger_id)
        closed = tuple(self._outages.get(charger_id, ()))
        start = outage_start(s, now, self.factor, self.grace)
        return (*closed, Outage(start)) if start is not None else closed

    def timeline(
        self, charger_id: str, connector_id: int, now: datetime
    ) -> tuple[StatusPoint, ...]:
        """The connector's effective status over time (see ``connector_timeline``)."""
        own = [(r.ts, r.status) for r in self.history(charger_id, connector_id)]
        whole = (
            [(r.ts, r.status) for r in self._history.get((charger_id, 0), ())]
            if connector_id != 0
            else []
        )
        return connector_timeline(own, whole, self.outages(charger_id, now))

    def availability(self, charger_id: str, now: datetime) -> Availability:
        """24 h and 7-day availability per connector (1..n; connector 0 only if there is no
        other) and for the charger: the mean over its connectors."""
        now = utc(now)
        s = self.state(charger_id)
        ids = sorted(cid for cid in s.connectors if cid >= 1) or sorted(s.connectors)
        per: dict[int, tuple[float | None, float | None]] = {}
        for cid in ids:
            line = self.timeline(charger_id, cid, now)
            per[cid] = (_window(line, now, DAY), _window(line, now, WEEK))
        return Availability(
            day=_mean(v[0] for v in per.values()),
            week=_mean(v[1] for v in per.values()),
            connectors=per,
        )

    def faults(self, charger_id: str) -> tuple[FaultRecord, ...]:
        """Recent fault and warning episodes of all connectors, newest first."""
        s = self.state(charger_id)
        out = [
            f
            for cid in s.connectors
            for f in fault_history(cid, self._history.get((charger_id, cid), ()))
        ]
        out.sort(key=lambda f: (f.start, f.connector_id), reverse=True)
        return tuple(out)

    def health(self, charger_id: str, now: datetime) -> ChargerHealth:
        return health(self.state(charger_id), now, factor=self.factor, grace=self.grace)

    def fleet(self, now: datetime) -> FleetSummary:
        return fleet_summary(self.states(), now, factor=self.factor, grace=self.grace)

    def sites(self, now: datetime) -> dict[str, SiteAvailability]:
        return site_availability(self.states(), now, factor=self.factor, grace=self.grace)

    def energy_today_wh(self, charger_id: str, now: datetime) -> float:
        return charger_energy_today_wh(self.state(charger_id), now, self.zone)

    def maintenance(
        self, now: datetime, faulted_after: timedelta, offline_after: timedelta
    ) -> tuple[MaintenanceFinding, ...]:
        """``maintenance_due`` for every charger (by id)."""
        found = (
            maintenance_due(
                s, now, faulted_after, offline_after, factor=self.factor, grace=self.grace
            )
            for s in self.states()
        )
        return tuple(f for f in found if f is not None)

    # -- liveness: probes and sweeps

    def due_probes(self, now: datetime) -> tuple[str, ...]:
        """Chargers to probe now (TriggerMessage): socket up, silent past ``heartbeat_s *
        factor``, and no probe in flight (or one unanswered for ``probe_retry``)."""
        now = utc(now)
        return tuple(
            s.charger_id
            for s in self.states()
            if s.connected
            and liveness(s, now, self.factor, self.grace) == "probing"
            and (
                s.probe_state != "pending"
                or s.probe_at is None
                or now - s.probe_at >= self.probe_retry
            )
        )

    def probe_sent(self, charger_id: str, now: datetime) -> tuple[Change, ...]:
        """The gateway sent the probe at ``now``."""
        old = self.state(charger_id)
        return self._commit(old, replace(old, probe_state="pending", probe_at=utc(now)), [])

    def probe_result(self, charger_id: str, ok: bool, now: datetime) -> tuple[Change, ...]:
        """The probe's outcome at ``now``: answered (a sign of life) or not (offline, the outage
        starting at the last sign of life). A charger heard recently enough to be online
        at ``now`` outweighs a timed-out probe."""
        now = utc(now)
        old = self.state(charger_id)
        if ok:
            out: list[Change] = []
            new = _alive(replace(old, probe_state="idle", probe_at=None), now)
            self._close_outage(old, new, now, out)
            return self._commit(old, new, out)
        if liveness(old, now, self.factor, self.grace) == "online":
            # it spoke after the probe went out (answering it, or otherwise): not a failure
            return self._commit(old, replace(old, probe_state="idle", probe_at=None), [])
        sent = old.probe_at or now
        new = replace(old, probe_state="failed", probe_at=sent)
        out = []
        self._announce(new, now, out)
        return self._commit(old, new, out)

    def sweep(self, now: datetime) -> tuple[Change, ...]:
        """Declare the outages that have begun by ``now`` (sockets down past the grace), once
        each. Run it every few seconds; liveness itself never waits for it."""
        now = utc(now)
        out: list[Change] = []
        for s in self.states():
            self._announce(s, now, out)
        return tuple(out)

    def _announce(self, state: ChargerState, now: datetime, out: list[Change]) -> None:
        start = outage_start(state, now, self.factor, self.grace)
        if start is not None and self._announced.get(state.charger_id) != start:
            self._announced[state.charger_id] = start
            out.append(OutageStarted(state.charger_id, start, _offline_text(state, now)))

    def _close_outage(
        self, old: ChargerState, new: ChargerState, at: datetime, out: list[Change]
    ) -> None:
        was = liveness(old, at, self.factor, self.grace) == "offline"
        if not was or liveness(new, at, self.factor, self.grace) == "offline":
            return
        self._announced.pop(old.charger_id, None)
        start = outage_start(old, at, self.factor, self.grace)
        if start is None or start >= at:
            return
        outage = Outage(start, at)
        kept = self._outages.setdefault(old.charger_id, [])
        bisect.insort(kept, outage, key=lambda o: o.start)
        horizon = at - self.keep
        kept[:] = [o for o in kept if o.end is not None and o.end > horizon]
        out.append(OutageEnded(old.charger_id, outage))

    # -- events

    def apply(self, event: Event, received_at: datetime | None = None) -> tuple[Change, ...]:
        """Apply one charger event; return what changed (empty for a duplicate, a stale report
        that changes nothing, or an event that is not about chargers).

        ``received_at`` is when the gateway received the message: the sign of life counts then,
        not at the charger's own (possibly queued, back-dated) timestamp, and a timestamp more
        than ``MAX_CLOCK_SKEW`` ahead of it is a wrong clock and is read as ``received_at``.
        Raises ``UnknownCharger`` for a charger that was never registered.
        """
        if not isinstance(event, _CHARGER_EVENTS):
            return ()
        old = self.state(event.device_id)
        ts = utc(event.ts)
        life = ts if received_at is None else utc(received_at)
        if received_at is not None and ts > life + MAX_CLOCK_SKEW:
            ts = life
        out: list[Change] = []
        if isinstance(event, ChargerDisconnected):
            return self._commit(old, _socket_down(old, ts, event.reason), out)
        new = self._event(old, event, ts, out)
        new = _alive(new, life)
        self._close_outage(old, new, life, out)
        return self._commit(old, new, out)

    def _event(
        self, s: ChargerState, event: Event, ts: datetime, out: list[Change]
    ) -> ChargerState:
        if isinstance(event, ChargerConnected):
            if (s.connected_at is not None and ts <= s.connected_at) or (
                s.disconnected_at is not None and ts < s.disconnected_at
            ):
                return s  # a duplicate, or older than the newest socket event
            return replace(
                s,
                connected=True,
                connected_at=ts,
                protocol=event.protocol,
                probe_state="idle",
                probe_at=None,
            )
        if isinstance(event, ChargerBooted):
            if s.last_boot_at is not None and ts <= s.last_boot_at:
                return s
            return replace(
                s,
                vendor=_text(event.vendor) or s.vendor,
                model=_text(event.model) or s.model,
                serial=_text(event.serial) or s.serial,
                firmware=_text(event.firmware) or s.firmware,
                last_boot_reason=_text(event.reason),
                last_boot_at=ts,
            )
        if isinstance(event, ChargerNotice):
            if event.notice == "firmware" and (
                s.firmware_status_at is None or ts > s.firmware_status_at
            ):
                return replace(s, firmware_status=_text(event.status), firmware_status_at=ts)
            return s
        if isinstance(event, ConnectorStatusChanged):
            return self._status(s, event, ts, out)
        if isinstance(event, MeterSample | ChargingStarted | ChargingEnded):
            return self._meter(s, event, ts)
        return s  # ChargerHeartbeat: only a sign of life

    def _status(
        self, s: ChargerState, event: ConnectorStatusChanged, ts: datetime, out: list[Change]
    ) -> ChargerState:
        cid = event.connector_id
        status = canonical_status(event.status)
        if status is None or cid < 0:
            return s
        report = StatusReport(
            ts, status, _code(event.error_code), _text(event.vendor_error_code), _text(event.info)
        )
        history = self._history.setdefault((s.charger_id, cid), [])
        lo = bisect.bisect_left(history, ts, key=lambda r: r.ts)
        hi = bisect.bisect_right(history, ts, key=lambda r: r.ts)
        if report in history[lo:hi]:
            return s  # the same report again
        history.insert(hi, report)
        current = hi == len(history) - 1
        _prune(history, self.keep)
        out.append(StatusRecorded(s.charger_id, cid, report, current))
        conn = _from_history(s.connectors.get(cid) or ConnectorState(cid), history)
        return replace(s, connectors={**s.connectors, cid: conn})

    def _meter(
        self, s: ChargerState, event: MeterSample | ChargingStarted | ChargingEnded, ts: datetime
    ) -> ChargerState:
        cid = event.connector_id
        if cid < 0:
            return s
        conn = s.connectors.get(cid) or ConnectorState(cid)
        key = (s.charger_id, cid)
        if isinstance(event, MeterSample):
            if event.energy_wh is not None:
                tallied = _tally(conn, ts, event.energy_wh, self.zone)
                if tallied is not conn:
                    conn = replace(tallied, last_power_w=event.power_w)
        elif isinstance(event, ChargingStarted):
            ended = self._ended.get(key, ())
            if event.transaction_id not in ended and (
                conn.transaction_at is None or ts >= conn.transaction_at
            ):
                conn = replace(conn, transaction_id=event.transaction_id, transaction_at=ts)
            if event.meter_start_wh is not None:
                conn = _tally(conn, ts, event.meter_start_wh, self.zone)
        else:
            ended = self._ended.setdefault(key, deque(maxlen=_ENDED_KEPT))
            if event.transaction_id not in ended:
                ended.append(event.transaction_id)
            if conn.transaction_id == event.transaction_id:
                conn = replace(conn, transaction_id=None, transaction_at=ts)
            if event.meter_stop_wh is not None:
                conn = _tally(conn, ts, event.meter_stop_wh, self.zone)
        if conn == s.connectors.get(cid):
            return s
        return replace(s, connectors={**s.connectors, cid: conn})

    def _commit(
        self, old: ChargerState, new: ChargerState, extra: list[Change]
    ) -> tuple[Change, ...]:
        """Store ``new`` and list the changes: outages first, then the charger, its connectors,
        and the status reports."""
        self._states[new.charger_id] = new
        if new is old:
            return tuple(extra)
        first = [c for c in extra if isinstance(c, OutageStarted | OutageEnded)]
        last = [c for c in extra if not isinstance(c, OutageStarted | OutageEnded)]
        changes: list[Change] = list(first)
        names = _changed(old, new, _CHARGER_FIELDS)
        if names:
            changes.append(ChargerChanged(new, names))
        if new.connectors is not old.connectors:
            for cid, conn in sorted(new.connectors.items()):
                before = old.connectors.get(cid)
                if before is None:
                    changes.append(
                        ConnectorChanged(new.charger_id, conn, frozenset(_CONNECTOR_FIELDS))
                    )
                elif before is not conn:
                    diff = _changed(before, conn, _CONNECTOR_FIELDS)
                    if diff:
                        changes.append(ConnectorChanged(new.charger_id, conn, diff))
        changes.extend(last)
        return tuple(changes)


def _seed(conn: ConnectorState, since: datetime) -> list[StatusReport]:
    """A history that reproduces a persisted connector snapshot: the run's first report and,
    if later, its newest."""
    first = StatusReport(
        since, conn.status or UNKNOWN_STATUS, conn.error_code, conn.vendor_error_code, conn.info
    )
    if conn.reported_at is None or conn.reported_at <= since:
        return [first]
    return [first, replace(first, ts=conn.reported_at)]


def _socket_down(s: ChargerState, ts: datetime, reason: str) -> ChargerState:
    """A socket closed at ``ts``. ``replaced`` (a new socket took over) is no disconnect; one
    older than the current socket's opening is old news; at the same instant the opening wins;
    of two closes without an opening between them the earlier is when it went down."""
    if reason == "replaced" or (s.connected_at is not None and ts <= s.connected_at):
        return s
    why = _text(reason)
    if s.connected:
        return replace(s, connected=False, disconnected_at=ts, disconnect_reason=why)
    if s.disconnected_at is None or ts < s.disconnected_at:
        return replace(s, disconnected_at=ts, disconnect_reason=why)
    return s
