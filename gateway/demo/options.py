"""What the simulator is asked to do and what it reports: options, message kinds, faults,
statistics and one outgoing MQTT message."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class SimulatorOptions:
    """What ``citygate simulate`` lets the user choose."""

    speed: float = 60.0  # simulated seconds per real second (1.0 = real time)
    max_rate: float = 200.0  # cap on messages per real second (token bucket)
    seed: int = 1
    fault_fraction: float = 0.02  # share of sensors that misbehave
    start: datetime | None = None  # simulated start time (aware); default now

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError("speed must be a positive number")
        if not (self.max_rate > 0 and math.isfinite(self.max_rate)):
            raise ValueError("max_rate must be a positive number")
        if not 0.0 <= self.fault_fraction <= 1.0:
            raise ValueError("fault_fraction must be within 0..1")
        if self.start is not None and self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")


class MessageKind(StrEnum):
    STATUS = "status"
    HEARTBEAT = "heartbeat"
    STARTUP = "startup"
    GARBAGE = "garbage"
    COUNTS = "counts"


class Fault(StrEnum):
    SILENT = "silent"  # stops talking: the gateway must raise comms_lost
    FLAP = "flap"  # bursts of rapid occupied/free toggling: the gateway must debounce
    GARBAGE = "garbage"  # truncated frames, bad base64, wrong port: counted rejections


@dataclass
class SimStats:
    """Counts of what reached the broker (PUBACKed), by kind, plus trouble."""

    status: int = 0
    heartbeat: int = 0
    startup: int = 0
    garbage: int = 0
    counts: int = 0
    errors: int = 0  # publishes that failed (they are retried after a reconnect)
    reconnects: int = 0  # connections lost or refused
    sim_time: datetime | None = None  # simulated time of the last processed action

    @property
    def published(self) -> int:
        return self.status + self.heartbeat + self.startup + self.garbage + self.counts

    def add(self, kind: MessageKind) -> None:
        setattr(self, kind.value, getattr(self, kind.value) + 1)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message the simulation wants published at ``sim_time`` (POSIX seconds)."""

    topic: str
    payload: bytes
    kind: MessageKind
    device: str  # dev_eui (lowercase hex) or car-park controller id
    sim_time: float
    garbage: str = ""  # for garbage: which flaw (truncated, bad_base64, wrong_port, ...)
