"""What the OCPP protocol layer needs from the rest of citygate, and an in-memory version of it.

The protocol layer answers chargers; everything that involves the database, the registry or
the bus goes through a :class:`ChargerBackend`. Its synchronous methods must never block (the
charger's receive loop is sequential: a slow database would stall the charger), and its async
ones must be fast (in-memory).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal, Protocol, TypeVar

from events import Event

if TYPE_CHECKING:
    from charging.ocpp.session import ChargerSession

__all__ = ["AuthVerdict", "ChargerBackend", "IdTagStatus", "MemoryBackend"]

E = TypeVar("E", bound=Event)

# Anything but "ok" refuses the connection (401) and is counted under its own name.
AuthVerdict = Literal["ok", "unknown", "bad_password", "no_password", "retired"]
# The statuses both OCPP 1.6 (idTagInfo) and 2.0.1 (idTokenInfo) know.
IdTagStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]


class ChargerBackend(Protocol):
    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        """Basic-auth check during the websocket handshake; ``None`` when no password was
        sent. Must be fast: a whole fleet reconnects at once after an outage."""
        ...

    def connected(self, charger_id: str, session: ChargerSession) -> None:
        """A charger is online. An older session of the same id has already been closed
        (with reason ``replaced``) and reported through :meth:`disconnected`."""
        ...

    def disconnected(self, charger_id: str, session: ChargerSession, reason: str) -> None:
        """*session* ended. Compare *session* by identity before forgetting the charger."""
        ...

    def publish(self, event: Event) -> None:
        """Hand an event on; never blocks (queue database writes)."""
        ...

    def heartbeat_interval(self, charger_id: str) -> int:
        """Seconds between heartbeats, given to the charger in the BootNotification answer."""
        ...

    async def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        """Whether *id_tag* (an RFID card, an app token) may charge here; in-memory, fast."""
        ...

    def new_transaction_id(self, charger_id: str) -> int:
        """A fresh OCPP 1.6 transaction id (the central system assigns them); in-memory."""
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
        self.sessions: dict[str, ChargerSession] = {}
        self.history: list[
            tuple[str, str, str]
        ] = []  # (charger_id, "connected"|"disconnected", reason)
        self._next_tx = 1

    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        if charger_id not in self.passwords:
            return "unknown"
        expected = self.passwords[charger_id]
        if expected is None:
            return "ok"  # provisioned without a password (security profile 0: tests only)
        return "ok" if password == expected else "bad_password"

    def connected(self, charger_id: str, session: ChargerSession) -> None:
        self.sessions[charger_id] = session
        self.history.append((charger_id, "connected", ""))

    def disconnected(self, charger_id: str, session: ChargerSession, reason: str) -> None:
        if self.sessions.get(charger_id) is session:
            del self.sessions[charger_id]
        self.history.append((charger_id, "disconnected", reason))

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def heartbeat_interval(self, charger_id: str) -> int:
        return self.heartbeat_s

    async def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        return self.id_tags.get(id_tag, "Invalid")

    def new_transaction_id(self, charger_id: str) -> int:
        tx, self._next_tx = self._next_tx, self._next_tx + 1
        return tx

    def count(self, what: str, reason: str) -> None:
        self.counts[(what, reason)] += 1

    def of(self, kind: type[E], charger_id: str | None = None) -> list[E]:
        """The recorded events of one type (and charger), in the order they were published."""
        return [
            e
            for e in self.events
            if isinstance(e, kind) and (charger_id is None or e.device_id == charger_id)
        ]
