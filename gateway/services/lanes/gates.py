"""The gates of the lanes until the Modbus driver is wired: none, said plainly.

SEAM: the gates part (``drivers/gates``) provides ``ModbusHub`` (one per bus URL) and
``GateController(hub, unit, gate_map, clock=...)``, whose ``command(action, decision_id)``
satisfies ``contract.Gate``. Wiring them is a ``GateFactory`` that keeps one hub per
``lane.gate_bus`` and one controller per ``(gate_bus, gate_unit)`` with the map of
``lane.gate_model``, set as ``LaneService.gates`` (and their polling tasks run by the
supervisor). Until then every command fails at once with a clear detail, so a lane goes to
``fault`` and shows "道闸故障" instead of pretending the barrier moved.
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import Gate, GateOutcomeLike


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # confirmed | unconfirmed | failed
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Unwired:
    lane: LaneConfig

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike:
        return Outcome(
            "failed",
            f"no gate driver wired for {self.lane.gate_bus} unit {self.lane.gate_unit}",
        )


class UnwiredGates:
    """The default ``GateFactory``: every gate answers ``failed`` (see the module's note)."""

    def gate_for(self, lane: LaneConfig) -> Gate:
        return _Unwired(lane)

    def status(self, lane_id: str) -> dict[str, object] | None:
        return {"online": False, "driver": "none"}

    def forget(self, lane_id: str) -> None:
        pass
