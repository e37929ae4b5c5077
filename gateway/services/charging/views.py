"""The inspectors' fleet view: one function behind ``GET /api/v1/chargers`` and
``citygate chargers health``, so both show the same thing from the same state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from charging.health import ChargerHealth
from gateway.services.charging.fleet import ChargerFleet


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def fleet_line(h: ChargerHealth, rt: ChargerFleet) -> dict[str, Any]:
    """One charger's line of the fleet view (and the head of its detail view)."""
    info = rt.chargers.get(h.charger_id)
    return {
        "id": h.charger_id,
        "site_id": info.site_id if info else None,
        "place": info.place if info else None,
        "lifecycle": info.lifecycle if info else None,
        "state": h.state.value,
        "reason": h.reason,
        "since": _iso(h.since),
        "online": h.liveness == "online",
        "liveness": h.liveness,
    }


def fleet_view(rt: ChargerFleet, now: datetime) -> dict[str, Any]:
    """The inspectors' fleet view at ``now``: counts by state, chargers worst first. The one
    function behind ``GET /api/v1/chargers`` and ``citygate chargers health``, so both show
    the same thing from the same state."""
    fleet = rt.book.fleet(now)
    return {
        "at": fleet.at.isoformat(),
        "total": len(fleet.chargers),
        "counts": {k.value: v for k, v in fleet.counts.items()},
        "chargers": [fleet_line(h, rt) for h in fleet.chargers],
    }
