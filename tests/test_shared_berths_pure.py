"""The pure parts of several instances sharing the berths (gateway/services/parking/shared_berths):

* three books that each make a berth what the shared rows say before deciding on an uplink
  (``mirror_berth``, as under the row's lock) and write back what they changed decide every
  uplink exactly as one book would, keep the same journal of changes (the sessions' feed) and
  leave the same rows, whichever of them each uplink reaches;
* ``silent`` names what ``sweep`` declares lost; ``unlose`` lets it be declared again;
* NOTIFY payloads stay under PostgreSQL's limit and survive a round trip; junk is ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from events import CommsLost, SiteCountsChanged
from gateway.services.parking.shared_berths import NOTICE_BYTES, notices, parse_notice
from parking.occupancy import BerthView, OccupancyBook
from tests.test_occupancy_props import (
    BERTHS,
    DEVS,
    OPS,
    T0,
    Message,
    World,
    deliver,
    new_book,
)


@dataclass
class Rows:
    """The berths and sites tables as the instances' flushes leave them."""

    berths: dict[str, BerthView] = field(default_factory=dict)
    sites: dict[str, tuple[int, datetime, int | None]] = field(default_factory=dict)


def decide(book: OccupancyBook, rows: Rows, message: Message) -> tuple[str, list[Any]]:
    """One instance's locked decision: mirror the rows, apply, write back what changed."""
    kind, event, _ = message
    if kind == "count":
        if event.site_id in rows.sites:
            book.mirror_site_count(event.site_id, *rows.sites[event.site_id])
    else:
        bid = book.berth_of(event.device_id)
        if bid is not None and bid in rows.berths:
            v = rows.berths[bid]
            book.mirror_berth(bid, v.state, v.since, v.last_seen, v.last_fcnt)
    out = deliver(book, message)
    dirty_b, dirty_s = book.take_dirty()
    for b in dirty_b:
        rows.berths[b] = book.berth(b)
    for s in dirty_s:
        count = book.controller_count(s)
        if count is not None:
            rows.sites[s] = (count, book.site(s).updated_at, book.controller_seq(s))
    journal = [(c.berth_id, c.state, c.since) for c in book.take_changes()]
    return out.verdict, journal


def play(ops: list[tuple[Any, ...]]) -> list[Message]:
    """The messages the network delivers for *ops* (held ones when a ``late`` comes).
    Bindings are the registry's and silence the leader's (tested below): those ops are
    skipped here."""
    world = World()
    out: list[Message] = []
    for op in ops:
        name = op[0]
        if name == "uplink":
            _, i, kind, occupied, gap, fate = op
            message = world.frame(DEVS[i], kind, occupied, gap)
            if fate == "hold":
                world.held.append(message)
            elif fate == "now":
                out.append(message)
        elif name == "count":
            message = world.count(op[1], op[2], op[3])
            (world.held if op[4] == "hold" else out).append(message)
        elif name == "late" and world.held:
            out.append(world.held.pop(op[1] % len(world.held)))
        elif name == "reset":
            world.fcnt[DEVS[op[1]]] = 0
            if op[2]:
                out.append(world.frame(DEVS[op[1]], "startup", None, 0))
        elif name == "restart":
            world.seq = 0
        elif name == "tick":
            world.tick(op[1])
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(OPS, min_size=10, max_size=80), st.lists(st.integers(0, 2), min_size=80))
def test_three_instances_decide_as_one(ops: list[tuple[Any, ...]], route: list[int]) -> None:
    messages = play(ops)
    one = new_book()
    books = [new_book(), new_book(), new_book()]
    rows = Rows()
    for n, message in enumerate(messages):
        alone = deliver(one, message)
        verdict, journal = decide(books[route[n % len(route)]], rows, message)
        want = [(c.berth_id, c.state, c.since) for c in one.take_changes()]
        one.take_dirty()
        assert verdict == alone.verdict, (n, message, verdict, alone.verdict)
        assert journal == want, (n, message)
    for info in BERTHS:
        got = rows.berths.get(info.berth_id)
        mine = one.berth(info.berth_id)
        if got is None:
            assert mine.since == T0 and mine.last_fcnt is None
            continue
        assert (got.state, got.since, got.last_seen, got.last_fcnt) == (
            mine.state,
            mine.since,
            mine.last_seen,
            mine.last_fcnt,
        )
    if "c" in rows.sites:
        assert rows.sites["c"][0] == one.controller_count("c")


def test_a_mirrored_berth_moves_the_counts_and_says_so_for_the_live_view_only() -> None:
    writer, reader = new_book(), new_book()
    world = World()
    message = world.frame(DEVS[0], "status", True, 0)
    deliver(writer, message)
    v = writer.berth("a1")
    events = reader.mirror_berth("a1", v.state, v.since, v.last_seen, v.last_fcnt)
    assert reader.berth("a1") == v
    assert reader.site("a") == writer.site("a")
    assert len(events) == 1 and isinstance(events[0], SiteCountsChanged)
    assert events[0].mirrored and events[0].occupied == 1
    assert reader.take_dirty() == (set(), set()) and reader.take_changes() == []
    # The same rows again: nothing moves, nothing to say.
    assert reader.mirror_berth("a1", v.state, v.since, v.last_seen, v.last_fcnt) == ()
    # A berth with no sensor, or none at all, is left alone.
    assert reader.mirror_berth("nope", v.state, v.since, v.last_seen, v.last_fcnt) == ()


def test_silent_names_what_the_sweep_declares_and_unlose_lets_it_declare_again() -> None:
    book = new_book()
    later = T0 + timedelta(hours=2)
    silent = book.silent(later)
    swept = {e.berth_id for e in book.sweep(later) if isinstance(e, CommsLost) and e.berth_id}
    assert silent == swept and silent
    assert book.silent(later) == set()  # lost already
    book.unlose(silent)
    assert book.silent(later) == silent


def test_notices_stay_under_the_limit_and_round_trip() -> None:
    berths = [f"st-some-long-street-name-{i:05d}" for i in range(1200)]
    sites = [f"site-{i}" for i in range(50)]
    devices = [f"70b3d59ba2bc{i:04x}" for i in range(300)]
    payloads = notices("host-1234-abcd", berths, sites, devices)
    assert len(payloads) > 1
    got_b: list[str] = []
    got_s: list[str] = []
    got_d: list[str] = []
    for p in payloads:
        assert len(p.encode()) < 8000 and len(p) <= NOTICE_BYTES + 100
        parsed = parse_notice(p)
        assert parsed is not None and parsed[0] == "host-1234-abcd"
        got_b += parsed[1]
        got_s += parsed[2]
        got_d += parsed[3]
    assert got_b == sorted(berths) and got_s == sorted(sites) and got_d == sorted(devices)
    assert notices("x", [], []) == []


@given(st.text(max_size=200))
def test_junk_notices_are_ignored(payload: str) -> None:
    parsed = parse_notice(payload)
    assert parsed is None or isinstance(parsed[0], str)


def test_a_notice_of_the_wrong_shape_is_ignored() -> None:
    assert parse_notice(json.dumps({"i": 1, "b": [], "s": []})) is None
    assert parse_notice(json.dumps({"i": "a", "b": "x", "s": []})) is None
    assert parse_notice(json.dumps({"i": "a", "b": ["x", 3], "s": []})) == ("a", ["x"], [], [])
    assert parse_notice(json.dumps({"i": "a", "b": [], "s": [], "d": 5})) is None
    assert parse_notice("[1, 2]") is None
