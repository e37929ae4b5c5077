"""The pure parts of the body cams' and gates' cluster code: NOTIFY payloads under
PostgreSQL's limit and read back, and one lock key per bus however the town spells it."""

from __future__ import annotations

import json

from gateway.services.bodycams.shared import NOTICE_BYTES, notices, parse_notice
from gateway.services.lanes.cluster_gates import bus_key, lock_key


def test_notices_split_under_the_limit_and_read_back() -> None:
    ids = [f"62072500081380{n:06d}" for n in range(2000)]
    payloads = notices("gw-1", ids)
    assert len(payloads) > 1
    assert all(len(p.encode()) < 8000 for p in payloads)  # PostgreSQL refuses longer ones
    assert max(len(p.encode()) for p in payloads) > NOTICE_BYTES - 100  # and they are full
    back: list[str] = []
    for p in payloads:
        got = parse_notice(p)
        assert got is not None and got[0] == "gw-1"
        back += got[1]
    assert back == sorted(ids)
    assert notices("gw-1", []) == []


def test_a_notice_this_release_did_not_write_is_ignored() -> None:
    assert parse_notice("not json") is None
    assert parse_notice(json.dumps({"i": "gw-1"})) is None
    assert parse_notice(json.dumps({"i": 3, "c": []})) is None
    assert parse_notice(json.dumps({"i": "gw", "c": ["a", 1]})) == ("gw", ["a"])


def test_one_bus_one_key_however_spelt() -> None:
    assert bus_key("tcp://Gate-Box:502/") == bus_key("tcp://gate-box") == "tcp://gate-box:502"
    assert lock_key("tcp://Gate-Box:502/") == lock_key("tcp://gate-box")
    assert lock_key("tcp://gate-box") != lock_key("tcp://gate-box:503")
    serial = "serial:///dev/ttyUSB0?baudrate=9600"
    assert bus_key(serial) == "serial:///dev/ttyUSB0?baudrate=9600&parity=N&stopbits=1"
    assert 0 <= lock_key(serial) < 2**31  # the int4 second key of pg_try_advisory_lock
    assert bus_key("nonsense://x") == "nonsense://x"
