"""The pure lane decisions: each situation of a lane has a defined path, and no driver is
ever trapped (an operator can always open; a raise is never repeated for the same car)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from parking.lanes import (
    EntryRead,
    ExitRead,
    GateDone,
    LaneInput,
    LaneRules,
    LaneState,
    OperatorOpen,
    PaymentSeen,
    Raise,
    Restarted,
    Show,
    step,
    yuan,
)

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
ENTRY = LaneRules(kind="entry")
EXIT = LaneRules(kind="exit")
_ids = itertools.count()


def did() -> str:
    return f"d{next(_ids)}"


def raises(actions: tuple[object, ...]) -> list[Raise]:
    return [a for a in actions if isinstance(a, Raise)]


def shown(actions: tuple[object, ...]) -> list[str]:
    return [line for a in actions if isinstance(a, Show) for line in a.lines]


def test_entry_opens_the_session_and_raises_once() -> None:
    s = step(ENTRY, LaneState(), EntryRead(T0, "甘G12345", "opened", "ps_1", "d1"))
    assert s.state.phase == "raising" and s.verdict == "entry_opened"
    assert raises(s.actions) == [Raise("d1", "entry (opened)", "甘G12345", "ps_1")]
    assert "欢迎光临" in shown(s.actions)
    # The camera fires again for the same car: no second raise, in flight or confirmed.
    again = step(
        ENTRY, s.state, EntryRead(T0 + timedelta(seconds=2), "甘G12345", "duplicate", "ps_1", "d2")
    )
    assert again.verdict == "repeat_read" and not raises(again.actions)
    done = step(ENTRY, s.state, GateDone(T0 + timedelta(seconds=3), "d1", "confirmed"))
    assert done.state.phase == "idle" and done.state.raised_ok
    later = step(
        ENTRY,
        done.state,
        EntryRead(T0 + timedelta(seconds=5), "甘G12345", "duplicate", "ps_1", "d3"),
    )
    assert not raises(later.actions)


def test_the_same_car_long_after_is_a_new_passage() -> None:
    s = step(ENTRY, LaneState(), EntryRead(T0, "甘G12345", "opened", "ps_1", "d1"))
    s = step(ENTRY, s.state, GateDone(T0, "d1", "confirmed"))
    back = step(
        ENTRY, s.state, EntryRead(T0 + timedelta(hours=2), "甘G12345", "reopened", "ps_2", "d2")
    )
    assert raises(back.actions) == [Raise("d2", "entry (reopened)", "甘G12345", "ps_2")]


def test_unreadable_plate_at_entry_waits_for_an_operator_or_opens_by_policy() -> None:
    s = step(ENTRY, LaneState(), EntryRead(T0, None, "unread", None, "d1"))
    assert s.state.phase == "waiting_operator" and not raises(s.actions)
    assert "车牌未识别" in shown(s.actions)
    lenient = LaneRules(kind="entry", unreadable_entry="open")
    s = step(lenient, LaneState(), EntryRead(T0, None, "unread", None, "d1"))
    assert [r.decision_id for r in raises(s.actions)] == ["d1"]


def test_exit_free_raises_and_owed_waits_for_payment() -> None:
    free = step(EXIT, LaneState(), ExitRead(T0, "甘G12345", "closed", "ps_1", 0, "d1"))
    assert free.verdict == "exit_free" and [r.decision_id for r in raises(free.actions)] == ["d1"]
    owed = step(EXIT, LaneState(), ExitRead(T0, "甘G12345", "closed", "ps_1", 700, "d1"))
    assert owed.state.phase == "waiting_payment" and not raises(owed.actions)
    assert "请缴费 7.00 元" in shown(owed.actions)
    # Read again while it waits: the amount again, still no gate.
    again = step(EXIT, owed.state, ExitRead(T0, "甘G12345", "duplicate", None, None, "d2"))
    assert again.state == owed.state and "请缴费 7.00 元" in shown(again.actions)
    part = step(EXIT, owed.state, PaymentSeen(T0, "ps_1", 200, "d3"))
    assert part.state.phase == "waiting_payment" and "请缴费 2.00 元" in shown(part.actions)
    paid = step(EXIT, part.state, PaymentSeen(T0, "ps_1", 0, "d4"))
    assert paid.verdict == "exit_paid" and [r.decision_id for r in raises(paid.actions)] == ["d4"]
    other = step(EXIT, owed.state, PaymentSeen(T0, "ps_9", 0, "d5"))
    assert other.state == owed.state and not raises(other.actions)


def test_unknown_plate_at_exit_needs_an_operator_who_can_always_open() -> None:
    s = step(EXIT, LaneState(), ExitRead(T0, "甘G99999", "pending_exit", None, None, "d1"))
    assert s.state.phase == "waiting_operator" and "无入场记录" in shown(s.actions)
    opened = step(EXIT, s.state, OperatorOpen(T0, "op-li", "visitor without entry", "d2"))
    (r,) = raises(opened.actions)
    assert r.decision_id == "d2" and "op-li" in r.reason and "visitor" in r.reason


def test_a_gate_that_does_not_confirm_is_a_fault_not_a_retry() -> None:
    s = step(EXIT, LaneState(), ExitRead(T0, "甘G12345", "closed", "ps_1", 0, "d1"))
    for outcome in ("unconfirmed", "failed"):
        f = step(EXIT, s.state, GateDone(T0, "d1", outcome, "no answer"))  # type: ignore[arg-type]
        assert f.state.phase == "fault" and not raises(f.actions)
        assert "道闸故障" in shown(f.actions)
        # The car is still there; its next read is a new decision (the first did not open).
        again = step(EXIT, f.state, ExitRead(T0, "甘G12345", "duplicate", "ps_1", 0, "d2"))
        assert [r.decision_id for r in raises(again.actions)] == ["d2"]
    # An outcome for another decision changes nothing.
    assert step(EXIT, s.state, GateDone(T0, "d-old", "failed")).state == s.state


def test_a_restart_mid_raise_never_raises_again() -> None:
    s = step(ENTRY, LaneState(), EntryRead(T0, "甘G12345", "opened", "ps_1", "d1"))
    r = step(ENTRY, s.state, Restarted(T0))
    assert r.state.phase == "waiting_operator" and not raises(r.actions)
    assert step(ENTRY, LaneState(), Restarted(T0)).state == LaneState()


def test_the_interrupted_car_read_again_waits_for_an_operator_another_car_does_not() -> None:
    for rules, read in (
        (ENTRY, lambda p, d: EntryRead(T0, p, "duplicate", "ps_1", d)),
        (EXIT, lambda p, d: ExitRead(T0, p, "closed", "ps_1", 0, d)),
    ):
        s = step(rules, LaneState(), read("甘G12345", "d1"))
        r = step(rules, s.state, Restarted(T0 + timedelta(minutes=5)))
        again = step(rules, r.state, read("甘G12345", "d2"))
        assert again.verdict == "awaits_operator" and not raises(again.actions)
        assert again.state == r.state and "请联系管理员" in shown(again.actions)
        other = step(rules, r.state, read("甘G54321", "d3"))
        assert [x.decision_id for x in raises(other.actions)] == ["d3"]
        op = step(rules, r.state, OperatorOpen(T0, "op", "checked the camera", "d4"))
        assert [x.decision_id for x in raises(op.actions)] == ["d4"]


def test_a_read_at_the_wrong_kind_of_lane_does_nothing() -> None:
    assert step(EXIT, LaneState(), EntryRead(T0, "甘G1", "opened", "ps", "d")).actions == ()
    assert step(ENTRY, LaneState(), ExitRead(T0, "甘G1", "closed", "ps", 0, "d")).actions == ()


def test_yuan() -> None:
    assert [yuan(f) for f in (0, 5, 100, 1234)] == ["0.00", "0.05", "1.00", "12.34"]


plates = st.sampled_from(["甘G12345", "甘G54321", None])
times = st.integers(0, 120).map(lambda s: T0 + timedelta(seconds=s))


@st.composite
def inputs(draw: st.DrawFn, n: int) -> LaneInput:
    kind = draw(st.sampled_from(["entry", "exit", "pay", "gate", "op", "restart"]))
    at, plate, d = draw(times), draw(plates), f"d{n}"
    if kind == "entry":
        return EntryRead(
            at,
            plate,
            draw(st.sampled_from(["opened", "duplicate", "stale"])),
            draw(st.sampled_from([None, "ps_1"])),
            d,
        )
    if kind == "exit":
        return ExitRead(
            at,
            plate,
            "closed",
            draw(st.sampled_from([None, "ps_1"])),
            draw(st.sampled_from([None, 0, 500])),
            d,
        )
    if kind == "pay":
        return PaymentSeen(at, "ps_1", draw(st.sampled_from([0, 100])), d)
    if kind == "gate":
        return GateDone(
            at,
            f"d{draw(st.integers(0, n))}",
            draw(st.sampled_from(["confirmed", "unconfirmed", "failed"])),
        )
    if kind == "op":
        return OperatorOpen(at, "op", "reason", d)
    return Restarted(at)


@settings(max_examples=300, deadline=None)
@given(st.data(), st.sampled_from([ENTRY, EXIT]))
def test_any_sequence_leaves_a_way_out_and_raises_each_decision_once(
    data: st.DataObject, rules: LaneRules
) -> None:
    state = LaneState()
    seen: set[str] = set()
    for n in range(data.draw(st.integers(1, 25))):
        s = step(rules, state, data.draw(inputs(n)))
        for r in raises(s.actions):
            assert r.decision_id not in seen  # a decision raises at most once
            seen.add(r.decision_id)
        if raises(s.actions):
            assert (
                s.state.phase == "raising"
                and s.state.decision_id == raises(s.actions)[-1].decision_id
            )
        state = s.state
        # Whatever happened, an operator can open the lane now.
        out = step(rules, state, OperatorOpen(T0, "op", "check", "op-check"))
        assert [r.decision_id for r in raises(out.actions)] == ["op-check"]
