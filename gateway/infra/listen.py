"""A dedicated PostgreSQL connection that LISTENs on one channel: what each part of a cluster
that follows the other instances' writes opens (berths, body cams, gates), in one place.

The connection is never handed back to the pool: it may hold session-level advisory locks
(leaders, liveness), which must go with it, not live on in a pooled connection.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

Notified = Callable[[Any, int, str, str], None]  # asyncpg's (connection, pid, channel, payload)


@contextlib.asynccontextmanager
async def listening(
    engine: AsyncEngine, channel: str, notified: Notified, lost: Callable[[], None]
) -> AsyncIterator[Any]:
    """The asyncpg connection, LISTENing on *channel* (``notified`` per NOTIFY), with ``lost``
    called when the server or the network ends it; closed (and discarded) on exit."""
    conn = await engine.connect()
    try:
        raw = await conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.add_listener(channel, notified)
        driver.add_termination_listener(lambda *_: lost())
        yield driver
    finally:
        with contextlib.suppress(Exception):
            await conn.invalidate()
        with contextlib.suppress(Exception):
            await conn.close()
