"""The public face of a charger: OCPI 2.2.1 EVSE statuses for the parking app, and a site's
EVSEs counted by status."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from charging.health.liveness import liveness
from charging.health.records import (
    AVAILABLE,
    CHARGING,
    DEFAULT_FACTOR,
    DEFAULT_GRACE,
    FAULTED,
    FINISHING,
    OCCUPIED,
    PREPARING,
    RESERVED,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
    UNAVAILABLE,
    ChargerState,
    canonical_status,
)


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
