"""The change feed: numbered provisioning changes, written in the changing transaction, that
every gateway instance follows to keep its in-memory view equal to the database.

Writers call ``record_change`` inside the transaction that changes a device, charger, token,
site, berth, zone or document. On PostgreSQL the writer first takes a transaction-scoped
advisory lock, so ``seq`` order is commit order (a follower reading ``seq > last`` can never
skip a change that commits late with a lower number), and issues a NOTIFY that PostgreSQL
delivers at commit. SQLite writers are serialised by the database itself.

A bulk write (``citygate import``) records one change for all the objects it wrote
(``record_batch``: op ``import``, the keys in the payload as ``{"keys": [...]}``), so a
follower re-reads them with a few queries instead of one change and one query per object.

``ChangeFollower`` applies the changes after the last one it applied, in order, one by one:
woken by LISTEN on PostgreSQL (with a slow poll in case a notification is lost while the
listening connection is down), polling on SQLite. A change whose applier fails is logged
with its seq and skipped; a database that is down is reported once and retried quietly. A
follower that meets retention's tombstone has missed pruned changes: it logs so, reports
itself stale (not ready) and follows on (gateway.infra.retention).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from events import now_utc
from gateway.infra.storage.schema import ChangeRow
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

CHANNEL = "citygate_changes"
TOMBSTONE = "pruned"  # where retention stopped pruning (gateway.infra.retention)
_WRITER_LOCK = 0x6367_0001  # pg_advisory_xact_lock key: one change writer at a time

Kind = str  # device | charger | token | site | berth | zone | lane | drone | tariffs | rules


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: Kind
    key: str
    op: str
    payload: dict[str, Any] | None
    at: datetime

    @property
    def keys(self) -> tuple[str, ...] | None:
        """The keys of a batch change (``record_batch``), else None (one object: ``key``)."""
        if self.payload is None or "keys" not in self.payload:
            return None
        return tuple(str(k) for k in self.payload["keys"])


async def record_changes(
    session: AsyncSession,
    changes: Iterable[tuple[Kind, str, str]],
    now: datetime | None = None,
) -> int:
    """Record ``(kind, key, op)`` changes in *session*'s transaction; returns how many."""
    at = now or now_utc()
    rows = [
        {"kind": kind, "key": key[:200], "op": op[:16], "at": at}  # payload: NULL
        for kind, key, op in changes
    ]
    await _write(session, rows)
    return len(rows)


BATCH_OP = "import"


async def record_batch(
    session: AsyncSession,
    kind: Kind,
    keys: Sequence[str],
    now: datetime | None = None,
    op: str = BATCH_OP,
) -> int:
    """Record one change of *kind* naming every one of *keys* (a bulk import's thousands),
    in *session*'s transaction: ``key`` says how many (``"10000 devices"``, for logs), the
    payload lists them (``{"keys": [...]}``). Returns the number of changes (0 or 1)."""
    if not keys:
        return 0
    row = {"kind": kind, "key": f"{len(keys)} {kind}s"[:200], "op": op[:16],
           "payload": {"keys": list(keys)}, "at": now or now_utc()}  # fmt: skip
    await _write(session, [row])
    return 1


async def _write(session: AsyncSession, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    postgres = session.get_bind().dialect.name == "postgresql"
    if postgres:
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _WRITER_LOCK})
    # One executemany (a bulk import records thousands), not one ORM round trip per row: the
    # seq is the database's, and nothing reads the rows back in this transaction.
    await session.execute(insert(cast(Table, ChangeRow.__table__)), rows)
    if postgres:
        await session.execute(text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})


async def record_change(
    session: AsyncSession,
    kind: Kind,
    key: str,
    op: str,
    now: datetime | None = None,
) -> None:
    """Record one change in *session*'s transaction (see ``record_changes``)."""
    await record_changes(session, [(kind, key, op)], now)


async def head_seq(sessions: async_sessionmaker[Any]) -> int:
    """The newest seq recorded (0 for none): where a freshly loaded instance starts following."""
    async with sessions() as db:
        return int(await db.scalar(select(func.coalesce(func.max(ChangeRow.seq), 0))) or 0)


def transient(exc: BaseException) -> bool:
    """A failure of the database connection (retry later), not of the change itself."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError)


Applier = Callable[[Change], Awaitable[None]]


class ChangeFollower:
    """Applies the feed after ``after`` with *apply*, in seq order (a task of the gateway)."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[Any],
        apply: Applier,
        metrics: Metrics,
        *,
        after: int,
        poll_s: float = 0.5,
        slow_poll_s: float = 5.0,
        batch: int = 500,
    ) -> None:
        self._engine = engine
        self._sessions = sessions
        self._apply = apply
        self._metrics = metrics
        self.applied_seq = after
        self._poll_s = poll_s
        self._slow_poll_s = slow_poll_s
        self._batch = batch
        self._wake = asyncio.Event()
        self._warn = OnceLogger(log, "change feed")
        self._listen_warn = OnceLogger(log, "change feed notifications (polling meanwhile)")
        self._listening: AsyncConnection | None = None
        self._driver: Any = None
        self.skipped = 0
        self.stale = False  # changes it had not applied were pruned: restart to reload
        metrics.changes_applied_seq.set(after)

    @property
    def failing(self) -> bool:
        return self._warn.failing

    def kick(self) -> None:
        """Look for changes now (a notification, or a change this process just made)."""
        self._wake.set()

    async def run(self) -> None:
        postgres = self._engine.dialect.name == "postgresql"
        try:
            while True:
                if postgres and not self._listener_up():
                    await self._listen()
                await self.catch_up()
                wait = self._slow_poll_s if self._listener_up() else self._poll_s
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._wake.wait(), wait)
                self._wake.clear()
        finally:
            await self._unlisten()

    async def catch_up(self) -> None:
        """Apply every committed change after ``applied_seq`` (stops early if the DB fails)."""
        while True:
            try:
                async with self._sessions() as db:
                    rows = list(
                        (
                            await db.execute(
                                select(ChangeRow)
                                .where(ChangeRow.seq > self.applied_seq)
                                .order_by(ChangeRow.seq)
                                .limit(self._batch)
                            )
                        ).scalars()
                    )
            except Exception as exc:
                self._warn.failed(f"reading changes: {type(exc).__name__}: {exc}")
                return
            for row in rows:
                if row.kind == TOMBSTONE:
                    self._fell_behind(row.seq)
                    continue
                change = Change(row.seq, row.kind, row.key, row.op, row.payload, row.at)
                if not await self._apply_one(change):
                    return  # the database went away: retry this change later
            self._warn.recovered()  # read and applied: whatever failed before works again
            if len(rows) < self._batch:
                return

    def _fell_behind(self, seq: int) -> None:
        """The next change is retention's tombstone: changes after ``applied_seq`` up to
        *seq* were pruned before this instance applied them (gateway.infra.retention)."""
        if not self.stale:
            log.error(
                "change feed: changes %d..%d were pruned by retention before this instance "
                "applied them; its view may be stale and it reports not ready: restart it to "
                "reload",
                self.applied_seq + 1,
                seq,
            )
        self.stale = True
        self._metrics.changes_stale.set(1)
        self.applied_seq = seq
        self._metrics.changes_applied_seq.set(seq)

    async def _apply_one(self, change: Change) -> bool:
        try:
            await self._apply(change)
        except Exception as exc:
            if transient(exc):
                self._warn.failed(f"applying change {change.seq}: {type(exc).__name__}: {exc}")
                return False
            self.skipped += 1
            self._metrics.changes_skipped.labels(change.kind).inc()
            log.error(
                "change %d (%s %s %s) cannot be applied, skipped: %s: %s",
                change.seq,
                change.kind,
                change.op,
                change.key,
                type(exc).__name__,
                exc,
            )
        self.applied_seq = change.seq
        self._metrics.changes_applied_seq.set(change.seq)
        self._metrics.changes_lag.set(max(0.0, (now_utc() - change.at).total_seconds()))
        return True

    # -- PostgreSQL LISTEN -------------------------------------------------------------------

    def _listener_up(self) -> bool:
        return self._driver is not None and not self._driver.is_closed()

    async def _listen(self) -> None:
        """Hold one pooled connection that LISTENs; any failure falls back to polling."""
        await self._unlisten()
        try:
            conn = await self._engine.connect()
            try:
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.add_listener(CHANNEL, self._notified)
                driver.add_termination_listener(self._terminated)
            except BaseException:
                await conn.invalidate()
                await conn.close()
                raise
        except Exception as exc:
            self._listen_warn.failed(f"{type(exc).__name__}: {exc}")
            return
        self._listen_warn.recovered()
        self._listening, self._driver = conn, driver
        self._metrics.connected.labels("change-feed").set(1)

    async def _unlisten(self) -> None:
        conn, self._listening, self._driver = self._listening, None, None
        self._metrics.connected.labels("change-feed").set(0)
        if conn is not None:
            # Never hand a listening connection back to the pool.
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()

    def _notified(self, *_: Any) -> None:
        self._wake.set()

    def _terminated(self, *_: Any) -> None:
        self._wake.set()  # the loop notices the closed connection and listens again
