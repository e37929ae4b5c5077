"""The pure rules of chargers across gateway instances: lock keys, the notices between
instances (what goes out comes back, anything else is ignored), and a command's outcome on its
way from the instance that ran it to the one that was asked."""

from __future__ import annotations

import json

import pytest

from drivers.ocpp.commands import ChargerGone, CommandError, CommandResult, CommandTimeout
from gateway.services.charging.cluster_rules import (
    LEADER_KEY,
    MAX_PAYLOAD,
    Notice,
    Outcome,
    answered,
    decode,
    encode,
    failed,
    for_me,
    lock_key,
    state_notices,
)


def test_lock_keys_are_stable_distinct_and_signed_64_bit() -> None:
    ids = [f"SDEV{n:03d}" for n in range(1, 5001)] + ["城关-07", "a", "b" * 48]
    keys = {lock_key(i) for i in ids}
    assert len(keys) == len(ids)
    assert all(-(2**63) <= k < 2**63 for k in keys)
    assert lock_key("城关-07") == lock_key("城关-07")
    assert LEADER_KEY not in keys and 0x6367_0001 not in keys  # the change feed's writer lock


@pytest.mark.parametrize(
    "notice",
    [
        Notice("release", "gw-a", to="gw-b", charger="城关-07"),
        Notice("owner", "gw-b", charger="SDEV001", owner="gw-b"),
        Notice("owner", "gw-b", charger="SDEV001"),  # let go
        Notice("command", "gw-a", to="gw-b", id="7d0e1c1e-0000-4000-8000-000000000001"),
        Notice("done", "gw-b", to="gw-a", id="7d0e1c1e-0000-4000-8000-000000000001"),
        Notice("state", "gw-a", ids=("SDEV001", "城关-07")),
        Notice("state", "gw-a", ids=("SDEV001",), history=True),
    ],
)
def test_a_notice_comes_back_as_sent(notice: Notice) -> None:
    assert decode(encode(notice)) == notice


@pytest.mark.parametrize(
    "payload",
    [
        "",
        "not json",
        "[]",
        '{"op": "explode", "from": "x"}',
        '{"op": "release", "from": 7}',
        '{"op": "state", "from": "x", "ids": "SDEV001"}',
        '{"op": "state", "from": "x", "ids": [1]}',
        json.dumps({"op": "release", "from": "x", "charger": "c" * 65}),
        "x" * 9000,
    ],
)
def test_anything_else_is_ignored(payload: str) -> None:
    assert decode(payload) is None


def test_who_acts_on_a_notice() -> None:
    to_b = Notice("release", "gw-a", to="gw-b", charger="SDEV001")
    everyone = Notice("state", "gw-a", ids=("SDEV001",))
    assert for_me(to_b, "gw-b") and not for_me(to_b, "gw-c") and not for_me(to_b, "gw-a")
    assert for_me(everyone, "gw-b") and for_me(everyone, "gw-c")
    assert not for_me(everyone, "gw-a")  # its own writes: nothing to re-read


def test_state_notices_fit_a_notify_and_name_every_charger() -> None:
    ids = {f"城关-{n:05d}-" + "x" * 30 for n in range(3000)}
    notices = state_notices("gw-a", ids)
    assert len(notices) > 1
    assert all(len(encode(n).encode()) <= MAX_PAYLOAD for n in notices)
    assert {i for n in notices for i in n.ids} == ids
    assert state_notices("gw-a", set()) == []
    assert all(n.history for n in state_notices("gw-a", {"SDEV001"}, history=True))


def test_outcomes_travel_between_instances() -> None:
    result = CommandResult("Accepted", {"status": "Accepted", "configuration_key": []})
    for outcome in (
        answered(result),
        failed(CommandError("reset: type must be soft or hard")),
        failed(CommandTimeout("no answer")),
        failed(ChargerGone("gone")),
    ):
        wire = json.loads(json.dumps(outcome.to_json()))
        assert Outcome.from_json(wire) == outcome
    assert answered(result).kind == "answered" and answered(result).status == "Accepted"
    assert failed(CommandTimeout("x")).kind == "no_answer"
    assert failed(ChargerGone("x")).kind == "gone"
    assert failed(CommandError("bad")).message == "bad"


def test_an_unreadable_outcome_is_gone_and_other_errors_are_not_outcomes() -> None:
    for junk in (None, [], {"kind": "maybe"}, "answered"):
        assert Outcome.from_json(junk).kind == "gone"
    assert Outcome.from_json({"kind": "answered", "payload": [1]}).payload == {}
    with pytest.raises(KeyError):
        failed(KeyError("a bug is not a charger's answer"))
