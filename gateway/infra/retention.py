"""Retention: the audit log and the change feed pruned by age, in bounded batches.

Both tables grow with every provisioning write and were never pruned. ``Retention.run`` (a
task of every gateway instance) prunes a minute after start, then every ``[retention]
interval_s``:

- **audit**: entries older than ``audit_days`` (0: kept for ever);
- **changes**: changes older than ``changes_days``, but never one of the newest
  ``changes_keep``, and never one newer than that age, so a running follower (seconds behind
  at worst) never misses one.

Deletes go in batches of ``batch`` rows, each its own short transaction, so a prune never
holds locks for long and writers get in between batches. On PostgreSQL one instance prunes at
a time: ``pg_try_advisory_lock`` on the pruning connection (another instance that finds it
taken skips the round; the lock goes with the connection if the instance dies).

**A follower that fell behind.** Before deleting, the newest pruned change is rewritten in
place as a tombstone (kind ``pruned``); the older ones are then deleted. A follower whose
next change is a tombstone has missed changes (its database connection was down for longer
than the retention, or it was stuck): ``ChangeFollower`` then logs an error, marks itself
stale (``/readyz`` fails, ``citygate_changes_stale`` = 1) and goes on with the newer changes;
a restart reloads the view from the tables. A follower that is up to date never reads a
tombstone (its position is past it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gateway.config import RetentionConfig
from gateway.infra.changes import TOMBSTONE
from gateway.infra.storage.schema import AuditRow, ChangeRow
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

PRUNE_LOCK = 0x6367_0003  # pg_try_advisory_lock key: one pruning instance at a time
FIRST_ROUND_S = 60.0  # the first round after start (at most interval_s)


@dataclass(frozen=True, slots=True)
class Pruned:
    audit: int
    changes: int


async def _commit(conn: AsyncConnection) -> None:
    await conn.commit()
    await asyncio.sleep(0)  # let the loop breathe between batches


async def prune_audit(conn: AsyncConnection, before: datetime, batch: int) -> int:
    """Delete audit entries older than *before*, *batch* rows per transaction."""
    total = 0
    while True:
        ids = select(AuditRow.id).where(AuditRow.at < before).order_by(AuditRow.id).limit(batch)
        result = await conn.execute(delete(AuditRow).where(AuditRow.id.in_(ids.scalar_subquery())))
        await _commit(conn)
        total += result.rowcount
        if result.rowcount < batch:
            return total


async def changes_cutoff(conn: AsyncConnection, before: datetime, keep: int) -> int | None:
    """The newest change that may be pruned: older than *before*, not among the newest
    *keep*, and below every change at or after *before* (writers' clocks may differ)."""
    nth = await conn.scalar(
        select(ChangeRow.seq).order_by(ChangeRow.seq.desc()).offset(keep - 1).limit(1)
    )
    if nth is None:
        return None  # fewer than keep changes
    limit = int(nth)
    young = await conn.scalar(select(func.min(ChangeRow.seq)).where(ChangeRow.at >= before))
    if young is not None:
        limit = min(limit, int(young))
    cutoff = await conn.scalar(select(func.max(ChangeRow.seq)).where(ChangeRow.seq < limit))
    await conn.commit()
    return None if cutoff is None else int(cutoff)


async def prune_changes(conn: AsyncConnection, before: datetime, keep: int, batch: int) -> int:
    """Prune the change feed (see the module): the tombstone first, then batches below it.
    Returns how many changes were deleted (the tombstone not counted)."""
    cutoff = await changes_cutoff(conn, before, keep)
    if cutoff is None:
        return 0
    await conn.execute(
        update(ChangeRow)
        .where(ChangeRow.seq == cutoff, ChangeRow.kind != TOMBSTONE)
        .values(kind=TOMBSTONE, op=TOMBSTONE, key="", payload=None)
    )
    await _commit(conn)
    total = 0
    while True:
        seqs = (
            select(ChangeRow.seq).where(ChangeRow.seq < cutoff).order_by(ChangeRow.seq).limit(batch)
        )
        result = await conn.execute(
            delete(ChangeRow).where(ChangeRow.seq.in_(seqs.scalar_subquery()))
        )
        await _commit(conn)
        total += result.rowcount
        if result.rowcount < batch:
            return total


class Retention:
    """Prunes the audit log and the change feed every ``interval_s`` (a gateway task)."""

    def __init__(
        self,
        engine: AsyncEngine,
        config: RetentionConfig,
        metrics: Metrics,
        clock: Callable[[], datetime],
    ) -> None:
        self._engine = engine
        self._config = config
        self._metrics = metrics
        self._clock = clock
        self._warn = OnceLogger(log, "retention")

    async def run(self) -> None:
        """The first round a minute after start (an instance restarted more often than
        ``interval_s`` still prunes), then every ``interval_s``."""
        delay = min(FIRST_ROUND_S, self._config.interval_s)
        while True:
            await asyncio.sleep(delay)
            delay = self._config.interval_s
            try:
                await self.run_once()
            except Exception as exc:
                self._warn.failed(f"pruning: {type(exc).__name__}: {exc}")
            else:
                self._warn.recovered()

    async def run_once(self) -> Pruned | None:
        """One round; None when another instance holds the pruning lock (PostgreSQL)."""
        c = self._config
        now = self._clock()
        postgres = self._engine.dialect.name == "postgresql"
        async with self._engine.connect() as conn:
            if postgres:
                got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": PRUNE_LOCK})
                await conn.commit()
                if not got:
                    log.debug("retention: another instance is pruning")
                    return None
            try:
                audit = 0
                if c.audit_days:
                    audit = await prune_audit(conn, now - timedelta(days=c.audit_days), c.batch)
                changes = await prune_changes(
                    conn, now - timedelta(days=c.changes_days), c.changes_keep, c.batch
                )
            finally:
                if postgres:
                    await self._unlock(conn)
        self._metrics.retention_pruned.labels("audit").inc(audit)
        self._metrics.retention_pruned.labels("changes").inc(changes)
        if audit or changes:
            log.info("retention: pruned %d audit entries and %d changes", audit, changes)
        return Pruned(audit, changes)

    @staticmethod
    async def _unlock(conn: AsyncConnection) -> None:
        """Release the pruning lock; a connection that cannot is dropped, not pooled (the
        server then releases the lock with the session)."""
        try:
            await conn.rollback()
            await conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PRUNE_LOCK})
            await conn.commit()
        except Exception:
            with contextlib.suppress(Exception):
                await conn.invalidate()
