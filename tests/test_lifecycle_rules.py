"""The device lifecycle's moves (gateway.directory.lifecycle), exhaustively: every kind, every
pair of states, every cause."""

from __future__ import annotations

import itertools

import pytest

from gateway.directory.devices import Lifecycle
from gateway.directory.lifecycle import (
    CAUSES,
    KINDS,
    Cause,
    LifeKind,
    Refused,
    allowed,
    decide,
)

P, C, A, M, R = (
    Lifecycle.PROVISIONED,
    Lifecycle.COMMISSIONED,
    Lifecycle.ACTIVE,
    Lifecycle.MAINTENANCE,
    Lifecycle.RETIRED,
)
CHECKS, MESSAGE, OPERATOR = Cause.CHECKS, Cause.MESSAGE, Cause.OPERATOR

# The whole table, written out: (from, to) -> causes that may make it, for a kind with
# commissioning checks. A drone (no checks) may also be commissioned by an operator.
EXPECTED: dict[tuple[Lifecycle, Lifecycle], set[Cause]] = {
    (P, C): {CHECKS},
    (C, A): {MESSAGE, OPERATOR},
    (C, M): {OPERATOR},
    (A, M): {OPERATOR},
    (M, A): {OPERATOR},
    (P, R): {OPERATOR},
    (C, R): {OPERATOR},
    (A, R): {OPERATOR},
    (M, R): {OPERATOR},
}
CASES = list(itertools.product(KINDS, Lifecycle, Lifecycle, CAUSES))


def expected(kind: LifeKind, old: Lifecycle, new: Lifecycle, cause: Cause) -> bool:
    if kind is LifeKind.DRONE and (old, new, cause) == (P, C, OPERATOR):
        return True
    return cause in EXPECTED.get((old, new), set())


def test_the_table_covers_every_state_and_kind() -> None:
    assert set(Lifecycle) == {P, C, A, M, R}
    assert len(CASES) == 6 * 5 * 5 * 3
    assert {str(k) for k in KINDS} == {"sensor", "camera", "charger", "bodycam", "drone", "gate"}
    # the existing stored names are kept (other code and migrations rely on them)
    assert [s.value for s in Lifecycle] == [
        "provisioned", "commissioned", "active", "maintenance", "retired",
    ]  # fmt: skip


@pytest.mark.parametrize(("kind", "old", "new", "cause"), CASES)
def test_every_move(kind: LifeKind, old: Lifecycle, new: Lifecycle, cause: Cause) -> None:
    if old is new:
        move = decide(kind, "dev1", old, new, cause)
        assert not move.changed and move.old is old
        return
    assert allowed(kind, old, new, cause) is expected(kind, old, new, cause)
    if expected(kind, old, new, cause):
        move = decide(kind, "dev1", old, new, cause)
        assert move.changed and (move.old, move.new) == (old, new)
    else:
        with pytest.raises(Refused) as caught:
            decide(kind, "dev1", old, new, cause)
        msg = str(caught.value)
        assert f"from {old.value} to {new.value}" in msg
        assert caught.value.hint and caught.value.hint in msg


@pytest.mark.parametrize("kind", KINDS)
def test_retired_is_final(kind: LifeKind) -> None:
    for new, cause in itertools.product([P, C, A, M], CAUSES):
        with pytest.raises(Refused, match="retired is final"):
            decide(kind, "x", R, new, cause)


@pytest.mark.parametrize("kind", KINDS)
def test_any_state_may_be_retired_by_an_operator_only(kind: LifeKind) -> None:
    for old in (P, C, A, M):
        assert decide(kind, "x", old, R, OPERATOR).changed
        for cause in (CHECKS, MESSAGE):
            with pytest.raises(Refused):
                decide(kind, "x", old, R, cause)


def test_refusals_say_what_to_do_instead() -> None:
    with pytest.raises(Refused, match=r"citygate commission s1"):
        decide(LifeKind.SENSOR, "s1", P, A, OPERATOR)
    with pytest.raises(Refused, match=r"citygate devices lifecycle d1 commissioned"):
        decide(LifeKind.DRONE, "d1", P, A, OPERATOR)
    with pytest.raises(Refused, match=r"run its commissioning checks \(citygate commission c1\)"):
        decide(LifeKind.CHARGER, "c1", P, C, OPERATOR)
    with pytest.raises(Refused, match="never in service"):
        decide(LifeKind.BODYCAM, "b1", P, M, OPERATOR)
    with pytest.raises(Refused, match="never goes back to provisioned"):
        decide(LifeKind.GATE, "g1", A, P, OPERATOR)
    with pytest.raises(Refused, match="only a commissioned device becomes active"):
        decide(LifeKind.SENSOR, "s1", M, A, MESSAGE)
    with pytest.raises(Refused, match="only a provisioned device is commissioned"):
        decide(LifeKind.CAMERA, "k1", A, C, CHECKS)


def test_a_message_only_activates_a_commissioned_device() -> None:
    moves = [(o, n) for o, n in itertools.product(Lifecycle, Lifecycle)
             if o is not n and allowed(LifeKind.SENSOR, o, n, MESSAGE)]  # fmt: skip
    assert moves == [(C, A)]
    checks = [(o, n) for o, n in itertools.product(Lifecycle, Lifecycle)
              if o is not n and allowed(LifeKind.GATE, o, n, CHECKS)]  # fmt: skip
    assert checks == [(P, C)]
