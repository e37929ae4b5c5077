"""``GateController``: one barrier gate's controller on a ``ModbusHub``.

A command is sent at most once per decision id in this process: the write that moves the boom
goes out once, whatever happens to the connection after it, and a second ``command()`` with
the same id returns the first one's outcome. The lane service stores its decision before it
calls ``command()``, so a gateway restart cannot repeat it either. The command is then
confirmed by reading the state back until the boom shows the action done or the timeout:

- ``confirmed``: the state read back shows it (raise: up, lower: down, stop: not moving);
- ``unconfirmed``: the write went out (or may have: no answer) but the read-back did not show
  it in time; ``state`` is the last state read (after a reconnect where there was one);
- ``failed``: the write was not carried out: not sent (bus down), refused by the controller
  (Modbus exception), or the model has no such action.

The pulse's second write (coil off, command word cleared) is not the action: it goes out when
the pulse is over, while the state is being read back, and is retried until it is through (by
the polling task after a reconnect if need be), so a relay is never left closed; the polling
task also releases, when it starts, what a previous run stopped mid-pulse left closed.

``run()`` polls the state and never dies: any exception of a read (bus down, no answer, a
malformed frame, a value the map does not know) is reported once per episode and polling
goes on, less often while the controller is silent; it is ``online`` again at its first good
read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from drivers.gates.hub import BusDown, BusError, ModbusHub, Refused
from drivers.gates.registers import (
    ACTIONS,
    ActionName,
    DecodeError,
    GateMap,
    GateState,
    Write,
    action_plan,
    confirms,
    decode,
    read_plan,
)
from drivers.once import OnceLogger

__all__ = ["CommandOutcome", "GateController", "Outcome"]

log = logging.getLogger(__name__)
FIRST_CONNECT_S = 2.0  # how long the first poll waits for the bus's first connection

Outcome = Literal["confirmed", "unconfirmed", "failed"]
StateListener = Callable[["GateController", GateState | None, GateState], None]
OnlineListener = Callable[["GateController", bool, str | None], None]


@dataclass(frozen=True, slots=True)
class CommandOutcome:
    """What became of one decision: ``sent`` is whether the action's write may have reached
    the controller; ``state`` the last state read (None: none could be read); ``error`` why it
    is not confirmed; ``at`` when it was settled (the controller's clock)."""

    decision_id: str
    action: str
    outcome: Outcome
    sent: bool
    state: GateState | None
    error: str | None
    elapsed_s: float
    at: datetime


class GateController:
    """One gate: ``read()``, ``command(action, decision_id)`` and the polling task ``run()``.

    *clock* stamps outcomes (aware UTC, e.g. ``events.now_utc``); durations use the event
    loop's monotonic time. ``on_state`` is called with (controller, old, new) when the state
    read changes, ``on_online`` with (controller, online, reason) when the controller starts
    or stops answering: a listener that raises is logged, never kills polling.
    """

    def __init__(
        self,
        hub: ModbusHub,
        unit: int,
        gate_map: GateMap,
        *,
        clock: Callable[[], datetime],
        gate_id: str | None = None,
        poll_interval: float = 1.0,
        confirm_timeout: float | None = None,
        confirm_interval: float = 0.05,
        offline_after: int = 3,
        silent_poll_max: float = 10.0,
        remember: int = 10_000,
        on_state: StateListener | None = None,
        on_online: OnlineListener | None = None,
    ) -> None:
        if not 0 <= unit <= 247:
            raise ValueError(f"unit {unit}: Modbus unit ids are 0..247")
        self.hub = hub
        self.unit = unit
        self.gate_map = gate_map
        self.gate_id = gate_id or f"{hub.url}#{unit}"
        self.poll_interval = poll_interval
        self.confirm_timeout = confirm_timeout or gate_map.confirm_timeout_s
        self.confirm_interval = confirm_interval
        self.offline_after = offline_after
        self.silent_poll_max = max(silent_poll_max, poll_interval)
        self.on_state = on_state
        self.on_online = on_online
        self._clock = clock
        self._plan = read_plan(gate_map)
        self._decisions: OrderedDict[str, asyncio.Task[CommandOutcome]] = OrderedDict()
        self._remember = remember
        # Pulse ends still to write: (table, address) -> (the write, not before this loop time).
        self._pending_resets: dict[tuple[str, int], tuple[Write, float]] = {}
        self._enders: set[asyncio.Task[None]] = set()
        self._once = OnceLogger(log, f"gate {self.gate_id}")
        self._misses = 0
        self.last_state: GateState | None = None
        self.last_read_at: datetime | None = None
        self.last_error: str | None = None
        self.online = False
        self.polls = 0
        self.writes_sent = 0

    # -- reading ----------------------------------------------------------------------

    async def read(self, *, wait: float | None = None, urgent: bool = False) -> GateState:
        """Read and decode the state once (raises ``BusError`` or ``DecodeError``);
        *urgent* for a command's read-back (ahead of the polls on the bus)."""
        try:
            blocks = [
                await self.hub.read(self.unit, req, wait=wait, urgent=urgent) for req in self._plan
            ]
            state = decode(self.gate_map, blocks)
        except (BusError, DecodeError) as exc:
            self._missed(str(exc))
            raise
        self._seen(state)
        return state

    def _seen(self, state: GateState) -> None:
        old, self.last_state = self.last_state, state
        self.last_read_at = self._clock()
        self._misses = 0
        self.last_error = None
        self._once.recovered()
        if not self.online:
            self.online = True
            self._tell_online(True, None)
        if old != state and self.on_state is not None:
            try:
                self.on_state(self, old, state)
            except Exception:
                log.exception("gate %s: state listener failed", self.gate_id)

    def _missed(self, reason: str) -> None:
        self._misses += 1
        self.last_error = reason
        self._once.failed(reason)
        if self.online and self._misses >= self.offline_after:
            self.online = False
            self._tell_online(False, reason)

    def _tell_online(self, online: bool, reason: str | None) -> None:
        if self.on_online is not None:
            try:
                self.on_online(self, online, reason)
            except Exception:
                log.exception("gate %s: online listener failed", self.gate_id)

    async def run(self) -> None:
        """Poll forever (cancel to stop). Nothing a controller or the bus does ends it.

        The first poll waits for the bus's first connection (up to ``FIRST_CONNECT_S``): a
        gate is reported failing when its bus is down, not because polling began before the
        connection was made."""
        self._release_outputs()
        await self.hub.wait_online(FIRST_CONNECT_S)
        while True:
            try:
                with contextlib.suppress(BusError):
                    await self._flush_resets()
                await self.read(wait=0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # already counted by read(); anything else too
                if not isinstance(exc, BusError | DecodeError):
                    self._missed(f"{type(exc).__name__}: {exc}")
            self.polls += 1
            await asyncio.sleep(self.next_poll_in())

    def next_poll_in(self) -> float:
        """The poll interval; doubled per failed poll up to ``silent_poll_max``, so a dead
        controller does not hold a shared RS-485 line in timeouts the others need."""
        if not self._misses:
            return self.poll_interval
        return min(self.silent_poll_max, self.poll_interval * float(2 ** min(self._misses, 16)))

    def _release_outputs(self) -> None:
        """Put every pulse end on the list, due a pulse's length from now: a previous run
        stopped mid-pulse leaves a relay closed (or a command word set) that nothing here
        knows of, and the next action would then be no edge at all. Writing an output's
        rest value moves nothing; the delay cuts no pulse a previous run began short."""
        now = asyncio.get_running_loop().time()
        for name in self.gate_map.actions:
            plan = action_plan(self.gate_map, name)
            if plan.reset is not None and plan.pulse_s is not None:
                key = (plan.reset.table, plan.reset.address)
                self._pending_resets.setdefault(key, (plan.reset, now + plan.pulse_s))

    async def _end_pulse(self, after: float) -> None:
        await asyncio.sleep(after)
        with contextlib.suppress(BusError):  # else the polling task ends it after reconnect
            await self._flush_resets()

    async def _flush_resets(self) -> None:
        """Write the pulse ends that are due (a pulse is never cut short)."""
        now = asyncio.get_running_loop().time()
        for key, (w, due) in list(self._pending_resets.items()):
            if due <= now:
                await self.hub.write(self.unit, w, wait=0)
                if self._pending_resets.get(key) == (w, due):
                    del self._pending_resets[key]

    async def released(self, within: float) -> bool:
        """Wait (up to *within* s) until every pulse end is written; whether they all are.

        For a controller on a bus opened for a few commands and closed after (a technician's
        ``citygate commission --cycle``): the bus must not close mid-pulse, with nothing left
        to end it and a relay closed (the polling task does this for the gateway's own)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while self._pending_resets:
            due = min(d for _, d in self._pending_resets.values())
            if due > deadline:
                return False
            await asyncio.sleep(max(0.0, due - loop.time()))
            try:
                await self._flush_resets()
            except BusError:
                if loop.time() + self.confirm_interval > deadline:
                    return False
                await asyncio.sleep(self.confirm_interval)
        return True

    # -- commands ---------------------------------------------------------------------

    async def command(self, action: str, decision_id: str) -> CommandOutcome:
        """Carry out *action* (raise, stop, lower) for *decision_id*, at most once."""
        task = self._decisions.get(decision_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(
                self._command(action, decision_id), name=f"gate {self.gate_id} {decision_id}"
            )
            self._decisions[decision_id] = task
            while len(self._decisions) > self._remember:
                self._decisions.popitem(last=False)
        # Shielded: a caller that is cancelled does not cancel the command half way.
        return await asyncio.shield(task)

    async def _command(self, action: str, decision_id: str) -> CommandOutcome:
        # Not queued behind another command: an operator's raise while a lower is being
        # confirmed goes out at once (that lower then ends unconfirmed).
        start = asyncio.get_running_loop().time()
        try:
            return await self._carry_out(action, decision_id)
        except Exception as exc:  # a bug must not leave the lane without an outcome
            log.exception("gate %s: command %s %s", self.gate_id, action, decision_id)
            return CommandOutcome(
                decision_id, action, "unconfirmed", True, self.last_state,
                f"internal error: {type(exc).__name__}: {exc}",
                round(asyncio.get_running_loop().time() - start, 4), self._clock(),
            )  # fmt: skip

    async def _carry_out(self, action: str, decision_id: str) -> CommandOutcome:
        loop = asyncio.get_running_loop()
        start = loop.time()

        def outcome(kind: Outcome, sent: bool, error: str | None) -> CommandOutcome:
            return CommandOutcome(
                decision_id, action, kind, sent, self.last_state, error,
                round(loop.time() - start, 4), self._clock(),
            )  # fmt: skip

        if action not in ACTIONS or action not in self.gate_map.actions:
            return outcome("failed", False, f"model {self.gate_map.model} has no {action!r}")
        name: ActionName = action
        plan = action_plan(self.gate_map, name)
        deadline = start + self.confirm_timeout
        error: str | None = None
        try:
            await self.hub.write(self.unit, plan.write, wait=self.confirm_timeout / 2)
        except BusDown as exc:
            return outcome("failed", False, str(exc))
        except Refused as exc:
            self.writes_sent += 1
            return outcome("failed", True, str(exc))
        except BusError as exc:  # no answer: it may have been carried out, never resent
            error = str(exc)
        self.writes_sent += 1
        if plan.reset is not None and plan.pulse_s is not None:
            due = loop.time() + plan.pulse_s
            self._pending_resets[(plan.reset.table, plan.reset.address)] = (plan.reset, due)
            # The pulse ends on its own time while the state is read back.
            ender = loop.create_task(self._end_pulse(plan.pulse_s))
            self._enders.add(ender)
            ender.add_done_callback(self._enders.discard)
        while True:
            remaining = deadline - loop.time()
            try:
                state = await self.read(wait=max(0.0, remaining), urgent=True)
                if confirms(name, state):
                    return outcome("confirmed", True, None)
                error = (
                    f"gate shows {state.position}"
                    + (f", fault {state.fault}" if state.fault else "")
                    + (", vehicle present" if state.vehicle_present else "")
                )
            except (BusError, DecodeError) as exc:
                error = str(exc)
            if loop.time() + self.confirm_interval > deadline:
                break
            await asyncio.sleep(self.confirm_interval)
        return outcome(
            "unconfirmed", True, f"not {name} within {self.confirm_timeout:g} s: {error}"
        )
