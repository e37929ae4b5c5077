"""Enforcement rules: which observations become case reports (the pure rule engine).

No I/O and no clock. Two kinds of input reach the rules:

* a ``Detection`` from an AI camera or a drone (street vending, a mobile vendor, bicycles
  blocking a lane, an abandoned or illegally parked vehicle), with a confidence and an image;
* ``Stay`` records, the things occupying berths right now, swept periodically with ``now``
  (zombie cars, cars left in a no-parking zone).

A ``RuleBook`` decides, per rule, whether a case follows and returns ``CaseRaised`` events
with a ``dedup_key`` that names the situation (category + place). Windows such as the early
market's 06:00–09:30 are read in the book's zone at the observed instant. The store, not this
module, drops a report whose key was already filed within ``dedup_window_s``.

The rules file format and the semantics are documented in docs/enforcement.md.

Over 400 lines on purpose: one rule book, whose scopes (zone, zone kind, site), windows and
dedup keys every judgement applies together; the file format lives in enforcement_file.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, get_args
from zoneinfo import ZoneInfo

from events import CaseRaised, utc

__all__ = [
    "DAY_NAMES",
    "DETECTION_KINDS",
    "KNOWN_ZONE_KINDS",
    "MINUTES_PER_DAY",
    "OUTCOMES",
    "TRIGGERS",
    "Detection",
    "DetectionKind",
    "Outcome",
    "Rule",
    "RuleBook",
    "Stay",
    "Trigger",
    "Verdict",
    "Window",
    "ZoneShape",
    "grid_cell",
    "zones_at",
]

DetectionKind = Literal[
    "street_vending",
    "mobile_vendor",
    "non_motor_blocking",
    "abandoned_vehicle",
    "illegal_parking",
    "officer_alarm",  # a body cam's alarm (the officer's button); confidence from its priority
]
DETECTION_KINDS: tuple[DetectionKind, ...] = get_args(DetectionKind)
Trigger = Literal["detection", "stay"]
TRIGGERS: tuple[Trigger, ...] = get_args(Trigger)
Outcome = Literal["case", "below_confidence", "allowed_window", "no_rule", "outside_active_window"]
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)
# The zone kinds of the town file (gateway.directory.town.ZoneKind); parking may not import gateway.
KNOWN_ZONE_KINDS: frozenset[str] = frozenset(
    {"paid", "no_parking", "ambulance_lane", "market", "fire_lane"}
)
DAY_NAMES: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
ALL_DAYS: frozenset[int] = frozenset(range(7))
MINUTES_PER_DAY = 24 * 60
# 1/2000 degree: about 56 m north-south, 43 m east-west at Shandan's 38.8° N.
GRID_PER_DEGREE = 2000
# A point closer than this to a zone's edge (in degrees, about 0.1 mm) lies on the boundary.
_EDGE_TOLERANCE_DEG = 1e-9
_TICK = dt.timedelta(microseconds=1)


def _require_aware(value: dt.datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value.isoformat()}")


# --- zones -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ZoneShape:
    """A town zone as the rules see it: id, kind (``no_parking``, ``market`` ...), outline.

    ``polygon`` is a ring of ``(lon, lat)`` points, closed or not (the last point may repeat
    the first).
    """

    id: str
    kind: str
    name: str
    polygon: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if len(self.polygon) < 3:
            raise ValueError(f"zone {self.id!r}: a polygon needs at least 3 points")

    @functools.cached_property
    def bbox(self) -> tuple[float, float, float, float]:
        """``(min lon, min lat, max lon, max lat)``, widened by the edge tolerance."""
        tol = _EDGE_TOLERANCE_DEG
        lons = [p[0] for p in self.polygon]
        lats = [p[1] for p in self.polygon]
        return min(lons) - tol, min(lats) - tol, max(lons) + tol, max(lats) + tol

    @functools.cached_property
    def area(self) -> float:
        """Shoelace area in square degrees: only to rank zones, smallest (most specific) first."""
        ring = self.polygon
        twice = sum(
            ax * by - bx * ay for (ax, ay), (bx, by) in zip(ring, ring[1:] + ring[:1], strict=True)
        )
        return abs(twice) / 2

    def contains(self, lon: float, lat: float) -> bool:
        """Point in polygon by ray casting; a point on the boundary counts as inside, so a
        vendor standing on the painted line of the ambulance lane is in it."""
        min_lon, min_lat, max_lon, max_lat = self.bbox
        if not (min_lon <= lon <= max_lon and min_lat <= lat <= max_lat):
            return False
        ring = self.polygon
        inside = False
        for i, (bx, by) in enumerate(ring):
            ax, ay = ring[i - 1]
            if _on_segment(lon, lat, ax, ay, bx, by):
                return True
            if (ay > lat) != (by > lat):
                crossing = ax + (lat - ay) * (bx - ax) / (by - ay)
                if lon < crossing:
                    inside = not inside
        return inside


def _on_segment(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> bool:
    dx, dy = bx - ax, by - ay
    length = (dx * dx + dy * dy) ** 0.5
    tol = _EDGE_TOLERANCE_DEG
    if length == 0.0:
        return abs(px - ax) <= tol and abs(py - ay) <= tol
    if abs(dx * (py - ay) - dy * (px - ax)) > tol * length:
        return False
    return (
        min(ax, bx) - tol <= px <= max(ax, bx) + tol
        and min(ay, by) - tol <= py <= max(ay, by) + tol
    )


def zones_at(zones: Sequence[ZoneShape], lon: float, lat: float) -> tuple[ZoneShape, ...]:
    """The zones containing ``(lon, lat)``, boundary included, in the order given."""
    return tuple(z for z in zones if z.contains(lon, lat))


def grid_cell(lon: float, lat: float) -> str:
    """The ~50 m grid cell of a point: the place of a detection with nothing better to name
    it, so the same vendor seen every minute at the same corner is one situation."""
    return f"grid:{round(lat * GRID_PER_DEGREE)}:{round(lon * GRID_PER_DEGREE)}"


# --- time windows --------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """A daily local-time window ``[start_min, end_min)`` on the given weekdays (0 = Monday).

    ``start_min > end_min`` crosses midnight (22:00–02:00); such an occurrence belongs to the
    day it starts on, so ``days = {fri}`` covers Friday 22:00 to Saturday 02:00.
    """

    start_min: int
    end_min: int
    days: frozenset[int] = ALL_DAYS

    def __post_init__(self) -> None:
        if not 0 <= self.start_min < MINUTES_PER_DAY:
            raise ValueError("window start must lie within 00:00–23:59")
        if not 0 < self.end_min <= MINUTES_PER_DAY:
            raise ValueError("window end must lie within 00:01–24:00")
        if self.start_min == self.end_min:
            raise ValueError("window start and end must differ")
        if not self.days or not self.days <= ALL_DAYS:
            raise ValueError("window days must be a non-empty set of weekdays 0..6")

    def occurrence(self, day: dt.date, zone: dt.tzinfo) -> tuple[dt.datetime, dt.datetime]:
        """The window's instants on local ``day`` (whatever ``days`` says)."""
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
        start = midnight + dt.timedelta(minutes=self.start_min)
        end = midnight + dt.timedelta(minutes=self.end_min)
        if self.end_min <= self.start_min:
            end += dt.timedelta(days=1)
        return start, end

    def contains(self, local: dt.datetime) -> bool:
        """Whether ``local`` (aware, in the book's zone) falls within an occurrence."""
        _require_aware(local, "instant")
        today = local.date()
        for day in (today, today - dt.timedelta(days=1)):
            if day.weekday() in self.days:
                start, end = self.occurrence(day, local.tzinfo)  # type: ignore[arg-type]
                if start <= local < end:
                    return True
        return False


# --- rules ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Rule:
    """One posted rule: when (trigger, kinds, windows) and where (scope) a case follows.

    Scope: a place matches if it lies in any listed zone, in a zone of any listed kind, or at
    any listed site; all three empty means everywhere. ``active`` windows (empty: always)
    say when the rule applies at all; ``allowed`` windows are when the behaviour is permitted.
    """

    id: str
    category: str
    title: str
    trigger: Trigger
    dedup: dt.timedelta
    kinds: frozenset[str] = frozenset()
    min_confidence: float = 0.0
    min_stay: dt.timedelta = dt.timedelta(0)
    zones: frozenset[str] = frozenset()
    zone_kinds: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()
    active: tuple[Window, ...] = ()
    allowed: tuple[Window, ...] = ()

    def __post_init__(self) -> None:
        if self.trigger not in TRIGGERS:
            raise ValueError(f"rule {self.id!r}: trigger must be one of {TRIGGERS}")
        if self.dedup <= dt.timedelta(0):
            raise ValueError(f"rule {self.id!r}: dedup window must be > 0")
        if self.trigger == "detection" and not self.kinds:
            raise ValueError(f"rule {self.id!r}: a detection rule needs kinds")
        if self.trigger == "stay" and self.min_stay <= dt.timedelta(0):
            raise ValueError(f"rule {self.id!r}: a stay rule needs min_stay > 0")
        if not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"rule {self.id!r}: min_confidence must lie within 0..1")

    @property
    def everywhere(self) -> bool:
        return not (self.zones or self.zone_kinds or self.sites)

    def is_active(self, local: dt.datetime) -> bool:
        return not self.active or any(w.contains(local) for w in self.active)

    def is_allowed(self, local: dt.datetime) -> bool:
        return any(w.contains(local) for w in self.allowed)

    def applies_at(self, local: dt.datetime) -> bool:
        """Active and not in an allowed window: the behaviour is an offence at ``local``."""
        return self.is_active(local) and not self.is_allowed(local)


# --- observations ---------------------------------------------------------------------------


def _check_point(lon: float | None, lat: float | None, what: str) -> None:
    if (lon is None) != (lat is None):
        raise ValueError(f"{what}: give both lon and lat, or neither")
    if lon is not None and lat is not None and not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise ValueError(f"{what}: lon/lat ({lon}, {lat}) out of range")


@dataclass(frozen=True)
class Detection:
    """What a camera or drone saw, where and when, and how sure it is.

    ``site_zone`` is the zone of the named site (from the town), so a camera registered to a
    site needs no coordinates for zone rules.
    """

    device_id: str
    kind: str
    observed_at: dt.datetime
    confidence: float
    image_ref: str
    lon: float | None = None
    lat: float | None = None
    site_id: str | None = None
    berth_id: str | None = None
    site_zone: str | None = None
    plate: str | None = None
    detection_id: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.observed_at, "Detection.observed_at")
        if not 0.0 <= self.confidence <= 1.0:  # also refuses NaN
            raise ValueError(f"Detection.confidence must lie within 0..1, got {self.confidence}")
        _check_point(self.lon, self.lat, "Detection")


@dataclass(frozen=True)
class Stay:
    """Something occupying a berth (or a car park, by plate) right now, since ``since``."""

    site_id: str
    berth_id: str | None
    site_zone: str | None
    since: dt.datetime
    device_id: str
    lon: float | None
    lat: float | None
    plate: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        _require_aware(self.since, "Stay.since")
        _check_point(self.lon, self.lat, "Stay")


@dataclass(frozen=True)
class Verdict:
    """The rules' answer to one detection: the cases raised, and why there are none if so."""

    cases: tuple[CaseRaised, ...]
    outcome: Outcome


# --- the book -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Place:
    site_id: str | None
    berth_id: str | None
    zones: tuple[tuple[str, str, str], ...]  # (id, kind, name): smallest first, site's last
    lon: float | None
    lat: float | None


@dataclass(frozen=True)
class _Match:
    zone: tuple[str, str, str] | None  # the zone that put the place in scope, if any


@dataclass(frozen=True)
class RuleBook:
    """The town's enforcement rules, evaluated in order; windows are read in ``zone``."""

    zones: tuple[ZoneShape, ...]
    rules: tuple[Rule, ...]
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("Asia/Shanghai"))
    _zone_by_id: Mapping[str, ZoneShape] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        ids = [r.id for r in self.rules]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"rule ids must be unique: {', '.join(dupes)}")
        object.__setattr__(self, "_zone_by_id", {z.id: z for z in self.zones})

    # -- places

    def _place(
        self,
        site_id: str | None,
        berth_id: str | None,
        site_zone: str | None,
        lon: float | None,
        lat: float | None,
    ) -> _Place:
        found: list[tuple[str, str, str]] = []
        if lon is not None and lat is not None:
            seen = sorted(zones_at(self.zones, lon, lat), key=lambda z: z.area)
            found.extend((z.id, z.kind, z.name) for z in seen)
        if site_zone is not None and all(z[0] != site_zone for z in found):
            known = self._zone_by_id.get(site_zone)
            found.append((site_zone, known.kind, known.name) if known else (site_zone, "", ""))
        return _Place(site_id, berth_id, tuple(found), lon, lat)

    @staticmethod
    def _scope(rule: Rule, place: _Place) -> _Match | None:
        if rule.everywhere:
            return _Match(None)
        for zone in place.zones:
            if zone[0] in rule.zones or zone[1] in rule.zone_kinds:
                return _Match(zone)
        if place.site_id is not None and place.site_id in rule.sites:
            return _Match(None)
        return None

    @staticmethod
    def _where(place: _Place, match: _Match, fallback: str) -> str:
        """The place part of the dedup key: the most precise stable name of the spot."""
        if place.berth_id:
            return place.berth_id
        if place.site_id:
            return place.site_id
        if match.zone is not None:
            return match.zone[0]
        if place.lon is not None and place.lat is not None:
            return grid_cell(place.lon, place.lat)
        return fallback

    def _case(
        self,
        rule: Rule,
        place: _Place,
        match: _Match,
        where: str,
        *,
        device_id: str,
        ts: dt.datetime,
        plate: str | None,
        evidence: tuple[str, ...],
        details: dict[str, str | int | float | bool | None],
    ) -> CaseRaised:
        zone = match.zone or (place.zones[0] if place.zones else None)
        if zone is not None and zone[2]:
            details["zone_name"] = zone[2]
        return CaseRaised(
            device_id=device_id,
            ts=utc(ts),
            category=rule.category,
            rule_id=rule.id,
            title=rule.title,
            dedup_key=f"{rule.category}|{where}",
            dedup_window_s=int(rule.dedup.total_seconds()),
            site_id=place.site_id,
            berth_id=place.berth_id,
            zone_id=zone[0] if zone else None,
            lon=place.lon,
            lat=place.lat,
            plate=plate,
            evidence=evidence,
            details=details,
        )

    # -- detections

    def for_detection(self, d: Detection) -> Verdict:
        """Cases for one detection: per category the first rule (file order) whose kinds,
        place and active windows match decides; each rule raises at most one case."""
        place = self._place(d.site_id, d.berth_id, d.site_zone, d.lon, d.lat)
        local = d.observed_at.astimezone(self.zone)
        decided: set[str] = set()
        cases: list[CaseRaised] = []
        first_refusal: Outcome | None = None
        inactive = False
        for rule in self.rules:
            if rule.trigger != "detection" or d.kind not in rule.kinds:
                continue
            if rule.category in decided:
                continue
            match = self._scope(rule, place)
            if match is None:
                continue
            if not rule.is_active(local):
                inactive = True
                continue
            decided.add(rule.category)
            if rule.is_allowed(local):
                first_refusal = first_refusal or "allowed_window"
                continue
            if d.confidence < rule.min_confidence:
                first_refusal = first_refusal or "below_confidence"
                continue
            details: dict[str, str | int | float | bool | None] = {
                "kind": d.kind,
                "confidence": d.confidence,
                "min_confidence": rule.min_confidence,
            }
            if d.detection_id is not None:
                details["detection_id"] = d.detection_id
            cases.append(
                self._case(
                    rule,
                    place,
                    match,
                    self._where(place, match, f"device:{d.device_id}"),
                    device_id=d.device_id,
                    ts=d.observed_at,
                    plate=d.plate,
                    evidence=(d.image_ref,) if d.image_ref else (),
                    details=details,
                )
            )
        if cases:
            return Verdict(tuple(cases), "case")
        if first_refusal is not None:
            return Verdict((), first_refusal)
        return Verdict((), "outside_active_window" if inactive else "no_rule")

    # -- stays

    def for_stays(self, stays: Iterable[Stay], now: dt.datetime) -> tuple[CaseRaised, ...]:
        """Cases for every stay that has lasted ``min_stay`` at ``now`` where a stay rule
        applies. Time only counts while the rule applies (inside ``active``, outside
        ``allowed``), so a car parked before a ban starts gets ``min_stay`` of grace and no
        case is raised once the ban is over. Without windows: monotonic in ``now``."""
        _require_aware(now, "now")
        now_utc = utc(now)  # instants are subtracted in UTC: wall-clock arithmetic lies at DST
        local = now.astimezone(self.zone)
        rules = [r for r in self.rules if r.trigger == "stay"]
        applying = [r for r in rules if r.applies_at(local)]
        stretch = {r.id: self._stretch_start(r, local) for r in applying}
        cases: list[CaseRaised] = []
        for stay in stays:
            place = self._place(stay.site_id, stay.berth_id, stay.site_zone, stay.lon, stay.lat)
            decided: set[str] = set()
            for rule in rules:
                if rule.category in decided or not rule.is_active(local):
                    continue
                match = self._scope(rule, place)
                if match is None:
                    continue
                decided.add(rule.category)
                if rule.id not in stretch:  # inside an allowed window
                    continue
                begin = stretch[rule.id]
                since = utc(stay.since)
                counted = now_utc - (since if begin is None else max(since, utc(begin)))
                if counted < rule.min_stay:
                    continue
                cases.append(self._stay_case(rule, place, match, stay, now_utc, counted))
        return tuple(cases)

    def _stay_case(
        self,
        rule: Rule,
        place: _Place,
        match: _Match,
        stay: Stay,
        now: dt.datetime,
        counted: dt.timedelta,
    ) -> CaseRaised:
        if stay.berth_id:
            where = stay.berth_id
        elif stay.plate and stay.plate.split():
            # a car park without berths: one case per vehicle, not per car park; the plate
            # compares as the case store does (no spaces, upper case, province kept)
            where = f"{stay.site_id}/plate:{''.join(stay.plate.split()).upper()}"
        elif stay.session_id:
            where = f"{stay.site_id}/session:{stay.session_id}"
        else:
            where = self._where(place, match, stay.site_id)
        since = utc(stay.since)
        evidence: tuple[str, ...] = (
            f"occupancy:{stay.berth_id or stay.site_id}@{since.isoformat()}",
        )
        if stay.session_id:
            evidence = (f"session:{stay.session_id}", *evidence)
        details: dict[str, str | int | float | bool | None] = {
            "stay_minutes": int((now - since).total_seconds() // 60),
            "counted_minutes": int(counted.total_seconds() // 60),
            "min_stay_minutes": int(rule.min_stay.total_seconds() // 60),
            "since": since.isoformat(),
        }
        if stay.session_id:
            details["session_id"] = stay.session_id
        return self._case(
            rule,
            place,
            match,
            where,
            device_id=stay.device_id,
            ts=now,
            plate=stay.plate,
            evidence=evidence,
            details=details,
        )

    def _stretch_start(self, rule: Rule, local: dt.datetime) -> dt.datetime | None:
        """Start of the unbroken stretch, ending at ``local``, during which ``rule`` applied;
        None if it has applied for over a week (or has no windows): always."""
        windows = rule.active + rule.allowed
        if not windows:
            return None
        boundaries: set[dt.datetime] = set()
        for back in range(9):
            day = local.date() - dt.timedelta(days=back)
            for w in windows:
                if day.weekday() in w.days:
                    boundaries.update(w.occurrence(day, self.zone))
        for boundary in sorted((b for b in boundaries if b <= local), reverse=True):
            if not rule.applies_at(boundary - _TICK):
                return boundary
        return None
