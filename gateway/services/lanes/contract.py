"""The seam between the plate cameras' HTTP edge and the lane service.

The edge stores a read durably, then asks the lane what to do with it and renders the
answer in the camera's own protocol (Vzenith: open or not, display and voice bytes;
Hikvision and Dahua: a plain acknowledgement). A duplicate resend is never asked twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from drivers.cameras import CameraRead

__all__ = ["CameraRead", "LaneAnswer", "LaneDecider"]


@dataclass(frozen=True, slots=True)
class LaneAnswer:
    """What the lane says about a read: open the gate or not, what its LED display shows
    (one entry per line), what its voice module says, and why (for the record)."""

    open: bool
    display: list[str] = field(default_factory=list)
    voice: str | None = None
    reason: str = ""


NO_ACTION = LaneAnswer(open=False, reason="no gate action")


class LaneDecider(Protocol):
    async def on_read(self, read: CameraRead) -> LaneAnswer:
        """Decide on a stored read (``read.read_id`` set; ``read.ts`` never None: the
        camera's time, or the receive time when ``read.clock_off`` says it was off)."""
        ...
