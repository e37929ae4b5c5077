"""In-process event bus: publish never blocks, each subscriber has its own bounded queue.

A slow subscriber therefore cannot stall ingest. When its queue is full the oldest event is
dropped (it is the least useful to a live view), and the drop is counted per subscriber and
logged once per episode, so nothing is lost silently. Consumers that must not lose state
(persistence) do not rely on the bus: they read the authoritative state (write-behind).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from events import Event
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

Filter = Callable[[Event], bool]


@dataclass(eq=False)
class Subscription:
    name: str
    queue: asyncio.Queue[Event]
    accepts: Filter | None
    dropped: int = 0
    _warn: OnceLogger = field(init=False)

    def __post_init__(self) -> None:
        self._warn = OnceLogger(log, f"bus subscriber {self.name}")

    async def get(self) -> Event:
        return await self.queue.get()

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[Event]:
        while True:
            yield await self.queue.get()


class EventBus:
    def __init__(self, metrics: Metrics, queue_size: int = 10_000) -> None:
        self._subs: list[Subscription] = []
        self._metrics = metrics
        self._queue_size = queue_size
        self.published = 0
        self._kind_counters: dict[type[Event], Any] = {}

    def publish(self, event: Event) -> None:
        """Hand *event* to every interested subscriber, without waiting."""
        self.published += 1
        counter = self._kind_counters.get(type(event))
        if counter is None:
            counter = self._kind_counters[type(event)] = self._metrics.events.labels(event.kind)
        counter.inc()
        for sub in self._subs:
            if sub.accepts is not None and not sub.accepts(event):
                continue
            q = sub.queue
            if q.full():
                q.get_nowait()
                sub.dropped += 1
                self._metrics.bus_dropped.labels(sub.name).inc()
                sub._warn.failed(f"queue full ({q.maxsize}), dropping oldest events")
            elif sub._warn.failing and q.qsize() < q.maxsize // 2:
                sub._warn.recovered()
            q.put_nowait(event)

    def subscribe(
        self, name: str, accepts: Filter | None = None, maxsize: int | None = None
    ) -> Subscription:
        sub = Subscription(name, asyncio.Queue(maxsize or self._queue_size), accepts)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        if sub in self._subs:
            self._subs.remove(sub)

    @asynccontextmanager
    async def subscription(
        self, name: str, accepts: Filter | None = None, maxsize: int | None = None
    ) -> AsyncIterator[Subscription]:
        sub = self.subscribe(name, accepts, maxsize)
        try:
            yield sub
        finally:
            self.unsubscribe(sub)

    def depths(self) -> dict[str, int]:
        return {s.name: s.queue.qsize() for s in self._subs}
