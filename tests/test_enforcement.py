"""Table tests for the enforcement rules (parking/enforcement.py, parking/enforcement_file.py),
on the sample town's real zone polygons and the shipped sample rules."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateway.directory.town import ZoneKind, load_town
from parking.enforcement import (
    KNOWN_ZONE_KINDS,
    Detection,
    RuleBook,
    Stay,
    Verdict,
    ZoneShape,
    grid_cell,
    zones_at,
)
from parking.enforcement_file import (
    RulesFileError,
    load_rules,
    load_sample_rules,
    loads_rules,
    parse_duration,
)

CST = ZoneInfo("Asia/Shanghai")
TOWN = load_town(None)
ZONES = tuple(ZoneShape(z.id, z.kind.value, z.name, tuple(z.polygon)) for z in TOWN.zones)
ZONE = {z.id: z for z in ZONES}
SITE_IDS = frozenset(s.id for s in TOWN.sites)
BOOK = load_sample_rules(ZONES, sites=SITE_IDS)

PAID, NOPARK, AMBULANCE, MARKET, FIRE = (
    "zn-central-paid",
    "zn-gulou-noparking",
    "zn-tonghe-ambulance",
    "zn-wenhuajie-market",
    "zn-zhening-fire-lane",
)
FAR = (101.0, 38.70)  # outside every zone of the sample town
DAY = "2026-05-06"  # a Wednesday


def at(hm: str, day: str = DAY) -> dt.datetime:
    return dt.datetime.fromisoformat(f"{day}T{hm}").replace(tzinfo=CST)


def centre(zone_id: str) -> tuple[float, float]:
    lons = [p[0] for p in ZONE[zone_id].polygon]
    lats = [p[1] for p in ZONE[zone_id].polygon]
    return (min(lons) + max(lons)) / 2, (min(lats) + max(lats)) / 2


def just_east(zone_id: str, metres: float = 1.0) -> tuple[float, float]:
    """A point ``metres`` east of the zone's easternmost edge, at its middle latitude."""
    _, lat = centre(zone_id)
    return max(p[0] for p in ZONE[zone_id].polygon) + metres / 86_700, lat


def seen(
    kind: str,
    where: tuple[float, float] | None,
    when: dt.datetime,
    confidence: float = 0.9,
    **extra: str,
) -> Detection:
    lon, lat = where if where else (None, None)
    return Detection(
        device_id="cam-7",
        kind=kind,
        observed_at=when,
        confidence=confidence,
        image_ref="oss://evidence/cam-7/0001.jpg",
        lon=lon,
        lat=lat,
        **extra,  # type: ignore[arg-type]
    )


def categories(v: Verdict) -> list[str]:
    return [c.category for c in v.cases]


# --- zones ------------------------------------------------------------------------------


def test_zone_kinds_mirror_the_town_file() -> None:
    assert {k.value for k in ZoneKind} == KNOWN_ZONE_KINDS


@pytest.mark.parametrize("zone_id", [NOPARK, AMBULANCE, MARKET, FIRE])
def test_zones_at_centre_corners_edges_and_just_outside(zone_id: str) -> None:
    ring = ZONE[zone_id].polygon
    assert zone_id in [z.id for z in zones_at(ZONES, *centre(zone_id))]
    for i, (lon, lat) in enumerate(ring):  # every vertex and every edge midpoint is inside
        nlon, nlat = ring[(i + 1) % len(ring)]
        assert ZONE[zone_id] in zones_at(ZONES, lon, lat)
        assert ZONE[zone_id] in zones_at(ZONES, (lon + nlon) / 2, (lat + nlat) / 2)
    assert ZONE[zone_id] not in zones_at(ZONES, *just_east(zone_id))


def test_small_zones_lie_inside_the_paid_zone_and_order_follows_the_town() -> None:
    ids = [z.id for z in zones_at(ZONES, *centre(AMBULANCE))]
    assert ids == [PAID, AMBULANCE]
    assert zones_at(ZONES, *FAR) == ()


def test_concave_and_closed_rings() -> None:
    # An L: the notch (upper right) is outside although it is inside the bounding box.
    ell = ((0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (1.0, 1.0), (1.0, 2.0), (0.0, 2.0))
    closed = (*ell, ell[0])
    for ring in (ell, closed):
        z = ZoneShape("l", "no_parking", "L", ring)
        assert z.contains(0.5, 1.5)
        assert z.contains(1.5, 0.5)
        assert not z.contains(1.5, 1.5)
        assert z.contains(1.0, 1.5)  # on the inner edge
        assert z.contains(1.0, 1.0)  # the inner corner
        assert not z.contains(2.0 + 1e-6, 0.5)


def test_zone_needs_three_points() -> None:
    with pytest.raises(ValueError, match="at least 3 points"):
        ZoneShape("z", "market", "x", ((0.0, 0.0), (1.0, 1.0)))


# --- posted rules, detections -----------------------------------------------------------------

POSTED = [
    # 文化街 early market 06:00–09:30: stalls (0504) and mobile vendors (0501) outside it only
    ("street_vending", MARKET, "05:59", "case", ["0504"]),
    ("street_vending", MARKET, "06:00", "allowed_window", []),
    ("street_vending", MARKET, "09:29", "allowed_window", []),
    ("street_vending", MARKET, "09:30", "case", ["0504"]),
    ("street_vending", MARKET, "23:30", "case", ["0504"]),
    ("mobile_vendor", MARKET, "05:00", "case", ["0501"]),
    ("mobile_vendor", MARKET, "08:00", "allowed_window", []),
    ("mobile_vendor", MARKET, "13:00", "case", ["0501"]),
    # 同和医院 entrance: no stalls at any time; no bicycles in the ambulance lane
    ("street_vending", AMBULANCE, "03:00", "case", ["0501"]),
    ("street_vending", AMBULANCE, "07:00", "case", ["0501"]),
    ("mobile_vendor", AMBULANCE, "18:00", "case", ["0501"]),
    ("non_motor_blocking", AMBULANCE, "08:15", "case", ["0506"]),
    ("non_motor_blocking", MARKET, "08:15", "no_rule", []),
    ("non_motor_blocking", NOPARK, "08:15", "no_rule", []),
    # 0505: illegal parking in no-parking zones, the ambulance lane, the fire lane
    ("illegal_parking", NOPARK, "10:00", "case", ["0505"]),
    ("illegal_parking", AMBULANCE, "02:00", "case", ["0505"]),
    ("illegal_parking", FIRE, "20:00", "case", ["0505"]),
    ("illegal_parking", MARKET, "10:00", "no_rule", []),
    ("illegal_parking", PAID, "10:00", "no_rule", []),
    # 0107: an abandoned vehicle anywhere
    ("abandoned_vehicle", PAID, "10:00", "case", ["0107"]),
    ("abandoned_vehicle", None, "10:00", "case", ["0107"]),
    # nothing posted
    ("street_vending", PAID, "10:00", "no_rule", []),
    ("street_vending", None, "10:00", "no_rule", []),
    ("graffiti", AMBULANCE, "10:00", "no_rule", []),
    ("", MARKET, "05:00", "no_rule", []),
]


@pytest.mark.parametrize(("kind", "zone_id", "hm", "outcome", "cats"), POSTED)
def test_posted_rules(
    kind: str, zone_id: str | None, hm: str, outcome: str, cats: list[str]
) -> None:
    if zone_id == PAID:
        where = (101.0740, 38.7800)  # paid zone, away from the small zones
        assert [z.id for z in zones_at(ZONES, *where)] == [PAID]
    else:
        where = centre(zone_id) if zone_id else FAR
    v = BOOK.for_detection(seen(kind, where, at(hm)))
    assert v.outcome == outcome
    assert categories(v) == cats


@pytest.mark.parametrize("zone_id", [AMBULANCE, MARKET])
def test_zone_boundary_decides(zone_id: str) -> None:
    corner = ZONE[zone_id].polygon[2]
    assert BOOK.for_detection(seen("mobile_vendor", corner, at("12:00"))).outcome == "case"
    outside = BOOK.for_detection(seen("mobile_vendor", just_east(zone_id), at("12:00")))
    assert outside.outcome == "no_rule"


def test_windows_are_read_in_local_time() -> None:
    utc_0630_cst = dt.datetime(2026, 5, 5, 22, 30, tzinfo=dt.UTC)  # 06:30 on the 6th in 山丹
    assert BOOK.for_detection(seen("street_vending", centre(MARKET), utc_0630_cst)).outcome == (
        "allowed_window"
    )
    utc_1000_cst = dt.datetime(2026, 5, 6, 2, 0, tzinfo=dt.UTC)
    v = BOOK.for_detection(seen("street_vending", centre(MARKET), utc_1000_cst))
    assert categories(v) == ["0504"]
    assert v.cases[0].ts == utc_1000_cst


@pytest.mark.parametrize(
    ("confidence", "outcome"),
    [(0.0, "below_confidence"), (0.59, "below_confidence"), (0.6, "case"), (1.0, "case")],
)
def test_confidence_threshold(confidence: float, outcome: str) -> None:
    v = BOOK.for_detection(seen("non_motor_blocking", centre(AMBULANCE), at("08:00"), confidence))
    assert v.outcome == outcome
    assert bool(v.cases) == (outcome == "case")


def test_allowed_window_is_decided_before_confidence() -> None:
    v = BOOK.for_detection(seen("street_vending", centre(MARKET), at("07:00"), 0.1))
    assert v == Verdict((), "allowed_window")


def test_case_report_shape() -> None:
    d = Detection(
        device_id="cam-7",
        kind="non_motor_blocking",
        observed_at=at("08:15:30"),
        confidence=0.83,
        image_ref="oss://evidence/cam-7/0042.jpg",
        lon=centre(AMBULANCE)[0],
        lat=centre(AMBULANCE)[1],
        plate=None,
        detection_id="det-42",
    )
    (case,) = BOOK.for_detection(d).cases
    assert case.device_id == "cam-7"
    assert case.ts == dt.datetime(2026, 5, 6, 0, 15, 30, tzinfo=dt.UTC)
    assert case.ts.tzinfo is dt.UTC
    assert (case.category, case.rule_id) == ("0506", "ambulance-lane-non-motor")
    assert case.title == "非机动车乱停放：占用医院急救通道"
    assert case.dedup_key == f"0506|{AMBULANCE}"
    assert case.dedup_window_s == 15 * 60
    assert (case.site_id, case.berth_id, case.zone_id) == (None, None, AMBULANCE)
    assert (case.lon, case.lat) == (d.lon, d.lat)
    assert case.evidence == ("oss://evidence/cam-7/0042.jpg",)
    assert case.details == {
        "kind": "non_motor_blocking",
        "confidence": 0.83,
        "min_confidence": 0.6,
        "detection_id": "det-42",
        "zone_name": "同和医院门前急救通道",
    }


def test_site_zone_places_a_detection_without_coordinates() -> None:
    d = seen("mobile_vendor", None, at("12:00"), site_id="os-tonghe", site_zone=AMBULANCE)
    (case,) = BOOK.for_detection(d).cases
    assert (case.category, case.dedup_key, case.site_id, case.zone_id) == (
        "0501",
        "0501|os-tonghe",
        "os-tonghe",
        AMBULANCE,
    )
    assert (case.lon, case.lat) == (None, None)
    # a site in the paid zone, coordinates in the ambulance lane: the coordinates count too
    d = seen("mobile_vendor", centre(AMBULANCE), at("12:00"), site_id="os-x", site_zone=PAID)
    assert categories(BOOK.for_detection(d)) == ["0501"]
    # a site zone the book does not know matches by id only
    d = seen("mobile_vendor", None, at("12:00"), site_id="os-y", site_zone="zn-elsewhere")
    assert BOOK.for_detection(d).outcome == "no_rule"


# --- dedup keys -------------------------------------------------------------------------------

CUSTOM = """
zone = "Asia/Shanghai"

[[rule]]
id = "anywhere"
category = "9001"
title = "anywhere"
trigger = "detection"
kinds = ["abandoned_vehicle"]
min_confidence = 0.5

[[rule]]
id = "market-zone"
category = "9002"
title = "in the market"
trigger = "detection"
kinds = ["abandoned_vehicle"]
zones = ["zn-wenhuajie-market"]
min_confidence = 0.5
dedup = "10m"
"""


def test_dedup_key_names_the_most_precise_place() -> None:
    book = loads_rules(CUSTOM, ZONES)
    inside = centre(MARKET)

    def keys(where: tuple[float, float] | None, **kw: str) -> list[str]:
        v = book.for_detection(seen("abandoned_vehicle", where, at("10:00"), **kw))
        return [c.dedup_key for c in v.cases]

    assert keys(inside, site_id="os-a", berth_id="os-a-07") == ["9001|os-a-07", "9002|os-a-07"]
    assert keys(inside, site_id="os-a") == ["9001|os-a", "9002|os-a"]
    # the zone names the place only for a rule scoped to it; elsewhere a ~50 m grid cell
    assert keys(inside) == [f"9001|{grid_cell(*inside)}", f"9002|{MARKET}"]
    # no coordinates and no site: only the device that saw it is left
    assert keys(None) == ["9001|device:cam-7"]


def test_grid_cell_is_about_fifty_metres() -> None:
    lon, lat = 101.0800, 38.7800
    assert grid_cell(lon, lat) == grid_cell(lon + 0.00002, lat + 0.00002)  # ~2 m apart
    assert grid_cell(lon, lat) != grid_cell(lon, lat + 0.0006)  # ~67 m north


# --- windows: across midnight, weekdays, rule order ----------------------------------------

NIGHT = """
[[rule]]
id = "night-vending"
category = "0501"
title = "夜间游商"
trigger = "detection"
kinds = ["mobile_vendor"]
active = [{ start = "22:00", end = "02:00" }]
min_confidence = 0.5

[[rule]]
id = "friday-night-stalls"
category = "0504"
title = "周五夜间摆摊"
trigger = "detection"
kinds = ["street_vending"]
active = [{ start = "22:00", end = "02:00", days = ["fri"] }]
min_confidence = 0.5
"""


@pytest.mark.parametrize(
    ("kind", "when", "outcome"),
    [
        ("mobile_vendor", "2026-05-06T21:59", "outside_active_window"),
        ("mobile_vendor", "2026-05-06T22:00", "case"),
        ("mobile_vendor", "2026-05-06T23:59", "case"),
        ("mobile_vendor", "2026-05-07T00:00", "case"),
        ("mobile_vendor", "2026-05-07T01:59", "case"),
        ("mobile_vendor", "2026-05-07T02:00", "outside_active_window"),
        ("mobile_vendor", "2026-05-07T12:00", "outside_active_window"),
        # 2026-05-08 is a Friday: its occurrence runs into Saturday morning
        ("street_vending", "2026-05-08T01:00", "outside_active_window"),  # Thursday's night
        ("street_vending", "2026-05-08T22:30", "case"),
        ("street_vending", "2026-05-09T01:30", "case"),
        ("street_vending", "2026-05-09T22:30", "outside_active_window"),
    ],
)
def test_active_window_across_midnight_and_weekdays(kind: str, when: str, outcome: str) -> None:
    book = loads_rules(NIGHT, ZONES)
    instant = dt.datetime.fromisoformat(when).replace(tzinfo=CST)
    assert book.for_detection(seen(kind, FAR, instant)).outcome == outcome


ORDERED = """
[[rule]]
id = "market-vendor"
category = "0501"
title = "早市外游商"
trigger = "detection"
kinds = ["mobile_vendor"]
zone_kinds = ["market"]
allowed = [{ start = "06:00", end = "09:30" }]
min_confidence = 0.5

[[rule]]
id = "evening-vendor"
category = "0501"
title = "傍晚游商"
trigger = "detection"
kinds = ["mobile_vendor"]
active = [{ start = "17:00", end = "20:00" }]
min_confidence = 0.5

[[rule]]
id = "vendor-anywhere"
category = "0501"
title = "游商"
trigger = "detection"
kinds = ["mobile_vendor"]
min_confidence = 0.95

[[rule]]
id = "vendor-photo"
category = "9999"
title = "游商（留档）"
trigger = "detection"
kinds = ["mobile_vendor"]
zone_kinds = ["market"]
min_confidence = 0.5
"""


@pytest.mark.parametrize(
    ("where", "hm", "confidence", "outcome", "rule_ids"),
    [
        # at the market, the market rule decides 0501: inside its window nothing follows
        # from later 0501 rules, but another category still raises its case
        (MARKET, "07:00", 0.9, "case", ["vendor-photo"]),
        (MARKET, "12:00", 0.9, "case", ["market-vendor", "vendor-photo"]),
        # elsewhere: the evening rule decides inside its active window ...
        (None, "18:00", 0.9, "case", ["evening-vendor"]),
        (None, "18:00", 0.4, "below_confidence", []),
        # ... and outside it the next rule of the category decides
        (None, "12:00", 0.9, "below_confidence", []),
        (None, "12:00", 0.97, "case", ["vendor-anywhere"]),
    ],
)
def test_first_matching_rule_per_category_wins(
    where: str | None, hm: str, confidence: float, outcome: str, rule_ids: list[str]
) -> None:
    book = loads_rules(ORDERED, ZONES)
    point = centre(where) if where else FAR
    v = book.for_detection(seen("mobile_vendor", point, at(hm), confidence))
    assert (v.outcome, [c.rule_id for c in v.cases]) == (outcome, rule_ids)


def test_outcome_is_outside_active_window_only_if_no_rule_decided() -> None:
    book = loads_rules(NIGHT, ZONES)
    assert book.for_detection(seen("mobile_vendor", FAR, at("12:00"))).outcome == (
        "outside_active_window"
    )
    assert book.for_detection(seen("abandoned_vehicle", FAR, at("12:00"))).outcome == "no_rule"


# --- stays --------------------------------------------------------------------------------


def stay(
    since: dt.datetime,
    where: tuple[float, float] | None,
    *,
    berth: str | None = "os-b-01",
    site: str = "os-b",
    site_zone: str | None = None,
    plate: str | None = None,
    session: str | None = None,
) -> Stay:
    lon, lat = where if where else (None, None)
    return Stay(
        site_id=site,
        berth_id=berth,
        site_zone=site_zone,
        since=since,
        device_id="70b3d5aaaa000001",
        lon=lon,
        lat=lat,
        plate=plate,
        session_id=session,
    )


PAID_SPOT = (101.0740, 38.7800)


@pytest.mark.parametrize(
    ("where", "held", "cats"),
    [
        (PAID_SPOT, dt.timedelta(days=7) - dt.timedelta(seconds=1), []),
        (PAID_SPOT, dt.timedelta(days=7), ["0107"]),
        (PAID_SPOT, dt.timedelta(days=30), ["0107"]),
        (centre(NOPARK), dt.timedelta(minutes=4, seconds=59), []),
        (centre(NOPARK), dt.timedelta(minutes=5), ["0505"]),
        (centre(FIRE), dt.timedelta(hours=3), ["0505"]),
        (centre(AMBULANCE), dt.timedelta(minutes=6), ["0505"]),
        (centre(MARKET), dt.timedelta(hours=3), []),
        (centre(NOPARK), dt.timedelta(days=8), ["0107", "0505"]),
        (None, dt.timedelta(days=8), ["0107"]),
        (centre(NOPARK), -dt.timedelta(minutes=10), []),  # a clock ahead of ours: no case
    ],
)
def test_posted_stay_rules(
    where: tuple[float, float] | None, held: dt.timedelta, cats: list[str]
) -> None:
    now = at("10:00")
    assert [c.category for c in BOOK.for_stays([stay(now - held, where)], now)] == cats


def test_stay_case_shape() -> None:
    now = at("10:00")
    since = now - dt.timedelta(days=7, hours=1)
    (case,) = BOOK.for_stays([stay(since, PAID_SPOT, site_zone=PAID)], now)
    assert case.device_id == "70b3d5aaaa000001"
    assert case.ts == now
    assert case.ts.tzinfo is dt.UTC
    assert (case.category, case.rule_id, case.dedup_key) == ("0107", "zombie-car", "0107|os-b-01")
    assert case.dedup_window_s == 86_400
    assert (case.site_id, case.berth_id, case.zone_id) == ("os-b", "os-b-01", PAID)
    since_utc = since.astimezone(dt.UTC).isoformat()
    assert case.evidence == (f"occupancy:os-b-01@{since_utc}",)
    assert case.details == {
        "stay_minutes": 7 * 1440 + 60,
        "counted_minutes": 7 * 1440 + 60,
        "min_stay_minutes": 7 * 1440,
        "since": since_utc,
        "zone_name": "中心城区收费区",
    }


def test_car_park_stays_dedup_per_vehicle() -> None:
    now = at("10:00")
    since = now - dt.timedelta(days=9)
    stays = [
        stay(since, None, berth=None, site="cp-x", plate="甘G12345", session="s-1"),
        stay(since, None, berth=None, site="cp-x", plate="甘g 54321", session="s-2"),
        stay(since, None, berth=None, site="cp-x", session="s-3"),
        stay(since, None, berth=None, site="cp-x"),
    ]
    cases = BOOK.for_stays(stays, now)
    assert [c.dedup_key for c in cases] == [
        "0107|cp-x/plate:甘G12345",
        "0107|cp-x/plate:甘G54321",
        "0107|cp-x/session:s-3",
        "0107|cp-x",
    ]
    assert cases[0].plate == "甘G12345"
    assert cases[0].evidence[0] == "session:s-1"
    assert cases[0].details["session_id"] == "s-1"


BAN = """
[[rule]]
id = "market-morning-ban"
category = "0505"
title = "早市时段禁停"
trigger = "stay"
zone_kinds = ["market"]
active = [{ start = "06:00", end = "09:30" }]
min_stay = "10m"

[[rule]]
id = "night-parking-ok"
category = "0506"
title = "禁停（夜间除外）"
trigger = "stay"
zone_kinds = ["no_parking"]
allowed = [{ start = "22:00", end = "07:00" }]
min_stay = "5m"
"""


@pytest.mark.parametrize(
    ("zone_id", "since", "now", "raised"),
    [
        # parked before the ban: the 10 minutes count from 06:00
        (MARKET, "05:00", "05:59", False),
        (MARKET, "05:00", "06:09", False),
        (MARKET, "05:00", "06:10", True),
        (MARKET, "06:05", "06:14", False),
        (MARKET, "06:05", "06:15", True),
        (MARKET, "05:00", "09:29", True),
        (MARKET, "05:00", "09:30", False),  # the ban is over
        # parking allowed overnight: from 07:00 the car has 5 minutes to go
        (NOPARK, "21:00", "21:04", False),
        (NOPARK, "21:00", "21:05", True),
        (NOPARK, "21:00", "23:00", False),
        (NOPARK, "21:00", "07:04", False),
        (NOPARK, "21:00", "07:05", True),
    ],
)
def test_stay_rules_count_only_time_when_the_rule_applies(
    zone_id: str, since: str, now: str, raised: bool
) -> None:
    book = loads_rules(BAN, ZONES)
    start = at(since)
    end = at(now)
    if end < start:
        end += dt.timedelta(days=1)
    assert bool(book.for_stays([stay(start, centre(zone_id))], end)) is raised


def test_stays_need_an_aware_now() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        BOOK.for_stays([], dt.datetime(2026, 5, 6, 10, 0))


# --- validation of inputs -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"observed_at": dt.datetime(2026, 5, 6, 10, 0)}, "timezone-aware"),
        ({"confidence": 1.5}, "confidence"),
        ({"confidence": float("nan")}, "confidence"),
        ({"lon": 101.0}, "both lon and lat"),
        ({"lon": 191.0, "lat": 38.0}, "out of range"),
    ],
)
def test_detection_refuses_bad_input(kwargs: dict[str, object], message: str) -> None:
    base: dict[str, object] = {
        "device_id": "cam",
        "kind": "street_vending",
        "observed_at": at("10:00"),
        "confidence": 0.5,
        "image_ref": "x",
    }
    with pytest.raises(ValueError, match=message):
        Detection(**(base | kwargs))  # type: ignore[arg-type]


def test_rule_book_refuses_duplicate_ids() -> None:
    rule = BOOK.rules[0]
    with pytest.raises(ValueError, match="unique"):
        RuleBook(ZONES, (rule, rule))


# --- the rules file ---------------------------------------------------------------------------


def test_sample_rules_load_with_any_town() -> None:
    assert [r.id for r in load_sample_rules(()).rules] == [r.id for r in BOOK.rules]
    assert {r.category for r in BOOK.rules} == {"0107", "0501", "0504", "0505", "0506", "bodycam"}
    assert str(BOOK.zone) == "Asia/Shanghai"


def rule(body: str, head: str = 'id = "r1"\ncategory = "0501"\ntitle = "t"') -> str:
    return f"[[rule]]\n{head}\n{body}\n"


DETECT = 'trigger = "detection"\nkinds = ["street_vending"]\nmin_confidence = 0.5\n'
STAY = 'trigger = "stay"\nmin_stay = "5m"\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("rule = [", "not valid TOML"),
        ('zone = "Mars/Olympus"\n', "zone: unknown time zone"),
        ("rule = 5\n", "rule: must be an array"),
        ('colour = "red"\n', "unknown key(s) colour"),
        (rule(DETECT, 'category = "0501"\ntitle = "t"'), "rule[0]: id must be a non-empty string"),
        (rule(DETECT, 'id = "has space"\ncategory = "0501"\ntitle = "t"'), "id 'has space'"),
        (rule(DETECT, 'id = "r1"\ntitle = "t"'), 'rule "r1": category must be'),
        (rule(DETECT, 'id = "r1"\ncategory = "05010501050105010"\ntitle = "t"'), "at most 16"),
        (rule(DETECT, 'id = "r1"\ncategory = "0501"'), 'rule "r1": title must be'),
        (rule('trigger = "sometimes"'), "trigger must be one of detection, stay, got 'sometimes'"),
        (rule(""), "trigger must be one of"),
        (rule(DETECT + "min_confidance = 0.5\n"), "unknown key(s) min_confidance"),
        (rule('trigger = "detection"\nmin_confidence = 0.5'), "kinds must list detection kinds"),
        (
            rule('trigger = "detection"\nkinds = ["graffiti"]\nmin_confidence = 0.5'),
            "unknown detection kind 'graffiti'",
        ),
        (
            rule('trigger = "detection"\nkinds = ["street_vending"]'),
            "min_confidence must be a number",
        ),
        (
            rule('trigger = "detection"\nkinds = ["street_vending"]\nmin_confidence = 1.5'),
            "within 0..1, got 1.5",
        ),
        (
            rule('trigger = "detection"\nkinds = ["street_vending"]\nmin_confidence = true'),
            "min_confidence must be a number",
        ),
        (rule(DETECT + 'min_stay = "5m"'), "min_stay is for stay rules"),
        (rule(STAY + 'kinds = ["street_vending"]'), "kinds is for detection rules"),
        (rule('trigger = "stay"'), "a stay rule needs min_stay"),
        (rule('trigger = "stay"\nmin_stay = "-5m"'), "min_stay '-5m' must not be negative"),
        (rule('trigger = "stay"\nmin_stay = "0m"'), "min_stay must be longer than 0"),
        (
            rule('trigger = "stay"\nmin_stay = "5 minutes"'),
            "min_stay '5 minutes' is not a duration",
        ),
        (rule('trigger = "stay"\nmin_stay = 300'), "min_stay must be a string"),
        (rule(STAY + 'dedup = "-1h"'), "dedup '-1h' must not be negative"),
        (rule(STAY + 'dedup = "0s"'), "dedup must be at least 1s"),
        (
            rule(STAY + 'zones = ["zn-nowhere"]'),
            "unknown zone 'zn-nowhere'; the town has zn-central-paid",
        ),
        (rule(STAY + 'zones = "zn-gulou-noparking"'), "zones must be an array"),
        (rule(STAY + 'zone_kinds = ["parking_lot"]'), "unknown zone kind 'parking_lot'"),
        (rule(STAY + 'sites = ["cp-nowhere"]'), "unknown site 'cp-nowhere'"),
        (
            rule(STAY + 'active = [{ start = "9:30", end = "10:00" }]'),
            "rule \"r1\" active[0]: start '9:30' is not a time HH:MM",
        ),
        (rule(STAY + 'allowed = [{ start = "06:00", end = "25:00" }]'), "allowed[0]: end '25:00'"),
        (rule(STAY + 'allowed = [{ start = "06:00", end = "06:60" }]'), "allowed[0]: end '06:60'"),
        (rule(STAY + 'allowed = [{ start = "24:00", end = "06:00" }]'), "start cannot be 24:00"),
        (
            rule(STAY + 'allowed = [{ start = "06:00", end = "06:00" }]'),
            "start and end must differ",
        ),
        (rule(STAY + 'allowed = [{ start = "06:00" }]'), "allowed[0]: end must be a string HH:MM"),
        (
            rule(STAY + 'allowed = [{ start = "06:00", end = "07:00", day = ["mon"] }]'),
            "allowed[0]: unknown key(s) day",
        ),
        (
            rule(STAY + 'active = [{ start = "06:00", end = "07:00", days = ["funday"] }]'),
            "active[0]: unknown weekday 'funday'",
        ),
        (
            rule(STAY + 'active = [{ start = "06:00", end = "07:00", days = [] }]'),
            "days must name at least one weekday",
        ),
        (rule(STAY + 'active = ["06:00-07:00"]'), "active[0]: must be a table"),
        (rule(STAY) + rule(STAY), 'rule[1] "r1": id is already used'),
    ],
)
def test_loader_errors_name_the_entry(text: str, message: str) -> None:
    with pytest.raises(RulesFileError) as info:
        loads_rules(text, ZONES, "rules.toml", sites=SITE_IDS)
    assert str(info.value).startswith("rules.toml: ")
    assert message in str(info.value)


def test_loader_accepts_the_documented_forms(tmp_path: Path) -> None:
    text = rule(
        STAY
        + 'zones = ["zn-gulou-noparking"]\nsites = ["cp-zhening"]\ndedup = "1d12h"\n'
        + 'note = "free text"\n'
        + 'active = [{ start = "22:00", end = "00:00", days = ["Friday", "sat"] },'
        + ' { start = "00:00", end = "24:00", days = ["sun"] }]'
    )
    path = tmp_path / "rules.toml"
    path.write_text(text, encoding="utf-8")
    (r,) = load_rules(path, ZONES, sites=SITE_IDS).rules
    assert r.dedup == dt.timedelta(days=1, hours=12)
    assert [(w.start_min, w.end_min, sorted(w.days)) for w in r.active] == [
        (22 * 60, 24 * 60, [4, 5]),
        (0, 24 * 60, [6]),
    ]
    assert r.zones == {NOPARK} and r.sites == {"cp-zhening"}
    # no zones known: zone ids cannot be checked, and are not; the default dedup is 1 h
    (r,) = loads_rules(rule(STAY + 'zones = ["zn-anything"]'), ()).rules
    assert r.dedup == dt.timedelta(hours=1)


def test_load_rules_missing_file(tmp_path: Path) -> None:
    with pytest.raises(RulesFileError, match="cannot read"):
        load_rules(tmp_path / "absent.toml", ZONES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7d", dt.timedelta(days=7)),
        ("5m", dt.timedelta(minutes=5)),
        ("1h30m", dt.timedelta(minutes=90)),
        ("45s", dt.timedelta(seconds=45)),
        ("2d3h4m5s", dt.timedelta(days=2, hours=3, minutes=4, seconds=5)),
    ],
)
def test_durations(text: str, expected: dt.timedelta) -> None:
    assert parse_duration(text, "x", "here") == expected


@pytest.mark.parametrize("text", ["", "m", "5", "5x", "1m1h", "1.5h", " - 5m"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(RulesFileError, match=r"^here: x"):
        parse_duration(text, "x", "here")


def test_deeply_nested_toml_and_non_utf8_files_are_rules_file_errors(tmp_path: Path) -> None:
    """Found by ``make fuzz`` (file.rules): a deeply nested array was a RecursionError and a
    file that is not UTF-8 a UnicodeDecodeError out of the loader; both are RulesFileError."""
    with pytest.raises(RulesFileError, match=r"^deep\.toml: not valid TOML: nested too deeply"):
        loads_rules("a = " + "[" * 5000, ZONES, "deep.toml")
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'zone = "Asia/Shanghai"\n\xe9\n')
    with pytest.raises(RulesFileError, match=r"latin1\.toml: not UTF-8 text \(byte 23\)"):
        load_rules(path, ZONES)
