"""The one map's geometry, pure: WGS-84 longitude/latitude (as stored) to the SVG's
coordinates, in a plain equirectangular projection scaled by the cosine of the frame's middle
latitude (a town of a few km: the distortion is far below a marker's size). No datum shift:
the map shows WGS-84, not GCJ-02 or BD-09, so it matches the coordinates the API gives."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

WIDTH = 1000.0  # the SVG's viewBox width; its height follows the town's shape
DATUM = "WGS-84"

Point = tuple[float, float]  # (lon, lat) in degrees


@dataclass(frozen=True, slots=True)
class Frame:
    west: float
    south: float
    east: float
    north: float
    height: float  # viewBox height (width is WIDTH)

    def xy(self, lon: float, lat: float) -> tuple[float, float]:
        """SVG coordinates of a point (y grows southwards)."""
        x = (lon - self.west) / (self.east - self.west) * WIDTH
        y = (self.north - lat) / (self.north - self.south) * self.height
        return round(x, 1), round(y, 1)

    def contains(self, lon: float, lat: float) -> bool:
        return self.west <= lon <= self.east and self.south <= lat <= self.north


def frame_of(points: Iterable[Point], margin: float = 0.05) -> Frame:
    """The smallest frame around *points*, widened by *margin* of its size on every side (and
    to at least ~100 m, so one site alone still makes a map). ValueError when there are none."""
    pts = list(points)
    if not pts:
        raise ValueError("a map needs at least one point")
    west, east = min(p[0] for p in pts), max(p[0] for p in pts)
    south, north = min(p[1] for p in pts), max(p[1] for p in pts)
    dlon = max(east - west, 0.001) * margin + 0.0005
    dlat = max(north - south, 0.001) * margin + 0.0005
    west, east, south, north = west - dlon, east + dlon, south - dlat, north + dlat
    ground_w = (east - west) * math.cos(math.radians((north + south) / 2))
    height = WIDTH * (north - south) / ground_w
    return Frame(west, south, east, north, round(height, 1))


def path_d(frame: Frame, points: Sequence[Point], closed: bool = False) -> str:
    """An SVG path through *points* (``Z``-closed for a zone's ring)."""
    parts = []
    for i, (lon, lat) in enumerate(points):
        x, y = frame.xy(lon, lat)
        parts.append(f"{'M' if i == 0 else 'L'}{x:g} {y:g}")
    return " ".join(parts) + (" Z" if closed and parts else "")


def street_line(points: Sequence[Point]) -> list[Point]:
    """An on-street segment's kerb line from its berths: the berths ordered along the
    segment's longer extent (berths are painted along one street)."""
    if len(points) < 2:
        return list(points)
    lon_span = max(p[0] for p in points) - min(p[0] for p in points)
    lat_span = max(p[1] for p in points) - min(p[1] for p in points)
    scale = math.cos(math.radians(points[0][1]))
    axis = 0 if lon_span * scale >= lat_span else 1
    return sorted(points, key=lambda p: p[axis])


def fill_level(free: int, capacity: int, unknown: int) -> str:
    """How a site's marker is coloured: ``unknown`` when no berth state is known, ``full``,
    ``low`` (under 10 % free), else ``free``."""
    known = capacity - unknown
    if capacity <= 0 or known <= 0:
        return "unknown"
    if free <= 0:
        return "full"
    return "low" if free * 10 < capacity else "free"
