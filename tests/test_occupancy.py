"""Table tests for the occupancy engine: one rule per test, in the order of the contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from events import (
    BerthState,
    BerthStateChanged,
    CarParkCount,
    CommsLost,
    CommsRestored,
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

FREE, OCCUPIED, UNKNOWN = BerthState.FREE, BerthState.OCCUPIED, BerthState.UNKNOWN
T0 = datetime(2025, 6, 2, 0, 0, tzinfo=UTC)  # 08:00 in Shanhe

# dev_euis as the network server spells them (lowercase)
D1, D2, D3, D4, DNEW = (
    "70b3d5e75e000001",
    "70b3d5e75e000002",
    "70b3d5e75e000003",
    "70b3d5e75e000004",
    "70b3d5e75e0000ff",
)
HB = 600  # heartbeat period of the test sensors: lost after 600 * 2.5 = 1500 s
LIMIT = 1500

SITES = [
    SiteInfo("street", 3, "berth_sensors"),  # 文化街 on-street segment, three berths
    SiteInfo("park", 10, "entry_exit", controller_id="ctl-park"),  # 市民大厅 car park
    SiteInfo("lot", 2, "berth_sensors"),
]
BERTHS = [
    BerthInfo("st-1", "street"),
    BerthInfo("st-2", "street"),
    BerthInfo("st-3", "street"),  # no sensor
    BerthInfo("pk-1", "park"),  # a disabled bay with a sensor inside the counted car park
    BerthInfo("lt-1", "lot"),
    BerthInfo("lt-2", "lot"),
]
BINDINGS = [
    SensorBinding(D1, "st-1", "nwave-nps405", HB),
    SensorBinding(D2, "st-2", "nwave-nps405", HB),
    SensorBinding(D3, "lt-1", "bosch-tps110", HB),
    SensorBinding(D4, "pk-1", "bosch-tps110", HB),
]


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def make(config: OccupancyConfig | None = None) -> OccupancyBook:
    if config is None:
        return OccupancyBook(SITES, BERTHS, BINDINGS, start=T0)
    return OccupancyBook(SITES, BERTHS, BINDINGS, start=T0, config=config)


def status(dev: str, s: float, occupied: bool, fcnt: int | None = None) -> SensorStatus:
    return SensorStatus(device_id=dev, ts=at(s), model="nwave-nps405", fcnt=fcnt, occupied=occupied)


def heartbeat(
    dev: str, s: float, fcnt: int | None = None, occupied: bool | None = None
) -> SensorHeartbeat:
    return SensorHeartbeat(
        device_id=dev, ts=at(s), model="nwave-nps405", fcnt=fcnt, battery_mv=3600, occupied=occupied
    )


def startup(
    dev: str, s: float, fcnt: int | None = None, occupied: bool | None = None
) -> SensorStartup:
    return SensorStartup(
        device_id=dev, ts=at(s), model="bosch-tps110", fcnt=fcnt, firmware="1.2", occupied=occupied
    )


def sample(dev: str, s: float, fcnt: int | None = None) -> MagnetometerSample:
    return MagnetometerSample(
        device_id=dev,
        ts=at(s),
        model="nbiot-qmc",
        fcnt=fcnt,
        raw=(10, 20, 300),
        baseline=(9, 19, 40),
    )


def count(
    s: float,
    entered: int = 0,
    exited: int = 0,
    occupied: int | None = None,
    seq: int | None = None,
    site: str = "park",
) -> CarParkCount:
    return CarParkCount(
        device_id="ctl-park",
        ts=at(s),
        site_id=site,
        entered=entered,
        exited=exited,
        occupied=occupied,
        seq=seq,
    )


def counts(view: SiteView) -> tuple[int, int, int]:
    return view.free, view.occupied, view.unknown


def snapshot(book: OccupancyBook) -> tuple[list[SiteView], list[list[BerthView]]]:
    return book.sites(), [book.berths(s.site_id) for s in SITES]


# -- construction ---------------------------------------------------------------------------
def test_everything_starts_unknown_since_start() -> None:
    book = make()
    for view in book.berths("street") + book.berths("lot") + book.berths("park"):
        assert (view.state, view.since, view.last_seen, view.comms_lost) == (
            UNKNOWN,
            T0,
            None,
            False,
        )
    assert [s.site_id for s in book.sites()] == ["street", "park", "lot"]
    assert [b.berth_id for b in book.berths("street")] == ["st-1", "st-2", "st-3"]
    assert counts(book.site("street")) == (0, 0, 3)
    assert counts(book.site("park")) == (0, 0, 10)
    assert book.site("park").stale is False
    assert book.site("lot").updated_at == T0
    assert book.take_dirty() == (set(), set())


def test_views_name_the_bound_sensor() -> None:
    book = make()
    assert book.berth("st-1") == BerthView(
        "st-1", "street", UNKNOWN, T0, None, D1, "nwave-nps405", False, None
    )
    bare = book.berth("st-3")
    assert (bare.dev_eui, bare.model, bare.last_seen) == (None, None, None)


@pytest.mark.parametrize("call", ["site", "berths", "berth"])
def test_unknown_ids_raise_key_error(call: str) -> None:
    with pytest.raises(KeyError):
        getattr(make(), call)("nowhere")


@pytest.mark.parametrize(
    ("sites", "berths", "bindings", "message"),
    [
        ([SITES[0], SITES[0]], [], [], "duplicate site"),
        ([SiteInfo("x", -1, "berth_sensors")], [], [], "negative capacity"),
        ([SiteInfo("x", 1, "magic")], [], [], "unknown counting"),  # type: ignore[arg-type]
        (SITES, [BERTHS[0], BERTHS[0]], [], "duplicate berth"),
        (SITES, [BerthInfo("b", "nowhere")], [], "unknown site"),
        (SITES, BERTHS, [SensorBinding(D1, "nowhere", "m", HB)], "unknown berth"),
        (SITES, BERTHS, [BINDINGS[0], SensorBinding(D1.upper(), "st-2", "m", HB)], "bound twice"),
        (SITES, BERTHS, [BINDINGS[0], SensorBinding(D2, "st-1", "m", HB)], "more than one"),
        (SITES, BERTHS, [SensorBinding(D1, "st-1", "m", 0)], "heartbeat_s"),
    ],
)
def test_construction_refuses_an_inconsistent_town(
    sites: list[SiteInfo], berths: list[BerthInfo], bindings: list[SensorBinding], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        OccupancyBook(sites, berths, bindings, start=T0)


def test_construction_refuses_naive_start_and_bad_config() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        OccupancyBook(SITES, BERTHS, BINDINGS, start=datetime(2025, 6, 2))
    with pytest.raises(ValueError, match="config"):
        make(OccupancyConfig(silence_factor=0))


def test_dev_eui_case_does_not_matter() -> None:
    book = OccupancyBook(SITES, BERTHS, [SensorBinding(D1.upper(), "st-1", "m", HB)], start=T0)
    assert book.berth("st-1").dev_eui == D1
    assert book.apply(status(D1.upper(), 1, True, fcnt=1)).verdict == "applied"
    assert book.apply(status(D1, 2, False, fcnt=2)).verdict == "applied"


# -- reports ----------------------------------------------------------------------------------
def test_status_changes_berth_and_site_with_events() -> None:
    book = make()
    out = book.apply(status(D1, 10, True, fcnt=1))
    assert out.verdict == "applied"
    assert out.events == (
        BerthStateChanged(
            device_id=D1,
            ts=at(10),
            site_id="street",
            berth_id="st-1",
            state=OCCUPIED,
            previous=UNKNOWN,
            since=at(10),
        ),
        SiteCountsChanged(
            device_id=D1, ts=at(10), site_id="street", capacity=3, free=0, occupied=1, unknown=2
        ),
    )
    view = book.berth("st-1")
    assert (view.state, view.since, view.last_seen, view.last_fcnt) == (OCCUPIED, at(10), at(10), 1)
    assert book.site("street") == SiteView("street", 3, 0, 1, 2, at(10), False)

    out = book.apply(status(D2, 20, False, fcnt=7))
    assert counts(book.site("street")) == (1, 1, 1)
    out = book.apply(status(D1, 30, False, fcnt=2))
    assert out.events[0] == BerthStateChanged(
        device_id=D1,
        ts=at(30),
        site_id="street",
        berth_id="st-1",
        state=FREE,
        previous=OCCUPIED,
        since=at(30),
    )
    assert counts(book.site("street")) == (2, 0, 1)


def test_repeating_the_state_is_a_sign_of_life_only() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    out = book.apply(status(D1, 70, True, fcnt=2))
    assert out.verdict == "applied"
    assert out.events == ()
    view = book.berth("st-1")
    assert (view.state, view.since, view.last_seen, view.last_fcnt) == (OCCUPIED, at(10), at(70), 2)


@pytest.mark.parametrize(
    "report",
    [heartbeat(D1, 70, fcnt=2), startup(D1, 70, fcnt=0), sample(D1, 70, fcnt=2)],
    ids=["heartbeat", "startup", "magnetometer"],
)
def test_reports_without_occupancy_keep_the_state(
    report: SensorHeartbeat | SensorStartup | MagnetometerSample,
) -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    out = book.apply(report)
    assert (out.verdict, out.events) == ("applied", ())
    view = book.berth("st-1")
    assert (view.state, view.since, view.last_seen) == (OCCUPIED, at(10), at(70))
    assert view.last_fcnt == report.fcnt


@pytest.mark.parametrize(
    "report",
    [heartbeat(D1, 10, fcnt=1, occupied=True), startup(D1, 10, fcnt=0, occupied=True)],
    ids=["heartbeat", "startup"],
)
def test_heartbeat_and_startup_may_carry_the_state(
    report: SensorHeartbeat | SensorStartup,
) -> None:
    book = make()
    assert book.apply(report).events[0].state is OCCUPIED  # type: ignore[attr-defined]
    assert book.berth("st-1").state is OCCUPIED


def test_override_decides_for_magnetometer_samples_and_wins_over_the_sensor() -> None:
    book = make()
    out = book.apply(sample(D1, 10, fcnt=1), occupied=True)
    assert isinstance(out.events[0], BerthStateChanged)
    assert book.berth("st-1").state is OCCUPIED
    book.apply(status(D1, 20, True, fcnt=2), occupied=False)  # the detector knows better
    assert book.berth("st-1").state is FREE


def test_reports_from_unbound_sensors_change_nothing() -> None:
    book = make()
    before = snapshot(book)
    out = book.apply(status(DNEW, 10, True, fcnt=1))
    assert (out.verdict, out.events) == ("unbound", ())
    assert snapshot(book) == before
    assert book.take_dirty() == (set(), set())
    assert book.counters()["reports_unbound"] == 1


def test_a_berth_without_sensor_stays_unknown() -> None:
    book = make()
    for dev, n in ((D1, 1), (D2, 1)):
        book.apply(status(dev, 10, True, fcnt=n))
    assert book.berth("st-3").state is UNKNOWN
    assert counts(book.site("street")) == (0, 2, 1)


def test_berths_of_counted_car_parks_do_not_touch_the_controller_counts() -> None:
    book = make()
    out = book.apply(status(D4, 10, True, fcnt=1))
    assert [type(e) for e in out.events] == [BerthStateChanged]
    assert book.berth("pk-1").state is OCCUPIED
    assert counts(book.site("park")) == (0, 0, 10)


# -- frame counters -----------------------------------------------------------------------
def test_same_fcnt_is_a_duplicate_even_with_other_content() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=5))
    book.take_dirty()
    before = snapshot(book)
    again = status(D1, 10, True, fcnt=5)
    assert book.apply(again) == book.apply(again) == Outcome("duplicate", ())
    assert snapshot(book) == before
    assert book.take_dirty() == (set(), set())
    # a retransmission, heard later: not news, but proof of life that must be persisted
    resent = status(D1, 99, False, fcnt=5)
    assert book.apply(resent) == book.apply(resent) == Outcome("duplicate", ())
    assert book.take_dirty() == ({"st-1"}, set())
    view = book.berth("st-1")
    assert (view.state, view.since, view.last_seen, view.last_fcnt) == (OCCUPIED, at(10), at(99), 5)
    assert book.counters()["reports_duplicate"] == 4
    book.take_dirty()
    before = snapshot(book)
    for old in (again, resent):
        assert book.apply(old) == Outcome("duplicate", ())
    assert snapshot(book) == before
    assert book.take_dirty() == (set(), set())


def test_a_startup_stamped_before_a_retransmission_is_stale() -> None:
    """Found by the property tests: the device reboots (startup held up by the network) and
    counts back to the fCnt it had before. That frame is a duplicate, but it was heard: the late
    startup must not reset the counter, or the same frame delivered again would be applied."""
    book = make(OccupancyConfig(fcnt_window=8))
    book.apply(status(D1, 14, False, fcnt=3))
    resent = status(D1, 16, False, fcnt=3)
    assert book.apply(resent).verdict == "duplicate"
    assert book.apply(startup(D1, 15, fcnt=0)).verdict == "stale"
    assert book.counters()["fcnt_resets"] == 0
    book.take_dirty()
    before = snapshot(book)
    assert book.apply(resent).verdict == "duplicate"
    assert snapshot(book) == before
    assert book.take_dirty() == (set(), set())
    view = book.berth("st-1")
    assert (view.last_seen, view.last_fcnt) == (at(16), 3)
    # and a book restored from the persisted view judges the same traffic the same way
    again = make(OccupancyConfig(fcnt_window=8))
    again.restore_berth("st-1", view.state, view.since, view.last_seen, view.last_fcnt)
    for message in (status(D1, 14, False, fcnt=3), resent, startup(D1, 15, fcnt=0)):
        assert again.apply(message).verdict in ("duplicate", "stale")
    assert again.berth("st-1") == view


def test_lower_fcnt_within_window_is_stale_but_a_newer_ts_proves_life() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=100))
    out = book.apply(status(D1, 5, False, fcnt=99))  # late and old: nothing at all
    assert (out.verdict, out.events) == ("stale", ())
    assert book.berth("st-1").last_seen == at(10)
    book.take_dirty()
    out = book.apply(status(D1, 20, False, fcnt=90))  # late, but heard after fcnt 100
    assert (out.verdict, out.events) == ("stale", ())
    assert book.take_dirty() == ({"st-1"}, set())  # last_seen must be persisted
    view = book.berth("st-1")
    assert (view.state, view.since, view.last_seen, view.last_fcnt) == (
        OCCUPIED,
        at(10),
        at(20),
        100,
    )


def test_higher_fcnt_stamped_before_the_newest_report_is_stale() -> None:
    """A frame from before a counter reset can carry a 'higher' fCnt; its timestamp gives it
    away."""
    book = make(OccupancyConfig(fcnt_window=100))
    book.apply(status(D1, 10, True, fcnt=50))
    book.apply(status(D1, 20, False, fcnt=1_000))  # reset: far away and newer
    assert book.apply(status(D1, 15, True, fcnt=1_010)).verdict == "stale"
    assert book.berth("st-1").state is FREE


def test_higher_fcnt_within_window_applies() -> None:
    book = make(OccupancyConfig(fcnt_window=100))
    book.apply(status(D1, 10, True, fcnt=50))
    assert book.apply(status(D1, 20, False, fcnt=150)).verdict == "applied"
    assert book.counters()["fcnt_resets"] == 0


@pytest.mark.parametrize(("fcnt", "dt"), [(3, 100), (5_000, 100), (2**32 - 1, 100)])
def test_counter_discontinuity_with_newer_ts_is_a_reset(fcnt: int, dt: float) -> None:
    book = make(OccupancyConfig(fcnt_window=1_000))
    book.apply(status(D1, 10, True, fcnt=2_000))
    out = book.apply(status(D1, 10 + dt, False, fcnt=fcnt))
    assert out.verdict == "applied"
    assert book.berth("st-1").last_fcnt == fcnt
    assert book.counters()["fcnt_resets"] == 1
    assert book.apply(status(D1, 20 + dt, True, fcnt=fcnt + 1)).verdict == "applied"


def test_counter_discontinuity_from_the_past_is_a_replay() -> None:
    book = make(OccupancyConfig(fcnt_window=1_000))
    book.apply(status(D1, 10, True, fcnt=2))
    book.apply(status(D1, 20, True, fcnt=5_000))
    assert book.apply(status(D1, 15, False, fcnt=3)).verdict == "stale"
    assert book.apply(status(D1, 20, False, fcnt=3)).verdict == "stale"  # not newer: no reset
    assert book.berth("st-1").state is OCCUPIED


def test_fcnt_rollover_of_a_16_bit_counter() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=65_535))
    assert book.apply(status(D1, 20, False, fcnt=0)).verdict == "applied"


def test_startup_resets_the_counter() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=500))
    assert book.apply(status(D1, 20, False, fcnt=1)).verdict == "stale"  # within the window
    out = book.apply(startup(D1, 30, fcnt=0))
    assert out.verdict == "applied"
    assert book.counters()["fcnt_resets"] == 1
    assert book.apply(status(D1, 40, False, fcnt=1)).verdict == "applied"
    assert book.berth("st-1").state is FREE
    # the same startup delivered again, and one older than what followed it
    assert book.apply(startup(D1, 30, fcnt=0)).verdict == "stale"
    assert book.apply(startup(D1, 35, fcnt=7)).verdict == "stale"


def test_startup_redelivered_at_once_is_a_duplicate() -> None:
    book = make()
    book.apply(startup(D1, 30, fcnt=0, occupied=True))
    assert book.apply(startup(D1, 30, fcnt=0, occupied=True)).verdict == "duplicate"
    book.apply(startup(D2, 30, occupied=True))
    assert book.apply(startup(D2, 30, occupied=True)).verdict == "duplicate"


def test_startup_without_fcnt_lets_the_next_counter_start_anywhere() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=500))
    book.apply(startup(D1, 20))
    assert book.berth("st-1").last_fcnt is None
    assert book.apply(status(D1, 30, False, fcnt=3)).verdict == "applied"
    assert book.apply(status(D1, 40, True, fcnt=2)).verdict == "stale"


def test_rejoin_within_window_without_startup_is_stale_but_alive() -> None:
    """Documented limit: a counter that restarts inside the window looks like late frames.
    The berth keeps its state and the sensor is not declared lost; the gateway should turn
    the network server's join event into a SensorStartup."""
    book = make()
    book.apply(status(D1, 10, True, fcnt=300))
    for n in range(5):
        assert book.apply(status(D1, 1_000 * (n + 1), False, fcnt=n)).verdict == "stale"
    assert [e for e in book.sweep(at(5_000 + LIMIT)) if e.device_id == D1] == []
    assert book.berth("st-1").state is OCCUPIED


def test_without_fcnt_timestamps_order_the_reports() -> None:
    book = make()
    assert book.apply(status(D1, 10, True)).verdict == "applied"
    assert book.apply(status(D1, 10, False)).verdict == "duplicate"  # same instant
    assert book.apply(status(D1, 5, False)).verdict == "stale"
    assert book.apply(heartbeat(D1, 8)).verdict == "stale"
    assert book.berth("st-1").state is OCCUPIED
    assert book.apply(status(D1, 11, False)).verdict == "applied"
    assert book.berth("st-1").state is FREE


def test_verdicts_are_counted() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=2))
    book.apply(status(D1, 10, True, fcnt=2))
    book.apply(status(D1, 9, True, fcnt=1))
    book.apply(status(DNEW, 9, True, fcnt=1))
    c = book.counters()
    assert (c["reports_applied"], c["reports_duplicate"], c["reports_stale"]) == (1, 1, 1)
    assert c["reports_unbound"] == 1


# -- silence --------------------------------------------------------------------------------
def test_silent_sensor_is_lost_once_and_its_berth_becomes_unknown() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    book.apply(status(D2, 10, False, fcnt=1))
    book.apply(heartbeat(D3, 10, fcnt=1))
    book.apply(heartbeat(D4, 10, fcnt=1))
    book.apply_count(count(2_000, seq=1))
    assert book.sweep(at(10 + LIMIT)) == ()  # exactly the limit is still fine
    now = at(11 + LIMIT)
    events = book.sweep(now)
    assert events == (
        CommsLost(device_id=D1, ts=now, site_id="street", berth_id="st-1", last_seen=at(10)),
        BerthStateChanged(
            device_id=D1,
            ts=now,
            site_id="street",
            berth_id="st-1",
            state=UNKNOWN,
            previous=OCCUPIED,
            since=now,
        ),
        CommsLost(device_id=D2, ts=now, site_id="street", berth_id="st-2", last_seen=at(10)),
        BerthStateChanged(
            device_id=D2,
            ts=now,
            site_id="street",
            berth_id="st-2",
            state=UNKNOWN,
            previous=FREE,
            since=now,
        ),
        CommsLost(device_id=D3, ts=now, site_id="lot", berth_id="lt-1", last_seen=at(10)),
        CommsLost(device_id=D4, ts=now, site_id="park", berth_id="pk-1", last_seen=at(10)),
        SiteCountsChanged(
            device_id="", ts=now, site_id="street", capacity=3, free=0, occupied=0, unknown=3
        ),
    )
    assert book.berth("st-1").comms_lost
    assert book.site("street").updated_at == now
    assert book.sweep(at(2_000 + 900)) == ()  # lost once, not at every sweep
    assert book.counters()["comms_lost"] == 4


def test_never_heard_sensor_is_timed_from_start() -> None:
    book = make()
    assert all(e.device_id != D3 for e in book.sweep(at(LIMIT)))
    lost = [e for e in book.sweep(at(LIMIT + 1)) if e.device_id == D3]
    assert lost == [
        CommsLost(device_id=D3, ts=at(LIMIT + 1), site_id="lot", berth_id="lt-1", last_seen=None)
    ]


def test_silence_follows_heartbeat_period_and_factor() -> None:
    bindings = [SensorBinding(D1, "st-1", "m", 60), SensorBinding(D2, "st-2", "m", 3_600)]
    book = OccupancyBook(
        SITES, BERTHS, bindings, start=T0, config=OccupancyConfig(silence_factor=2.0)
    )
    lost = [e.device_id for e in book.sweep(at(121)) if isinstance(e, CommsLost) and e.berth_id]
    assert lost == [D1]
    lost = [e.device_id for e in book.sweep(at(7_201)) if isinstance(e, CommsLost) and e.berth_id]
    assert lost == [D2]


def test_next_report_restores_comms_and_applies() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    book.sweep(at(2_000))
    out = book.apply(status(D1, 2_100, False, fcnt=2))
    assert out.verdict == "applied"
    assert out.events[0] == CommsRestored(
        device_id=D1, ts=at(2_100), site_id="street", berth_id="st-1", silent_s=2_090.0
    )
    assert isinstance(out.events[1], BerthStateChanged)
    assert out.events[1].previous is UNKNOWN and out.events[1].state is FREE
    assert isinstance(out.events[2], SiteCountsChanged)
    assert not book.berth("st-1").comms_lost
    assert book.counters()["comms_restored"] == 1


def test_heartbeat_restores_comms_but_the_berth_stays_unknown() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    book.sweep(at(2_000))
    out = book.apply(heartbeat(D1, 2_100, fcnt=2))
    assert [type(e) for e in out.events] == [CommsRestored]
    view = book.berth("st-1")
    assert (view.state, view.since, view.comms_lost) == (UNKNOWN, at(2_000), False)


def test_late_frame_with_newer_ts_restores_comms_without_state() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=10))
    book.sweep(at(2_000))
    out = book.apply(status(D1, 2_100, True, fcnt=9))
    assert out.verdict == "stale"
    assert [type(e) for e in out.events] == [CommsRestored]
    assert book.berth("st-1").state is UNKNOWN


def test_retransmission_after_silence_is_recorded_but_says_nothing() -> None:
    """A duplicate never has events (the gateway drops duplicates whole), so a retransmission
    heard after the sensor was declared lost leaves restoring comms to the next frame."""
    book = make()
    book.apply(status(D1, 10, True, fcnt=10))
    book.sweep(at(2_000))
    book.take_dirty()
    assert book.apply(status(D1, 2_100, False, fcnt=10)) == Outcome("duplicate", ())
    assert book.take_dirty() == ({"st-1"}, set())
    view = book.berth("st-1")
    assert (view.state, view.last_seen, view.comms_lost) == (UNKNOWN, at(2_100), True)
    out = book.apply(status(D1, 2_200, False, fcnt=11))
    assert out.verdict == "applied"
    assert out.events[0] == CommsRestored(
        device_id=D1, ts=at(2_200), site_id="street", berth_id="st-1", silent_s=100.0
    )
    assert book.berth("st-1").state is FREE


def test_old_news_does_not_restore_comms() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=10))
    book.sweep(at(2_000))
    assert book.apply(status(D1, 10, True, fcnt=10)).events == ()
    assert book.apply(status(D1, 5, True, fcnt=9)).events == ()
    assert book.berth("st-1").comms_lost


def test_silence_after_restart_is_counted_from_start() -> None:
    """The gateway heard nothing while it was down: that is not the sensor's silence."""
    book = make()
    book.restore_berth("st-1", OCCUPIED, at(-9_000), at(-8_000), 41)
    assert all(e.device_id != D1 for e in book.sweep(at(LIMIT)))
    lost = [e for e in book.sweep(at(LIMIT + 1)) if isinstance(e, CommsLost) and e.device_id == D1]
    assert lost[0].last_seen == at(-8_000)


# -- entry/exit counting ------------------------------------------------------------------
def test_counts_start_from_zero_and_add_up() -> None:
    book = make()
    out = book.apply_count(count(10, entered=3, seq=1))
    assert out == (
        Outcome(
            "applied",
            (
                SiteCountsChanged(
                    device_id="ctl-park",
                    ts=at(10),
                    site_id="park",
                    capacity=10,
                    free=7,
                    occupied=3,
                    unknown=0,
                ),
            ),
        )
    )
    book.apply_count(count(20, entered=2, exited=4, seq=2))
    assert book.site("park") == SiteView("park", 10, 9, 1, 0, at(20), False)
    out = book.apply_count(count(30, seq=3))  # a keep-alive with nothing new
    assert (out.verdict, out.events) == ("applied", ())
    assert book.site("park").updated_at == at(30)


@pytest.mark.parametrize(("entered", "exited", "expected"), [(15, 0, 10), (0, 5, 0), (12, 4, 6)])
def test_counts_are_clamped_to_capacity(entered: int, exited: int, expected: int) -> None:
    book = make()
    book.apply_count(count(10, entered=entered, seq=1))
    book.apply_count(count(20, exited=exited, seq=2))
    assert book.site("park").occupied == expected
    assert book.site("park").free == 10 - expected
    assert book.counters()["counts_clamped"] >= 1


@pytest.mark.parametrize(
    ("seq", "s", "verdict"),
    [(50, 30, "duplicate"), (49, 30, "duplicate"), (1, 30, "duplicate"), (51, 30, "applied")],
)
def test_seq_deduplicates(seq: int, s: float, verdict: str) -> None:
    book = make(OccupancyConfig(fcnt_window=100))
    book.apply_count(count(10, entered=2, seq=50))
    out = book.apply_count(count(s, entered=1, seq=seq))
    assert out.verdict == verdict
    assert book.site("park").occupied == (3 if verdict == "applied" else 2)


def test_seq_dropping_a_lot_is_a_controller_restart() -> None:
    book = make(OccupancyConfig(fcnt_window=100))
    book.apply_count(count(10, entered=5, seq=5_000))
    assert book.apply_count(count(20, entered=1, seq=1)).verdict == "applied"
    assert book.counters()["seq_resets"] == 1
    assert book.site("park").occupied == 6
    assert book.apply_count(count(30, entered=1, seq=2)).verdict == "applied"
    # the old numbering replayed after the restart
    assert book.apply_count(count(12, entered=1, seq=5_001)).verdict == "stale"
    assert book.apply_count(count(15, entered=1, seq=3)).verdict == "stale"
    assert book.site("park").occupied == 7


def test_counts_without_seq_cannot_be_deduplicated() -> None:
    book = make()
    book.apply_count(count(10, entered=1))
    book.apply_count(count(10, entered=1))
    book.apply_count(count(5, entered=1))  # deltas add up in any order
    assert book.site("park").occupied == 3


def test_absolute_count_corrects_drift() -> None:
    book = make()
    book.apply_count(count(10, entered=6, seq=1))
    out = book.apply_count(count(20, entered=1, occupied=4, seq=2))  # deltas first, then truth
    assert out.events[0].occupied == 4  # type: ignore[attr-defined]
    c = book.counters()
    assert (c["drift_checks"], c["drift_corrections"], c["drift_total"]) == (1, 1, 3)
    book.apply_count(count(30, occupied=4, seq=3))
    assert book.counters()["drift_corrections"] == 1  # no drift, nothing corrected
    book.apply_count(count(40, occupied=25, seq=4))
    assert book.site("park").occupied == 10
    assert book.counters()["drift_total"] == 9


def test_an_old_absolute_count_never_overrides_a_newer_one() -> None:
    book = make()
    book.apply_count(count(20, occupied=5))
    book.apply_count(count(10, entered=1, occupied=2))
    assert book.site("park").occupied == 6


@pytest.mark.parametrize("site", ["street", "nowhere"])
def test_counts_for_sensor_sites_or_unknown_sites_are_unbound(site: str) -> None:
    book = make()
    out = book.apply_count(count(10, entered=1, seq=1, site=site))
    assert (out.verdict, out.events) == ("unbound", ())
    assert book.counters()["counts_unbound"] == 1


def test_silent_controller_makes_the_counts_stale_until_the_next_count() -> None:
    book = make()
    book.apply_count(count(100, entered=4, seq=1))
    assert [e for e in book.sweep(at(1_000)) if e.device_id == "ctl-park"] == []
    now = at(1_001)
    events = [e for e in book.sweep(now) if e.device_id == "ctl-park"]
    assert all(e.device_id != "ctl-park" for e in book.sweep(at(9_000)))
    assert events == [
        CommsLost(device_id="ctl-park", ts=now, site_id="park", berth_id=None, last_seen=at(100)),
        SiteCountsChanged(
            device_id="ctl-park",
            ts=now,
            site_id="park",
            capacity=10,
            free=0,
            occupied=0,
            unknown=10,
        ),
    ]
    assert book.site("park") == SiteView("park", 10, 0, 0, 10, now, True)
    out = book.apply_count(count(1_100, exited=1, seq=2))
    assert out.events == (
        CommsRestored(
            device_id="ctl-park", ts=at(1_100), site_id="park", berth_id=None, silent_s=1_000.0
        ),
        SiteCountsChanged(
            device_id="ctl-park",
            ts=at(1_100),
            site_id="park",
            capacity=10,
            free=7,
            occupied=3,
            unknown=0,
        ),
    )
    assert book.site("park").stale is False


def test_never_heard_controller_goes_stale_without_a_counts_change() -> None:
    sites = [SiteInfo("park", 10, "entry_exit")]
    book = OccupancyBook(sites, [], [], start=T0)
    assert book.sweep(at(900)) == ()
    assert book.sweep(at(901)) == (
        CommsLost(device_id="", ts=at(901), site_id="park", berth_id=None, last_seen=None),
    )
    assert book.site("park").stale
    assert book.take_dirty() == (set(), {"park"})


# -- site counts --------------------------------------------------------------------------
def test_counts_are_clamped_when_berths_and_capacity_disagree() -> None:
    sites = [SiteInfo("small", 1, "berth_sensors"), SiteInfo("big", 5, "berth_sensors")]
    berths = [BerthInfo("a", "small"), BerthInfo("b", "small"), BerthInfo("c", "big")]
    bindings = [SensorBinding(D1, "a", "m", HB), SensorBinding(D2, "b", "m", HB)]
    bindings.append(SensorBinding(D3, "c", "m", HB))
    book = OccupancyBook(sites, berths, bindings, start=T0)
    book.apply(status(D1, 1, False))
    book.apply(status(D2, 1, False))
    assert counts(book.site("small")) == (1, 0, 0)
    book.apply(status(D1, 2, True))
    assert counts(book.site("small")) == (0, 1, 0)
    book.apply(status(D3, 2, False))
    assert counts(book.site("big")) == (1, 0, 4)


def test_at_most_one_site_event_per_apply_and_only_on_change() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    out = book.apply(heartbeat(D1, 20, fcnt=2, occupied=True))
    assert out.events == ()
    assert book.site("street").updated_at == at(20)  # confirmed, not changed


# -- binding --------------------------------------------------------------------------------
def test_replacing_a_sensor_makes_the_berth_unknown_until_the_new_one_reports() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    now = at(100)
    events = book.bind(SensorBinding(DNEW, "st-1", "bosch-tps110", 300), now)
    assert events == (
        BerthStateChanged(
            device_id=DNEW,
            ts=now,
            site_id="street",
            berth_id="st-1",
            state=UNKNOWN,
            previous=OCCUPIED,
            since=now,
        ),
        SiteCountsChanged(
            device_id=DNEW, ts=now, site_id="street", capacity=3, free=0, occupied=0, unknown=3
        ),
    )
    view = book.berth("st-1")
    assert (view.dev_eui, view.model, view.last_seen, view.last_fcnt) == (
        DNEW,
        "bosch-tps110",
        None,
        None,
    )
    assert book.apply(status(D1, 110, True, fcnt=2)).verdict == "unbound"
    assert book.apply(status(DNEW, 90, True, fcnt=1)).verdict == "stale"  # before the binding
    assert book.apply(status(DNEW, 120, False, fcnt=1)).verdict == "applied"
    assert book.berth("st-1").state is FREE


def test_binding_a_spare_berth_emits_nothing() -> None:
    book = make()
    assert book.bind(SensorBinding(DNEW, "st-3", "m", HB), at(50)) == ()
    assert book.berth("st-3").dev_eui == DNEW
    book.apply(status(DNEW, 60, True, fcnt=1))
    assert counts(book.site("street")) == (0, 1, 2)


def test_moving_a_sensor_between_sites_updates_both() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    book.apply(status(D3, 10, True, fcnt=1))
    events = book.bind(SensorBinding(D1, "lt-1", "m", HB), at(100))
    kinds = [(type(e).__name__, e.site_id) for e in events]  # type: ignore[attr-defined]
    assert kinds == [
        ("BerthStateChanged", "street"),
        ("BerthStateChanged", "lot"),
        ("SiteCountsChanged", "street"),
        ("SiteCountsChanged", "lot"),
    ]
    assert book.berth("st-1").dev_eui is None
    assert book.berth("lt-1").dev_eui == D1
    assert book.apply(status(D3, 110, True, fcnt=2)).verdict == "unbound"
    assert counts(book.site("street")) == (0, 0, 3)
    assert counts(book.site("lot")) == (0, 0, 2)


def test_rebinding_the_same_pair_only_updates_the_metadata() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=7))
    assert book.bind(SensorBinding(D1.upper(), "st-1", "nwave-nps405-v2", 60), at(20)) == ()
    view = book.berth("st-1")
    assert (view.state, view.model, view.last_fcnt) == (OCCUPIED, "nwave-nps405-v2", 7)
    assert any(isinstance(e, CommsLost) and e.device_id == D1 for e in book.sweep(at(161)))


def test_new_binding_is_timed_from_the_binding() -> None:
    book = make()
    book.bind(SensorBinding(DNEW, "st-3", "m", HB), at(1_000))
    assert all(e.device_id != DNEW for e in book.sweep(at(1_000 + LIMIT)))
    assert any(e.device_id == DNEW for e in book.sweep(at(1_001 + LIMIT)))


def test_bind_refuses_unknown_berth_and_bad_heartbeat_without_changing_anything() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    before = snapshot(book)
    with pytest.raises(KeyError):
        book.bind(SensorBinding(DNEW, "nowhere", "m", HB), at(20))
    with pytest.raises(ValueError, match="heartbeat_s"):
        book.bind(SensorBinding(DNEW, "st-1", "m", 0), at(20))
    assert snapshot(book) == before


def test_unbind() -> None:
    book = make()
    book.apply(status(D2, 10, False, fcnt=1))
    events = book.unbind(D2.upper(), at(30))
    assert [type(e) for e in events] == [BerthStateChanged, SiteCountsChanged]
    assert all(e.device_id == D2 for e in events)
    assert (book.berth("st-2").state, book.berth("st-2").dev_eui) == (UNKNOWN, None)
    assert book.apply(status(D2, 40, False, fcnt=2)).verdict == "unbound"
    assert book.unbind(D2, at(50)) == ()


# -- persistence ------------------------------------------------------------------------------
def test_dirty_sets_track_changes_and_are_cleared() -> None:
    book = make()
    book.apply(status(D1, 10, True, fcnt=1))
    book.apply(status(D4, 10, True, fcnt=1))
    book.apply_count(count(10, entered=1, seq=1))
    assert book.take_dirty() == ({"st-1", "pk-1"}, {"street", "park"})
    assert book.take_dirty() == (set(), set())
    book.apply(heartbeat(D1, 20, fcnt=2))  # last_seen moved
    assert book.take_dirty() == ({"st-1"}, {"street"})
    book.apply(heartbeat(D1, 20, fcnt=2))
    book.apply_count(count(10, entered=1, seq=1))
    assert book.take_dirty() == (set(), set())
    book.sweep(at(5_000))
    assert book.take_dirty() == ({"st-1", "st-2", "lt-1", "pk-1"}, {"street", "park"})


def test_restore_berth_brings_back_state_and_counter() -> None:
    book = make()
    book.restore_berth("st-1", OCCUPIED, at(-500), at(-100), 41)
    book.restore_berth("st-2", FREE, at(-700), at(-20), None)
    assert book.berth("st-1") == BerthView(
        "st-1", "street", OCCUPIED, at(-500), at(-100), D1, "nwave-nps405", False, 41
    )
    assert counts(book.site("street")) == (1, 1, 1)
    assert book.take_dirty() == (set(), set())
    assert book.apply(status(D1, 1, False, fcnt=41)).verdict == "duplicate"
    assert book.apply(status(D1, -200, False, fcnt=40)).verdict == "stale"
    assert book.apply(status(D2, -30, True)).verdict == "stale"  # older than last seen
    assert book.apply(status(D1, 2, False, fcnt=42)).events[0].previous is OCCUPIED  # type: ignore[attr-defined]


def test_restore_berth_without_sensor_keeps_it_unknown() -> None:
    book = make()
    book.restore_berth("st-3", OCCUPIED, at(-500), at(-100), 3)
    assert book.berth("st-3").state is UNKNOWN
    assert counts(book.site("street")) == (0, 0, 3)
    with pytest.raises(KeyError):
        book.restore_berth("nowhere", FREE, at(-5), None, None)


def test_restore_site_count() -> None:
    book = make()
    book.restore_site_count("park", 12, at(-60))
    assert book.site("park") == SiteView("park", 10, 0, 10, 0, at(-60), False)
    assert book.take_dirty() == (set(), set())
    assert book.apply_count(count(-70, exited=1, seq=9)).verdict == "stale"  # counted before
    book.apply_count(count(5, exited=3, seq=10))
    assert book.site("park").occupied == 7
    book.restore_site_count("street", 2, at(-60))  # derived from berths: ignored
    assert counts(book.site("street")) == (0, 0, 3)
    with pytest.raises(KeyError):
        book.restore_site_count("nowhere", 1, at(0))


def test_persisted_views_restore_an_equal_book() -> None:
    book = make()
    for report in (
        status(D1, 10, True, fcnt=3),
        status(D2, 20, False, fcnt=9),
        heartbeat(D3, 30, fcnt=1),
    ):
        book.apply(report)
    book.apply_count(count(40, entered=4, seq=2))
    dirty_berths, dirty_sites = book.take_dirty()
    again = make()
    for berth_id in dirty_berths:
        v = book.berth(berth_id)
        again.restore_berth(berth_id, v.state, v.since, v.last_seen, v.last_fcnt)
    for site_id in dirty_sites:
        v2 = book.site(site_id)
        again.restore_site_count(site_id, v2.occupied, v2.updated_at)
    assert [again.berth(b.berth_id) for b in BERTHS] == [book.berth(b.berth_id) for b in BERTHS]
    assert [counts(v) for v in again.sites()] == [counts(v) for v in book.sites()]
    assert again.site("park") == book.site("park")


# -- time and counters ----------------------------------------------------------------------
def test_any_utc_offset_orders_correctly() -> None:
    book = make()
    shanhe = timezone(timedelta(hours=8))
    book.apply(status(D1, 10, True))
    late = SensorStatus(device_id=D1, ts=at(5).astimezone(shanhe), model="m", occupied=False)
    assert book.apply(late).verdict == "stale"


def test_counters_is_a_snapshot() -> None:
    book = make()
    c = book.counters()
    book.apply(status(D1, 10, True, fcnt=1))
    assert c["reports_applied"] == 0
    assert book.counters()["reports_applied"] == 1
