"""Parking sessions: when a stay opens and closes, decided from berth occupancy and lane reads.

Pure decisions (no I/O, no clock): the store hands in a small snapshot of what it knows about
the vehicle or berth and the incoming observation, and gets back one ``Action``. Observations
can be duplicated, late and out of order (a camera buffers reads while its uplink is down, a
sensor's "free" can overtake its "occupied"); every decision says why it ignored something so
the store can count it.

On-street berths: a session per berth occupancy, paid by berth number. Car parks: a session
per plate, opened by an entry read and closed by an exit read; one vehicle holds at most one
open session per car park.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from events.plates import PlateError, normalise_plate
from parking.tariffs import VehicleClass

__all__ = [
    "Close",
    "ClosePrevious",
    "Ignore",
    "Open",
    "OpenClosed",
    "PlateError",
    "RecordExit",
    "StaySnapshot",
    "decide_berth",
    "decide_plate",
    "normalise_plate",
    "vehicle_class",
]

_COLOURS: dict[str, VehicleClass] = {
    "blue": "small",
    "black": "small",
    "white": "small",
    "yellow": "large",
    "green": "new_energy",
    "yellow_green": "new_energy",
}


def vehicle_class(plate: str | None, colour: str | None) -> VehicleClass:
    """The tariff's vehicle class from the plate colour (蓝 small, 黄 large, 绿 new energy).

    Without a colour, an 8-character plate is a new-energy plate; a 7-character plate is
    priced as small, since a yellow (large) plate cannot be told from its text alone.
    """
    if colour is not None:
        found = _COLOURS.get(colour.strip().lower())
        if found is not None:
            return found
    if plate is not None and len(plate) == 8 and plate[-1] not in "挂学警港澳领使试超":
        return "new_energy"
    return "small"


@dataclass(frozen=True, slots=True)
class StaySnapshot:
    """What the store knows about one berth or one vehicle at one car park."""

    open_entry: datetime | None = None  # entry of the open session, if any
    last_exit: datetime | None = None  # exit of the latest closed session, if any
    # the earliest exit read after the observation that found no session (yet)
    pending_exit: datetime | None = None
    # a closed stay overlaps [observation, pending_exit]: pairing them would double-book
    pending_blocked: bool = False


@dataclass(frozen=True, slots=True)
class Open:
    entry: datetime


@dataclass(frozen=True, slots=True)
class Close:
    exit: datetime


@dataclass(frozen=True, slots=True)
class ClosePrevious:
    """The vehicle entered again with no exit read: close the open stay at this entry (for
    review) and open a new one."""

    exit: datetime
    entry: datetime


@dataclass(frozen=True, slots=True)
class OpenClosed:
    """A late entry read whose exit read came first: the whole stay is known at once."""

    entry: datetime
    exit: datetime


@dataclass(frozen=True, slots=True)
class RecordExit:
    """An exit read with no open session: kept, so a late entry read can pair with it."""

    exit: datetime


IgnoreReason = Literal["duplicate", "stale", "no_session", "unknown_state"]


@dataclass(frozen=True, slots=True)
class Ignore:
    reason: IgnoreReason


Action = Open | Close | ClosePrevious | OpenClosed | RecordExit | Ignore


def decide_berth(snapshot: StaySnapshot, occupied: bool | None, since: datetime) -> Action:
    """A berth's occupancy changed at ``since`` (``None``: unknown, e.g. comms lost).

    Unknown keeps the stay as it is: a silent sensor does not end a stay. An observation
    older than what the berth already knows (a late "occupied" after a later "free") is stale.
    """
    if occupied is None:
        return Ignore("unknown_state")
    if occupied:
        if snapshot.open_entry is not None:
            return Ignore("duplicate")
        if snapshot.last_exit is not None and since < snapshot.last_exit:
            return Ignore("stale")
        return Open(since)
    if snapshot.open_entry is None:
        return Ignore("no_session")
    if since < snapshot.open_entry:
        return Ignore("stale")
    return Close(since)


def decide_plate(
    snapshot: StaySnapshot,
    direction: Literal["in", "out"],
    at: datetime,
    dedup: timedelta,
) -> Action:
    """A lane camera read the vehicle's plate at ``at`` going ``direction``.

    ``dedup``: a second read of the same direction within this is the same passage (cameras
    fire several times per vehicle and re-send after an outage).
    """
    if direction == "in":
        if snapshot.open_entry is not None:
            if abs(at - snapshot.open_entry) <= dedup:
                return Ignore("duplicate")
            if at < snapshot.open_entry:
                return Ignore("stale")
            return ClosePrevious(exit=at, entry=at)
        pending = snapshot.pending_exit
        if pending is not None and pending > at and not snapshot.pending_blocked:
            return OpenClosed(at, pending)
        if snapshot.last_exit is not None and at < snapshot.last_exit:
            return Ignore("stale")
        return Open(at)
    if snapshot.open_entry is not None and at >= snapshot.open_entry:
        return Close(at)
    if snapshot.last_exit is not None and abs(at - snapshot.last_exit) <= dedup:
        return Ignore("duplicate")
    if snapshot.pending_exit is not None and abs(at - snapshot.pending_exit) <= dedup:
        return Ignore("duplicate")
    return RecordExit(at)
