"""One server-sent event stream of site counts, for every page and client that follows them
(``/api/v1/vacancies/stream``, the web page's map): a snapshot first, then each change as
*render* makes it, a keepalive comment while nothing changes, a fresh snapshot for a client
that fell behind and lost changes, and the bus subscription given back however it ends.

A page may carry more on the same stream (the map's field markers): *extra* takes the events
that are not counts, and says when it has something to send of its own (``wait_s``/``due``:
updates it held back, a presence check)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Protocol

from fastapi import Request
from fastapi.responses import StreamingResponse

from drivers.aio import wait_for
from events import Event, SiteCountsChanged
from gateway.infra.bus import Subscription

__all__ = ["Extra", "counts_stream"]


class Extra(Protocol):
    """What a page adds to the counts stream (times: the loop's monotonic clock)."""

    def take(self, ev: Event, now: float) -> bytes: ...

    def due(self, now: float) -> bytes: ...

    def wait_s(self, now: float) -> float | None: ...


def counts_stream(
    request: Request,
    bus_unsubscribe: Callable[[Subscription], None],
    sub: Subscription,
    keepalive_s: float,
    snapshot: Callable[[], bytes],
    render: Callable[[SiteCountsChanged], bytes],
    extra: Extra | None = None,
) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            yield b"retry: 2000\n\n"
            yield snapshot()
            dropped = sub.dropped
            quiet_since = loop.time()
            while True:
                now = loop.time()
                timeout = keepalive_s - (now - quiet_since)
                soon = None if extra is None else extra.wait_s(now)
                try:
                    wait = timeout if soon is None else min(timeout, soon)
                    ev = await wait_for(sub.get(), max(0.0, wait))
                except TimeoutError:
                    now = loop.time()
                    out = b"" if extra is None else extra.due(now)
                    if out:
                        quiet_since = now
                        yield out
                        continue
                    if now - quiet_since < keepalive_s:
                        continue
                    if await request.is_disconnected():
                        return
                    quiet_since = now
                    yield b": keepalive\n\n"
                    continue
                if sub.dropped != dropped:  # fell behind and lost changes: resynchronise
                    dropped = sub.dropped
                    yield snapshot()
                quiet_since = loop.time()
                if isinstance(ev, SiteCountsChanged):
                    yield render(ev)
                elif extra is not None:
                    out = extra.take(ev, quiet_since)
                    if out:
                        yield out
        finally:
            bus_unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
