"""Waiting that a stop request cannot slip past, on Python 3.11.

``asyncio.wait_for`` on 3.11 swallows a cancellation that lands in the same loop turn as the
awaited thing completes (bpo-42130, fixed in 3.12): the caller gets the result, the
cancellation stays pending on the task (``cancelling()``) and nothing raises it. A service
loop that waits that way can then carry on after its TaskGroup asked it to stop, and the
gateway never stops. Our own waits use :func:`wait_for` (``asyncio.timeout``, which has no
inner task to lose the cancellation in); after a library's call that waits with
``asyncio.wait_for`` inside (pymodbus, aiomqtt, ocpp), :func:`honour_cancel`."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


async def wait_for(aw: Awaitable[T], timeout: float | None) -> T:  # noqa: ASYNC109 (its point)
    """``asyncio.wait_for`` without the lost cancellation: TimeoutError after *timeout*."""
    async with asyncio.timeout(timeout):
        return await aw


def honour_cancel() -> None:
    """Raise CancelledError if this task was asked to stop and the request got lost on the
    way (see the module's docstring)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError
