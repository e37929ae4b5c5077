"""A car-park lane's decisions: what the gate, the display and the voice do after each plate
read, payment, gate outcome and operator action.

Pure: the lane service does the I/O first (the read recorded as a session step, the exit
priced) and hands the facts in, with the time and a fresh decision id; this returns the lane's
next state and the actions to carry out. Every situation has a way out, so no driver is ever
trapped: an unreadable or unknown plate, a gate that does not confirm, and a gateway restart
part-way all end in a state an operator can open (``OperatorOpen``, always honoured).

A second read of the same car (cameras fire several times; a driver rolls back and forth) is
recognised within ``repeat_window`` and never raises the gate a second time while the first
raise is in flight or was confirmed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

LaneKind = Literal["entry", "exit"]
Phase = Literal["idle", "raising", "waiting_payment", "waiting_operator", "fault"]
GateOutcome = Literal["confirmed", "unconfirmed", "failed"]

# Session outcomes of a plate read (gateway/services/parking/sessions.py) that let a car in.
_ENTRY_OPENS = frozenset({"opened", "reopened", "paired"})
UNREAD = ("车牌未识别", "请联系管理员")


def owes(plate: str, fen: int) -> Show:
    due = yuan(fen)
    return Show((plate, f"请缴费 {due} 元"), f"请缴费{due}元")


@dataclass(frozen=True, slots=True)
class LaneRules:
    kind: LaneKind
    repeat_window: timedelta = timedelta(seconds=30)
    unreadable_entry: Literal["wait", "open"] = "wait"  # "open": let unread plates in


@dataclass(frozen=True, slots=True)
class LaneState:
    phase: Phase = "idle"
    plate: str | None = None
    session_id: str | None = None
    due_fen: int = 0
    decision_id: str | None = None  # the raise in flight or last made
    decided_at: datetime | None = None
    raised_ok: bool = False  # the last raise was confirmed by the gate's read-back
    note: str = ""


# -- inputs -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class EntryRead:
    """A plate read at an entry lane, already recorded: *outcome* is the session step."""

    at: datetime
    plate: str | None  # None: the camera could not read it
    outcome: str
    session_id: str | None
    decision_id: str  # used if this read raises the gate


@dataclass(frozen=True, slots=True)
class ExitRead:
    """A plate read at an exit lane, recorded and priced: *due_fen* is what is still owed
    (None when no stay was found)."""

    at: datetime
    plate: str | None
    outcome: str
    session_id: str | None
    due_fen: int | None
    decision_id: str


@dataclass(frozen=True, slots=True)
class PaymentSeen:
    """The waiting session was priced again (after a payment): *due_fen* is what is left."""

    at: datetime
    session_id: str
    due_fen: int
    decision_id: str


@dataclass(frozen=True, slots=True)
class GateDone:
    at: datetime
    decision_id: str
    outcome: GateOutcome
    detail: str = ""


@dataclass(frozen=True, slots=True)
class OperatorOpen:
    at: datetime
    operator: str
    reason: str
    decision_id: str


@dataclass(frozen=True, slots=True)
class Restarted:
    """The gateway started again: a raise that was in flight is not repeated (it may have
    happened); the lane asks for an operator if a car may still be waiting."""

    at: datetime


LaneInput = EntryRead | ExitRead | PaymentSeen | GateDone | OperatorOpen | Restarted


# -- actions ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Raise:
    """Raise the gate once for *decision_id* (recorded before it is sent)."""

    decision_id: str
    reason: str
    plate: str | None
    session_id: str | None


@dataclass(frozen=True, slots=True)
class Show:
    """Lines for the lane's display (and the text its voice module says, if any)."""

    lines: tuple[str, ...]
    voice: str | None = None


Action = Raise | Show


@dataclass(frozen=True, slots=True)
class Step:
    state: LaneState
    actions: tuple[Action, ...]
    verdict: str  # what happened, for the lane's history and metrics


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def step(rules: LaneRules, state: LaneState, event: LaneInput) -> Step:
    """The lane's next state and actions after *event*."""
    if isinstance(event, OperatorOpen):
        return _raise(
            state,
            event.decision_id,
            event.at,
            f"operator {event.operator}: {event.reason}",
            state.plate,
            state.session_id,
            Show(("请通行",), "请通行"),
            "operator_open",
        )
    if isinstance(event, GateDone):
        return _gate_done(state, event)
    if isinstance(event, Restarted):
        return _restarted(state)
    if isinstance(event, PaymentSeen):
        return _paid(state, event)
    if isinstance(event, EntryRead):
        if rules.kind != "entry":
            return Step(state, (), "wrong_lane_kind")
        return _entry(rules, state, event)
    if rules.kind != "exit":
        return Step(state, (), "wrong_lane_kind")
    return _exit(rules, state, event)


def _raise(
    state: LaneState,
    decision_id: str,
    at: datetime,
    reason: str,
    plate: str | None,
    session_id: str | None,
    show: Show,
    verdict: str,
) -> Step:
    new = LaneState(
        phase="raising",
        plate=plate,
        session_id=session_id,
        decision_id=decision_id,
        decided_at=at,
        note=reason,
    )
    return Step(new, (show, Raise(decision_id, reason, plate, session_id)), verdict)


def _same_car(rules: LaneRules, state: LaneState, plate: str | None, at: datetime) -> bool:
    """A repeat read of the car the lane has just let through (or is letting through)."""
    return (
        plate is not None
        and plate == state.plate
        and state.decided_at is not None
        and abs(at - state.decided_at) <= rules.repeat_window
        and (state.phase == "raising" or (state.phase == "idle" and state.raised_ok))
    )


def _interrupted_car(state: LaneState, plate: str | None) -> bool:
    """The car whose raise a restart interrupted, read again: it may have passed already, so
    only an operator raises for it (the lane never repeats a raise on its own)."""
    return (
        state.phase == "waiting_operator"
        and state.decision_id is not None
        and plate is not None
        and plate == state.plate
    )


def _entry(rules: LaneRules, state: LaneState, read: EntryRead) -> Step:
    if _same_car(rules, state, read.plate, read.at):
        return Step(state, (), "repeat_read")
    if _interrupted_car(state, read.plate):
        return Step(
            state, (Show((read.plate or "", "请联系管理员"), "请联系管理员"),), "awaits_operator"
        )
    if read.plate is None:
        if rules.unreadable_entry == "open":
            return _raise(
                state, read.decision_id, read.at, "unreadable plate: entry open by policy",
                None, None, Show(("欢迎光临",), "欢迎光临"), "opened_unread",
            )  # fmt: skip
        return _wait_operator(read.at, None, None, "unreadable plate", UNREAD)
    if read.outcome in _ENTRY_OPENS or (read.outcome == "duplicate" and read.session_id):
        # A duplicate of an open stay is the same car still at the gate: let it in.
        return _raise(
            state, read.decision_id, read.at, f"entry ({read.outcome})", read.plate,
            read.session_id, Show((read.plate, "欢迎光临"), "欢迎光临"), "entry_opened",
        )  # fmt: skip
    return _wait_operator(
        read.at, read.plate, read.session_id, f"entry not recorded ({read.outcome})",
        (read.plate, "请联系管理员"),
    )  # fmt: skip


def _exit(rules: LaneRules, state: LaneState, read: ExitRead) -> Step:
    if _same_car(rules, state, read.plate, read.at):
        return Step(state, (), "repeat_read")
    if _interrupted_car(state, read.plate):
        return Step(
            state, (Show((read.plate or "", "请联系管理员"), "请联系管理员"),), "awaits_operator"
        )
    if read.plate is None:
        return _wait_operator(read.at, None, None, "unreadable plate", UNREAD)
    if state.phase == "waiting_payment" and read.plate == state.plate:
        # The same car read again while it waits to pay: its stay is closed already, so the
        # read itself finds none. Show what is owed again.
        return Step(state, (owes(read.plate, state.due_fen),), "repeat_read")
    if read.session_id is None or read.due_fen is None:
        return _wait_operator(
            read.at, read.plate, None, f"no stay found ({read.outcome})",
            (read.plate, "无入场记录", "请联系管理员"),
        )  # fmt: skip
    if read.due_fen <= 0:
        return _raise(
            state, read.decision_id, read.at, "exit: nothing due", read.plate, read.session_id,
            Show((read.plate, "一路顺风"), "一路顺风"), "exit_free",
        )  # fmt: skip
    due = yuan(read.due_fen)
    new = LaneState(
        phase="waiting_payment",
        plate=read.plate,
        session_id=read.session_id,
        due_fen=read.due_fen,
        decided_at=read.at,
        note=f"owes {due} yuan",
    )
    return Step(new, (owes(read.plate, read.due_fen),), "exit_owes")


def _paid(state: LaneState, paid: PaymentSeen) -> Step:
    if state.phase != "waiting_payment" or state.session_id != paid.session_id:
        return Step(state, (), "payment_elsewhere")
    if paid.due_fen > 0:
        due = yuan(paid.due_fen)
        new = replace(state, due_fen=paid.due_fen, note=f"owes {due} yuan")
        return Step(new, (owes(state.plate or "", paid.due_fen),), "still_owes")
    return _raise(
        state, paid.decision_id, paid.at, "exit: paid", state.plate, state.session_id,
        Show((state.plate or "", "已缴费", "一路顺风"), "已缴费，一路顺风"), "exit_paid",
    )  # fmt: skip


def _gate_done(state: LaneState, done: GateDone) -> Step:
    if state.phase != "raising" or done.decision_id != state.decision_id:
        return Step(state, (), "stale_gate_outcome")
    if done.outcome == "confirmed":
        return Step(replace(state, phase="idle", raised_ok=True), (), "gate_confirmed")
    note = f"gate {done.outcome}: {done.detail}".strip(": ")
    return Step(
        replace(state, phase="fault", raised_ok=False, note=note),
        (Show(("道闸故障", "请联系管理员"), "道闸故障，请联系管理员"),),
        f"gate_{done.outcome}",
    )


def _restarted(state: LaneState) -> Step:
    if state.phase == "raising":
        # The raise may or may not have happened: never repeat it, let an operator decide.
        note = "gateway restarted while the gate was being raised"
        return Step(replace(state, phase="waiting_operator", note=note), (), "restart_mid_raise")
    return Step(state, (), "restart")


def _wait_operator(
    at: datetime, plate: str | None, session_id: str | None, note: str, lines: tuple[str, ...]
) -> Step:
    new = LaneState(
        phase="waiting_operator", plate=plate, session_id=session_id, decided_at=at, note=note
    )
    return Step(new, (Show(lines, "请联系管理员"),), "needs_operator")
