"""A lane as the lane service holds it: from its database row (the town file's lane)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from gateway.infra.storage.schema import LaneRow
from parking.lanes import LaneRules

DEFAULT_DISPLAY_LINES = 4


@dataclass(frozen=True, slots=True)
class LaneConfig:
    id: str
    site_id: str
    kind: Literal["entry", "exit"]
    camera_id: str
    gate_bus: str
    gate_unit: int
    gate_model: str
    display_lines: int  # lines the display shows (what the camera is told is cut to these)
    voice: bool
    display_model: str = "text-crlf"  # the module's framing (drivers.cameras.framing)
    gate_lifecycle: str = "active"  # the gate controller's (gateway.directory.lifecycle)

    @property
    def rules(self) -> LaneRules:
        return LaneRules(kind=self.kind)

    @property
    def direction(self) -> Literal["in", "out"]:
        """The session step of a read here: the lane's kind decides, not the camera's guess."""
        return "in" if self.kind == "entry" else "out"


def lane_from_row(row: LaneRow) -> LaneConfig:
    display = row.display or {}
    kind: Literal["entry", "exit"] = "entry" if row.kind == "entry" else "exit"
    return LaneConfig(
        id=row.id,
        site_id=row.site_id,
        kind=kind,
        camera_id=row.camera_id,
        gate_bus=row.gate_bus,
        gate_unit=row.gate_unit,
        gate_model=row.gate_model,
        display_lines=int(display.get("lines", DEFAULT_DISPLAY_LINES)),
        voice=bool(display.get("voice", row.display is not None)),
        display_model=str(display.get("model", "text-crlf")),
        gate_lifecycle=row.gate_lifecycle,
    )
