"""What the pure message handlers share: the per-frame :class:`Context` (the time, the charger,
what to answer with, the events and problems collected) and the little they need from the
rest of citygate (:class:`CoreBackend`: synchronous, in memory).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal, Protocol

from drivers.ocpp.ledger import TransactionLedger
from drivers.ocpp.values import meter_samples, parse_timestamp
from events import ChargerNotice, Event

__all__ = ["Context", "CoreBackend", "Handler", "IdTagStatus", "iso"]

# The statuses both OCPP 1.6 (idTagInfo) and 2.0.1 (idTokenInfo) know.
IdTagStatus = Literal["Accepted", "Blocked", "Expired", "Invalid"]


class CoreBackend(Protocol):
    """The decisions a handler asks for while it answers; in memory and fast (the charger's
    messages are answered one after the other)."""

    def heartbeat_interval(self, charger_id: str) -> int:
        """Seconds between heartbeats, given to the charger in the BootNotification answer."""
        ...

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        """Whether *id_tag* (an RFID card, an app token) may charge here."""
        ...

    def new_transaction_id(self, charger_id: str) -> int:
        """A fresh OCPP 1.6 transaction id (the central system assigns them)."""
        ...


def iso(ts: datetime) -> str:
    """OCPP's time format: UTC with a Z, milliseconds."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class Context:
    """One CALL being handled: who sent it, when it arrived, and what it produced."""

    __slots__ = ("backend", "charger_id", "events", "ledger", "now", "problems", "version")

    def __init__(
        self,
        charger_id: str,
        version: str,
        now: datetime,
        backend: CoreBackend,
        ledger: TransactionLedger,
    ) -> None:
        self.charger_id = charger_id
        self.version = version
        self.now = now
        self.backend = backend
        self.ledger = ledger
        self.events: list[Event] = []
        self.problems: list[tuple[str, str]] = []

    def publish(self, event: Event) -> None:
        self.events.append(event)

    def problem(self, reason: str, detail: str = "") -> None:
        """A counted, logged rejection of (part of) a message."""
        self.problems.append((reason, detail[:200]))

    def notice(
        self,
        notice: str,
        status: str,
        detail: str = "",
        *,
        ts: datetime | None = None,
        severity: int | None = None,
    ) -> None:
        """A :class:`ChargerNotice` (stamped with the arrival unless the message had a time)."""
        self.publish(
            ChargerNotice(
                device_id=self.charger_id,
                ts=ts or self.now,
                notice=notice,
                status=status,
                detail=detail,
                severity=severity,
            )
        )

    def stamp(self, value: object) -> datetime:
        """The charger's timestamp, or the arrival if it sent none we can read (counted)."""
        if value is None:
            return self.now
        ts = parse_timestamp(value)
        if ts is None:
            self.problem("bad_timestamp", repr(value))
            return self.now
        return ts

    def publish_meter(
        self, connector_id: int, transaction_id: str | None, meter_values: object
    ) -> None:
        samples, problems = meter_samples(
            self.charger_id, connector_id, transaction_id, meter_values, self.now
        )
        for reason in problems:
            self.problem(reason)
        self.events.extend(samples)


Handler = Callable[..., dict[str, Any]]  # (ctx, **snake_case payload) -> camelCase answer
