"""What the pure message handlers share: the per-frame :class:`Context` (the time, the charger,
what to answer with, the events and problems collected) and the little they need from the
rest of citygate (:class:`CoreBackend`: synchronous, in memory).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from drivers.ocpp.ledger import TransactionLedger
from drivers.ocpp.values import MAX_WH, meter_samples, parse_timestamp
from events import ChargerHeartbeat, ChargerNotice, Event

__all__ = [
    "EARLIEST",
    "MAX_CONNECTORS",
    "MAX_SKEW",
    "Context",
    "CoreBackend",
    "Handler",
    "IdTagStatus",
    "Rejected",
    "boot_accepted",
    "heartbeat",
    "iso",
]

# The sane window for a charger's timestamps: queued messages arrive late and back-dated, but
# nothing we keep happened before 2000 or more than a day after it arrived (a clock that far
# off would corrupt every history it touched).
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
MAX_SKEW = timedelta(days=1)
# Connector (1.6) / EVSE (2.0.1) ids when the charger's registered count is not known.
MAX_CONNECTORS = 64

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

    def connector_count(self, charger_id: str) -> int | None:
        """How many connectors (EVSEs) the charger is registered with; ``None``: unknown."""
        ...


class Rejected(Exception):
    """A value out of bounds: the whole CALL is answered with a CALLERROR (*code*) and counted
    (*reason*), and none of its events are kept."""

    def __init__(self, code: str, cause: str, reason: str) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause
        self.reason = reason


def iso(ts: datetime) -> str:
    """OCPP's time format: UTC with a Z, milliseconds."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


def boot_accepted(ctx: Context) -> dict[str, Any]:
    """The BootNotification answer both versions give: accepted, our time, the interval."""
    return {
        "currentTime": iso(ctx.now),
        "interval": ctx.backend.heartbeat_interval(ctx.charger_id),
        "status": "Accepted",
    }


def heartbeat(ctx: Context, **_: Any) -> dict[str, Any]:
    """Heartbeat, the same in every version: a sign of life, answered with our time."""
    ctx.publish(ChargerHeartbeat(device_id=ctx.charger_id, ts=ctx.now))
    return {"currentTime": iso(ctx.now)}


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
        """The charger's timestamp, or the arrival if it sent none we can read (counted);
        :class:`Rejected` if it is outside the sane window (``EARLIEST`` .. now + ``MAX_SKEW``)."""
        if value is None:
            return self.now
        ts = parse_timestamp(value)
        if ts is None:
            self.problem("bad_timestamp", repr(value))
            return self.now
        self.in_window(value)
        return ts

    def in_window(self, value: object) -> None:
        """:class:`Rejected` if *value* is a timestamp outside the sane window; checked before
        a message takes its transaction's place (a refused message may come again)."""
        ts = parse_timestamp(value)
        if ts is not None and not EARLIEST <= ts <= self.now + MAX_SKEW:
            raise Rejected(
                "PropertyConstraintViolation",
                f"timestamp {str(value)[:40]} is outside {EARLIEST.year}..now+{MAX_SKEW}",
                "timestamp_out_of_range",
            )

    def connector(self, value: int, *, what: str = "connectorId", zero: bool = True) -> int:
        """*value* as a connector (EVSE) id of this charger: 0 (the charger itself, where
        *zero*) to its registered count (``MAX_CONNECTORS`` when unknown), else
        :class:`Rejected`: a phantom connector would count against its availability."""
        known = self.backend.connector_count(self.charger_id)
        top = MAX_CONNECTORS if known is None else known
        if not (0 if zero else 1) <= value <= top:
            raise Rejected(
                "PropertyConstraintViolation",
                f"{what} {value} is not a connector of this charger (1..{top})",
                "connector_out_of_range",
            )
        return value

    def meter(self, value: float, what: str) -> float:
        """A meter register in Wh: 0 .. ``MAX_WH``, else :class:`Rejected`."""
        if not 0 <= value < MAX_WH:
            raise Rejected(
                "PropertyConstraintViolation",
                f"{what} {value} Wh is outside 0..{MAX_WH:.0e}",
                "meter_out_of_range",
            )
        return value

    def publish_meter(
        self, connector_id: int, transaction_id: str | None, meter_values: object
    ) -> None:
        samples, problems = meter_samples(
            self.charger_id,
            connector_id,
            transaction_id,
            meter_values,
            self.now,
            (EARLIEST, self.now + MAX_SKEW),
        )
        for reason in problems:
            self.problem(reason)
        self.events.extend(samples)


Handler = Callable[..., dict[str, Any]]  # (ctx, **snake_case payload) -> camelCase answer
