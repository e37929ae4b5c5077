"""An officer on foot patrol, for the simulated body cams: from site to site of the town along
straight legs (first along the east-west street, then along the north-south one, as in the
grid around 鼓楼十字), at walking speed, with a pause at each site. Deterministic for a seed;
pure (times are POSIX seconds passed in, positions WGS-84 degrees), so the same walk can be
asserted in tests: every point lies inside the bounding box of the sites.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Bounds", "Patrol", "Spot", "bounds_of"]

M_PER_DEG_LAT = 110_540.0
M_PER_DEG_LON_EQ = 111_320.0


@dataclass(frozen=True)
class Spot:
    """Where the officer is at a moment, and how he moves."""

    latitude: float
    longitude: float
    speed_kmh: float
    direction_deg: float  # clockwise from north; kept from the last leg while standing


@dataclass(frozen=True)
class Bounds:
    south: float
    west: float
    north: float
    east: float

    def contains(self, lat: float, lon: float, slack: float = 1e-9) -> bool:
        return (
            self.south - slack <= lat <= self.north + slack
            and self.west - slack <= lon <= self.east + slack
        )


def bounds_of(points: Sequence[tuple[float, float]]) -> Bounds:
    """The bounding box of (lat, lon) points."""
    if not points:
        raise ValueError("no points")
    lats = [p[0] for p in points]
    lons = [p[1] for p in points]
    return Bounds(min(lats), min(lons), max(lats), max(lons))


@dataclass(frozen=True)
class _Leg:
    start: float  # POSIX seconds
    end: float
    a: tuple[float, float]  # (lat, lon)
    b: tuple[float, float]
    direction: float


class Patrol:
    """The walk of one officer. ``at(t)`` for non-decreasing *t* (older legs are dropped)."""

    def __init__(
        self,
        sites: Sequence[tuple[float, float]],
        rng: random.Random,
        start: float,
        *,
        speed_mps: tuple[float, float] = (0.9, 1.5),
        pause_s: tuple[float, float] = (30.0, 240.0),
    ) -> None:
        if len(sites) < 2:
            raise ValueError("a patrol needs at least two sites")
        self.sites = list(sites)
        self.rng = rng
        self.speed_mps = speed_mps
        self.pause_s = pause_s
        self._here = rng.randrange(len(self.sites))
        self._legs: list[_Leg] = []
        self._until = start
        self._direction = rng.uniform(0, 360)
        self._stand(start, rng.uniform(0, pause_s[1]))  # met mid-pause

    def _stand(self, start: float, seconds: float) -> None:
        p = self.sites[self._here]
        self._legs.append(_Leg(start, start + seconds, p, p, self._direction))
        self._until = start + seconds

    def _walk_to_next(self) -> None:
        nxt = self.rng.randrange(len(self.sites) - 1)
        nxt += nxt >= self._here
        a, b = self.sites[self._here], self.sites[nxt]
        corner = (a[0], b[1])  # east-west first, then north-south
        speed = self.rng.uniform(*self.speed_mps)
        t = self._until
        for p, q in ((a, corner), (corner, b)):
            dist, direction = _distance_m(p, q), _bearing(p, q)
            if dist < 0.5:
                continue
            self._direction = direction
            self._legs.append(_Leg(t, t + dist / speed, p, q, direction))
            t += dist / speed
        self._here = nxt
        self._until = t
        self._stand(t, self.rng.uniform(*self.pause_s))

    def at(self, t: float) -> Spot:
        while self._until <= t:
            self._walk_to_next()
        while len(self._legs) > 1 and self._legs[0].end <= t:
            self._legs.pop(0)
        leg = next(leg for leg in self._legs if leg.end > t)
        span = leg.end - leg.start
        f = min(1.0, max(0.0, (t - leg.start) / span)) if span > 0 else 1.0
        lat = leg.a[0] + (leg.b[0] - leg.a[0]) * f
        lon = leg.a[1] + (leg.b[1] - leg.a[1]) * f
        moving = leg.a != leg.b and span > 0
        speed = _distance_m(leg.a, leg.b) / span * 3.6 if moving else 0.0
        return Spot(lat, lon, speed, leg.direction)


def _distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Equirectangular distance: exact enough over a county town's few kilometres."""
    mid = math.radians((a[0] + b[0]) / 2)
    dy = (b[0] - a[0]) * M_PER_DEG_LAT
    dx = (b[1] - a[1]) * M_PER_DEG_LON_EQ * math.cos(mid)
    return math.hypot(dx, dy)


def _bearing(a: tuple[float, float], b: tuple[float, float]) -> float:
    mid = math.radians((a[0] + b[0]) / 2)
    dy = b[0] - a[0]
    dx = (b[1] - a[1]) * math.cos(mid)
    return math.degrees(math.atan2(dx, dy)) % 360.0
