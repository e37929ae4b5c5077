"""A gateway restarted while a gate command is in flight: the decision is left ``sent``,
the new run marks it ``interrupted``, never sends it again, and the car read again waits for
an operator, who can open (SQLite and PostgreSQL).

SEAM: the gate is ``tests.lanes_fakes.FakeGates`` (the Modbus controller in production).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.infra.storage.schema import LaneDecisionRow
from gateway.services.lanes.contract import LaneRead
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for
from tests.lanes_fakes import FakeGates

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
LANE, CAMERA, PLATE = "ln-zhening-in", "cam-zhening-in", "甘G12121"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


async def row_state(gw: Any, decision_id: str) -> str | None:
    async with gw.services.sessions() as db:
        row = await db.get(LaneDecisionRow, decision_id)
    return None if row is None else row.state


@pytest.mark.asyncio
async def test_a_restart_mid_raise_interrupts_and_never_raises_again(
    mosquitto: Broker, db_url: str
) -> None:
    clock = Clock()
    settings = gateway_settings(db_url, mosquitto)
    async with running_gateway(settings, clock) as gw:
        first = FakeGates(gw.services.sessions, hold=True)  # the gate never answers
        gw.services.lanes.gates = first
        answer = await gw.services.lanes.on_read(LaneRead(CAMERA, PLATE, T0, confidence=0.9))
        assert answer.open
        await wait_for(lambda: first.persisted, 5, what="the command sent")
        (decision_id,) = first.of(LANE)
        assert first.persisted == ["pending"]
    # Stopped mid-command: the row says it was sent, with no outcome.
    clock.now = T0 + timedelta(minutes=1)
    async with running_gateway(settings, clock) as gw:
        second = FakeGates(gw.services.sessions)
        gw.services.lanes.gates = second
        assert await row_state(gw, decision_id) == "interrupted"
        rt = gw.services.lanes.lanes[LANE]
        assert rt.state.phase == "waiting_operator" and rt.verdict == "restart_mid_raise"
        assert [(d.id, d.state) for d in rt.recent] == [(decision_id, "interrupted")]
        # The same car read again: no raise, an operator decides.
        again = await gw.services.lanes.on_read(LaneRead(CAMERA, PLATE, clock.now, confidence=0.9))
        assert not again.open and "请联系管理员" in again.display
        assert second.commands == []
        d = await gw.services.lanes.operator_open(LANE, "driver still at the barrier", "op1")
        await wait_for(lambda: d.state == "confirmed", 5, what="operator open confirmed")
        assert second.of(LANE) == [d.id]
        assert await row_state(gw, decision_id) == "interrupted"  # the old one stays so
