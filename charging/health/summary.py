"""The inspector's line for a charger: its overall state (worst finding first), the reason in
words and since when; and the fleet summary, counts by state and chargers worst first."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from charging.health.liveness import (
    liveness,
    offline_text,
    outage_start,
    restart_text,
    silence_text,
)
from charging.health.records import (
    CHARGING,
    DEFAULT_FACTOR,
    DEFAULT_GRACE,
    FAULTED,
    IN_USE,
    UNAVAILABLE,
    USABLE_STATUSES,
    ChargerState,
    ConnectorState,
    Liveness,
    canonical_status,
)
from events import utc


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


def _name(connector_id: int) -> str:
    return "charger" if connector_id == 0 else f"connector {connector_id}"


def _codes(c: ConnectorState) -> str:
    """``GroundFailure (vendor 0x1F, RCD tripped)``: the code, then the vendor's own words."""
    extra = [x for x in (c.vendor_error_code and f"vendor {c.vendor_error_code}", c.info) if x]
    tail = f" ({', '.join(extra)})" if extra else ""
    return f"{c.error_code}{tail}" if c.error_code else tail.strip()


def status_text(c: ConnectorState) -> str:
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
                offline_text(state, now),
            )
        )
    elif live == "reconnecting":
        found.append((HealthState.WARNING, -1, state.restarted_at, restart_text(state, now)))
    elif live == "probing":
        doing = "probe sent" if state.probe_state == "pending" else "probe due"
        found.append(
            (
                HealthState.WARNING,
                -1,
                state.last_message_at,
                f"{silence_text(state, now)}, {doing}",
            )
        )
    stale = " (last known)" if live in ("offline", "reconnecting") else ""
    for cid in sorted(state.connectors):
        c = state.connectors[cid]
        status = canonical_status(c.status)
        if status is None:
            if cid != 0:
                found.append(
                    (HealthState.UNKNOWN, cid, None, f"{_name(cid)} has not reported a status")
                )
            continue
        text = status_text(replace(c, status=status)) + stale
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
        elif status in IN_USE:
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
