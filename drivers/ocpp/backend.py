"""What the OCPP driver needs from the rest of citygate, and an in-memory version of it.

The driver answers chargers; everything that involves the database, the registry or the bus
goes through a :class:`ChargerBackend` (the gateway implements it). Its synchronous methods
must never block (a charger's messages are answered one after the other: a slow database would
stall the charger); its async ones are awaited by the transport, outside the core.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, Protocol, TypeVar

from drivers.ocpp.commands import CommandResult
from drivers.ocpp.handlers import CoreBackend, IdTagStatus
from events import Event

__all__ = ["AuthVerdict", "ChargerBackend", "IdTagStatus", "Link", "MemoryBackend"]

E = TypeVar("E", bound=Event)

# Anything but "ok" refuses the connection (401) and is counted under its own name.
AuthVerdict = Literal["ok", "unknown", "bad_password", "no_password", "retired"]


class Link(Protocol):
    """A connected charger as the backend sees it (a :class:`drivers.ocpp.ChargerSession`)."""

    charger_id: str
    protocol: str
    remote: str
    connected_at: datetime
    last_message_at: datetime

    @property
    def closed(self) -> bool: ...

    async def command(
        self,
        name: str,
        params: Mapping[str, Any],
        timeout: float = 30,  # noqa: ASYNC109
    ) -> CommandResult: ...

    async def probe(self, timeout: float = 10) -> bool: ...  # noqa: ASYNC109

    def begin_close(self, reason: str) -> None:
        """Start closing the connection with *reason* (returns at once)."""
        ...

    async def close(self, reason: str) -> None: ...

    def drop(self, reason: str) -> None:
        """Drop the connection at once, without a close handshake."""
        ...


class ChargerBackend(CoreBackend, Protocol):
    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        """Basic-auth check during the websocket handshake; ``None`` when no password was
        sent. Must be fast: a whole fleet reconnects at once after an outage."""
        ...

    async def password_changed(self, charger_id: str, password: str) -> None:
        """The charger accepted a new basic-auth password (1.6 AuthorizationKey, 2.0.1
        SecurityCtrlr.BasicAuthPassword): from now on it opens its connection with it. The
        command's answer waits for this (store the hash before the charger reconnects)."""
        ...

    async def admit(self, charger_id: str, protocol: str, remote: str) -> bool:
        """After the handshake, before the charger is served: whether this connection may
        serve it (False: it is closed with 1013, try again later). Several gateways on one
        database use it to keep at most one connection per charger across them."""
        ...

    def connected(self, charger_id: str, session: Link) -> None:
        """A charger is online. An older session of the same id has already been closed
        (with reason ``replaced``) and reported through :meth:`disconnected`."""
        ...

    def disconnected(self, charger_id: str, session: Link, reason: str) -> None:
        """*session* ended. Compare *session* by identity before forgetting the charger."""
        ...

    def publish(self, event: Event) -> None:
        """Hand an event on; never blocks (queue database writes)."""
        ...

    async def durable(self) -> bool:
        """Wait until every event published so far is recorded: True, or False after the
        backend's deadline. The answer to a transaction message waits for this, so a charger
        is never told that a start, a stop or a meter value was taken before it is durable."""
        ...

    async def room(self) -> None:
        """Wait until the backend can take more events. A session awaits this before it reads
        its next frame, so a recorder that falls behind (or a database that is away) slows
        the chargers down through TCP instead of dropping what they said."""
        ...

    def count(self, what: str, reason: str) -> None:
        """Count a rejection: ("connection", reason) or ("message", reason)."""
        ...


class MemoryBackend:
    """A complete backend in memory, for tests and benches: records what it was told."""

    def __init__(
        self,
        passwords: Mapping[str, str | None] | None = None,
        *,
        id_tags: Mapping[str, IdTagStatus] | None = None,
        heartbeat_s: int = 300,
    ) -> None:
        self.passwords: dict[str, str | None] = dict(passwords or {})
        self.id_tags: dict[str, IdTagStatus] = dict(id_tags or {})
        self.heartbeat_s = heartbeat_s
        self.events: list[Event] = []
        self.counts: Counter[tuple[str, str]] = Counter()
        self.sessions: dict[str, Link] = {}
        # (charger_id, "connected"|"disconnected", reason)
        self.history: list[tuple[str, str, str]] = []
        self._next_tx = 1
        self.connectors: dict[str, int] = {}  # registered connector counts (else unknown)

    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        if charger_id not in self.passwords:
            return "unknown"
        expected = self.passwords[charger_id]
        if expected is None:
            return "ok"  # provisioned without a password (security profile 0: tests only)
        return "ok" if password == expected else "bad_password"

    async def password_changed(self, charger_id: str, password: str) -> None:
        self.passwords[charger_id] = password

    async def admit(self, charger_id: str, protocol: str, remote: str) -> bool:
        return True

    def connected(self, charger_id: str, session: Link) -> None:
        self.sessions[charger_id] = session
        self.history.append((charger_id, "connected", ""))

    def disconnected(self, charger_id: str, session: Link, reason: str) -> None:
        if self.sessions.get(charger_id) is session:
            del self.sessions[charger_id]
        self.history.append((charger_id, "disconnected", reason))

    def publish(self, event: Event) -> None:
        self.events.append(event)

    async def room(self) -> None:
        return None

    async def durable(self) -> bool:
        return True

    def heartbeat_interval(self, charger_id: str) -> int:
        return self.heartbeat_s

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        return self.id_tags.get(id_tag, "Invalid")

    def new_transaction_id(self, charger_id: str) -> int:
        tx, self._next_tx = self._next_tx, self._next_tx + 1
        return tx

    def connector_count(self, charger_id: str) -> int | None:
        return self.connectors.get(charger_id)

    def count(self, what: str, reason: str) -> None:
        self.counts[(what, reason)] += 1

    def of(self, kind: type[E], charger_id: str | None = None) -> list[E]:
        """The recorded events of one type (and charger), in the order they were published."""
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (charger_id is None or e.device_id == charger_id)
        ]
