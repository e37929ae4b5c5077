"""Patrol areas and the drone alert rules (dronelink.patrol), pure: point in polygon with its
edge cases, distances, the margin that keeps a drone on the boundary from flapping, and each
alert raised once and cleared once."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dronelink.model import DroneFix, DroneReport, LinkState
from dronelink.patrol import AlertKind, AlertRules, PatrolArea, Watch, observe, tick

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)
# about 1 km x 600 m over the 文化街 early market (drone-1 of the sample town)
SQUARE = PatrolArea(
    ((101.069617, 38.773705), (101.081154, 38.773705), (101.081154, 38.778651),
     (101.069617, 38.778651))
)  # fmt: skip
M_PER_DEG_LAT = 111_195.08
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(38.776))
RULES = AlertRules(low_battery_percent=30, battery_hysteresis=5, area_margin_m=15,
                   link_lost_after_s=30)  # fmt: skip


def report(
    lat: float | None = None,
    lon: float | None = None,
    *,
    at: datetime = T0,
    battery: float | None = None,
    link: LinkState = LinkState.ONLINE,
) -> DroneReport:
    fix = None if lat is None or lon is None else DroneFix(lat, lon)
    return DroneReport("dji", "sn1", at, link=link, fix=fix, battery_percent=battery)


# -- polygons ---------------------------------------------------------------------------------
def test_inside_outside_and_the_boundary() -> None:
    assert SQUARE.contains(101.075, 38.776)
    assert not SQUARE.contains(101.09, 38.776)
    assert not SQUARE.contains(101.075, 38.78)
    assert SQUARE.contains(101.069617, 38.776)  # on the west edge: inside
    assert SQUARE.contains(101.081154, 38.778651)  # a corner: inside
    assert SQUARE.contains(101.075, 38.773705)  # on the south edge
    assert not SQUARE.contains(math.nan, 38.776)
    assert not SQUARE.contains(101.075, math.inf)


def test_concave_ring() -> None:
    # a U: the notch (between the arms) is outside
    u = PatrolArea(((0.0, 0.0), (0.003, 0.0), (0.003, 0.003), (0.002, 0.003), (0.002, 0.001),
                    (0.001, 0.001), (0.001, 0.003), (0.0, 0.003)))  # fmt: skip
    assert u.contains(0.0005, 0.002) and u.contains(0.0025, 0.002)
    assert not u.contains(0.0015, 0.002)
    assert u.contains(0.0015, 0.001)  # the notch's floor is the boundary
    # a ray through a vertex counts once
    assert u.contains(0.0005, 0.001)


def test_closed_ring_is_the_same_area() -> None:
    closed = PatrolArea((*SQUARE.ring, SQUARE.ring[0]))
    assert closed.ring == SQUARE.ring


@pytest.mark.parametrize(
    "ring",
    [
        ((101.0, 38.0), (101.1, 38.0)),  # two corners
        ((101.0, 38.0), (101.0, 38.0), (101.1, 38.1), (101.0, 38.0)),  # two distinct
        ((101.0, 38.0), (101.1, 38.1), (101.2, 38.2)),  # on one line
        ((101.0, 38.0), (101.1, math.nan), (101.2, 38.3)),
        ((181.0, 38.0), (101.1, 38.0), (101.2, 38.3)),
        ((-179.0, 0.0), (179.0, 0.0), (179.0, 1.0)),  # across the antimeridian
    ],
)
def test_bad_rings_are_refused(ring: tuple[tuple[float, float], ...]) -> None:
    with pytest.raises(ValueError, match="patrol area"):
        PatrolArea(ring)


def test_of_refuses_non_pairs() -> None:
    with pytest.raises(ValueError, match="pair"):
        PatrolArea.of([[101.0, 38.0, 5.0], [101.1, 38.0], [101.1, 38.1]])
    assert PatrolArea.of([[101.0, 38.0], [101.1, 38.0], [101.1, 38.1]]).contains(101.09, 38.01)


def test_distances_in_metres() -> None:
    lat = 38.776
    east = 101.081154 + 100 / M_PER_DEG_LON  # 100 m east of the east edge
    assert SQUARE.signed_distance_m(east, lat) == pytest.approx(100, rel=0.01)
    west_in = 101.069617 + 50 / M_PER_DEG_LON  # 50 m inside the west edge
    assert SQUARE.signed_distance_m(west_in, lat) == pytest.approx(-50, rel=0.01)
    assert SQUARE.signed_distance_m(101.081154, lat) == pytest.approx(0, abs=1e-6)
    assert math.isinf(SQUARE.distance_to_edge_m(math.nan, lat))


# -- left_area ------------------------------------------------------------------------------
def test_leaving_raises_once_and_coming_back_clears_once() -> None:
    lat = 38.776
    w, alerts = observe(Watch(), report(lat, 101.075), SQUARE, RULES)
    assert alerts == ()
    out = 101.081154 + 40 / M_PER_DEG_LON
    w, alerts = observe(w, report(lat, out, at=T0 + timedelta(seconds=1)), SQUARE, RULES)
    assert [(a.kind, a.raised) for a in alerts] == [(AlertKind.LEFT_AREA, True)]
    assert "outside" in alerts[0].detail and alerts[0].at == T0 + timedelta(seconds=1)
    for i in range(5):  # still outside: nothing new
        w, alerts = observe(w, report(lat, out + i * 1e-4), SQUARE, RULES)
        assert alerts == ()
    w, alerts = observe(w, report(lat, 101.075), SQUARE, RULES)
    assert [(a.kind, a.raised) for a in alerts] == [(AlertKind.LEFT_AREA, False)]
    w, alerts = observe(w, report(lat, 101.075), SQUARE, RULES)
    assert alerts == () and not w.has(AlertKind.LEFT_AREA)


def test_a_drone_along_the_edge_does_not_flap() -> None:
    lat, edge = 38.776, 101.081154
    w = Watch()
    for i in range(200):  # +-10 m around the boundary, inside the 15 m margin
        offset = 10 * math.sin(i / 3) / M_PER_DEG_LON
        w, alerts = observe(w, report(lat, edge + offset), SQUARE, RULES)
        assert alerts == ()
    w, alerts = observe(w, report(lat, edge + 20 / M_PER_DEG_LON), SQUARE, RULES)
    assert len(alerts) == 1 and alerts[0].raised
    for i in range(200):  # back in the band: stays raised
        offset = 10 * math.sin(i / 3) / M_PER_DEG_LON
        w, alerts = observe(w, report(lat, edge + offset), SQUARE, RULES)
        assert alerts == () and w.has(AlertKind.LEFT_AREA)
    w, alerts = observe(w, report(lat, edge - 20 / M_PER_DEG_LON), SQUARE, RULES)
    assert len(alerts) == 1 and not alerts[0].raised


def test_no_area_no_area_alert() -> None:
    _, alerts = observe(Watch(), report(0.0, 0.0), None, RULES)
    assert alerts == ()


# -- low_battery ------------------------------------------------------------------------------
def test_low_battery_with_hysteresis() -> None:
    w = Watch()
    kinds = []
    for level in (80, 40, 31, 29.9, 25, 30, 33, 34.9, 35, 60, 29, 10):
        w, alerts = observe(w, report(battery=level), None, RULES)
        kinds += [(level, a.raised) for a in alerts if a.kind is AlertKind.LOW_BATTERY]
    assert kinds == [(29.9, True), (35, False), (29, True)]
    w2, alerts = observe(w, report(battery=math.nan), None, RULES)
    assert alerts == () and w2.has(AlertKind.LOW_BATTERY)


# -- link_lost -------------------------------------------------------------------------------
def test_silence_raises_link_lost_once_and_a_report_clears_it() -> None:
    w, _ = observe(Watch(), report(at=T0), None, RULES)
    w, alerts = tick(w, T0 + timedelta(seconds=30), RULES)
    assert alerts == ()  # exactly the limit: not yet
    w, alerts = tick(w, T0 + timedelta(seconds=31), RULES)
    assert [(a.kind, a.raised) for a in alerts] == [(AlertKind.LINK_LOST, True)]
    w, alerts = tick(w, T0 + timedelta(seconds=90), RULES)
    assert alerts == ()
    w, alerts = observe(w, report(at=T0 + timedelta(seconds=91)), None, RULES)
    assert [(a.kind, a.raised) for a in alerts] == [(AlertKind.LINK_LOST, False)]


def test_never_heard_is_not_lost() -> None:
    w, alerts = tick(Watch(), T0 + timedelta(days=1), RULES)
    assert alerts == () and w == Watch()


def test_the_link_saying_lost() -> None:
    w, alerts = observe(Watch(), report(at=T0, link=LinkState.LOST), None, RULES)
    assert [(a.kind, a.raised) for a in alerts] == [(AlertKind.LINK_LOST, True)]
    w, alerts = observe(w, report(at=T0, link=LinkState.LOST), None, RULES)
    assert alerts == ()
    w, alerts = observe(w, report(at=T0, link=LinkState.UNKNOWN), None, RULES)
    assert alerts == () and w.has(AlertKind.LINK_LOST)


def test_an_older_report_does_not_move_last_heard_back() -> None:
    w, _ = observe(Watch(), report(at=T0 + timedelta(seconds=10)), None, RULES)
    w, _ = observe(w, report(at=T0), None, RULES)
    assert w.last_heard == T0 + timedelta(seconds=10)


def test_rules_are_checked() -> None:
    with pytest.raises(ValueError, match=r"0\.\.100"):
        AlertRules(low_battery_percent=120)
    with pytest.raises(ValueError, match="negative"):
        AlertRules(area_margin_m=-1)
    with pytest.raises(ValueError, match="positive"):
        AlertRules(link_lost_after_s=0)


# -- properties -------------------------------------------------------------------------------
_coord = st.floats(-0.01, 0.01, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(x0=_coord, y0=_coord, w=st.floats(1e-4, 0.01), h=st.floats(1e-4, 0.01), px=_coord, py=_coord)
def test_rectangles_contain_exactly_their_points(
    x0: float, y0: float, w: float, h: float, px: float, py: float
) -> None:
    area = PatrolArea(((x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)))
    expected = x0 <= px <= x0 + w and y0 <= py <= y0 + h
    assert area.contains(px, py) == expected
    d = area.signed_distance_m(px, py)
    assert (d <= 0) == expected or abs(d) < 1e-6


@settings(max_examples=300, deadline=None)
@given(
    x0=_coord, y0=_coord, w=st.floats(1e-4, 0.01), h=st.floats(1e-4, 0.01),
    t=st.floats(0, 1), side=st.integers(0, 3),
)  # fmt: skip
@example(x0=0.0, y0=1.4894758500566424e-100, w=0.0078125, h=0.0078125, t=1.0, side=3)
def test_every_boundary_point_is_inside(
    x0: float, y0: float, w: float, h: float, t: float, side: int
) -> None:
    corners = [(x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h)]
    area = PatrolArea(tuple(corners))
    (ax, ay), (bx, by) = corners[side], corners[(side + 1) % 4]
    px, py = (ax, ay + t * (by - ay)) if ax == bx else (ax + t * (bx - ax), ay)
    # a + t(b - a) can round past the edge's ends (y0 = 1e-100 under an edge 0.0078 long gave
    # 0.0): the point is meant on the edge, so it is kept between them
    px = min(max(px, min(ax, bx)), max(ax, bx))
    py = min(max(py, min(ay, by)), max(ay, by))
    assert area.contains(px, py)


_step = st.one_of(
    st.tuples(st.just("fix"), st.floats(38.770, 38.782), st.floats(101.065, 101.086)),
    st.tuples(st.just("battery"), st.floats(0, 100), st.just(0.0)),
    st.tuples(st.just("lost"), st.just(0.0), st.just(0.0)),
    st.tuples(st.just("silence"), st.floats(0, 120), st.just(0.0)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_step, max_size=60))
def test_alerts_alternate_raise_and_clear(steps: list[tuple[str, float, float]]) -> None:
    """Whatever the drone does, every alert kind goes raise, clear, raise, ... (never twice the
    same way), and the watch's standing alerts are exactly the last raises."""
    w, now, seen = Watch(), T0, {k: False for k in AlertKind}
    for what, a, b in steps:
        now += timedelta(seconds=1)
        if what == "fix":
            w, alerts = observe(w, report(a, b, at=now), SQUARE, RULES)
        elif what == "battery":
            w, alerts = observe(w, report(at=now, battery=a), SQUARE, RULES)
        elif what == "lost":
            w, alerts = observe(w, report(at=now, link=LinkState.LOST), SQUARE, RULES)
        else:
            now += timedelta(seconds=a)
            w, alerts = tick(w, now, RULES)
        for alert in alerts:
            assert alert.raised != seen[alert.kind], f"{alert.kind} twice {alert.raised}"
            seen[alert.kind] = alert.raised
        assert {k for k, on in seen.items() if on} == set(w.active)


def test_silence_counts_from_when_the_gateway_began_to_listen() -> None:
    """After a restart the last report is minutes old: the gateway was down, the drone may
    not have been; lost only once it is silent that long with the gateway listening."""
    w, _ = observe(Watch(), report(at=T0), None, RULES)
    up = T0 + timedelta(minutes=6)  # the gateway comes back
    w, alerts = tick(w, up + timedelta(seconds=1), RULES, listening_since=up)
    assert alerts == ()
    w, alerts = tick(w, up + timedelta(seconds=31), RULES, listening_since=up)
    assert [(a.kind, a.raised, a.detail) for a in alerts] == [
        (AlertKind.LINK_LOST, True, "silent for 31 s")
    ]
