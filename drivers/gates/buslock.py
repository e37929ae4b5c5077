"""A bus's lock that lets a gate command go before the polls (``ModbusHub`` holds one)."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import AsyncIterator

__all__ = ["BusLock"]


class BusLock:
    """The bus's lock, with two queues: a command's requests (its write, its read-back) are
    served before the polls waiting for the bus, so a raise on a shared RS-485 line does not
    wait behind a poll of every unit (each a full timeout when a unit is silent). Within a
    queue, first come first served; a request in progress is never cut short."""

    def __init__(self) -> None:
        self._held = False
        self._queues: tuple[deque[asyncio.Future[None]], ...] = (deque(), deque())

    def locked(self) -> bool:
        return self._held

    @contextlib.asynccontextmanager
    async def hold(self, urgent: bool = False) -> AsyncIterator[None]:
        if self._held or any(self._queues):
            queue = self._queues[0 if urgent else 1]
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            queue.append(fut)
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._release()  # handed over just as we were cancelled: pass it on
                elif fut in queue:
                    queue.remove(fut)
                raise
        else:
            self._held = True
        try:
            yield
        finally:
            self._release()

    def _release(self) -> None:
        for queue in self._queues:
            while queue:
                fut = queue.popleft()
                if not fut.done():
                    fut.set_result(None)  # the lock passes to it, still held
                    return
        self._held = False
