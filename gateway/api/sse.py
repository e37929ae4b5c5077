"""One server-sent event stream of site counts, for every page and client that follows them
(``/api/v1/vacancies/stream``, the web page's map): a snapshot first, then each change as
*render* makes it, a keepalive comment while nothing changes, a fresh snapshot for a client
that fell behind and lost changes, and the bus subscription given back however it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from fastapi import Request
from fastapi.responses import StreamingResponse

from drivers.aio import wait_for
from events import SiteCountsChanged
from gateway.infra.bus import Subscription

__all__ = ["counts_stream"]


def counts_stream(
    request: Request,
    bus_unsubscribe: Callable[[Subscription], None],
    sub: Subscription,
    keepalive_s: float,
    snapshot: Callable[[], bytes],
    render: Callable[[SiteCountsChanged], bytes],
) -> StreamingResponse:
    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            yield snapshot()
            dropped = sub.dropped
            while True:
                try:
                    ev = await wait_for(sub.get(), keepalive_s)
                except TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": keepalive\n\n"
                    continue
                if sub.dropped != dropped:  # fell behind and lost changes: resynchronise
                    dropped = sub.dropped
                    yield snapshot()
                assert isinstance(ev, SiteCountsChanged)
                yield render(ev)
        finally:
            bus_unsubscribe(sub)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
