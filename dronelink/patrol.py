"""Patrol areas and the alerts a drone raises, as pure logic (no I/O, no clock).

A patrol area is a polygon, one WGS-84 ring of ``(lon, lat)`` pairs (closed or not; a point on
the boundary is inside). Distances are metres on a local equirectangular projection, exact
enough for a town's areas (a few km across; rings may not cross the antimeridian).

The alert rules are one state machine per drone: ``observe`` takes the state and a report,
``tick`` the state and the time (a link that went silent), and both give the new state and the
alerts it raised or cleared. Each alert is raised once and cleared once:

* ``left_area``: raised when the drone is outside its area by more than ``area_margin_m``,
  cleared when it is back inside by more than the margin (on the boundary it keeps its state,
  so a drone flying along the edge does not flap);
* ``low_battery``: raised below ``low_battery_percent``, cleared at or above it plus
  ``battery_hysteresis``;
* ``link_lost``: raised when the link says so or nothing was heard for ``link_lost_after_s``,
  cleared by the next report over a live link.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from dronelink.model import DroneReport, LinkState

__all__ = [
    "Alert",
    "AlertKind",
    "AlertRules",
    "PatrolArea",
    "Watch",
    "observe",
    "tick",
]

EARTH_RADIUS_M = 6_371_008.8  # mean radius


class AlertKind(enum.StrEnum):
    LEFT_AREA = "left_area"
    LOW_BATTERY = "low_battery"
    LINK_LOST = "link_lost"


@dataclass(frozen=True, slots=True)
class PatrolArea:
    """One ring of ``(lon, lat)`` WGS-84 degrees, at least three distinct corners."""

    ring: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        ring = tuple((float(lon), float(lat)) for lon, lat in self.ring)
        if len(ring) > 1 and ring[0] == ring[-1]:
            ring = ring[:-1]  # a closed ring: the closing corner is implied
        for lon, lat in ring:
            if not (math.isfinite(lon) and math.isfinite(lat)):
                raise ValueError("patrol area: corners must be finite numbers")
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                raise ValueError(f"patrol area: ({lon}, {lat}) is not a WGS-84 lon/lat pair")
        if len(set(ring)) < 3:
            raise ValueError("patrol area: a ring needs at least three distinct corners")
        lons = [lon for lon, _ in ring]
        if max(lons) - min(lons) > 180:
            raise ValueError("patrol area: rings may not cross the antimeridian")
        if _area2(ring) == 0.0:
            raise ValueError("patrol area: the corners are on one line (no area)")
        object.__setattr__(self, "ring", ring)

    def contains(self, lon: float, lat: float) -> bool:
        """Inside or on the boundary (even-odd rule). A non-finite point is never inside."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return False
        ring = self.ring
        inside = False
        j = len(ring) - 1
        for i in range(len(ring)):
            xi, yi = ring[i]
            xj, yj = ring[j]
            if _on_segment(lon, lat, xi, yi, xj, yj):
                return True
            if (yi > lat) != (yj > lat):
                x_cross = xi + (lat - yi) * (xj - xi) / (yj - yi)
                if lon < x_cross:
                    inside = not inside
            j = i
        return inside

    def distance_to_edge_m(self, lon: float, lat: float) -> float:
        """Metres from the point to the nearest edge (``inf`` for a non-finite point)."""
        if not (math.isfinite(lon) and math.isfinite(lat)):
            return math.inf
        kx = math.cos(math.radians(lat)) * math.radians(1.0) * EARTH_RADIUS_M
        ky = math.radians(1.0) * EARTH_RADIUS_M
        best = math.inf
        ring = self.ring
        for i in range(len(ring)):
            ax, ay = ring[i - 1]
            bx, by = ring[i]
            best = min(
                best,
                _segment_distance(
                    0.0, 0.0, (ax - lon) * kx, (ay - lat) * ky, (bx - lon) * kx, (by - lat) * ky
                ),
            )
        return best

    def signed_distance_m(self, lon: float, lat: float) -> float:
        """Negative inside, positive outside, 0 on the boundary (``inf`` for no point)."""
        d = self.distance_to_edge_m(lon, lat)
        if math.isinf(d):
            return d
        return -d if self.contains(lon, lat) else d

    @classmethod
    def of(cls, ring: Sequence[Sequence[float]]) -> PatrolArea:
        """From ``[[lon, lat], ...]`` as the town file and the database keep it."""
        pairs = []
        for corner in ring:
            if len(corner) != 2:
                raise ValueError("patrol area: every corner is a [lon, lat] pair")
            pairs.append((float(corner[0]), float(corner[1])))
        return cls(tuple(pairs))


def _area2(ring: tuple[tuple[float, float], ...]) -> float:
    s = 0.0
    for i in range(len(ring)):
        x1, y1 = ring[i - 1]
        x2, y2 = ring[i]
        s += x1 * y2 - x2 * y1
    return s


def _on_segment(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> bool:
    cross = (bx - ax) * (py - ay) - (by - ay) * (px - ax)
    scale = max(abs(bx - ax), abs(by - ay), 1e-12)
    if abs(cross) > 1e-12 * scale:
        return False
    return min(ax, bx) <= px <= max(ax, bx) and min(ay, by) <= py <= max(ay, by)


def _segment_distance(px: float, py: float, ax: float, ay: float, bx: float, by: float) -> float:
    dx, dy = bx - ax, by - ay
    length2 = dx * dx + dy * dy
    t = 0.0 if length2 == 0 else max(0.0, min(1.0, ((px - ax) * dx + (py - ay) * dy) / length2))
    return math.hypot(px - (ax + t * dx), py - (ay + t * dy))


@dataclass(frozen=True, slots=True)
class AlertRules:
    low_battery_percent: float = 30.0
    battery_hysteresis: float = 5.0  # percentage points above the threshold to clear
    area_margin_m: float = 15.0
    link_lost_after_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0 <= self.low_battery_percent <= 100:
            raise ValueError("low_battery_percent must be 0..100")
        if self.battery_hysteresis < 0 or self.area_margin_m < 0:
            raise ValueError("hysteresis and margin must not be negative")
        if not self.link_lost_after_s > 0:
            raise ValueError("link_lost_after_s must be positive")


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    raised: bool  # False: cleared
    at: datetime
    detail: str


@dataclass(frozen=True, slots=True)
class Watch:
    """What the rules remember of one drone: the alerts standing and when it was last heard."""

    active: frozenset[AlertKind] = frozenset()
    last_heard: datetime | None = None

    def has(self, kind: AlertKind) -> bool:
        return kind in self.active


def _set(
    watch: Watch, kind: AlertKind, on: bool, at: datetime, detail: str, out: list[Alert]
) -> Watch:
    if on == (kind in watch.active):
        return watch
    out.append(Alert(kind, on, at, detail))
    active = watch.active | {kind} if on else watch.active - {kind}
    return replace(watch, active=active)


def observe(
    watch: Watch, report: DroneReport, area: PatrolArea | None, rules: AlertRules
) -> tuple[Watch, tuple[Alert, ...]]:
    """The rules after *report*. *area* None: the drone has no patrol area (no area alert)."""
    out: list[Alert] = []
    at = report.at
    if report.link is LinkState.LOST:
        return _set(watch, AlertKind.LINK_LOST, True, at, "the link reports it lost", out), tuple(
            out
        )
    if report.link is LinkState.ONLINE:
        if watch.last_heard is None or at > watch.last_heard:
            watch = replace(watch, last_heard=at)
        watch = _set(watch, AlertKind.LINK_LOST, False, at, "heard again", out)
    fix = report.fix
    if area is not None and fix is not None:
        d = area.signed_distance_m(fix.lon, fix.lat)
        if not math.isinf(d):
            if d > rules.area_margin_m:
                detail = f"{d:.0f} m outside its patrol area at {fix.lat:.6f},{fix.lon:.6f}"
                watch = _set(watch, AlertKind.LEFT_AREA, True, at, detail, out)
            elif d < -rules.area_margin_m:
                watch = _set(watch, AlertKind.LEFT_AREA, False, at, "back in its patrol area", out)
    battery = report.battery_percent
    if battery is not None and math.isfinite(battery):
        if battery < rules.low_battery_percent:
            detail = f"battery {battery:.0f}% (below {rules.low_battery_percent:.0f}%)"
            watch = _set(watch, AlertKind.LOW_BATTERY, True, at, detail, out)
        elif battery >= rules.low_battery_percent + rules.battery_hysteresis:
            watch = _set(watch, AlertKind.LOW_BATTERY, False, at, f"battery {battery:.0f}%", out)
    return watch, tuple(out)


def tick(
    watch: Watch, now: datetime, rules: AlertRules, listening_since: datetime | None = None
) -> tuple[Watch, tuple[Alert, ...]]:
    """The rules at *now*: a drone heard once and silent for ``link_lost_after_s`` is lost.
    Silence counts from *listening_since* at the earliest (when the gateway started to
    listen): a gateway that was down heard nothing, which says nothing of the drone."""
    out: list[Alert] = []
    heard = watch.last_heard
    if heard is not None and listening_since is not None:
        heard = max(heard, listening_since)
    if heard is not None and (now - heard).total_seconds() > rules.link_lost_after_s:
        silent = (now - heard).total_seconds()
        watch = _set(watch, AlertKind.LINK_LOST, True, now, f"silent for {silent:.0f} s", out)
    return watch, tuple(out)
