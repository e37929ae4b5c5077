"""The simulated vehicle's flight (pure): the patrol stays on its loop and visits every
waypoint, a return flies straight to the launch point, descends and lands, once."""

from __future__ import annotations

import math

import pytest

from gateway.demo.mav_vehicle import Flight

LOOP = [(38.7800, 101.0800), (38.7810, 101.0800), (38.7810, 101.0815), (38.7800, 101.0815)]


def _inside(p: tuple[float, float]) -> bool:
    return 38.7800 - 1e-9 <= p[0] <= 38.7810 + 1e-9 and 101.0800 - 1e-9 <= p[1] <= 101.0815 + 1e-9


def test_the_patrol_keeps_to_its_loop_at_its_speed() -> None:
    f = Flight(LOOP, speed_mps=10.0, altitude_m=50.0, launch=LOOP[0])
    targets = set()
    for _ in range(2000):  # 200 s: more than one lap of about 480 m
        before = f.position
        assert f.step(0.1) is None
        assert _inside(f.position)
        targets.add(f.target)
        north = (f.position[0] - before[0]) * 111_320
        east = (f.position[1] - before[1]) * 111_320 * math.cos(math.radians(before[0]))
        assert math.hypot(north, east) <= 1.0 + 1e-6  # 10 m/s for 0.1 s
        assert 0 <= f.heading_deg < 360
    assert targets == {0, 1, 2, 3}
    assert f.relative_alt_m == 50.0 and f.phase == "patrol"


def test_a_return_flies_home_and_lands_once() -> None:
    f = Flight(LOOP, speed_mps=10.0, altitude_m=6.0, launch=(38.7805, 101.0807))
    for _ in range(30):
        f.step(0.5)
    assert f.return_home() is True
    assert f.return_home() is False  # already on the way
    phases = [p for _ in range(400) if (p := f.step(0.1)) is not None]
    assert phases == ["landing", "landed"]
    assert f.position == (38.7805, 101.0807)
    assert f.relative_alt_m == 0.0 and f.velocity == (0.0, 0.0)
    assert f.return_home() is False


def test_the_heading_points_the_way_it_flies() -> None:
    f = Flight([(38.78, 101.08), (38.79, 101.08)], speed_mps=5.0, altitude_m=10.0, launch=LOOP[0])
    f.step(1.0)
    assert f.heading_deg == pytest.approx(0.0)  # north
    assert f.velocity[0] == pytest.approx(5.0) and f.velocity[1] == pytest.approx(0.0)


@pytest.mark.parametrize(("points", "speed"), [([], 5.0), (LOOP, 0.0)])
def test_a_flight_needs_waypoints_and_speed(
    points: list[tuple[float, float]], speed: float
) -> None:
    with pytest.raises(ValueError, match="waypoints"):
        Flight(points, speed_mps=speed, altitude_m=10.0, launch=LOOP[0])
