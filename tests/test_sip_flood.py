"""Flood control: who pays for a message. A registered device pays for itself, everything else
per source host with a higher cap; a flood from one address or device never costs another
device's messages."""

from __future__ import annotations

from drivers.sip.flood import FloodControl, FloodLimits, TokenBuckets

CAM_A = "62072500081380000001"
CAM_B = "62072500081380000002"
NAT = "203.0.113.7"  # one public address, many cams behind it
LIMITS = FloodLimits(device_rate_per_s=2, device_burst=5, host_rate_per_s=10, host_burst=20)


def sent(gate: FloodControl, device: str | None, host: str, n: int, now: float) -> int:
    return sum(gate.allow(device, host, now) for _ in range(n))


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    b = TokenBuckets(rate=2, burst=3)
    assert [b.allow("x", 0.0) for _ in range(4)] == [True, True, True, False]
    assert b.allow("x", 0.5)  # one token back after half a second at 2/s
    assert not b.allow("x", 0.5)
    assert b.allow("y", 0.5)  # another key: its own bucket


def test_a_noisy_cam_behind_a_nat_costs_its_neighbour_nothing() -> None:
    gate = FloodControl(LIMITS)
    assert sent(gate, CAM_A, NAT, 1000, 0.0) == 5  # its burst, then refused
    assert sent(gate, CAM_B, NAT, 5, 0.0) == 5  # same host, its own bucket: all through
    assert gate.refused_device == 995 and gate.refused_host == 0


def test_a_flood_from_an_unregistered_source_costs_no_registered_device() -> None:
    gate = FloodControl(LIMITS)
    assert sent(gate, None, NAT, 1000, 0.0) == 20  # the host's (higher) cap
    assert sent(gate, CAM_A, NAT, 5, 0.0) == 5  # a registered cam on that host: untouched
    assert gate.refused_host == 980


def test_unregistered_sources_pay_per_host_with_a_higher_cap_than_a_device() -> None:
    gate = FloodControl(LIMITS)
    assert sent(gate, None, NAT, 1000, 0.0) > sent(gate, CAM_A, "198.51.100.1", 1000, 0.0)
    assert sent(gate, None, "198.51.100.2", 20, 0.0) == 20  # another host: its own bucket
    assert sent(gate, None, NAT, 10, 1.0) == 10  # refilled at the host's rate


def test_the_tables_are_bounded() -> None:
    gate = FloodControl(LIMITS, max_tracked=100)
    for i in range(1000):
        gate.allow(f"{i:020d}", NAT, 0.0)
        gate.allow(None, f"10.0.{i // 256}.{i % 256}", 0.0)
    assert len(gate.devices) == 100 and len(gate.hosts) == 100
