"""drivers.aio: waits that a stop request cannot slip past (Python 3.11's wait_for can)."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from drivers.aio import honour_cancel, wait_for


async def _cancel_as_it_completes(waiter: object) -> asyncio.Task[str]:
    """Start a task waiting on an event through *waiter*, then set the event and cancel the
    task in the same loop turn: the race that loses the cancellation in 3.11's wait_for."""
    ready = asyncio.Event()
    event = asyncio.Event()

    async def loop_body() -> str:
        ready.set()
        await waiter(event.wait(), 10)  # type: ignore[operator]
        return "carried on"

    task = asyncio.create_task(loop_body())
    await ready.wait()
    await asyncio.sleep(0)  # the task is now inside its wait
    event.set()
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    return task


async def test_a_cancel_landing_as_the_wait_completes_is_honoured() -> None:
    task = await _cancel_as_it_completes(wait_for)
    assert task.cancelled()


async def test_the_race_is_real_with_the_standard_library() -> None:
    """The reason drivers.aio exists; if a Python upgrade fixes it, this says so."""
    import sys

    task = await _cancel_as_it_completes(asyncio.wait_for)
    if sys.version_info >= (3, 12):
        assert task.cancelled()
    else:
        assert task.result() == "carried on"  # the cancellation was lost
        assert task.cancelling() == 1


async def test_wait_for_times_out_and_returns_results() -> None:
    with pytest.raises(TimeoutError):
        await wait_for(asyncio.Event().wait(), 0.01)
    assert await wait_for(asyncio.sleep(0, "done"), 1) == "done"
    assert await wait_for(asyncio.sleep(0, "no bound"), None) == "no bound"


async def test_honour_cancel_raises_only_when_a_cancel_is_pending() -> None:
    honour_cancel()  # nothing pending: no-op

    async def swallowed() -> None:
        with contextlib.suppress(asyncio.CancelledError):  # what the buggy wait_for does
            await asyncio.sleep(10)
        honour_cancel()

    task = asyncio.create_task(swallowed())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait({task}, timeout=5)
    assert task.cancelled()
