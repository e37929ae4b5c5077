"""The lanes' gates across several instances on one PostgreSQL database (issue 16).

**One driver per bus.** An instance that can reach the gate buses (``[lanes] gates =
"modbus"``) tries, once a second, a PostgreSQL session-level advisory lock per bus (keyed by
a hash of the bus URL as the town names it), on one connection it keeps for this; it polls
and commands only the buses it holds (``ModbusGates.drives``). The lock dies with the
instance's connection, so when the driver stops (or is killed) another instance that can
reach the bus takes it within a second, and two instances never write to one RS-485 line.

**Commands through any instance.** A gate command (a camera's push decided here, an
operator's open) for a bus this instance does not hold is written to ``gate_commands`` for
the bus, with a NOTIFY; the instance holding the bus runs it on its controller (the command
and its read-back, ``GateController.command``) and writes the outcome back, NOTIFYing the
caller, which answers the lane with it. Both also poll once a second, so a lost notification
costs a second. A command nobody takes within ``TAKE_S`` fails ("no instance drives the
bus"), is never run late; one taken but unanswered in time is ``unconfirmed``.

**The same gate state everywhere.** The driver writes what it polled of each lane's gate to
``gate_states`` (a change at its next second, with a NOTIFY; every row every ``RENEW_S``);
the others re-read those rows at the notice and once a second into the status operators
see (with ``driver``, the instance that drives the bus); a row not renewed for ``STALE_S``
of the reader's own (monotonic) time shows the gate offline, whatever the hosts' clocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, delete, select, text
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.gates.bus import BusUrlError, parse_bus_url
from drivers.gates.controller import GateController
from gateway.infra.listen import listening
from gateway.infra.storage.schema import GateCommandRow, GateStateRow
from gateway.logs import OnceLogger
from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import Gate, GateOutcomeLike
from gateway.services.lanes.gates import Outcome
from gateway.services.lanes.modbus_gates import ModbusGates

__all__ = ["CHANNEL", "ClusterGates", "bus_key", "lock_key"]

log = logging.getLogger(__name__)

CHANNEL = "citygate_gates"
LOCK_NS = 0x6367_0020  # the advisory locks' first key (the second: the bus's hash)
POLL_S = 1.0
TAKE_S = 3.0  # a relayed command nobody takes in this time fails
RUN_S = 11.0  # and one taken is answered in this time, under the lane's 15 s
RENEW_S = 2.0  # every gate state row is written again this often (a change: at once)
STALE_S = 5.0  # a gate state row older than this: its driver is gone


def bus_key(bus: str) -> str:
    """The bus as every instance names it (``tcp://Gate-Box`` and ``tcp://gate-box:502``
    are one bus); a URL that does not parse is its own key."""
    try:
        return parse_bus_url(bus).url
    except (BusUrlError, ValueError):
        return bus


def lock_key(bus: str) -> int:
    """The advisory lock's second key for *bus*: 31 bits of its hash."""
    digest = hashlib.blake2b(bus_key(bus).encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF


@dataclass(frozen=True, slots=True)
class _Gate:
    gates: ClusterGates
    lane: LaneConfig

    async def command(self, action: str, decision_id: str) -> GateOutcomeLike:
        return await self.gates.command(self.lane, action, decision_id)


class ClusterGates:
    """The ``GateFactory`` of an instance in a cluster: local gates for the buses it drives,
    the relay for the others, and every lane's gate state from whoever drives it."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[Any],
        instance: str,
        clock: Callable[[], datetime],
        local: ModbusGates | None,
    ) -> None:
        self._engine, self._sessions, self.instance = engine, sessions, instance
        self._clock, self.local = clock, local
        self.held: set[str] = set()  # bus keys this instance drives
        self._lanes: dict[str, LaneConfig] = {}
        # lane: (driver, state, its updated_at, when this instance saw that updated_at first)
        self._remote: dict[str, tuple[str, dict[str, Any], datetime, float]] = {}
        self._written: dict[str, dict[str, Any]] = {}  # lane: the state last written
        self._renewed: datetime | None = None
        self._answers: dict[str, asyncio.Future[None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._warn = OnceLogger(log, "gates: the cluster's connection")
        self.lane_of: Callable[[str], LaneConfig | None] = self._lanes.get
        if local is not None:
            local.drives = lambda bus: bus_key(bus) in self.held

    # -- the GateFactory ---------------------------------------------------------------------
    def gate_for(self, lane: LaneConfig) -> Gate:
        self._lanes[lane.id] = lane
        if self.local is not None:
            self.local.gate_for(lane)  # its controller (polled once this instance drives it)
        return _Gate(self, lane)

    def status(self, lane_id: str) -> dict[str, object] | None:
        lane = self._lanes.get(lane_id)
        if lane is not None and self.local is not None and bus_key(lane.gate_bus) in self.held:
            here = self.local.status(lane_id)
            return None if here is None else {**here, "driver": self.instance}
        got = self._remote.get(lane_id)
        if got is None:
            return {"online": False, "driver": None, "error": "no instance drives this bus"}
        instance, status, at, seen = got
        if time.monotonic() - seen > STALE_S:  # this host's time: no clock skew matters
            return {**status, "online": False, "driver": instance,
                    "error": f"no news from {instance} since {at.isoformat()}"}  # fmt: skip
        return {**status, "driver": instance}

    def controller(self, lane_id: str) -> GateController | None:
        """This instance's controller of the lane's gate (polled only while it drives the bus)."""
        return None if self.local is None else self.local.controller(lane_id)

    def forget(self, lane_id: str) -> None:
        self._lanes.pop(lane_id, None)
        if self.local is not None:
            self.local.forget(lane_id)

    async def command(self, lane: LaneConfig, action: str, decision_id: str) -> GateOutcomeLike:
        """*action* on *lane*'s gate: here if this instance drives its bus, else relayed."""
        if self.local is not None and bus_key(lane.gate_bus) in self.held:
            return await self.local.gate_for(lane).command(action, decision_id)
        return await self._relay(lane, action, decision_id)

    # -- the relay, the caller's side --------------------------------------------------------
    async def _relay(self, lane: LaneConfig, action: str, decision_id: str) -> Outcome:
        command_id, bus = str(uuid.uuid4()), bus_key(lane.gate_bus)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._answers[command_id] = waiter
        try:
            async with self._sessions.begin() as db:
                db.add(
                    GateCommandRow(
                        id=command_id, lane_id=lane.id, bus=bus, action=action,
                        decision_id=decision_id, origin=self.instance, status="pending",
                        created_at=self._clock(),
                    )
                )  # fmt: skip
                await db.flush()
                await self._notify(db, {"k": "command", "bus": bus, "id": command_id})
            log.info("lane %s: %s relayed to the driver of %s", lane.id, action, bus)
            return await self._answer(command_id, bus, waiter)
        finally:
            self._answers.pop(command_id, None)
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as db:
                    await db.execute(delete(GateCommandRow).where(GateCommandRow.id == command_id))

    async def _answer(self, command_id: str, bus: str, waiter: asyncio.Future[None]) -> Outcome:
        loop = asyncio.get_running_loop()
        start = loop.time()
        while True:
            with contextlib.suppress(TimeoutError):
                await wait_for(asyncio.shield(waiter), POLL_S)
            waited = loop.time() - start
            async with self._sessions.begin() as db:
                row = await db.get(GateCommandRow, command_id, with_for_update=True)
                if row is None:
                    return Outcome("failed", "command lost")
                if row.status == "done":
                    r = row.result or {}
                    return Outcome(str(r.get("status", "failed")), str(r.get("detail", "")))
                if row.status == "pending" and waited >= TAKE_S:
                    row.status = "expired"  # never run late
                    return Outcome("failed", f"no instance drives gate bus {bus}")
                if waited >= RUN_S:
                    row.status = "expired"
                    return Outcome("unconfirmed", f"{row.taken_by} did not answer in time")

    # -- the relay, the driver's side --------------------------------------------------------
    async def _serve(self, command_id: str) -> None:
        async with self._sessions.begin() as db:
            row = await db.get(GateCommandRow, command_id, with_for_update=True)
            if row is None or row.status != "pending" or row.bus not in self.held:
                return  # taken, expired, or not ours
            row.status, row.taken_by = "running", self.instance
            lane_id, action, decision_id, origin = (
                row.lane_id,
                row.action,
                row.decision_id,
                row.origin,
            )
        lane = self.lane_of(lane_id)
        if lane is None or self.local is None:
            outcome = Outcome("failed", f"lane {lane_id} unknown to {self.instance}")
        else:
            try:
                got = await wait_for(self.local.gate_for(lane).command(action, decision_id), RUN_S)
                outcome = Outcome(got.status, got.detail)
            except TimeoutError:
                outcome = Outcome("unconfirmed", f"no outcome within {RUN_S:g} s")
            except Exception as exc:  # the caller gets it, the lane goes to fault there
                outcome = Outcome("failed", f"{type(exc).__name__}: {exc}")
        async with self._sessions.begin() as db:
            row = await db.get(GateCommandRow, command_id, with_for_update=True)
            if row is None:
                return  # the caller gave up and deleted it
            row.status = "done"
            row.result = {"status": outcome.status, "detail": outcome.detail[:300]}
            await self._notify(db, {"k": "done", "to": origin, "id": command_id})
        log.info("lane %s: relayed %s from %s: %s", lane_id, action, origin, outcome.status)

    async def _notify(self, db: AsyncSession, notice: dict[str, str]) -> None:
        payload = json.dumps(notice, separators=(",", ":"))
        await db.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        try:
            notice = json.loads(payload)
            kind, command_id = notice["k"], str(notice["id"])
        except (ValueError, KeyError, TypeError):
            return
        if kind == "command" and notice.get("bus") in self.held:
            self._spawn(self._serve(command_id))
        elif kind == "states" and notice.get("from") != self.instance:
            self._wake.set()
        elif kind == "done" and notice.get("to") == self.instance:
            waiter = self._answers.get(command_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the loop ----------------------------------------------------------------------------
    async def run(self, lanes: Callable[[], list[LaneConfig]]) -> None:
        """The buses' locks, the states, the relayed commands (and the local gates' polling)."""
        for lane in lanes():
            self.gate_for(lane)
        try:
            async with asyncio.TaskGroup() as tg:
                if self.local is not None:
                    tg.create_task(self.local.run(lanes), name="gates-local")
                tg.create_task(self._follow(), name="gates-cluster")
        finally:
            for task in list(self._tasks):
                task.cancel()

    async def _follow(self) -> None:
        while True:
            self._lost.clear()
            try:
                async with listening(
                    self._engine, CHANNEL, self._notified, self._on_lost
                ) as driver:
                    self._warn.recovered()
                    while not self._lost.is_set():
                        await self._round(driver)
                        with contextlib.suppress(TimeoutError):
                            await wait_for(self._wake.wait(), POLL_S)
                        self._wake.clear()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.failed(f"{type(exc).__name__}: {exc}")
            finally:
                self._let_go()
            await asyncio.sleep(POLL_S)

    def _on_lost(self) -> None:
        """The connection holding the locks is gone: so are the locks; stop polling now."""
        self._lost.set()
        self._wake.set()
        self._let_go()

    def _let_go(self) -> None:
        if self.held:
            log.warning("gates: %s lets go of %s", self.instance, ", ".join(sorted(self.held)))
        self.held.clear()
        self._written.clear()
        if self.local is not None:
            self.local.resync()

    async def _round(self, driver: Any) -> None:
        """One second's work: the locks, polling, the states written and read, the commands
        whose notice was lost."""
        if self.local is not None:
            wanted = {bus_key(b) for b in self.local.buses()}
            for bus in sorted(wanted - self.held):
                if await driver.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                         LOCK_NS, lock_key(bus)):  # fmt: skip
                    self.held.add(bus)
                    log.info("gates: %s drives %s", self.instance, bus)
            for bus in sorted(self.held - wanted):
                await driver.fetchval("SELECT pg_advisory_unlock($1, $2)", LOCK_NS, lock_key(bus))
                self.held.discard(bus)
            self.local.resync()
            await self._write_states()
        await self._read_states()
        if self.held:
            async with self._sessions() as db:
                ids = (
                    await db.execute(
                        select(GateCommandRow.id).where(
                            GateCommandRow.status == "pending",
                            GateCommandRow.bus.in_(sorted(self.held)),
                        )
                    )
                ).scalars()
                for command_id in list(ids):
                    self._spawn(self._serve(command_id))

    async def _write_states(self) -> None:
        local = self.local
        if local is None or not self.held:
            return
        now = self._clock()
        renew = self._renewed is None or (now - self._renewed).total_seconds() >= RENEW_S
        rows, changed = [], False
        for lane_id, lane in self._lanes.items():
            bus = bus_key(lane.gate_bus)
            status = local.status(lane_id) if bus in self.held else None
            if status is None:
                continue
            what = {k: v for k, v in status.items() if k != "read_at"}
            if what != self._written.get(lane_id):
                changed = True
            elif not renew:
                continue
            rows.append({"lane_id": lane_id, "bus": bus, "instance_id": self.instance,
                         "status": status, "updated_at": now})  # fmt: skip
            self._written[lane_id] = what
        if not rows:
            return
        if renew:
            self._renewed = now
        table = cast(Table, GateStateRow.__table__)
        up = pg_insert(table)
        cols = {k: up.excluded[k] for k in ("bus", "instance_id", "status", "updated_at")}
        async with self._sessions.begin() as db:
            await db.execute(up.on_conflict_do_update(index_elements=["lane_id"], set_=cols), rows)
            if changed:
                await self._notify(db, {"k": "states", "from": self.instance, "id": ""})

    async def _read_states(self) -> None:
        async with self._sessions() as db:
            rows = list((await db.execute(select(GateStateRow))).scalars())
        now, old = time.monotonic(), self._remote
        self._remote = {}
        for r in rows:
            before = old.get(r.lane_id)
            seen = before[3] if before is not None and before[2] == r.updated_at else now
            self._remote[r.lane_id] = (r.instance_id, dict(r.status), r.updated_at, seen)
