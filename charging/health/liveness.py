"""Liveness: online, reconnecting, probing (silent, being checked) or offline, when an outage
began, and the words an inspector reads for it. Any message is a sign of life; a socket down
for longer than the grace, or a probe unanswered, is an outage."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from charging.health.records import (
    DEFAULT_FACTOR,
    DEFAULT_GRACE,
    ChargerState,
    Liveness,
    clean_text,
)
from events import utc


def liveness(
    state: ChargerState,
    now: datetime,
    factor: float = DEFAULT_FACTOR,
    grace: timedelta = DEFAULT_GRACE,
) -> Liveness:
    """Online, reconnecting, probing or offline at ``now``. Boundaries are inclusive on the good
    side: heard exactly ``heartbeat_s * factor`` ago is online, down exactly ``grace`` is not yet
    offline. The grace runs from the disconnect or, after a gateway restart, from the restart
    (the charger could not reconnect while the gateway was down): meanwhile a charger whose
    socket the restart took is ``reconnecting``."""
    now = utc(now)
    if not state.connected:
        down = [t for t in (state.disconnected_at, state.restarted_at) if t is not None]
        if not down or now - max(down) > grace:
            return "offline"
    if state.probe_state == "failed":
        return "offline"
    if not state.connected and state.restarted_at is not None:
        return "reconnecting"
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
    before an unanswered probe, or the disconnect (the last message if the disconnect is not
    known), whichever is earlier. None when not offline, or never heard of (nothing to measure
    from)."""
    if liveness(state, now, factor, grace) != "offline":
        return None
    starts: list[datetime] = []
    if state.probe_state == "failed":
        heard = state.last_message_at or state.probe_at
        if heard is not None:
            starts.append(heard)
    if not state.connected:
        gone = state.disconnected_at or state.last_message_at
        if gone is not None:
            starts.append(gone)
    return min(starts) if starts else None


def human(span: timedelta, *, up_to: int = 120, days_from_h: int = 48) -> str:
    """*span* in the largest units that read well: seconds below *up_to* s, minutes below
    *up_to* min, hours and minutes below *days_from_h* h, then days and hours."""
    s = max(0, int(span.total_seconds()))
    if s < up_to:
        return f"{s} s"
    m = s // 60
    if m < up_to:
        return f"{m} min"
    h, m = divmod(m, 60)
    if h < days_from_h:
        return f"{h} h {m} min" if m else f"{h} h"
    d, h = divmod(h, 24)
    return f"{d} d {h} h" if h else f"{d} d"


def silence_text(state: ChargerState, now: datetime) -> str:
    quiet = (
        "no message yet"
        if state.last_message_at is None
        else (f"no message for {human(now - state.last_message_at)}")
    )
    return f"{quiet} (heartbeat {state.heartbeat_s} s)"


def offline_text(state: ChargerState, now: datetime) -> str:
    """``no message for 37 min (heartbeat 300 s), probe unanswered`` (only for a probe that was
    sent), ``disconnected for 2 h (1006)``."""
    if state.last_message_at is None and state.disconnected_at is None:
        return "never connected"
    probe_first = state.probe_state == "failed" and (
        state.connected
        or state.disconnected_at is None
        or (state.last_message_at is not None and state.last_message_at <= state.disconnected_at)
    )
    if probe_first:
        return f"{silence_text(state, now)}, probe unanswered"
    if state.disconnected_at is None:
        return f"{silence_text(state, now)}, not connected"
    why = f" ({state.disconnect_reason})" if state.disconnect_reason else ""
    return f"disconnected for {human(now - state.disconnected_at)}{why}"


def alive(state: ChargerState, at: datetime) -> ChargerState:
    """A sign of life at ``at``: the newest one is ``last_message_at``, and it answers a probe
    sent (or failed) no later than it."""
    last = state.last_message_at
    new = state if last is not None and last >= at else replace(state, last_message_at=at)
    if new.probe_state != "idle" and (new.probe_at is None or at >= new.probe_at):
        new = replace(new, probe_state="idle", probe_at=None)
    return new


def socket_down(s: ChargerState, ts: datetime, reason: str) -> ChargerState:
    """A socket closed at ``ts``. ``replaced`` (a new socket took over) is no disconnect; one
    older than the current socket's opening is old news; at the same instant the opening wins;
    of two closes without an opening between them the earlier is when it went down."""
    if reason == "replaced" or (s.connected_at is not None and ts <= s.connected_at):
        return s
    why = clean_text(reason)
    if s.connected:
        return replace(s, connected=False, disconnected_at=ts, disconnect_reason=why)
    if s.disconnected_at is None or ts < s.disconnected_at:
        return replace(s, disconnected_at=ts, disconnect_reason=why)
    return s


def restart_text(state: ChargerState, now: datetime) -> str:
    """``reconnecting (gateway restarted 12 s ago)``."""
    ago = human(now - state.restarted_at) if state.restarted_at is not None else "?"
    return f"reconnecting (gateway restarted {ago} ago)"


def restarted(state: ChargerState, now: datetime, grace: timedelta) -> ChargerState:
    """The charger as a gateway restarting at ``now`` finds it. No socket survives a restart: a
    socket that was up (or whose state was never recorded though the charger was heard) counts as
    closed by the restart, and a charger whose socket was up or closed within ``grace`` before
    ``now`` gets the grace from ``now`` to reconnect. A probe in flight is forgotten (its answer
    would go to the old process); an unanswered one stands."""
    s = state
    if s.probe_state == "pending":
        s = replace(s, probe_state="idle", probe_at=None)
    if s.connected or (s.disconnected_at is None and s.last_message_at is not None):
        return replace(
            s,
            connected=False,
            disconnected_at=now,
            disconnect_reason="gateway restart",
            restarted_at=now,
        )
    if s.disconnected_at is not None and now - s.disconnected_at <= grace:
        return replace(s, restarted_at=now)
    return s
