"""What every drone link reports and is asked, whatever it speaks (DJI Cloud API, MAVLink).

The links (``dronelink.dji``, ``dronelink.mavlink``) turn their protocol into these records and
take commands in these terms; the gateway's drone service joins them to the town's drones,
patrol areas, storage, alerts and the API. Pure data: no I/O, no clock (times are arguments).

A link names a vehicle by its own key (a DJI aircraft's sn, a MAVLink system id as text) and
the service maps that key to the town's drone id. Coordinates are WGS-84 degrees as the
vehicles send them.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

__all__ = [
    "CommandKind",
    "CommandOutcome",
    "CommandProgress",
    "CommandStatus",
    "DockReport",
    "DroneFix",
    "DroneLink",
    "DroneReport",
    "LinkState",
    "OnDock",
    "OnProgress",
    "OnReport",
    "Unsupported",
]


class LinkState(enum.StrEnum):
    ONLINE = "online"
    LOST = "lost"  # silent past the link's timeout (or the dock says the aircraft is gone)
    UNKNOWN = "unknown"  # nothing heard since this process started


class CommandKind(enum.StrEnum):
    SPEAKER = "speaker"  # text to speech on the loudspeaker
    SPEAKER_STOP = "speaker_stop"
    RETURN_HOME = "return_home"


class CommandStatus(enum.StrEnum):
    """A command's outcome as the operator sees it. ``sent`` and ``in_progress`` are not
    final; the rest are."""

    PENDING = "pending"  # recorded, not yet on the wire
    SENT = "sent"  # on the wire, no answer yet
    IN_PROGRESS = "in_progress"  # accepted, progress reported
    OK = "ok"  # done as asked
    FAILED = "failed"  # the vehicle answered with an error
    REJECTED = "rejected"  # refused (denied, busy, unsupported by the vehicle)
    TIMEOUT = "timeout"  # no answer after every retry
    CANCELED = "canceled"

    @property
    def final(self) -> bool:
        return self not in (CommandStatus.PENDING, CommandStatus.SENT, CommandStatus.IN_PROGRESS)


@dataclass(frozen=True, slots=True)
class DroneFix:
    """A position. ``height_m``: above the ellipsoid / mean sea level as the vehicle reports
    it; ``elevation_m``: above the take-off point."""

    lat: float
    lon: float
    height_m: float | None = None
    elevation_m: float | None = None
    speed_mps: float | None = None  # horizontal
    heading_deg: float | None = None  # 0..360, 0 = north


@dataclass(frozen=True, slots=True)
class DroneReport:
    """What one message (or a merged set) says of one aircraft; ``None``: not in it."""

    source: str  # "dji" | "mavlink"
    key: str  # the link's own name for the aircraft (DJI sn, MAVLink system id)
    at: datetime  # when it was received (aware UTC)
    link: LinkState = LinkState.ONLINE
    fix: DroneFix | None = None
    battery_percent: float | None = None
    mode: str | None = None  # a readable flight mode ("returning_home", "RTL", "AUTO", ...)
    flying: bool | None = None
    armed: bool | None = None
    dock_key: str | None = None  # the DJI dock it belongs to
    text: str | None = None  # a STATUSTEXT or similar line from the vehicle


@dataclass(frozen=True, slots=True)
class DockReport:
    """A DJI dock's merged state."""

    key: str  # the dock's sn
    at: datetime
    link: LinkState = LinkState.ONLINE
    fix: DroneFix | None = None
    mode: str | None = None  # "idle", "working", ...
    drone_in_dock: bool | None = None
    drone_charging: bool | None = None
    drone_battery_percent: float | None = None
    cover_state: int | None = None
    aircraft_key: str | None = None  # from update_topo; None: no aircraft online


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """How a command ended (or stands, for a non-final status)."""

    status: CommandStatus
    attempts: int = 1
    result_code: int | None = None  # the vehicle's own code (DJI result, MAV_RESULT)
    detail: str = ""


@dataclass(frozen=True, slots=True)
class CommandProgress:
    """A step reported for a command by its id (DJI: the bid), from any instance's link."""

    command_id: str
    status: CommandStatus
    at: datetime
    percent: int | None = None
    detail: str = ""
    result_code: int | None = None


class Unsupported(Exception):
    """The vehicle's link cannot do this (a MAVLink vehicle has no loudspeaker)."""


OnReport = Callable[[DroneReport], None]
OnDock = Callable[[DockReport], None]
OnProgress = Callable[[CommandProgress], None]


class DroneLink(Protocol):
    """What the drone service asks of a link. Commands return once the outcome is final or
    retries are spent; ``command_id`` is stable across the link's retries (so a retry never
    runs a command twice on the aircraft)."""

    source: str
    speaks: bool  # the vehicles of this link have a loudspeaker (``speaker`` can succeed)

    def return_home(self, key: str, *, command_id: str) -> Awaitable[CommandOutcome]: ...

    def speaker(
        self, key: str, text: str, volume: int, loop: bool, *, command_id: str
    ) -> Awaitable[CommandOutcome]: ...

    def speaker_stop(self, key: str, *, command_id: str) -> Awaitable[CommandOutcome]: ...
