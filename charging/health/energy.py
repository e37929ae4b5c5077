"""Energy today: what each connector delivered since local midnight in the town's zone (an
argument: the pure book knows no zone of its own), from the meter register readings."""

from __future__ import annotations

from collections import deque
from dataclasses import replace
from datetime import datetime, time
from zoneinfo import ZoneInfo

from charging.health.records import ChargerState, ConnectorState
from events import ChargingEnded, ChargingStarted, MeterSample, utc

ENDED_KEPT = 32  # ended transaction ids remembered per connector, so a late start stays ended


def energy_today_wh(connector: ConnectorState, now: datetime, zone: ZoneInfo) -> float:
    """Energy delivered by the connector on ``now``'s local day (0 once a new day has begun)."""
    if connector.energy_day is None or connector.energy_day != utc(now).astimezone(zone).date():
        return 0.0
    return connector.energy_today_wh


def charger_energy_today_wh(state: ChargerState, now: datetime, zone: ZoneInfo) -> float:
    """The charger's energy today: the sum over its connectors 1..n (connector 0's meter, the
    charger's main meter if it reports one, would count the same energy twice)."""
    return sum(energy_today_wh(c, now, zone) for cid, c in state.connectors.items() if cid >= 1)


def tally(conn: ConnectorState, ts: datetime, wh: float, zone: ZoneInfo) -> ConnectorState:
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


def meter(
    conn: ConnectorState,
    event: MeterSample | ChargingStarted | ChargingEnded,
    ts: datetime,
    zone: ZoneInfo,
    ended: deque[str],
) -> ConnectorState:
    """A meter reading, a transaction start or end on ``conn``: the register is tallied, and the
    transaction the connector carries is set or cleared. ``ended`` (the connector's recently
    ended transaction ids, updated here) keeps a late, re-sent start from reopening one."""
    if isinstance(event, MeterSample):
        if event.energy_wh is not None:
            tallied = tally(conn, ts, event.energy_wh, zone)
            if tallied is not conn:
                conn = replace(tallied, last_power_w=event.power_w)
    elif isinstance(event, ChargingStarted):
        if event.transaction_id not in ended and (
            conn.transaction_at is None or ts >= conn.transaction_at
        ):
            conn = replace(conn, transaction_id=event.transaction_id, transaction_at=ts)
        if event.meter_start_wh is not None:
            conn = tally(conn, ts, event.meter_start_wh, zone)
    else:
        if event.transaction_id not in ended:
            ended.append(event.transaction_id)
        if conn.transaction_id == event.transaction_id:
            conn = replace(conn, transaction_id=None, transaction_at=ts)
        if event.meter_stop_wh is not None:
            conn = tally(conn, ts, event.meter_stop_wh, zone)
    return conn
