"""The lanes' barrier gates over Modbus: one hub per physical bus, one controller per unit.

The ``GateFactory`` the lane service asks at each command. Controllers are made on first use
(a lane added live gets its gate without a restart) and polled by ``run`` (a task of the
gateway), so a lane's gate state and whether it answers are known before a car arrives. A
controller whose lane changed bus, unit or model is replaced; its polling task ends.
With several instances (``cluster_gates``) only the buses ``drives`` allows are polled
(``resync`` starts and stops their tasks as that changes).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from drivers.gates.bus import SerialBus, parse_bus_url
from drivers.gates.controller import CommandOutcome, GateController
from drivers.gates.hub import HubPool
from drivers.gates.models import MapError, shipped_model
from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import Gate, GateOutcomeLike
from gateway.services.lanes.gates import Outcome

log = logging.getLogger(__name__)

Key = tuple[str, int, str]  # bus URL, unit, model


@dataclass(frozen=True, slots=True)
class _Adapted:
    """A ``GateController`` as the lane service's ``Gate``."""

    controller: GateController

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike:
        done: CommandOutcome = await self.controller.command(action, decision_id)
        return Outcome(done.outcome, done.error or "")


@dataclass(frozen=True, slots=True)
class _Broken:
    """A lane whose gate cannot be built (unknown model, bad bus): every command fails."""

    why: str

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike:
        return Outcome("failed", self.why)


class ModbusGates:
    def __init__(
        self,
        clock: Callable[[], datetime],
        *,
        poll_interval_s: float = 1.0,
        serial_ports: Mapping[str, str] | None = None,
    ) -> None:
        self._clock = clock
        self._poll = poll_interval_s
        self._serial_ports = dict(serial_ports or {})
        self._pool = HubPool()
        self._controllers: dict[Key, GateController] = {}
        self._by_lane: dict[str, Key] = {}
        self._tasks: dict[Key, asyncio.Task[None]] = {}
        self._started = False
        self.drives: Callable[[str], bool] = lambda bus: True  # the lanes' bus URL

    def buses(self) -> set[str]:
        """The buses of the lanes (as the lanes name them)."""
        return {key[0] for key in self._by_lane.values()}

    def lanes_on(self, bus: str) -> list[str]:
        return [lane for lane, key in self._by_lane.items() if key[0] == bus]

    def resync(self) -> None:
        """Poll the buses ``drives`` allows now, and stop polling the others."""
        for key, controller in self._controllers.items():
            if self.drives(key[0]):
                self._poll_later(key, controller)
            else:
                task = self._tasks.pop(key, None)
                if task is not None:
                    task.cancel()

    def gate_for(self, lane: LaneConfig) -> Gate:
        key: Key = (lane.gate_bus, lane.gate_unit, lane.gate_model)
        controller = self._controllers.get(key)
        if controller is None:
            try:
                gate_map = shipped_model(lane.gate_model)
                hub = self._pool.get(self.host_bus(lane.gate_bus))
                controller = GateController(
                    hub, lane.gate_unit, gate_map, clock=self._clock, gate_id=lane.id,
                    poll_interval=self._poll,
                )  # fmt: skip
            except (MapError, ValueError) as exc:
                log.warning("lane %s: no gate: %s", lane.id, exc)
                return _Broken(f"lane {lane.id}: {exc}")
            self._controllers[key] = controller
            self._poll_later(key, controller)
        old = self._by_lane.get(lane.id)
        self._by_lane[lane.id] = key
        if old is not None and old != key and old not in self._by_lane.values():
            self._retire(old)
        return _Adapted(controller)

    def host_bus(self, bus: str) -> str:
        """*bus* as this host reaches it: a serial port the town names is mapped to this
        host's device (``[lanes] serial_ports``); anything else as it is."""
        spec = parse_bus_url(bus)
        if isinstance(spec, SerialBus) and spec.device in self._serial_ports:
            return spec.model_copy(update={"device": self._serial_ports[spec.device]}).url
        return bus

    def status(self, lane_id: str) -> dict[str, object] | None:
        c = self.controller(lane_id)
        if c is None:
            return None
        s = c.last_state
        return {
            "online": c.online,
            "position": None if s is None else s.position,
            "vehicle_present": None if s is None else s.vehicle_present,
            "fault": None if s is None else s.fault,
            "read_at": None if c.last_read_at is None else c.last_read_at.isoformat(),
            "error": c.last_error,
        }

    def forget(self, lane_id: str) -> None:
        key = self._by_lane.pop(lane_id, None)
        if key is not None and key not in self._by_lane.values():
            self._retire(key)

    def controller(self, lane_id: str) -> GateController | None:
        key = self._by_lane.get(lane_id)
        return None if key is None else self._controllers.get(key)

    def _poll_later(self, key: Key, controller: GateController) -> None:
        if self._started and key not in self._tasks and self.drives(key[0]):
            self._tasks[key] = asyncio.get_running_loop().create_task(
                controller.run(), name=f"gate {controller.gate_id}"
            )

    def _retire(self, key: Key) -> None:
        self._controllers.pop(key, None)
        task = self._tasks.pop(key, None)
        if task is not None:
            task.cancel()

    async def run(self, lanes: Callable[[], list[LaneConfig]]) -> None:
        """Poll every lane's gate until cancelled (then the buses are closed)."""
        self._started = True
        try:
            for lane in lanes():
                self.gate_for(lane)
            for key, controller in self._controllers.items():
                self._poll_later(key, controller)
            await asyncio.Event().wait()
        finally:
            self._started = False  # nothing is polled anew (``resync``) from here on
            tasks, self._tasks = list(self._tasks.values()), {}
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(BaseException):
                    await task
            await self._pool.close()
