"""The bus lock: a gate command's requests go before the polls waiting for the bus (on a
shared RS-485 line a poll of a silent unit takes a whole timeout), first come first served
within each kind, and a waiter cancelled at any moment never loses or keeps the lock."""

from __future__ import annotations

import asyncio

from drivers.gates.buslock import BusLock


async def _take(lock: BusLock, name: str, urgent: bool, order: list[str]) -> None:
    async with lock.hold(urgent):
        order.append(name)
        await asyncio.sleep(0)


async def test_commands_go_before_waiting_polls_and_each_kind_in_order() -> None:
    lock, order = BusLock(), list[str]()
    async with lock.hold():
        tasks = [
            asyncio.create_task(_take(lock, name, urgent, order))
            for name, urgent in (
                ("poll-1", False),
                ("poll-2", False),
                ("cmd-1", True),
                ("cmd-2", True),
            )
        ]
        await asyncio.sleep(0)  # all four are waiting
        assert lock.locked() and order == []
    await asyncio.gather(*tasks)
    assert order == ["cmd-1", "cmd-2", "poll-1", "poll-2"]
    assert not lock.locked()


async def test_a_free_lock_is_taken_at_once() -> None:
    lock = BusLock()
    async with lock.hold():
        assert lock.locked()
    assert not lock.locked()


async def test_a_cancelled_waiter_neither_loses_nor_keeps_the_lock() -> None:
    lock, order = BusLock(), list[str]()
    async with lock.hold():
        gone = asyncio.create_task(_take(lock, "gone", True, order))
        after = asyncio.create_task(_take(lock, "after", False, order))
        await asyncio.sleep(0)
        gone.cancel()
        await asyncio.sleep(0)
    await after
    assert gone.cancelled() and order == ["after"] and not lock.locked()


async def test_a_waiter_cancelled_as_the_lock_is_handed_to_it_passes_it_on() -> None:
    lock, order = BusLock(), list[str]()
    held = lock.hold()
    await held.__aenter__()
    first = asyncio.create_task(_take(lock, "first", True, order))
    second = asyncio.create_task(_take(lock, "second", False, order))
    await asyncio.sleep(0)  # both wait
    await held.__aexit__(None, None, None)  # the lock is handed to "first" (no yield) ...
    first.cancel()  # ... which is cancelled before it runs
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled() and order == ["second"] and not lock.locked()
