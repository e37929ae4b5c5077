"""Pure session decisions: plates, vehicle classes, berth and lane observations in any order."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parking.sessions import (
    Close,
    ClosePrevious,
    Ignore,
    Open,
    OpenClosed,
    PlateError,
    RecordExit,
    StaySnapshot,
    decide_berth,
    decide_plate,
    normalise_plate,
    vehicle_class,
)

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
M = timedelta(minutes=1)
DEDUP = 5 * M


@pytest.mark.parametrize(
    ("text", "plate"),
    [
        ("甘G12345", "甘G12345"),
        ("粤B·12345", "粤B12345"),
        (" 甘g 1234 5 ", "甘G12345"),
        ("甘GD12345", "甘GD12345"),  # new energy, 8 characters
        ("甘Ｇ１２３４５", "甘G12345"),  # full-width letters and digits
        ("甘G1234学", "甘G1234学"),
        ("甘G1234挂", "甘G1234挂"),
    ],
)
def test_normalise_plate_keeps_the_province(text: str, plate: str) -> None:
    assert normalise_plate(text) == plate


@pytest.mark.parametrize(
    "text", ["", "G12345", "甘G1234", "甘GI2345", "甘G1234567", "AB12345", "甘G12 345<script>"]
)
def test_not_a_plate(text: str) -> None:
    with pytest.raises(PlateError, match="not a plate"):
        normalise_plate(text)


@pytest.mark.parametrize(
    ("plate", "colour", "cls"),
    [
        ("甘G12345", "blue", "small"),
        ("甘G12345", "yellow", "large"),
        ("甘GD12345", "green", "new_energy"),
        ("甘GD12345", None, "new_energy"),
        ("甘G12345", None, "small"),
        ("甘G12345", "YELLOW", "large"),
        ("甘G12345", "purple", "small"),
        (None, None, "small"),
    ],
)
def test_vehicle_class_from_colour(plate: str | None, colour: str | None, cls: str) -> None:
    assert vehicle_class(plate, colour) == cls


# -- berths ---------------------------------------------------------------------------------


def test_berth_occupied_opens_and_free_closes() -> None:
    assert decide_berth(StaySnapshot(), True, T0) == Open(T0)
    assert decide_berth(StaySnapshot(open_entry=T0), False, T0 + 30 * M) == Close(T0 + 30 * M)


def test_berth_duplicates_stale_and_unknown_are_ignored() -> None:
    assert decide_berth(StaySnapshot(open_entry=T0), True, T0 + M) == Ignore("duplicate")
    assert decide_berth(StaySnapshot(), False, T0) == Ignore("no_session")
    # a late "free" from before the stay began
    assert decide_berth(StaySnapshot(open_entry=T0), False, T0 - M) == Ignore("stale")
    # a late "occupied" arriving after the stay it belonged to was closed
    assert decide_berth(StaySnapshot(last_exit=T0), True, T0 - 10 * M) == Ignore("stale")
    # a silent sensor does not end a stay
    assert decide_berth(StaySnapshot(open_entry=T0), None, T0 + M) == Ignore("unknown_state")


# -- plate reads ----------------------------------------------------------------------------


def test_entry_then_exit() -> None:
    assert decide_plate(StaySnapshot(), "in", T0, DEDUP) == Open(T0)
    assert decide_plate(StaySnapshot(open_entry=T0), "out", T0 + 40 * M, DEDUP) == Close(
        T0 + 40 * M
    )


def test_repeated_reads_are_one_passage() -> None:
    assert decide_plate(StaySnapshot(open_entry=T0), "in", T0 + 2 * M, DEDUP) == Ignore("duplicate")
    # the exit camera fires twice
    closed = StaySnapshot(last_exit=T0 + 40 * M)
    assert decide_plate(closed, "out", T0 + 41 * M, DEDUP) == Ignore("duplicate")


def test_exit_before_its_entry_pairs_when_the_entry_arrives() -> None:
    assert decide_plate(StaySnapshot(), "out", T0 + 60 * M, DEDUP) == RecordExit(T0 + 60 * M)
    snap = StaySnapshot(pending_exit=T0 + 60 * M)
    assert decide_plate(snap, "in", T0, DEDUP) == OpenClosed(T0, T0 + 60 * M)


def test_missed_exit_closes_the_old_stay_at_the_next_entry() -> None:
    snap = StaySnapshot(open_entry=T0)
    assert decide_plate(snap, "in", T0 + 3 * 60 * M, DEDUP) == ClosePrevious(
        exit=T0 + 3 * 60 * M, entry=T0 + 3 * 60 * M
    )


def test_late_entry_of_an_already_closed_stay_is_stale() -> None:
    snap = StaySnapshot(last_exit=T0 + 60 * M)
    assert decide_plate(snap, "in", T0, DEDUP) == Ignore("stale")


# -- properties: a vehicle's reads in any order ---------------------------------------------


class Book:
    """A minimal in-memory store applying decisions the way the database store does."""

    def __init__(self) -> None:
        self.open: datetime | None = None
        self.closed: list[tuple[datetime, datetime]] = []
        self.pending: list[datetime] = []

    def snapshot(self, at: datetime) -> StaySnapshot:
        later = sorted(p for p in self.pending if p > at)
        pending = later[0] if later else None
        return StaySnapshot(
            open_entry=self.open,
            last_exit=max((x for _, x in self.closed), default=None),
            pending_exit=pending,
            pending_blocked=pending is not None
            and any(e < pending and x > at for e, x in self.closed),
        )

    def apply(self, direction: str, at: datetime) -> None:
        action = decide_plate(self.snapshot(at), direction, at, DEDUP)  # type: ignore[arg-type]
        if isinstance(action, Open):
            assert self.open is None
            self.open = action.entry
        elif isinstance(action, Close):
            assert self.open is not None
            self.closed.append((self.open, action.exit))
            self.open = None
        elif isinstance(action, ClosePrevious):
            assert self.open is not None
            self.closed.append((self.open, action.exit))
            self.open = action.entry
        elif isinstance(action, OpenClosed):
            self.pending.remove(action.exit)
            self.closed.append((action.entry, action.exit))
        elif isinstance(action, RecordExit):
            self.pending.append(action.exit)


visits = st.lists(
    st.tuples(st.integers(10, 600), st.integers(30, 600)), min_size=1, max_size=5
).map(
    # (gap before entry, stay) in minutes -> disjoint visits in time order
    lambda pairs: [
        (T0 + (sum(g + s for g, s in pairs[:i]) + pairs[i][0]) * M, pairs[i][1] * M)
        for i in range(len(pairs))
    ]
)


@settings(max_examples=300, deadline=None)
@given(visits, st.randoms(use_true_random=False), st.integers(0, 2))
def test_any_delivery_order_gives_each_visit_once(
    vs: list[tuple[datetime, timedelta]], rnd: object, dup: int
) -> None:
    """Reads delivered shuffled and duplicated never open two stays at once, never produce a
    stay longer than the truth, and every visit whose reads both arrived is one stay."""
    reads = [("in", e) for e, _ in vs] + [("out", e + s) for e, s in vs]
    reads += reads[:dup]
    assert isinstance(rnd, random.Random)
    rnd.shuffle(reads)
    book = Book()
    for direction, at in reads:
        book.apply(direction, at)
    truth = {(e, e + s) for e, s in vs}
    # Whatever the order: stays are well-formed, never overlap (one vehicle is in one place),
    # and lie within the vehicle's real presence.
    stays = sorted(book.closed + ([(book.open, book.open)] if book.open else []))
    for (_, x1), (e2, _) in itertools.pairwise(stays):
        assert x1 <= e2
    first, last = min(e for e, _ in truth), max(x for _, x in truth)
    for entry, exit in stays:
        assert first <= entry <= exit <= last
    # In time order (no shuffle), the books are exactly the truth.
    ordered = Book()
    for direction, at in sorted({(d, t) for d, t in reads}, key=lambda r: r[1]):
        ordered.apply(direction, at)
    assert set(ordered.closed) == truth and ordered.open is None


@settings(max_examples=200, deadline=None)
@given(visits)
def test_exit_reads_first_then_entries_pair_up(vs: list[tuple[datetime, timedelta]]) -> None:
    """A camera that buffered all entry reads during an outage: exits arrive first."""
    book = Book()
    for e, s in vs:
        book.apply("out", e + s)
    for e, _ in vs:
        book.apply("in", e)
    assert set(book.closed) == {(e, e + s) for e, s in vs}
    assert book.open is None and book.pending == []
