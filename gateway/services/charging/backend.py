"""The gateway's OCPP ``ChargerBackend``: authentication, live sessions, id tags and
transaction ids; the charging runtime that the supervisor runs and the API reads.

Authentication reads one row by primary key; everything a charger says goes to the
recorder's queue, never straight to the database."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from drivers.aio import wait_for
from drivers.ocpp import AuthVerdict, IdTagStatus, Link
from events import ChargerBooted, ChargerHeartbeat, Event
from gateway.directory.audit import Actor
from gateway.directory.chargers import check_password, store_password
from gateway.infra.storage.schema import (
    ChargerRow,
    SiteRow,
)
from gateway.services.charging.fleet import HIGH_WATER
from gateway.services.charging.watch import Watch

log = logging.getLogger(__name__)


class ChargingRuntime(Watch):
    """The gateway's ``ChargerBackend`` and the tasks behind it (``record``, ``watch``)."""

    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        async with self._sessions() as db:
            row = await db.get(ChargerRow, charger_id)
            verdict = check_password(row, password)
            if verdict == "ok" and row is not None and charger_id not in self.chargers:
                # Registered a moment ago (the change feed is on its way): register it now, so
                # its first messages are not lost.
                self._put(row, await db.get(SiteRow, row.site_id) if row.site_id else None)
        return verdict  # type: ignore[return-value]  # counted by the server

    async def password_changed(self, charger_id: str, password: str) -> None:
        """The charger took a new password (the command's answer waits for this write)."""
        async with self._sessions.begin() as db:
            # Asked for by an operator's command; what the audit log can say is that the
            # charger took it over OCPP.
            actor = Actor(f"charger:{charger_id}", None, "system", "ocpp", "")
            await store_password(db, charger_id, password, self._clock(), actor=actor)

    async def admit(self, charger_id: str, protocol: str, remote: str) -> bool:
        """Alone: always. In a cluster: once this instance holds the charger (taken over from
        the instance that had it, which closes its connection), see ``cluster.claim``."""
        if self.cluster is None:
            return True
        return await self.cluster.claim(charger_id, protocol, remote)

    def connected(self, charger_id: str, session: Link) -> None:
        self.live[charger_id] = session
        self._metrics.chargers_connected.set(len(self.live))

    def disconnected(self, charger_id: str, session: Link, reason: str) -> None:
        if self.live.get(charger_id) is session:
            del self.live[charger_id]
            if self.cluster is not None:  # once its last writes are in: free for the others
                self.cluster.let_go(charger_id)
        self._metrics.chargers_connected.set(len(self.live))

    def publish(self, event: Event) -> None:
        if isinstance(event, ChargerBooted | ChargerHeartbeat):
            info = self.chargers.get(event.device_id)
            if info is not None and info.lifecycle == "commissioned":
                # its first good message: active at once here, durable through the activator
                self.chargers[event.device_id] = replace(info, lifecycle="active")
                self.activate(event.device_id)
        self._bus.publish(event)
        self._queue.put_nowait((event, self._clock()))
        self._events_queued += 1
        if self._room.is_set() and self._queue.qsize() >= HIGH_WATER:
            self._room.clear()
            self._metrics.ocpp_rejected.labels("recorder", "backpressure").inc()

    async def durable(self) -> bool:
        target = self._events_queued
        if self._events_written >= target:
            return True
        waiter = asyncio.get_running_loop().create_future()
        self._durable_waiters.append((target, waiter))
        try:
            await wait_for(asyncio.shield(waiter), self.config.durable_reply_timeout_s)
        except TimeoutError:
            self._metrics.ocpp_rejected.labels("recorder", "reply_not_durable").inc()
            return False
        return True

    async def room(self) -> None:
        if not self._room.is_set():
            await self._room.wait()

    def heartbeat_interval(self, charger_id: str) -> int:
        return self.config.heartbeat_s

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        """Public chargers: any well-formed id tag may charge (the app or card settles the
        bill); an empty or oversized one may not."""
        return "Accepted" if 0 < len(id_tag) <= 36 else "Invalid"

    def new_transaction_id(self, charger_id: str) -> int:
        tx, self._next_tx = self._next_tx, self._next_tx + 1
        return tx

    def connector_count(self, charger_id: str) -> int | None:
        info = self.chargers.get(charger_id)
        return None if info is None else info.connectors

    def count(self, what: str, reason: str) -> None:
        self._metrics.ocpp_rejected.labels(what, reason).inc()
