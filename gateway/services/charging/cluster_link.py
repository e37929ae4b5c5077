"""The cluster's one dedicated PostgreSQL connection: the advisory locks it holds
(session-level: they die with it, and with the process after a ``kill -9``), LISTEN on the
chargers' channel, NOTIFY; and the rule that tells a live holder from a dead one. The base
of ``relay.CommandRelay`` and ``cluster.ChargerCluster``."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from gateway.infra.storage.schema import ChargerConnectionRow
from gateway.logs import OnceLogger
from gateway.services.charging.backend import ChargingRuntime
from gateway.services.charging.cluster_rules import (
    CHANNEL,
    LEADER_KEY,
    Notice,
    encode,
    instance_key,
    lock_key,
)

log = logging.getLogger(__name__)

POLL_S = 1.0  # commands addressed to us, leadership, a relayed answer: looked for this often
MIRROR_DELAY_S = 0.1  # state notices within this long are read together


def default_instance_id() -> str:
    """``host-pid-xxxx``: readable in ``GET /api/v1/chargers/{id}`` and unique per process."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}-{secrets.token_hex(2)}"


class ClusterLink:
    """The connection, the locks and the bookkeeping every part of the cluster shares."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[Any],
        fleet: ChargingRuntime,
        clock: Callable[[], datetime],
        *,
        serves: bool = True,
        instance_id: str | None = None,
    ) -> None:
        self.instance = instance_id or default_instance_id()
        self._engine = engine
        self._sessions = sessions
        self._fleet = fleet
        self._clock = clock
        self._serves = serves  # this instance accepts chargers (may lead)
        self.owned: set[str] = set()  # chargers whose lock this instance holds
        self.owners: dict[str, str] = {}  # charger -> the instance that holds it (any)
        self.leader = False
        self._conn: AsyncConnection | None = None
        self._driver: Any = None
        self._query = asyncio.Lock()  # the dedicated connection runs one query at a time
        self._claims: dict[str, asyncio.Lock] = {}  # one claim or release per charger at once
        self._freed: dict[str, asyncio.Event] = {}  # set when the holder says it let go
        self._answers: dict[str, asyncio.Future[None]] = {}  # relayed command id -> done
        self._mirror: set[str] = set()  # chargers other instances wrote, to re-read
        self._mirror_history: set[str] = set()  # ... with their history
        self._mirror_wake = asyncio.Event()
        self._lost = asyncio.Event()  # the dedicated connection died: locks are gone
        self._tasks: set[asyncio.Task[Any]] = set()
        self._warn = OnceLogger(log, "charger cluster")

    # -- the dedicated connection ---------------------------------------------------------------

    async def _connect(self) -> None:
        conn = await self._engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            # This instance's own lock: held while it lives, so others can tell (one try per
            # instance, not per charger).
            await driver.execute("SELECT pg_advisory_lock($1)", instance_key(self.instance))
            await driver.add_listener(CHANNEL, self._notified)
            driver.add_termination_listener(self._terminated)
        except BaseException:
            await conn.invalidate()
            await conn.close()
            raise
        self._conn, self._driver = conn, driver
        self._lost.clear()

    async def _disconnect(self) -> None:
        conn, self._conn, self._driver = self._conn, None, None
        self.leader = False
        if conn is not None:
            # Never hand a connection that holds locks back to the pool.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        """A NOTIFY on the chargers' channel (``ChargerCluster`` acts on it)."""

    def _terminated(self, *_: Any) -> None:
        self._lost.set()
        self._mirror_wake.set()

    async def _recover(self) -> None:
        """The connection died with every lock: close our chargers' connections (they come
        back, here or elsewhere) and connect again."""
        log.warning("charger cluster: lost the database connection that holds the locks")
        for charger_id in list(self.owned):
            session = self._fleet.live.get(charger_id)
            if session is not None:
                session.begin_close("gateway lost its database")
        self.owned.clear()
        await self._disconnect()
        while True:
            try:
                # Our rows name chargers we no longer hold: gone before we hold anything again.
                async with self._sessions.begin() as db:
                    await db.execute(
                        delete(ChargerConnectionRow).where(
                            ChargerConnectionRow.instance_id == self.instance
                        )
                    )
                await self._connect()
                return
            except Exception as exc:
                self._warn.failed(f"reconnecting: {type(exc).__name__}: {exc}")
                await asyncio.sleep(POLL_S)

    async def _fetch(self, sql: str, *args: Any) -> Any:
        async with self._query:
            if self._driver is None:
                raise ConnectionError("charger cluster: no database connection")
            return await self._driver.fetchval(sql, *args)

    async def _try_lock(self, key: int) -> bool:
        return bool(await self._fetch("SELECT pg_try_advisory_lock($1)", key))

    async def _unlock(self, key: int) -> None:
        await self._fetch("SELECT pg_advisory_unlock($1)", key)

    async def _try_lead(self) -> None:
        if self._serves and not self.leader:
            self.leader = await self._try_lock(LEADER_KEY)
            if self.leader:
                log.info("charger cluster: %s sweeps the chargers nobody holds", self.instance)

    async def _notify(self, db: AsyncSession, notice: Notice) -> None:
        """NOTIFY in *db*'s transaction: delivered when it commits."""
        await db.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": encode(notice)})

    async def _send(self, notice: Notice) -> None:
        await self._fetch("SELECT pg_notify($1, $2)", CHANNEL, encode(notice))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _alive(self, instance_id: str) -> bool:
        """Whether *instance_id* still holds its own lock (it lives)."""
        key = instance_key(instance_id)
        if not await self._try_lock(key):
            return True
        await self._unlock(key)
        return False

    async def _stale(self, charger_id: str, instance_id: str) -> bool:
        """Whether *instance_id*'s row of *charger_id* outlived it (then it is deleted): the
        row is written after the lock is taken and deleted before it is freed, so a row whose
        lock is free belongs to a dead instance."""
        async with self._claim_lock(charger_id):
            if charger_id in self.owned or not await self._try_lock(lock_key(charger_id)):
                return False
            try:
                async with self._sessions.begin() as db:
                    await db.execute(
                        delete(ChargerConnectionRow).where(
                            ChargerConnectionRow.charger_id == charger_id,
                            ChargerConnectionRow.instance_id == instance_id,
                        )
                    )
            finally:
                await self._unlock(lock_key(charger_id))
        self.owners.pop(charger_id, None)
        log.info("charger cluster: %s was held by %s, which is gone", charger_id, instance_id)
        return True

    def _claim_lock(self, charger_id: str) -> asyncio.Lock:
        lock = self._claims.get(charger_id)
        if lock is None:
            lock = self._claims[charger_id] = asyncio.Lock()
        return lock
