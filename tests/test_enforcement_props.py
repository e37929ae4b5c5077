"""Property tests (hypothesis) for the enforcement rules: stable dedup keys, allowed windows
that never raise, stays that stay reported, and point-in-polygon against simple oracles."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from parking.enforcement import (
    DETECTION_KINDS,
    MINUTES_PER_DAY,
    Detection,
    Rule,
    RuleBook,
    Stay,
    Window,
    ZoneShape,
    zones_at,
)
from parking.enforcement_file import loads_rules, parse_duration
from tests.test_enforcement import AMBULANCE, BOOK, FIRE, MARKET, NOPARK, ZONE, ZONES, centre

CST = ZoneInfo("Asia/Shanghai")
BASE = dt.datetime(2026, 1, 1, tzinfo=CST)
YEAR_S = 366 * 86_400

instants = st.builds(
    lambda s, tz: (BASE + dt.timedelta(seconds=s)).astimezone(tz),
    st.integers(0, YEAR_S),
    st.sampled_from([CST, dt.UTC, dt.timezone(dt.timedelta(hours=-5))]),
)


@st.composite
def points(draw: st.DrawFn) -> tuple[float, float]:
    """Anywhere around the town, with extra weight on the small zones and their edges."""
    zone_id = draw(st.sampled_from([None, NOPARK, AMBULANCE, MARKET, FIRE]))
    if zone_id is None:
        return (
            draw(st.floats(101.070, 101.090, allow_nan=False)),
            draw(st.floats(38.770, 38.790, allow_nan=False)),
        )
    ring = ZONE[zone_id].polygon
    lons = [p[0] for p in ring]
    lats = [p[1] for p in ring]
    pad = 0.0002
    return (
        draw(st.floats(min(lons) - pad, max(lons) + pad)),
        draw(st.floats(min(lats) - pad, max(lats) + pad)),
    )


@st.composite
def places(draw: st.DrawFn) -> dict[str, object]:
    """A detection's place: coordinates, and maybe a site (with its zone) and a berth."""
    lon, lat = draw(points())
    place: dict[str, object] = {"lon": lon, "lat": lat}
    if draw(st.booleans()):
        place["site_id"] = draw(st.sampled_from(["os-a", "cp-b"]))
        place["site_zone"] = draw(st.sampled_from([None, "zn-central-paid", AMBULANCE]))
        if draw(st.booleans()):
            place["berth_id"] = f"{place['site_id']}-{draw(st.integers(1, 30)):02d}"
    return place


def detect(kind: str, when: dt.datetime, confidence: float, place: dict[str, object]) -> Detection:
    return Detection(
        device_id="cam",
        kind=kind,
        observed_at=when,
        confidence=confidence,
        image_ref="img",
        **place,  # type: ignore[arg-type]
    )


# --- dedup ----------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(DETECTION_KINDS),
    places(),
    instants,
    instants,
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
)
def test_dedup_key_depends_on_place_and_category_not_time(
    kind: str,
    place: dict[str, object],
    t1: dt.datetime,
    t2: dt.datetime,
    c1: float,
    c2: float,
) -> None:
    first = {c.category: c for c in BOOK.for_detection(detect(kind, t1, c1, place)).cases}
    second = {c.category: c for c in BOOK.for_detection(detect(kind, t2, c2, place)).cases}
    for category in first.keys() & second.keys():
        assert first[category].dedup_key == second[category].dedup_key
        assert first[category].dedup_key.startswith(f"{category}|")
        assert first[category].dedup_window_s == second[category].dedup_window_s


@settings(max_examples=200, deadline=None)
@given(places(), instants, st.integers(0, 30 * 86_400), st.integers(0, 30 * 86_400))
def test_stay_dedup_key_depends_on_place_not_time(
    place: dict[str, object], now: dt.datetime, held1: int, held2: int
) -> None:
    site = str(place.get("site_id", "os-a"))
    berth = place.get("berth_id")

    def keys(held: int) -> dict[str, str]:
        s = Stay(
            site_id=site,
            berth_id=berth if isinstance(berth, str) else None,
            site_zone=None,
            since=now - dt.timedelta(seconds=held),
            device_id="sensor",
            lon=place["lon"],  # type: ignore[arg-type]
            lat=place["lat"],  # type: ignore[arg-type]
        )
        return {c.category: c.dedup_key for c in BOOK.for_stays([s], now)}

    a, b = keys(held1), keys(held2)
    for category in a.keys() & b.keys():
        assert a[category] == b[category]


# --- allowed windows --------------------------------------------------------------------------


@st.composite
def windows(draw: st.DrawFn) -> Window:
    start = draw(st.integers(0, MINUTES_PER_DAY - 1))
    end = draw(st.integers(1, MINUTES_PER_DAY).filter(lambda e: e != start))
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    return Window(start, end, days)


def in_window_oracle(w: Window, local: dt.datetime) -> bool:
    """Minute arithmetic, independent of the engine's occurrence instants."""
    minute = local.hour * 60 + local.minute
    today = local.weekday()
    yesterday = (today - 1) % 7
    if w.start_min < w.end_min:
        return today in w.days and w.start_min <= minute < w.end_min
    return (today in w.days and minute >= w.start_min) or (
        yesterday in w.days and minute < w.end_min
    )


@settings(max_examples=500, deadline=None)
@given(
    windows(),
    instants,
    st.sampled_from(DETECTION_KINDS),
    st.floats(0.0, 1.0),
    st.floats(0.0, 1.0),
    places(),
)
def test_detection_inside_an_allowed_window_never_raises_a_case(
    w: Window,
    when: dt.datetime,
    kind: str,
    confidence: float,
    threshold: float,
    place: dict[str, object],
) -> None:
    rule = Rule(
        id="r",
        category="0504",
        title="t",
        trigger="detection",
        dedup=dt.timedelta(hours=1),
        kinds=frozenset({kind}),
        min_confidence=threshold,
        allowed=(w,),
    )
    book = RuleBook(ZONES, (rule,), CST)
    verdict = book.for_detection(detect(kind, when, confidence, place))
    if in_window_oracle(w, when.astimezone(CST)):
        assert verdict.cases == ()
        assert verdict.outcome == "allowed_window"
    else:
        assert verdict.outcome == ("case" if confidence >= threshold else "below_confidence")
        assert len(verdict.cases) == (1 if confidence >= threshold else 0)


@settings(max_examples=300, deadline=None)
@given(windows(), instants)
def test_active_window_matches_the_oracle(w: Window, when: dt.datetime) -> None:
    rule = Rule(
        id="r",
        category="0501",
        title="t",
        trigger="detection",
        dedup=dt.timedelta(hours=1),
        kinds=frozenset({"mobile_vendor"}),
        active=(w,),
    )
    verdict = RuleBook((), (rule,), CST).for_detection(detect("mobile_vendor", when, 1.0, {}))
    expected = "case" if in_window_oracle(w, when.astimezone(CST)) else "outside_active_window"
    assert verdict.outcome == expected


# --- stays ----------------------------------------------------------------------------------

# The sample's stay rules plus window-free rules with other thresholds and scopes.
WINDOWLESS = loads_rules(
    """
[[rule]]
id = "short-anywhere"
category = "9001"
title = "t"
trigger = "stay"
min_stay = "20m"

[[rule]]
id = "market-hour"
category = "9002"
title = "t"
trigger = "stay"
zone_kinds = ["market"]
min_stay = "1h"
""",
    ZONES,
)
STAY_BOOKS = [BOOK, RuleBook(ZONES, BOOK.rules + WINDOWLESS.rules, CST)]

WINDOWED = RuleBook(
    ZONES,
    (
        Rule(
            id="market-ban",
            category="0505",
            title="t",
            trigger="stay",
            dedup=dt.timedelta(minutes=30),
            min_stay=dt.timedelta(minutes=10),
            zone_kinds=frozenset({"market"}),
            active=(Window(6 * 60, 9 * 60 + 30),),
        ),
        Rule(
            id="night-ok",
            category="0506",
            title="t",
            trigger="stay",
            dedup=dt.timedelta(minutes=30),
            min_stay=dt.timedelta(minutes=5),
            allowed=(Window(22 * 60, 7 * 60, frozenset({0, 1, 2, 3, 4})),),
        ),
    ),
    CST,
)


@st.composite
def stays(draw: st.DrawFn, now: dt.datetime) -> Stay:
    lon, lat = draw(points())
    held = draw(st.integers(-600, 10 * 86_400))
    berth = draw(st.one_of(st.none(), st.sampled_from(["b-1", "b-2"])))
    return Stay(
        site_id="os-a",
        berth_id=berth,
        site_zone=draw(st.sampled_from([None, NOPARK, "zn-central-paid"])),
        since=now - dt.timedelta(seconds=held),
        device_id="sensor",
        lon=lon,
        lat=lat,
        plate=draw(st.one_of(st.none(), st.just("甘G12345"))),
    )


@settings(max_examples=300, deadline=None)
@given(st.data(), instants, st.integers(0, 30 * 86_400), st.sampled_from(STAY_BOOKS))
def test_for_stays_is_monotonic_without_windows(
    data: st.DataObject, t1: dt.datetime, later_s: int, book: RuleBook
) -> None:
    group = data.draw(st.lists(stays(t1), max_size=5))
    t2 = t1 + dt.timedelta(seconds=later_s)
    before = {(c.rule_id, c.dedup_key) for c in book.for_stays(group, t1)}
    after = {(c.rule_id, c.dedup_key) for c in book.for_stays(group, t2)}
    assert before <= after


@settings(max_examples=300, deadline=None)
@given(st.data(), instants, st.integers(0, 3 * 3600))
def test_windowed_stay_rules(data: st.DataObject, t1: dt.datetime, later_s: int) -> None:
    group = data.draw(st.lists(stays(t1), min_size=1, max_size=4))
    local = t1.astimezone(CST)
    cases = WINDOWED.for_stays(group, t1)
    rules = {r.id: r for r in WINDOWED.rules}
    # never a case while the rule does not apply (outside active, inside allowed)
    for case in cases:
        assert rules[case.rule_id].applies_at(local)
    # the time counted never exceeds the stay, and reaches the rule's minimum
    for case in cases:
        counted = case.details["counted_minutes"]
        assert isinstance(counted, int)
        assert rules[case.rule_id].min_stay <= dt.timedelta(minutes=counted + 1)
        assert counted <= case.details["stay_minutes"]  # type: ignore[operator]
    # monotonic while the rule keeps applying
    t2 = t1 + dt.timedelta(seconds=later_s)
    after = {(c.rule_id, c.dedup_key) for c in WINDOWED.for_stays(group, t2)}
    for case in cases:
        rule = rules[case.rule_id]
        step = dt.timedelta(minutes=1)
        probe = local
        applies_throughout = True
        while probe <= t2:
            applies_throughout = applies_throughout and rule.applies_at(probe)
            probe += step
        if applies_throughout and rule.applies_at(t2.astimezone(CST)):
            assert (case.rule_id, case.dedup_key) in after


# --- zones ------------------------------------------------------------------------------------

coords = st.floats(-10.0, 10.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(coords, coords, st.floats(0.001, 5.0), st.floats(0.001, 5.0), coords, coords)
def test_rectangles_against_the_oracle(
    x0: float, y0: float, w: float, h: float, px: float, py: float
) -> None:
    ring = ((x0, y0), (x0 + w, y0), (x0 + w, y0 + h), (x0, y0 + h))
    zone = ZoneShape("r", "no_parking", "r", ring)
    x1, y1 = ring[2]
    inside = x0 <= px <= x1 and y0 <= py <= y1
    near_edge = min(abs(px - x0), abs(px - x1), abs(py - y0), abs(py - y1)) < 1e-8
    if not near_edge:
        assert zone.contains(px, py) is inside
    # every vertex and every point of an edge is inside
    t = (px + 10.0) / 20.0
    for (ax, ay), (bx, by) in zip(ring, (*ring[1:], ring[0]), strict=True):
        assert zone.contains(ax + t * (bx - ax), ay + t * (by - ay))


@settings(max_examples=300, deadline=None)
@given(points(), st.permutations(list(ZONES)))
def test_zones_at_keeps_the_given_order_and_matches_contains(
    point: tuple[float, float], order: list[ZoneShape]
) -> None:
    found = zones_at(order, *point)
    assert list(found) == [z for z in order if z.contains(*point)]
    assert {z.id for z in found} == {z.id for z in zones_at(ZONES, *point)}


@settings(max_examples=100, deadline=None)
@given(st.sampled_from([NOPARK, AMBULANCE, MARKET, FIRE]))
def test_sample_zone_centres_are_inside(zone_id: str) -> None:
    assert ZONE[zone_id] in zones_at(ZONES, *centre(zone_id))


# --- durations ------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 23), st.integers(0, 59), st.integers(0, 59))
def test_durations_round_trip(d: int, h: int, m: int, s: int) -> None:
    text = "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (m, "m"), (s, "s")) if v) or "0s"
    expected = dt.timedelta(days=d, hours=h, minutes=m, seconds=s)
    assert parse_duration(text, "x", "here") == expected
