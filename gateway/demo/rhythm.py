"""The town's daily rhythm: occupancy by hour and tariff class, dwell times, arrival rates."""

from __future__ import annotations

import math
from types import MappingProxyType
from typing import Final

from gateway.directory.town import SiteKind

# (night floor, peak) occupancy by tariff class: the centre (A) is busier than the edge (C).
_CLASS_LEVELS: Final = MappingProxyType({"A": (0.12, 0.92), "B": (0.10, 0.75), "C": (0.06, 0.55)})
_DEFAULT_LEVELS: Final = (0.10, 0.75)
# Dwell time, log-normal: (median seconds, sigma). Kerbside stays are short; car parks longer.
_DWELL: Final = MappingProxyType(
    {SiteKind.ON_STREET: (35 * 60.0, 0.9), SiteKind.CAR_PARK: (80 * 60.0, 1.0)}
)


def _bump(hour: float, centre: float, width: float) -> float:
    d = abs(hour - centre) % 24.0
    d = min(d, 24.0 - d)
    return math.exp(-(d * d) / (2 * width * width))


def occupancy_probability(local_hour: float, segment_class: str) -> float:
    """Share of berths occupied at *local_hour* (0..24, site time) for a tariff class.

    Low at night, a morning peak around 09:00, a midday plateau, an evening peak around
    18:30; the class sets the floor and the height. Steady-state target, not a sample."""
    night, peak = _CLASS_LEVELS.get(segment_class.upper(), _DEFAULT_LEVELS)
    shape = (
        _bump(local_hour, 9.0, 1.4)
        + 0.95 * _bump(local_hour, 18.5, 1.8)
        + 0.70 * _bump(local_hour, 13.5, 2.6)
    )
    return night + (peak - night) * min(1.0, shape)


def _mean_dwell_s(kind: SiteKind) -> float:
    median, sigma = _DWELL[kind]
    return median * math.exp(sigma * sigma / 2)


def _arrival_rate(p: float, mean_dwell_s: float) -> float:
    """Arrivals per second at a free berth that keep occupancy at *p* (birth-death balance:
    free * rate = occupied / mean dwell)."""
    return p / ((1.0 - p) * mean_dwell_s)
