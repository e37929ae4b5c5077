"""Chargers across several gateway instances on one PostgreSQL database (issue 16).

* **At most one connection per charger across the cluster.** The instance that accepts a
  charger's websocket takes a session-level advisory lock keyed by the charger id
  (``cluster_rules.lock_key``) on one dedicated connection, and records itself in
  ``charger_connections``. If another instance holds the lock, it asks that one (NOTIFY
  ``release``) to close its connection and waits up to ``TAKEOVER_S`` for the lock: a charger
  that comes back through another instance after a network blip, while its old TCP
  connection is half open, takes over at once instead of being locked out. The old holder
  closes its connection (reason ``moved``), waits until its last writes of the charger are
  committed, deletes its row, and only then unlocks. A killed instance's connection dies with
  it and so do its locks: its rows are stale (the lock is free) and are removed by the next
  instance that looks.
* **Commands through any instance.** An instance without the connection writes the command in
  ``charger_commands`` and NOTIFYs the holder, which runs it over its websocket and writes
  the outcome back (NOTIFY ``done``). Both also poll, so a lost notification costs a second.
* **The same state everywhere.** After each recorder batch the writer NOTIFYs the chargers it
  wrote (``state``); the others re-read their rows and history into their book. An instance
  that takes a charger over reads it first, so health, sessions and history carry over.
  The *leader* (one instance, holding ``LEADER_KEY``) sweeps the chargers nobody holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.ocpp import Link
from events import ChargerDisconnected
from gateway.infra.storage.schema import ChargerConnectionRow
from gateway.services.charging.backend import ChargingRuntime
from gateway.services.charging.cluster_link import MIRROR_DELAY_S, POLL_S, default_instance_id
from gateway.services.charging.cluster_rules import (
    TAKEOVER_S,
    Notice,
    decode,
    for_me,
    lock_key,
    state_notices,
)
from gateway.services.charging.relay import CommandRelay

log = logging.getLogger(__name__)


__all__ = ["ChargerCluster", "default_instance_id", "load_charging"]

MOVE_CLOSE_S = 1.0  # a moved charger's old connection gets this long to close cleanly
STALE_CHECK_S = 10.0  # the leader looks for chargers held by dead instances this often


class ChargerCluster(CommandRelay):
    """This instance's part in the cluster: the locks it holds, the commands it relays and
    runs, the other instances' chargers it mirrors (``start``, then ``run`` as a task)."""

    # -- start, run, close ----------------------------------------------------------------------

    async def start(self) -> frozenset[str]:
        """Open the dedicated connection (locks, LISTEN), become leader if nobody is, remove
        the rows of dead instances; returns the chargers live instances hold now."""
        await self._connect()
        await self._try_lead()
        return await self._held_elsewhere()

    async def run(self) -> None:
        """Mirror other instances' writes, run commands sent to us, keep leadership, and
        reconnect if the dedicated connection dies (a task of the gateway)."""
        loop = asyncio.get_running_loop()
        next_check = loop.time()
        while True:
            if self._lost.is_set():
                await self._recover()
            with contextlib.suppress(TimeoutError):
                await wait_for(self._mirror_wake.wait(), POLL_S)
            try:
                if self._mirror_wake.is_set() or self._mirror:
                    await asyncio.sleep(MIRROR_DELAY_S)  # take the notices of one batch together
                    self._mirror_wake.clear()
                    ids, self._mirror = self._mirror - self.owned, set()
                    history, self._mirror_history = self._mirror_history, set()
                    try:
                        await self._reload(ids, history)
                    except Exception:
                        self._mirror |= ids  # read them with the next notice or poll
                        self._mirror_history |= history
                        raise
                await self._take_pending()
                await self._try_lead()
                if self.leader and loop.time() >= next_check:
                    next_check = loop.time() + STALE_CHECK_S
                    await self._held_elsewhere()  # holders killed since: their chargers
                self._warn.recovered()
            except Exception as exc:
                self._warn.failed(f"{type(exc).__name__}: {exc}")

    async def close(self) -> None:
        """Let every charger go at once (the gateway stops; its connections are closed)."""
        for task in list(self._tasks):
            task.cancel()
        if self.owned:
            with contextlib.suppress(Exception):
                async with self._sessions.begin() as db:
                    await db.execute(
                        delete(ChargerConnectionRow).where(
                            ChargerConnectionRow.instance_id == self.instance
                        )
                    )
                    for charger_id in self.owned:
                        await self._notify(db, Notice("owner", self.instance, charger=charger_id))
        self.owned.clear()
        await self._disconnect()  # the locks go with the connection

    # -- who holds what -------------------------------------------------------------------------

    async def _held_elsewhere(self) -> frozenset[str]:
        """The chargers live instances hold; rows of dead ones (their lock is free) go."""
        async with self._sessions() as db:
            rows = list((await db.execute(select(ChargerConnectionRow))).scalars())
        alive: set[str] = set()
        instances = {r.instance_id for r in rows} - {self.instance}
        living = {i for i in instances if await self._alive(i)}
        for r in rows:
            if r.instance_id == self.instance:
                continue
            if r.instance_id not in living and await self._stale(r.charger_id, r.instance_id):
                self._gone(r.charger_id)
                continue
            alive.add(r.charger_id)
            self.owners[r.charger_id] = r.instance_id
        return frozenset(alive)

    def _gone(self, charger_id: str) -> None:
        """The instance that held *charger_id* died with its connection: the leader says the
        charger is disconnected, so it goes offline after the grace unless it comes back."""
        book = self._fleet.book
        if not self.leader or charger_id not in book or charger_id in self._fleet.live:
            return
        if book.state(charger_id).connected:
            self._fleet.publish(
                ChargerDisconnected(device_id=charger_id, ts=self._clock(), reason="gateway gone")
            )

    def responsible(self, charger_id: str) -> bool:
        """Whether this instance sweeps *charger_id* though it has no connection to it: it
        is the leader and no other instance holds the charger."""
        owner = self.owners.get(charger_id)
        return self.leader and (owner is None or owner == self.instance)

    def holder(self, charger_id: str) -> str | None:
        """The instance the charger is connected to, as this one knows it."""
        if charger_id in self._fleet.live:
            return self.instance
        return self.owners.get(charger_id)

    async def claim(self, charger_id: str, protocol: str, remote: str) -> bool:
        """Take *charger_id* for a connection that just opened here: at once if free, after
        its holder let it go (asked to), or False after ``TAKEOVER_S``."""
        async with self._claim_lock(charger_id):
            if charger_id in self.owned:
                await self._record(charger_id, protocol, remote)
                return True
            key = lock_key(charger_id)
            freed = self._freed.setdefault(charger_id, asyncio.Event())
            loop = asyncio.get_running_loop()
            deadline = loop.time() + TAKEOVER_S
            asked = False
            while not await self._try_lock(key):
                if not asked:
                    asked = True
                    async with self._sessions() as db:
                        row = await db.get(ChargerConnectionRow, charger_id)
                    if row is not None:
                        log.info("%s: taking over from %s", charger_id, row.instance_id)
                        await self._send(
                            Notice("release", self.instance, to=row.instance_id, charger=charger_id)
                        )
                left = deadline - loop.time()
                if left <= 0:
                    log.warning("%s: still held by another gateway", charger_id)
                    return False
                freed.clear()
                with contextlib.suppress(TimeoutError):
                    await wait_for(freed.wait(), min(0.1, left))
            try:
                # as its last holder left it
                await self._fleet.reload({charger_id}, taking=True)
                self.owned.add(charger_id)
                await self._record(charger_id, protocol, remote)
            except BaseException:
                self.owned.discard(charger_id)
                with contextlib.suppress(Exception):
                    await self._unlock(key)
                raise
            return True

    async def _record(self, charger_id: str, protocol: str, remote: str) -> None:
        async with self._sessions.begin() as db:
            row = await db.get(ChargerConnectionRow, charger_id)
            if row is None:
                row = ChargerConnectionRow(charger_id=charger_id)
                db.add(row)
            row.instance_id = self.instance
            row.since = self._clock()
            row.protocol = protocol[:16]
            row.remote = remote[:64]
            await self._notify(db, Notice("owner", self.instance, charger=charger_id,
                                          owner=self.instance))  # fmt: skip
        self.owners[charger_id] = self.instance

    def let_go(self, charger_id: str) -> None:
        """The charger's connection here ended: free it once its last writes are in."""
        if charger_id in self.owned:
            self._spawn(self._release(charger_id))

    async def _release(self, charger_id: str) -> None:
        async with self._claim_lock(charger_id):
            if charger_id in self._fleet.live or charger_id not in self.owned:
                return  # it came back meanwhile: still ours
            await self._fleet.durable()  # its disconnect is written before another takes it
            if charger_id in self._fleet.live:
                return
            try:
                async with self._sessions.begin() as db:
                    await db.execute(
                        delete(ChargerConnectionRow).where(
                            ChargerConnectionRow.charger_id == charger_id,
                            ChargerConnectionRow.instance_id == self.instance,
                        )
                    )
                    await self._notify(db, Notice("owner", self.instance, charger=charger_id))
                self.owners.pop(charger_id, None)
            finally:
                self.owned.discard(charger_id)
                with contextlib.suppress(Exception):
                    await self._unlock(lock_key(charger_id))

    # -- notices --------------------------------------------------------------------------------

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = decode(payload)
        if notice is None or not for_me(notice, self.instance):
            return
        if notice.op == "release":
            session = self._fleet.live.get(notice.charger)
            if session is not None:
                log.info("%s moved to %s: closing here", notice.charger, notice.sender)
                self._spawn(self._move_away(session))
        elif notice.op == "owner":
            if notice.owner:
                self.owners[notice.charger] = notice.owner
            else:
                if self.owners.get(notice.charger) == notice.sender:
                    del self.owners[notice.charger]
                freed = self._freed.get(notice.charger)
                if freed is not None:
                    freed.set()
        elif notice.op == "command":
            self._spawn(self._serve(notice.id))
        elif notice.op == "done":
            waiter = self._answers.get(notice.id)
            if waiter is not None and not waiter.done():
                waiter.set_result(None)
        elif notice.op == "state":
            self._mirror.update(notice.ids)
            if notice.history:
                self._mirror_history.update(notice.ids)
            self._mirror_wake.set()

    async def _move_away(self, session: Link) -> None:
        """Close the connection of a charger that moved; one that does not answer the close
        within ``MOVE_CLOSE_S`` (half open after a network blip) is dropped."""
        try:
            await wait_for(session.close("moved"), MOVE_CLOSE_S)
        except TimeoutError:
            session.drop("moved")

    async def announce(self, db: AsyncSession, ids: set[str], history: set[str]) -> None:
        """In the recorder's transaction: tell the others which chargers it wrote (and which
        of them got a status or an outage: their history is re-read too)."""
        for notice in state_notices(self.instance, ids - history):
            await self._notify(db, notice)
        for notice in state_notices(self.instance, history, history=True):
            await self._notify(db, notice)

    async def _reload(self, ids: set[str], history: set[str]) -> None:
        ids = {i for i in ids if i in self._fleet.chargers}
        if not ids:
            return
        async with self._sessions() as db:
            rows = (
                await db.execute(
                    select(ChargerConnectionRow).where(ChargerConnectionRow.charger_id.in_(ids))
                )
            ).scalars()
            held = {r.charger_id: r.instance_id for r in rows}
        for charger_id in ids:
            if charger_id in held:
                self.owners[charger_id] = held[charger_id]
            elif self.owners.get(charger_id) != self.instance:
                self.owners.pop(charger_id, None)
        await self._fleet.reload(ids, self.owned.__contains__, history=history & ids)


async def load_charging(
    engine: AsyncEngine,
    sessions: async_sessionmaker[Any],
    charging: ChargingRuntime,
    clock: Callable[[], datetime],
    *,
    serves: bool,
) -> ChargerCluster | None:
    """Load the charging runtime at start; on PostgreSQL (several instances may share it)
    join the cluster first. A restart of the cluster (this instance leads: no other one
    serves chargers) ends every socket; an instance joining a running cluster takes the state
    as it is."""
    if engine.dialect.name != "postgresql":
        await charging.load()
        return None
    cluster = ChargerCluster(engine, sessions, charging, clock, serves=serves)
    try:
        elsewhere = await cluster.start()
        charging.cluster = cluster
        await charging.load(restart=cluster.leader, elsewhere=elsewhere)
    except BaseException:
        await cluster.close()
        raise
    return cluster
