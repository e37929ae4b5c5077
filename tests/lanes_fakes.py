"""A fake barrier gate for the lane tests.

SEAM: production gates are ``drivers.gates.controller.GateController`` (Modbus TCP/RTU, the
gates part of issue 11), set through ``LaneService.gates``. This fake records each command,
checks the decision was persisted before it was sent, and answers what the test scripted.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.infra.storage.schema import LaneDecisionRow
from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import Gate, GateOutcomeLike
from gateway.services.lanes.gates import Outcome


@dataclass
class FakeGates:
    sessions: async_sessionmaker[Any]
    commands: list[tuple[str, str, str]] = field(default_factory=list)  # lane, action, id
    persisted: list[str] = field(default_factory=list)  # the row's state when it was sent
    script: dict[str, list[str]] = field(default_factory=dict)  # lane -> next outcomes
    hold: bool = False  # commands never answer (the gateway stops mid-command)
    forgotten: list[str] = field(default_factory=list)  # lanes that went away

    def gate_for(self, lane: LaneConfig) -> Gate:
        return _FakeGate(self, lane.id)

    def status(self, lane_id: str) -> dict[str, object] | None:
        return {"online": True, "driver": "fake"}

    def forget(self, lane_id: str) -> None:
        self.forgotten.append(lane_id)

    def of(self, lane_id: str) -> list[str]:
        return [d for lane, _, d in self.commands if lane == lane_id]


@dataclass
class _FakeGate:
    gates: FakeGates
    lane_id: str

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike:
        g = self.gates
        g.commands.append((self.lane_id, action, decision_id))
        async with g.sessions() as db:
            row = await db.get(LaneDecisionRow, decision_id)
        g.persisted.append(row.state if row is not None else "missing")
        if g.hold:
            await asyncio.Event().wait()
        planned = g.script.get(self.lane_id)
        status = planned.pop(0) if planned else "confirmed"
        return Outcome(status, "" if status == "confirmed" else f"fake gate: {status}")
