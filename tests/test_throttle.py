"""The rate limit's pure parts: token buckets with an injected clock, the bounded table, and
who the client is behind trusted proxies."""

from __future__ import annotations

import ipaddress
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.api.throttle import RateTable, client_key, forwarded_client


def test_a_fresh_client_gets_its_burst_then_waits_one_token() -> None:
    t = RateTable(rate=4.0, burst=3, capacity=10)
    assert [t.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert t.take("a", 100.0) == pytest.approx(0.25)
    assert t.take("a", 100.1) == pytest.approx(0.15)  # refused: nothing taken
    assert t.take("a", 100.25) == 0.0
    assert t.take("a", 100.25) == pytest.approx(0.25)


def test_refill_stops_at_the_burst() -> None:
    t = RateTable(rate=10.0, burst=2, capacity=10)
    t.take("a", 0.0)
    assert [t.take("a", 1000.0) for _ in range(3)] == [0.0, 0.0, pytest.approx(0.1)]


def test_a_clock_stepping_back_refills_nothing() -> None:
    t = RateTable(rate=1.0, burst=1, capacity=10)
    assert t.take("a", 50.0) == 0.0
    assert t.take("a", 10.0) == pytest.approx(1.0)
    assert t.take("a", 50.5) == pytest.approx(0.5)
    assert t.take("a", 51.0) == 0.0


def test_clients_have_their_own_buckets() -> None:
    t = RateTable(rate=1.0, burst=1, capacity=10)
    assert t.take("a", 0.0) == 0.0
    assert t.take("a", 0.0) > 0
    assert t.take("b", 0.0) == 0.0


def test_the_table_is_bounded_and_forgets_the_least_recently_seen() -> None:
    t = RateTable(rate=1.0, burst=1, capacity=100)
    t.take("keep", 0.0)
    for i in range(10_000):
        t.take(f"spray-{i}", 1.0)
        if i % 50 == 0:
            t.take("keep", 1.0)  # seen often: stays remembered (and limited)
        assert len(t) <= 100
    assert t.take("keep", 1.0) > 0, "an active client was forgotten by the spray"
    assert t.take("spray-0", 1.0) == 0.0, "long unseen: forgotten, back with a full bucket"


@pytest.mark.parametrize("bad", [(0.0, 1, 1), (-1.0, 1, 1), (1.0, 0, 1), (1.0, 1, 0)])
def test_nonsense_parameters_are_refused(bad: tuple[float, int, int]) -> None:
    with pytest.raises(ValueError, match="rate > 0"):
        RateTable(*bad)


steps = st.lists(
    st.tuples(st.sampled_from("abc"), st.floats(min_value=0, max_value=5, allow_nan=False)),
    max_size=300,
)


@given(
    rate=st.floats(min_value=0.1, max_value=50),
    burst=st.integers(min_value=1, max_value=20),
    gaps=steps,
)
def test_no_client_ever_gets_more_than_burst_plus_rate_times_time(
    rate: float, burst: int, gaps: list[tuple[str, float]]
) -> None:
    """Over any sequence, each client's admissions in [first, t] are at most
    burst + rate * (t - first); a refusal's wait is exact: waiting it admits."""
    t = RateTable(rate, burst, capacity=10)
    now = 0.0
    first: dict[str, float] = {}
    admitted: dict[str, int] = {}
    for key, gap in gaps:
        now += gap
        first.setdefault(key, now)
        wait = t.take(key, now)
        if wait == 0.0:
            admitted[key] = admitted.get(key, 0) + 1
        else:
            assert 0 < wait <= 1 / rate + 1e-9
        bound = burst + rate * (now - first[key])
        assert admitted.get(key, 0) <= math.floor(bound + 1e-9)
    for key in first:
        wait = t.take(key, now)
        if wait:
            assert t.take(key, now + wait + 1e-9) == 0.0


@pytest.mark.parametrize(
    ("address", "key"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("::ffff:198.51.100.9", "198.51.100.9"),
        ("unknown", "unknown"),
    ],
)
def test_client_keys(address: str, key: str) -> None:
    assert client_key(address) == key


PROXIES = [ipaddress.ip_network("10.1.0.0/16"), ipaddress.ip_network("127.0.0.1/32")]


@pytest.mark.parametrize(
    ("peer", "xff", "client"),
    [
        ("198.51.100.1", ["203.0.113.5"], "198.51.100.1"),  # not a proxy: its header is a lie
        ("10.1.2.3", ["203.0.113.5"], "203.0.113.5"),
        ("10.1.2.3", ["1.1.1.1, 203.0.113.5"], "203.0.113.5"),  # the client wrote 1.1.1.1
        ("10.1.2.3", ["203.0.113.5, 10.1.9.9"], "203.0.113.5"),  # two proxies
        ("10.1.2.3", ["203.0.113.5", "10.1.9.9"], "203.0.113.5"),  # two headers
        ("10.1.2.3", [], "10.1.2.3"),
        ("10.1.2.3", ["10.1.9.9"], "10.1.2.3"),
        ("10.1.2.3", ["not-an-ip"], "10.1.2.3"),
        ("127.0.0.1", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_forwarded_client(peer: str, xff: list[str], client: str) -> None:
    assert forwarded_client(peer, xff, PROXIES) == client
