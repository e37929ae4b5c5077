"""Event bus: publish never blocks; a slow subscriber loses only its oldest events, counted."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from events import InputRejected, SiteCountsChanged
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics

T0 = datetime(2026, 11, 28, tzinfo=UTC)


def counts(i: int) -> SiteCountsChanged:
    return SiteCountsChanged(
        device_id="d",
        ts=T0,
        site_id=f"s{i}",
        capacity=10,
        free=i % 10,
        occupied=10 - i % 10,
        unknown=0,
    )


async def test_each_subscriber_gets_every_event_in_order() -> None:
    bus = EventBus(Metrics(), queue_size=100)
    a, b = bus.subscribe("a"), bus.subscribe("b")
    for i in range(50):
        bus.publish(counts(i))
    got_a = [a.queue.get_nowait().site_id for _ in range(50)]  # type: ignore[attr-defined]
    got_b = [(await b.get()).site_id for _ in range(50)]  # type: ignore[attr-defined]
    assert got_a == got_b == [f"s{i}" for i in range(50)]


async def test_slow_subscriber_does_not_block_and_drops_are_counted() -> None:
    metrics = Metrics()
    bus = EventBus(metrics, queue_size=10)
    slow = bus.subscribe("slow")
    fast = bus.subscribe("fast", maxsize=1000)
    for i in range(100):  # would deadlock if publish waited for the slow consumer
        bus.publish(counts(i))
    assert slow.queue.qsize() == 10 and slow.dropped == 90
    assert fast.queue.qsize() == 100 and fast.dropped == 0
    # The newest survive (a live view wants the latest counts).
    assert [slow.queue.get_nowait().site_id for _ in range(10)] == [  # type: ignore[attr-defined]
        f"s{i}" for i in range(90, 100)
    ]
    text = metrics.render().decode()
    assert 'citygate_bus_dropped_total{subscriber="slow"} 90.0' in text
    assert 'citygate_events_total{kind="SiteCountsChanged"} 100.0' in text


async def test_filter_and_unsubscribe() -> None:
    bus = EventBus(Metrics())
    async with bus.subscription("only-counts", lambda e: isinstance(e, SiteCountsChanged)) as sub:
        bus.publish(InputRejected(device_id="x", ts=T0, source="s", reason="r"))
        bus.publish(counts(1))
        got = await asyncio.wait_for(sub.get(), 1)
        assert isinstance(got, SiteCountsChanged)
        assert sub.queue.empty()
    assert bus.depths() == {}
