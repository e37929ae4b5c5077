"""Transitions of a charger's own fields (socket opened, boot, firmware notices) and the diff
that turns an old and a new state into the ``Change`` records the gateway persists."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import fields, replace
from datetime import datetime

from charging.health.records import (
    Change,
    ChargerChanged,
    ChargerState,
    ConnectorChanged,
    ConnectorState,
    OutageEnded,
    OutageStarted,
    clean_text,
)
from events import (
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
)

_CHARGER_FIELDS: tuple[str, ...] = tuple(
    f.name for f in fields(ChargerState) if f.name != "connectors"
)
_CONNECTOR_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ConnectorState))
CHARGER_EVENTS = (
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


def charger_event(s: ChargerState, event: Event, ts: datetime) -> ChargerState:
    """A charger-level event at ``ts``: a socket opened (a duplicate or one older than the newest
    socket event changes nothing), a boot, a firmware notice; a heartbeat is only a sign of
    life (the book counts it)."""
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
            restarted_at=None,
        )
    if isinstance(event, ChargerBooted):
        if s.last_boot_at is not None and ts <= s.last_boot_at:
            return s
        return replace(
            s,
            vendor=clean_text(event.vendor) or s.vendor,
            model=clean_text(event.model) or s.model,
            serial=clean_text(event.serial) or s.serial,
            firmware=clean_text(event.firmware) or s.firmware,
            last_boot_reason=clean_text(event.reason),
            last_boot_at=ts,
        )
    if (
        isinstance(event, ChargerNotice)
        and event.notice == "firmware"
        and (s.firmware_status_at is None or ts > s.firmware_status_at)
    ):
        return replace(s, firmware_status=clean_text(event.status), firmware_status_at=ts)
    return s


def changes(old: ChargerState, new: ChargerState, extra: list[Change]) -> tuple[Change, ...]:
    """What changed from ``old`` to ``new``: outages first, then the charger, its connectors,
    and the status reports (of ``extra``)."""
    if new is old:
        return tuple(extra)
    first = [c for c in extra if isinstance(c, OutageStarted | OutageEnded)]
    last = [c for c in extra if not isinstance(c, OutageStarted | OutageEnded)]
    out: list[Change] = list(first)
    names = _changed(old, new, _CHARGER_FIELDS)
    if names:
        out.append(ChargerChanged(new, names))
    if new.connectors is not old.connectors:
        for cid, conn in sorted(new.connectors.items()):
            before = old.connectors.get(cid)
            if before is None:
                out.append(ConnectorChanged(new.charger_id, conn, frozenset(_CONNECTOR_FIELDS)))
            elif before is not conn:
                diff = _changed(before, conn, _CONNECTOR_FIELDS)
                if diff:
                    out.append(ConnectorChanged(new.charger_id, conn, diff))
    out.extend(last)
    return tuple(out)
