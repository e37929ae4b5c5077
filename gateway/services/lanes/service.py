"""The lane service: per lane, the state of ``parking.lanes`` and the I/O around each step.

A camera's push (``on_push``) is one commit: the read, its session step and price
(``facts``) and, when the step raises, the decision (``decisions``, ``pending``); only then
is the gate commanded, in a task of its own, so the camera gets its answer at once and a
restart finds every raise that may have happened. The gate's outcome is stepped back in
(``GateDone``); a failure puts the lane in ``fault``, from which an operator opens it
(``operator_open``, with a reason and the operator's token id). A lane waiting for payment
opens when the payment is recorded (``payment_recorded``, PaymentService's hook; a recheck
every ``recheck_s`` catches another instance's). Steps of one lane hold its lock.

A little over 400 lines, long because the push, the gate task, the operator's open and the
payment recheck share one lane's lock and its state; split, each would need all of it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.cameras import CameraRead
from gateway.directory.devices import DeviceEntry
from gateway.infra.storage.schema import LaneRow
from gateway.services.cameras.store import CameraReads, Stored
from gateway.services.lanes.config import LaneConfig, lane_from_row
from gateway.services.lanes.contract import GateFactory, LaneAnswer, PlateReadLike
from gateway.services.lanes.decisions import Decision, DecisionStore, new_decision_id
from gateway.services.lanes.facts import Facts, ReadFacts
from gateway.services.lanes.gates import UnwiredGates
from gateway.services.lanes.metrics import LaneMetrics
from gateway.services.lanes.runtime import (
    LaneRuntime,
    UnknownLane,
    answer,
    decision_for,
    laned,
    take,
)
from parking.lanes import (
    EntryRead,
    ExitRead,
    GateDone,
    GateOutcome,
    LaneInput,
    LaneState,
    OperatorOpen,
    PaymentSeen,
    Raise,
    Restarted,
    Step,
    step,
)

log = logging.getLogger(__name__)
OUTCOMES: frozenset[str] = frozenset({"confirmed", "unconfirmed", "failed"})
# A gate controller in these lifecycle states is never commanded (gateway.directory.lifecycle):
# in maintenance a technician has it on the bench or the pole; retired, it is gone.
UNDRIVEN = frozenset({"maintenance", "retired"})


class LaneService:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        facts: Facts,
        metrics: LaneMetrics,
        clock: Callable[[], datetime],
        *,
        gates: GateFactory | None = None,
        keep: int = 20,
        recheck_s: float = 1.0,
        late_after: timedelta = timedelta(minutes=10),
        gate_timeout_s: float = 15.0,
    ) -> None:
        self._sessions = sessions
        self._store = DecisionStore(sessions)
        self._facts = facts
        self._metrics = metrics
        self._clock = clock
        self.gates: GateFactory = gates or UnwiredGates()  # SEAM: the Modbus gates (gates.py)
        self._keep = keep
        self._recheck_s = recheck_s
        self._late_after = late_after
        self._gate_timeout_s = gate_timeout_s
        self.lanes: dict[str, LaneRuntime] = {}
        self._by_camera: dict[str, str] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._tick = asyncio.Event()
        self.rechecks = 0  # rounds of re-pricing done (tests wait on it)

    # ----- loading and following the town ------------------------------------------------

    def serves(self, camera_id: str) -> bool:
        """Whether *camera_id* is the camera of one of the lanes."""
        return camera_id in self._by_camera

    async def load(self) -> int:
        """Load the lanes; decisions a previous run left ``pending``/``sent`` become
        ``interrupted`` and their lanes get ``Restarted`` (never resent). Returns how many."""
        async with self._sessions() as db:
            rows = list((await db.execute(select(LaneRow).order_by(LaneRow.id))).scalars())
        for row in rows:
            self._put(lane_from_row(row))
        now = self._clock()
        interrupted = await self._store.interrupt_open(now)
        last = {d.lane_id: d for d in interrupted}  # oldest first: the last one wins
        for rt in self.lanes.values():
            rt.recent.extend(await self._store.recent(rt.config.id, self._keep))
            d = last.get(rt.config.id)
            if d is not None:
                rt.state = LaneState(
                    phase="raising",
                    plate=d.plate,
                    session_id=d.session_id,
                    decision_id=d.id,
                    decided_at=d.created_at,
                )
                self._apply(rt, Restarted(now))
        if interrupted:
            log.warning(
                "lanes: %d gate decision(s) interrupted by the restart, not resent: %s",
                len(interrupted),
                ", ".join(sorted(last)),
            )
        return len(interrupted)

    def _put(self, config: LaneConfig) -> None:
        rt = self.lanes.get(config.id)
        if rt is None:
            self.lanes[config.id] = LaneRuntime(config, deque(maxlen=self._keep))
        else:
            if self._by_camera.get(rt.config.camera_id) == config.id:
                del self._by_camera[rt.config.camera_id]  # unless a swap gave it away already
            rt.config = config
        self._by_camera[config.camera_id] = config.id

    async def refresh(self, lane_id: str) -> None:
        """Re-read one lane (the change feed's ``lane`` change)."""
        async with self._sessions() as db:
            row = await db.get(LaneRow, lane_id)
        if row is None:
            rt = self.lanes.pop(lane_id, None)
            if rt is not None and self._by_camera.get(rt.config.camera_id) == lane_id:
                del self._by_camera[rt.config.camera_id]
            self.gates.forget(lane_id)
            return
        config = lane_from_row(row)
        self._put(config)
        # Its gate now, not at its first car: polled from here on, so an operator sees a
        # controller that does not answer before a driver is stuck at it.
        self.gates.gate_for(config)

    # ----- inputs ---------------------------------------------------------------------------

    async def on_read(self, read: PlateReadLike) -> LaneAnswer:
        """A read already stored (tools, tests): recorded as a session step, priced at an
        exit, decided; each in a transaction of its own."""
        lane_id = self._by_camera.get(read.camera_id)
        if lane_id is None:
            self._metrics.reads.labels("unknown_camera").inc()
            return LaneAnswer(False, [], None, f"camera {read.camera_id} is in no lane")
        rt = self.lanes[lane_id]
        now = self._clock()
        plate = self._facts.plate_of(read)
        async with rt.lock:
            try:
                facts = await self._facts.of_read(rt.config, read, plate, now)
            except (SQLAlchemyError, OSError) as exc:
                facts = self._not_recorded(rt, exc)
            event = self._event(rt, read, plate, facts, now)
            if event is None:
                return LaneAnswer(False, [], None, f"late read recorded ({facts.outcome})")
            return await self._step(rt, event)

    async def on_push(
        self, parsed: CameraRead, camera: DeviceEntry, reads: CameraReads
    ) -> tuple[Stored, LaneAnswer | None]:
        """A camera's push at its lane: the read, its session step and the gate decision
        are one commit (``CameraReads.record``'s *within*), made before the camera gets its
        answer and before the gate is commanded. The answer is None for a duplicate resend
        (it was decided when it first came)."""
        rt = self.lanes.get(self._by_camera.get(parsed.camera_id, ""))
        if rt is None:  # the lane went away since the route asked ``serves``
            stored = await reads.record(parsed, camera)
            return stored, None if stored.duplicate else await self.on_read(laned(stored.read))
        plate = self._facts.plate_of(parsed)
        now = self._clock()
        planned: list[tuple[ReadFacts, Step | None, Decision | None]] = []

        async def within(db: AsyncSession, read: CameraRead) -> None:
            facts = await self._facts.of_read_in(db, rt.config, laned(read), plate, now)
            event = self._event(rt, laned(read), plate, facts, now, count=False)
            s = None if event is None else step(rt.config.rules, rt.state, event)
            d = None if s is None else decision_for(rt, s, None, now)
            if d is not None:
                DecisionStore.add(db, d)
            planned.append((facts, s, d))

        async with rt.lock, self._facts.lock(rt.config, plate):
            stored = await reads.record(parsed, camera, within)
            if stored.duplicate:
                return stored, None
            try:
                return stored, await self._carry_out(rt, stored, planned, plate, now)
            except Exception as exc:  # the read is stored: the camera still gets its answer
                log.error("lane %s: decision failed", rt.config.id, exc_info=exc)
                return stored, LaneAnswer(False, [], None, "decider_failed")

    async def _carry_out(
        self,
        rt: LaneRuntime,
        stored: Stored,
        planned: list[tuple[ReadFacts, Step | None, Decision | None]],
        plate: str | None,
        now: datetime,
    ) -> LaneAnswer:
        """After the push's commit: take the planned step and send its raise."""
        if stored.within_error is not None or not planned:
            facts = self._not_recorded(rt, stored.within_error)
            event = self._event(rt, laned(stored.read), plate, facts, now)
            if event is None:
                return LaneAnswer(False, [], None, "late read")
            return await self._step(rt, event)
        facts, s, d = planned[-1]
        self._facts.count(facts)
        self._count_event(laned(stored.read), now)
        if s is None:
            return LaneAnswer(False, [], None, f"late read recorded ({facts.outcome})")
        self._take(rt, s)
        if d is not None:
            rt.recent.append(d)
            self._spawn(self._send(rt, d))
        return answer(rt, s.verdict, d is not None)

    def _not_recorded(self, rt: LaneRuntime, exc: BaseException | None) -> ReadFacts:
        # Not in the books: nothing opens on its own, an operator can still open.
        log.warning("lane %s: read not recorded: %s", rt.config.id, exc)
        return ReadFacts("not_recorded", None, None)

    def _late(self, read: PlateReadLike, now: datetime) -> bool:
        """A read the camera kept while offline: the car has gone; its stay is booked."""
        return read.offline or now - read.ts > self._late_after

    def _count_event(self, read: PlateReadLike, now: datetime) -> None:
        self._metrics.reads.labels("late" if self._late(read, now) else "decided").inc()

    def _event(
        self,
        rt: LaneRuntime,
        read: PlateReadLike,
        plate: str | None,
        facts: ReadFacts,
        now: datetime,
        *,
        count: bool = True,
    ) -> LaneInput | None:
        """The lane's input for *read*, None for a late one (booked, not decided)."""
        if count:
            self._count_event(read, now)
        if self._late(read, now):
            return None
        if rt.config.kind == "entry":
            return EntryRead(now, plate, facts.outcome, facts.session_id, new_decision_id())
        return ExitRead(
            now, plate, facts.outcome, facts.session_id, facts.due_fen, new_decision_id()
        )

    async def operator_open(self, lane_id: str, reason: str, operator: str) -> Decision:
        """An operator opens the lane, whatever its state; the reason and the operator's
        token id are recorded with the decision. Raises UnknownLane, or RuntimeError when the
        decision cannot be recorded (then nothing was sent)."""
        rt = self.lanes.get(lane_id)
        if rt is None:
            raise UnknownLane(lane_id)
        async with rt.lock:
            decision_id = new_decision_id()
            await self._step(
                rt, OperatorOpen(self._clock(), operator, reason, decision_id), operator
            )
        found = next((d for d in rt.recent if d.id == decision_id), None)
        if found is None:
            raise RuntimeError("the decision could not be recorded: nothing was sent")
        return found

    def payment_recorded(self, session_id: str) -> None:
        """PaymentService's hook: a lane waiting on this session re-prices it now."""
        for rt in list(self.lanes.values()):
            if rt.state.phase == "waiting_payment" and rt.state.session_id == session_id:
                self._spawn(self._reprice(rt))

    def set_recheck(self, seconds: float) -> None:
        """Re-price waiting lanes every *seconds* from now on (the running loop restarts its
        wait)."""
        self._recheck_s = seconds
        self._tick.set()

    async def run(self) -> None:
        """Re-price the waiting lanes every ``recheck_s``: a payment recorded by another
        instance reaches no hook of this one."""
        try:
            while True:
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._tick.wait(), self._recheck_s)
                if self._tick.is_set():
                    self._tick.clear()
                    continue
                for rt in list(self.lanes.values()):
                    if rt.state.phase == "waiting_payment":
                        try:
                            await self._reprice(rt)
                        except Exception:  # one lane's bug must not stop the others' recheck
                            log.exception("lane %s: recheck failed", rt.config.id)
                self.rechecks += 1
        finally:
            for task in list(self._tasks):
                task.cancel()
            for task in list(self._tasks):
                with contextlib.suppress(BaseException):
                    await task

    async def _reprice(self, rt: LaneRuntime) -> None:
        async with rt.lock:
            sid = rt.state.session_id
            if rt.state.phase != "waiting_payment" or sid is None:
                return
            try:
                due = await self._facts.due(sid)
            except (SQLAlchemyError, OSError) as exc:
                log.warning("lane %s: re-pricing %s failed: %s", rt.config.id, sid, exc)
                return
            if due is None or (due > 0 and due == rt.state.due_fen):
                return
            await self._step(rt, PaymentSeen(self._clock(), sid, due, new_decision_id()))

    # ----- stepping and carrying out -----------------------------------------------------

    def _apply(self, rt: LaneRuntime, event: LaneInput) -> Raise | None:
        return self._take(rt, step(rt.config.rules, rt.state, event))

    def _take(self, rt: LaneRuntime, s: Step) -> Raise | None:
        self._metrics.verdicts.labels(rt.config.kind, s.verdict).inc()
        return take(rt, s, self._clock())

    async def _step(
        self, rt: LaneRuntime, event: LaneInput, operator: str | None = None
    ) -> LaneAnswer:
        """Step *event* (the caller holds the lane's lock), record its raise in a
        transaction of its own, then carry it out."""
        s = step(rt.config.rules, rt.state, event)
        now = self._clock()
        d = decision_for(rt, s, operator, now)
        self._take(rt, s)
        if d is None:
            return answer(rt, s.verdict, False)
        try:
            await self._store.record(d)
        except (SQLAlchemyError, OSError) as exc:
            log.error("lane %s: decision not recorded, gate not raised: %s", rt.config.id, exc)
            self._metrics.gate_outcomes.labels("not_recorded").inc()
            self._apply(rt, GateDone(now, d.id, "failed", "decision not recorded"))
            return answer(rt, s.verdict, False)
        rt.recent.append(d)
        self._spawn(self._send(rt, d))
        return answer(rt, s.verdict, True)

    async def _send(self, rt: LaneRuntime, d: Decision) -> None:
        """Command the gate for *d* (committed ``pending``: no write stands between the two)
        and record its outcome."""
        d.state, d.sent_at = "sent", self._clock()
        undriven = rt.config.gate_lifecycle in UNDRIVEN
        try:
            if undriven:  # a technician has it, or it is gone: nothing is written to it
                status = "failed"
                detail = (f"gate controller {rt.config.gate_lifecycle}: not driven, "
                          "raise the barrier by hand")  # fmt: skip
            else:
                gate = self.gates.gate_for(rt.config)
                outcome = await wait_for(gate.command("raise", d.id), self._gate_timeout_s)
                status, detail = outcome.status, outcome.detail
        except TimeoutError:
            status, detail = "unconfirmed", f"no outcome within {self._gate_timeout_s:g} s"
        except Exception as exc:  # a driver's bug must not leave the lane raising forever
            status, detail = "failed", f"{type(exc).__name__}: {exc}"
        if status not in OUTCOMES:
            status, detail = "failed", f"unknown outcome {status!r}: {detail}"
        now = self._clock()
        try:
            await self._store.done(d.id, status, detail, d.sent_at, now)
        except (SQLAlchemyError, OSError) as exc:
            log.warning("lane %s: outcome of %s not recorded: %s", rt.config.id, d.id, exc)
        d.state, d.detail, d.done_at = status, detail[:300], now
        self._metrics.gate_outcomes.labels(status).inc()
        async with rt.lock:
            self._apply(rt, GateDone(now, d.id, cast(GateOutcome, status), detail))

    def _spawn(self, coro: Any) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settled(self) -> None:
        """Wait for the gate commands and re-pricings in flight (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
