"""The occupancy book following the town live (a town import, the change feed): sites and
berths added, moved, re-counted and removed without rebuilding the book or losing counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from events import CarParkCount, SensorStatus, SiteCountsChanged
from parking.occupancy import BerthInfo, OccupancyBook, SensorBinding, SiteInfo, SiteView

T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def book() -> OccupancyBook:
    return OccupancyBook(
        [SiteInfo("st", 2, "berth_sensors"), SiteInfo("cp", 10, "entry_exit", "ctl")],
        [BerthInfo("st-1", "st"), BerthInfo("st-2", "st")],
        [SensorBinding("d1", "st-1", "m", 300), SensorBinding("d2", "st-2", "m", 300)],
        start=T0,
    )


def occupy(b: OccupancyBook, dev: str, s: float) -> None:
    b.apply(SensorStatus(device_id=dev, ts=at(s), model="m", occupied=True))


def test_a_new_car_park_is_unknown_until_its_controller_counts() -> None:
    b = book()
    assert b.put_site(SiteInfo("new", 150, "entry_exit", "ctl-new"), at(1)) == ()
    v = b.site("new")
    assert (v.capacity, v.free, v.unknown) == (150, 0, 150)
    b.apply_count(CarParkCount(device_id="ctl-new", ts=at(2), site_id="new", occupied=40))
    assert (b.site("new").occupied, b.site("new").free) == (40, 110)
    assert "new" in {s.site_id for s in b.sites()}


def test_a_capacity_change_keeps_the_counts_and_says_so() -> None:
    b = book()
    b.apply_count(CarParkCount(device_id="ctl", ts=at(1), site_id="cp", occupied=8))
    events = b.put_site(SiteInfo("cp", 6, "entry_exit", "ctl"), at(2))
    v = b.site("cp")
    assert (v.capacity, v.occupied, v.free) == (6, 6, 0)  # clamped to the new capacity
    assert [type(e) for e in events] == [SiteCountsChanged]
    assert b.put_site(SiteInfo("cp", 6, "entry_exit", "ctl"), at(3)) == ()  # idempotent


def test_berths_are_added_moved_and_removed_with_their_tallies() -> None:
    b = book()
    occupy(b, "d1", 1)
    assert b.site("st").occupied == 1
    assert b.put_berth(BerthInfo("st-3", "st"), at(2)) == ()
    assert b.berth("st-3").state.value == "unknown"
    b.put_site(SiteInfo("st2", 5, "berth_sensors"), at(2))
    moved = b.put_berth(BerthInfo("st-1", "st2"), at(3))  # re-surveyed into another segment
    assert (b.site("st").occupied, b.site("st2").occupied) == (0, 1)
    assert {e.site_id for e in moved if isinstance(e, SiteCountsChanged)} == {"st", "st2"}
    assert b.berth("st-1").dev_eui == "d1"  # the sensor stays with its berth
    gone = b.remove_berth("st-1", at(4))
    assert b.site("st2").occupied == 0 and any(isinstance(e, SiteCountsChanged) for e in gone)
    assert b.apply(SensorStatus(device_id="d1", ts=at(5), model="m", occupied=False)).verdict == (
        "unbound"
    )
    assert "st-1" not in b.take_dirty()[0]  # nothing left for the persister to look up
    assert b.remove_berth("st-1", at(6)) == ()


def test_a_removed_site_takes_its_berths_and_sensors_with_it() -> None:
    b = book()
    occupy(b, "d2", 1)
    b.remove_site("st", at(2))
    assert "st" not in {s.site_id for s in b.sites()}
    assert b.apply(SensorStatus(device_id="d2", ts=at(3), model="m", occupied=True)).verdict == (
        "unbound"
    )
    assert b.remove_site("st", at(4)) == ()


def test_a_site_switching_to_berth_sensors_counts_its_berths() -> None:
    b = book()
    occupy(b, "d1", 1)
    b.put_site(SiteInfo("st", 2, "entry_exit", "ctl-st"), at(2))
    assert b.site("st").unknown == 2  # waits for the controller
    b.put_site(SiteInfo("st", 2, "berth_sensors"), at(3))
    assert (b.site("st").occupied, b.site("st").unknown) == (1, 1)


def test_site_states_are_the_views_as_tuples() -> None:
    from gateway.api.site_json import state_of

    b = book()
    occupy(b, "d1", 5)
    b.apply_count(CarParkCount(device_id="ctl", ts=at(6), site_id="cp", occupied=4))
    assert list(b.site_states()) == [state_of(v) for v in b.sites()]
    assert [t[3] for t in b.site_states()] == [1, 4]  # occupied: the berth, the car park
    assert all(SiteView(*t) == v for t, v in zip(b.site_states(), b.sites(), strict=True))
