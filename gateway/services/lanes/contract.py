"""The seams of the lane service, as agreed in issue 11's contract.

- The camera route (``gateway/api/cameras.py``) hands a parsed push to
  ``LaneDecider.on_push(parsed, camera) -> (Stored, LaneAnswer | None)`` and renders the
  answer in its vendor's shape: the read is stored (at a lane: with its session step and gate
  decision, one commit) before it returns; it raises SQLAlchemyError / OSError when the read
  could not be stored. A duplicate resend (answer None) is never decided twice.
  ``LaneService.on_read`` takes any object with the fields of ``PlateReadLike`` (``LaneRead``
  below, used by the tests and tools).
- A lane's barrier gate is a ``Gate``: ``drivers.gates.controller.GateController`` (the gates
  part) satisfies it. The lane service persists a decision before it calls ``command``, so
  a restart never repeats it; the controller sends it at most once per decision id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from drivers.cameras import CameraRead

if TYPE_CHECKING:
    from gateway.directory.devices import DeviceEntry
    from gateway.services.cameras.store import Stored
    from gateway.services.lanes.config import LaneConfig

__all__ = ["NO_ACTION", "CameraRead", "LaneAnswer", "LaneDecider"]


@dataclass(frozen=True, slots=True)
class LaneAnswer:
    """What the camera is told: ``open`` when the lane decided to raise its gate (the gate
    controller is commanded by the lane service; a camera whose own relay is wired to the
    barrier may fire it too), the display lines and the voice text, and why."""

    open: bool
    display: list[str] = field(default_factory=list)
    voice: str | None = None
    reason: str = ""
    display_model: str = "text-crlf"  # how the lane's display module frames them


NO_ACTION = LaneAnswer(open=False, reason="no gate action")


class PlateReadLike(Protocol):
    """What the lane needs of a camera's read (read-only: CameraRead is frozen)."""

    @property
    def camera_id(self) -> str: ...
    @property
    def plate(self) -> str | None: ...  # None: the camera could not read it
    @property
    def ts(self) -> datetime: ...  # aware UTC, the camera's clock
    @property
    def record_id(self) -> str | None: ...
    @property
    def confidence(self) -> float | None: ...
    @property
    def colour(self) -> str | None: ...
    @property
    def direction(self) -> str | None: ...  # 'in' | 'out' | None, as the camera says
    @property
    def offline(self) -> bool: ...  # kept by the camera while the gateway was unreachable


@dataclass(frozen=True, slots=True)
class LaneRead:
    """A plain read with the fields the lane needs (tests, tools; CameraRead in production)."""

    camera_id: str
    plate: str | None
    ts: datetime
    record_id: str | None = None
    confidence: float | None = None
    colour: str | None = None
    direction: str | None = None
    offline: bool = False


class LaneDecider(Protocol):
    """What the camera route calls with a parsed push (``CameraDecider``: the camera's lane,
    or only the parking books for a camera in no lane)."""

    async def on_push(
        self, parsed: CameraRead, camera: DeviceEntry
    ) -> tuple[Stored, LaneAnswer | None]: ...


class GateOutcomeLike(Protocol):
    """A command's outcome: ``status`` confirmed | unconfirmed | failed, and a detail text
    (``drivers.gates.controller.CommandOutcome``)."""

    @property
    def status(self) -> str: ...
    @property
    def detail(self) -> str: ...


class Gate(Protocol):
    """A lane's barrier gate controller (``drivers.gates.controller.GateController``)."""

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike: ...


class GateFactory(Protocol):
    """The gate of a lane, looked up at each command (a lane changed live gets its new one).
    Production: one ``ModbusHub`` per bus URL and one ``GateController`` per unit, from the
    gates part; tests: a fake that records the commands."""

    def gate_for(self, lane: LaneConfig) -> Gate: ...

    def status(self, lane_id: str) -> dict[str, object] | None:
        """What is known of the lane's gate now (online, position, fault), for operators;
        None when nothing is."""
        ...

    def forget(self, lane_id: str) -> None:
        """The lane is gone: its gate is no longer polled (unless another lane has it)."""
        ...
