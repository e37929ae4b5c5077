"""Property tests for the occupancy engine: random traffic across a small town.

The traffic is generated the way it happens in the field: every device has a true history
(timestamps move forward, frame counters count up, devices reset and controllers restart), and
the network delivers it late, twice or not at all. Whatever the traffic, the book must keep its
invariants, agree with a full recount, agree with what a listener learns from its events, and
shrug off duplicates and replays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from events import (
    BerthState,
    BerthStateChanged,
    CarParkCount,
    CommsLost,
    CommsRestored,
    Event,
    MagnetometerSample,
    SensorHeartbeat,
    SensorStartup,
    SensorStatus,
    SiteCountsChanged,
)
from parking.occupancy import (
    BerthInfo,
    BerthView,
    OccupancyBook,
    OccupancyConfig,
    Outcome,
    SensorBinding,
    SiteInfo,
    SiteView,
)

T0 = datetime(2025, 6, 2, tzinfo=UTC)
CONFIG = OccupancyConfig(silence_factor=2.5, controller_timeout_s=600, fcnt_window=8)
SITES = [
    SiteInfo("a", 3, "berth_sensors"),
    SiteInfo("b", 2, "berth_sensors"),  # three berths painted, capacity says two
    SiteInfo("c", 4, "entry_exit", controller_id="ctl-c"),
    SiteInfo("d", 3, "berth_sensors"),  # one berth listed, capacity says three
]
BERTHS = [
    BerthInfo("a1", "a"),
    BerthInfo("a2", "a"),
    BerthInfo("a3", "a"),
    BerthInfo("b1", "b"),
    BerthInfo("b2", "b"),
    BerthInfo("b3", "b"),
    BerthInfo("c1", "c"),
    BerthInfo("d1", "d"),
]
DEVS = [f"00000000000000{i:02x}" for i in range(8)]
NO_FCNT = {DEVS[3], DEVS[6]}  # NB-IoT style sensors without a frame counter
HEARTBEAT = {dev: 60 if i % 2 else 300 for i, dev in enumerate(DEVS)}
BINDINGS = [
    SensorBinding(DEVS[i], berth, "m", HEARTBEAT[DEVS[i]])
    for i, berth in enumerate(["a1", "a2", "b1", "b2", "c1", "d1"])
]  # DEVS[6] and DEVS[7] are spares for the technician
STRANGER = "ffffffffffffffff"

Snapshot = tuple[list[SiteView], list[BerthView]]
Message = tuple[str, Any, bool | None]  # ("report", event, override) or ("count", event, None)


def new_book() -> OccupancyBook:
    return OccupancyBook(SITES, BERTHS, BINDINGS, start=T0, config=CONFIG)


def snapshot(book: OccupancyBook) -> Snapshot:
    return book.sites(), [book.berth(b.berth_id) for b in BERTHS]


def deliver(book: OccupancyBook, message: Message) -> Outcome:
    kind, event, override = message
    if kind == "count":
        return book.apply_count(event)
    return book.apply(event, override)


# -- traffic ------------------------------------------------------------------------------------
dev_index = st.integers(0, len(DEVS) - 1)


def uplink() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        st.just("uplink"),
        dev_index,
        st.sampled_from(["status", "status", "heartbeat", "startup", "sample"]),
        st.one_of(st.none(), st.booleans()),
        st.integers(0, 3),  # frames lost on the air before this one
        st.sampled_from(["now", "now", "now", "hold", "drop"]),
    )


def lane_count() -> st.SearchStrategy[tuple[Any, ...]]:
    return st.tuples(
        st.just("count"),
        st.integers(0, 3),
        st.integers(0, 3),
        st.one_of(st.none(), st.integers(0, 6)),
        st.sampled_from(["now", "now", "hold"]),
    )


OPS = st.one_of(
    *[uplink() for _ in range(12)],  # mostly sensor traffic, as in the field
    *[lane_count() for _ in range(3)],
    *[st.tuples(st.just("late"), st.integers(0, 1_000)) for _ in range(2)],
    *[st.tuples(st.just("again"), st.integers(0, 1_000)) for _ in range(2)],
    *[st.tuples(st.just("tick"), st.integers(1, 400)) for _ in range(2)],
    *[st.tuples(st.just("sweep")) for _ in range(2)],
    st.tuples(st.just("reset"), dev_index, st.booleans()),  # with or without a startup frame
    st.tuples(st.just("restart")),
    st.tuples(st.just("bind"), dev_index, st.integers(0, len(BERTHS) - 1)),
    st.tuples(st.just("unbind"), dev_index),
    st.tuples(st.just("stranger")),
)
TRAFFIC = st.lists(OPS, min_size=20, max_size=80)

# Found by hypothesis: sensor 1 reboots, its startup is held up by the network and the next frame
# carries the fCnt it had before the reboot (a duplicate). The late startup then came in as the
# newest thing heard, reset the counter, and the same frame delivered again was applied.
RETRANSMISSION_BEFORE_A_LATE_STARTUP: list[tuple[Any, ...]] = [
    *[("uplink", 0, "status", None, 0, "now")] * 13,
    ("uplink", 1, "status", None, 0, "now"),
    ("uplink", 1, "startup", None, 0, "hold"),
    ("uplink", 1, "status", None, 2, "now"),
    ("count", 0, 0, None, "now"),
    ("uplink", 0, "status", None, 0, "now"),
    ("count", 0, 0, None, "now"),
    ("late", 0),
    ("again", 14),  # that frame once more, to the same book
]


@dataclass
class World:
    """The true history of the devices, and what the network made of it."""

    clock: datetime = T0
    # devices and controllers that have been running for a while, so that a reset is
    # sometimes within the window and sometimes far outside it
    fcnt: dict[str, int] = field(
        default_factory=lambda: dict(zip(DEVS, (0, 3, 20, 0, 50, 9, 0, 100), strict=True))
    )
    seq: int = 30
    held: list[Message] = field(default_factory=list)
    delivered: list[Message] = field(default_factory=list)

    def tick(self, seconds: float = 1) -> datetime:
        self.clock += timedelta(seconds=seconds)
        return self.clock

    def frame(self, dev: str, kind: str, occupied: bool | None, gap: int) -> Message:
        ts = self.tick()
        fcnt: int | None = None
        if dev not in NO_FCNT:
            if kind == "startup":
                self.fcnt[dev] = 0
            else:
                self.fcnt[dev] += gap
            fcnt = self.fcnt[dev]
            self.fcnt[dev] += 1
        common: dict[str, Any] = {"device_id": dev, "ts": ts, "model": "m", "fcnt": fcnt}
        if kind == "status":
            return ("report", SensorStatus(**common, occupied=bool(occupied)), None)
        if kind == "heartbeat":
            return ("report", SensorHeartbeat(**common, occupied=occupied), None)
        if kind == "startup":
            return ("report", SensorStartup(**common, occupied=occupied), None)
        sample = MagnetometerSample(**common, raw=(1, 2, 3), baseline=(1, 2, 0))
        return ("report", sample, occupied)

    def count(self, entered: int, exited: int, occupied: int | None) -> Message:
        self.seq += 1
        event = CarParkCount(
            device_id="ctl-c",
            ts=self.tick(),
            site_id="c",
            entered=entered,
            exited=exited,
            occupied=occupied,
            seq=self.seq,
        )
        return ("count", event, None)


def run(book: OccupancyBook, world: World, op: tuple[Any, ...]) -> tuple[Event, ...]:
    """Play one operation; return the events the book emitted (with the outcome checked)."""
    name = op[0]
    send: Message | None = None
    if name == "uplink":
        _, i, kind, occupied, gap, fate = op
        message = world.frame(DEVS[i], kind, occupied, gap)
        if fate == "hold":
            world.held.append(message)
        elif fate == "now":
            send = message
    elif name == "reset":
        dev = DEVS[op[1]]
        world.fcnt[dev] = 0
        if op[2]:
            send = world.frame(dev, "startup", None, 0)
    elif name == "late" and world.held:
        send = world.held.pop(op[1] % len(world.held))
    elif name == "again" and world.delivered:
        return replay_one(book, world.delivered[op[1] % len(world.delivered)])
    elif name == "count":
        message = world.count(op[1], op[2], op[3])
        if op[4] == "hold":
            world.held.append(message)
        else:
            send = message
    elif name == "restart":
        world.seq = 0
    elif name == "tick":
        world.tick(op[1])
    elif name == "sweep":
        return book.sweep(world.tick())
    elif name == "bind":
        binding = SensorBinding(DEVS[op[1]], BERTHS[op[2]].berth_id, "m2", HEARTBEAT[DEVS[op[1]]])
        return book.bind(binding, world.tick())
    elif name == "unbind":
        return book.unbind(DEVS[op[1]], world.tick())
    elif name == "stranger":
        out = book.apply(
            SensorStatus(device_id=STRANGER, ts=world.tick(), model="m", occupied=True)
        )
        assert (out.verdict, out.events) == ("unbound", ())
    if send is None:
        return ()
    world.delivered.append(send)
    return deliver(book, send).events


def replay_one(book: OccupancyBook, message: Message) -> tuple[Event, ...]:
    """Deliver a message again: whatever it is, a second delivery must change nothing."""
    book.take_dirty()
    before = snapshot(book)
    out = deliver(book, message)
    assert out.verdict in ("duplicate", "stale", "unbound"), (message, out)
    assert out.events == ()
    assert snapshot(book) == before
    assert book.take_dirty() == (set(), set())
    return ()


# -- what must always hold ----------------------------------------------------------------------
@dataclass
class Listener:
    """What a consumer knows from the events alone."""

    berths: dict[str, BerthState]
    sites: dict[str, tuple[int, int, int]]
    lost: set[tuple[str, str | None]] = field(default_factory=set)

    @classmethod
    def of(cls, book: OccupancyBook) -> Listener:
        return cls(
            {b.berth_id: book.berth(b.berth_id).state for b in BERTHS},
            {s.site_id: (s.free, s.occupied, s.unknown) for s in book.sites()},
        )

    def hear(self, events: tuple[Event, ...], op: tuple[Any, ...], forget: set[str]) -> None:
        # a new binding starts a sensor's comms history afresh
        self.lost = {k for k in self.lost if k[0] not in forget}
        site_events = [e.site_id for e in events if isinstance(e, SiteCountsChanged)]
        assert len(site_events) == len(set(site_events)), "one SiteCountsChanged per site"
        if op[0] in ("uplink", "late", "count", "reset"):
            assert len(site_events) <= 1
        for e in events:
            assert e.ts.tzinfo is not None
            if isinstance(e, BerthStateChanged):
                assert e.previous is self.berths[e.berth_id] and e.state is not e.previous
                assert e.since == e.ts
                self.berths[e.berth_id] = e.state
            elif isinstance(e, SiteCountsChanged):
                assert (e.free, e.occupied, e.unknown) != self.sites[e.site_id]
                self.sites[e.site_id] = (e.free, e.occupied, e.unknown)
            elif isinstance(e, CommsLost):
                key = (e.device_id, e.berth_id)
                assert key not in self.lost, "comms_lost is said once"
                self.lost.add(key)
            elif isinstance(e, CommsRestored):
                key = (e.device_id, e.berth_id)
                assert key in self.lost
                assert e.silent_s >= 0
                self.lost.discard(key)


def recount(book: OccupancyBook, site: SiteInfo) -> tuple[int, int, int]:
    """The slow way: look at every berth."""
    view = book.site(site.site_id)
    if site.counting == "entry_exit":
        return (view.free, view.occupied, view.unknown)
    states = [b.state for b in book.berths(site.site_id)]
    occupied = min(states.count(BerthState.OCCUPIED), site.capacity)
    free = min(states.count(BerthState.FREE), site.capacity - occupied)
    return free, occupied, site.capacity - free - occupied


def check(book: OccupancyBook, listener: Listener) -> None:
    for site in SITES:
        view = book.site(site.site_id)
        parts = (view.free, view.occupied, view.unknown)
        assert min(parts) >= 0 and sum(parts) == view.capacity == site.capacity
        assert parts == recount(book, site)
        assert parts == listener.sites[site.site_id]
        if view.stale:
            assert parts == (0, 0, view.capacity)
    for b in BERTHS:
        berth = book.berth(b.berth_id)
        assert berth.state is listener.berths[b.berth_id]
        if berth.dev_eui is None or berth.comms_lost:
            assert berth.state is BerthState.UNKNOWN
        if berth.state is not BerthState.UNKNOWN:
            assert berth.last_seen is not None and berth.since <= berth.last_seen


def rebound(book: OccupancyBook, op: tuple[Any, ...]) -> set[str]:
    """Sensors whose binding this operation replaces (their comms history ends)."""
    if op[0] == "unbind":
        return {DEVS[op[1]]}
    if op[0] == "bind":
        dev, previous = DEVS[op[1]], book.berth(BERTHS[op[2]].berth_id).dev_eui
        if previous != dev:
            return {dev} if previous is None else {dev, previous}
    return set()


def changed_ids(before: Snapshot, after: Snapshot) -> tuple[set[str], set[str]]:
    sites = {a.site_id for a, b in zip(before[0], after[0], strict=True) if a != b}
    berths = {a.berth_id for a, b in zip(before[1], after[1], strict=True) if a != b}
    return berths, sites


# -- properties ---------------------------------------------------------------------------------
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TRAFFIC)
@example(RETRANSMISSION_BEFORE_A_LATE_STARTUP)
def test_random_traffic_keeps_every_promise(ops: list[tuple[Any, ...]]) -> None:
    book = new_book()
    twin = new_book()  # same traffic, same answers: the book is deterministic
    world, twin_world = World(), World()
    listener = Listener.of(book)
    check(book, listener)
    for op in ops:
        before = snapshot(book)
        forget = rebound(book, op)
        events = run(book, world, op)
        assert run(twin, twin_world, op) == events
        listener.hear(events, op, forget)
        check(book, listener)
        dirty_berths, dirty_sites = book.take_dirty()
        changed_berths, changed_sites = changed_ids(before, snapshot(book))
        assert changed_berths <= dirty_berths and changed_sites <= dirty_sites
    assert snapshot(twin) == snapshot(book)
    assert twin.counters() == book.counters()

    # the broker delivers everything once more: nothing may change
    final = snapshot(book)
    for message in list(world.delivered):
        replay_one(book, message)
    assert snapshot(book) == final


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 5),
            st.sampled_from(["status", "heartbeat", "startup", "sample"]),
            st.one_of(st.none(), st.booleans()),
            st.integers(0, 3),
            st.integers(1, 100),
        ),
        max_size=60,
    ),
    st.lists(
        st.tuples(st.integers(0, 3), st.integers(0, 3), st.one_of(st.none(), st.integers(0, 6)))
    ),
)
def test_orderly_traffic_is_followed_exactly(
    uplinks: list[tuple[int, str, bool | None, int, int]],
    lane_counts: list[tuple[int, int, int | None]],
) -> None:
    """Delivered once and in order, with frequent enough reports, the book tells the truth:
    every berth is in the last state its sensor reported and the car park holds the clamped
    sum of its lanes."""
    book = new_book()
    world = World()
    truth: dict[str, BerthState] = {}
    for i, kind, occupied, gap, pause in uplinks:
        world.tick(pause)
        dev = DEVS[i]
        message = world.frame(dev, kind, occupied, gap)
        out = deliver(book, message)
        assert out.verdict == "applied", message
        state_info = bool(occupied) if kind == "status" else occupied
        if state_info is not None:
            truth[dev] = BerthState.OCCUPIED if state_info else BerthState.FREE
    for binding in BINDINGS:
        expected = truth.get(binding.dev_eui, BerthState.UNKNOWN)
        assert book.berth(binding.berth_id).state is expected

    occupied_now = 0
    for entered, exited, absolute in lane_counts:
        out = deliver(book, world.count(entered, exited, absolute))
        assert out.verdict == "applied"
        occupied_now = min(max(occupied_now + entered - exited, 0), 4)
        if absolute is not None:
            occupied_now = min(absolute, 4)
    view = book.site("c")
    if lane_counts:
        assert (view.occupied, view.free, view.unknown) == (occupied_now, 4 - occupied_now, 0)
    else:
        assert view.unknown == 4


@settings(max_examples=60, deadline=None)
@given(TRAFFIC)
@example(RETRANSMISSION_BEFORE_A_LATE_STARTUP)
def test_persisting_dirty_views_and_restoring_them_rebuilds_the_book(
    ops: list[tuple[Any, ...]],
) -> None:
    """Write-behind persistence of what take_dirty names is enough to rebuild the state, and
    sensor traffic heard before the restart is old news after it."""
    book = new_book()
    world = World()
    saved_berths: dict[str, BerthView] = {}
    saved_sites: dict[str, SiteView] = {}
    for op in ops:
        if op[0] in ("bind", "unbind"):
            continue  # bindings are the registry's business, persisted elsewhere
        run(book, world, op)
        dirty_berths, dirty_sites = book.take_dirty()
        saved_berths.update({b: book.berth(b) for b in dirty_berths})
        for site_id in dirty_sites:
            view = book.site(site_id)
            if not view.stale and view.unknown == 0:  # a real count, worth keeping
                saved_sites[site_id] = view
    again = new_book()
    for b in saved_berths.values():
        again.restore_berth(b.berth_id, b.state, b.since, b.last_seen, b.last_fcnt)
    for view in saved_sites.values():
        again.restore_site_count(view.site_id, view.occupied, view.updated_at)
    for info in BERTHS:
        old, new = book.berth(info.berth_id), again.berth(info.berth_id)
        assert (new.state, new.since, new.last_seen, new.last_fcnt) == (
            old.state,
            old.since,
            old.last_seen,
            old.last_fcnt,
        )
    for site_info in SITES:
        if site_info.counting == "berth_sensors":
            assert recount(again, site_info) == recount(book, site_info)
    if "c" in saved_sites:
        assert again.site("c").occupied == saved_sites["c"].occupied
    for message in world.delivered:
        if message[0] == "report":
            assert deliver(again, message).verdict in ("duplicate", "stale", "unbound"), message
