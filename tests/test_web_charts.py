"""The charger pages' chart geometry and figures (gateway.web.charts), pure: timeline bars
clipped to their window, axis ticks at local hours and midnights, energy per local day from
the sessions' meter registers, bar-chart columns, and the numbers and times as shown."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.web import charts

ZONE = ZoneInfo("Asia/Shanghai")
NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)  # 10:00 in the town
DAY = timedelta(hours=24)


def test_bars_cover_the_window_in_proportion_and_clip() -> None:
    start = NOW - DAY
    points = [
        (start - timedelta(hours=5), "Available"),  # began before the window: clipped
        (start + timedelta(hours=6), "Faulted"),
        (start + timedelta(hours=12), "Charging"),
    ]
    bars = charts.timeline_bars(points, start, NOW, 1000)
    assert [(b.x, b.width, b.status, b.css) for b in bars] == [
        (0.0, 250.0, "Available", "st-available"),
        (250.0, 250.0, "Faulted", "st-faulted"),
        (500.0, 500.0, "Charging", "st-charging"),
    ]
    assert bars[0].start == start and bars[-1].end == NOW


def test_nothing_is_drawn_before_the_first_report_and_short_faults_still_show() -> None:
    start = NOW - DAY
    points = [(NOW - timedelta(hours=6), "Available"), (NOW - timedelta(seconds=1), "Faulted")]
    bars = charts.timeline_bars(points, start, NOW, 1000)
    assert bars[0].x == 750.0 and bars[0].status == "Available"
    assert bars[1].status == "Faulted" and bars[1].width == 0.5  # a hair, not nothing
    assert charts.timeline_bars([], start, NOW) == []
    assert charts.timeline_bars([(NOW + DAY, "Faulted")], start, NOW) == []  # after the window
    with pytest.raises(ValueError, match="empty window"):
        charts.timeline_bars(points, NOW, NOW)


def test_unknown_words_are_drawn_as_unknown() -> None:
    assert charts.status_class("Offline") == "st-offline"
    assert charts.status_class("Exploded") == "st-unknown"
    assert {css for css, _ in charts.LEGEND} == set(charts.STATUS_CLASS.values())


@given(
    st.lists(
        st.tuples(st.integers(-2 * 86400, 2 * 86400), st.sampled_from(list(charts.STATUS_CLASS))),
        max_size=30,
    )
)
def test_bars_never_overlap_nor_leave_the_chart(offsets: list[tuple[int, str]]) -> None:
    start = NOW - DAY
    points = [(start + timedelta(seconds=s), status) for s, status in offsets]
    bars = charts.timeline_bars(points, start, NOW, 940)
    for a, b in itertools.pairwise(bars):
        assert a.end <= b.start and a.x <= b.x
    for b in bars:
        assert 0 <= b.x <= 940 and b.x + b.width <= 940.5 and b.width >= 0.5


def test_ticks_at_local_hours_and_midnights() -> None:
    six = charts.ticks(NOW - DAY, NOW, timedelta(hours=6), ZONE, 1000)
    assert [label for _, label in six] == ["12:00", "18:00", "00:00", "06:00"]
    assert six[0][0] == pytest.approx(1000 * 2 / 24, abs=0.1)  # 12:00 is 2 h after 10:00
    days = charts.ticks(NOW - timedelta(days=7), NOW, timedelta(days=1), ZONE, 1000)
    assert [label for _, label in days] == [f"11-{d}" for d in range(28, 31)] + [
        f"12-0{d}" for d in range(1, 5)
    ]
    assert all(0 <= x <= 1000 for x, _ in days)
    with pytest.raises(ValueError, match="empty window"):
        charts.ticks(NOW, NOW, timedelta(hours=1), ZONE)


def session(start: str, end: str | None, a: float | None, b: float | None) -> dict[str, object]:
    return {"started_at": start, "ended_at": end, "meter_start_wh": a, "meter_stop_wh": b}


def test_energy_per_local_day_from_the_meter_registers() -> None:
    sessions = [
        # ended 00:30 on 12-04 in the town: counts on 12-04
        session("2026-12-03T15:00:00+00:00", "2026-12-03T16:30:00+00:00", 1000, 13000),
        session("2026-12-03T10:00:00+00:00", "2026-12-03T11:00:00+00:00", 0, 5000),  # 12-03
        session("2026-12-04T01:00:00+00:00", None, 100, None),  # still open: nothing yet
        session("2026-11-20T01:00:00+00:00", "2026-11-20T02:00:00+00:00", 0, 9000),  # too old
        session("2026-12-02T01:00:00+00:00", "2026-12-02T02:00:00+00:00", 9000, 100),  # reset
    ]
    days = charts.energy_by_day(sessions, NOW, ZONE)
    assert [d for d, _ in days] == [date(2026, 11, 28) + timedelta(days=i) for i in range(7)]
    assert dict(days)[date(2026, 12, 4)] == 12000
    assert dict(days)[date(2026, 12, 3)] == 5000
    assert dict(days)[date(2026, 12, 2)] == 0  # a meter that went backwards counts nothing
    assert sum(wh for _, wh in days) == 17000


def test_columns_scale_to_the_largest() -> None:
    cols = charts.columns([("a", 10.0), ("b", 5.0), ("c", 0.0), ("d", 20.0)], 100, 400)
    assert [(c.x, c.width) for c in cols] == [(10.0, 80.0), (110.0, 80.0), (210.0, 80.0),
                                              (310.0, 80.0)]  # fmt: skip
    assert [(c.y, c.height) for c in cols] == [(50.0, 50.0), (75.0, 25.0), (100.0, 0.0),
                                               (0.0, 100.0)]  # fmt: skip
    flat = charts.columns([("a", 0.0), ("b", 0.0)], 100)
    assert all(c.height == 0 and c.y == 100 for c in flat)
    assert charts.columns([], 100) == []


def test_figures_as_people_read_them() -> None:
    assert charts.pct(0.956) == "96 %" and charts.pct(None) == "—" and charts.pct(1.0) == "100 %"
    assert charts.kwh(12345) == "12.3" and charts.kwh(None) == "—" and charts.kwh(0) == "0.0"
    assert charts.local("2026-12-04T01:30:00+00:00", ZONE) == "12-04 09:30"
    assert charts.local("2026-12-04T01:30:00+00:00", ZONE, with_date=False) == "09:30"
    assert charts.local(None, ZONE) == "—"
    ago = [
        (timedelta(seconds=45), "45 s"),
        (timedelta(minutes=12), "12 min"),
        (timedelta(hours=3), "3 h"),
        (timedelta(hours=3, minutes=5), "3 h 5 min"),
        (timedelta(days=2), "2 d"),
        (timedelta(days=2, hours=4, minutes=9), "2 d 4 h"),
        (-timedelta(minutes=1), "0 s"),  # a clock ahead reads as now
    ]
    for delta, text in ago:
        assert charts.duration((NOW - delta).isoformat(), NOW) == text
    assert charts.duration(None, NOW) == "—"
