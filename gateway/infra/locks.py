"""One asyncio lock per key (a berth, a vehicle, a session), forgotten when nobody holds it."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Hashable


class KeyedLocks:
    """``locks[key]`` is the same lock for everyone using *key* at the same time; a lock that
    no task holds or waits for is dropped (weak references), so the map never grows with the
    number of keys ever seen."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[Hashable, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def __getitem__(self, key: Hashable) -> asyncio.Lock:
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        return lock
