"""Write-behind persistence of live state (berth states, car-park counts, device health), the
parking sessions those berth changes open and close, and the PUBACKs of the uplinks behind them.

The in-memory book is what the API serves the moment an uplink is handled; this writes what
changed in one transaction per flush, so ingest never waits on the disk. An uplink's PUBACK is
held (``hold``) until the flush that contains its effects has committed: a gateway killed
before that commit never acknowledged the uplink, and the broker delivers it again. Flushes
run as soon as acknowledgements wait (after ``commit_delay`` to gather a batch), else every
``interval``. Berth changes reach sessions from the book's own ordered journal, in the same
transaction, never over the (lossy, live-view) bus: a stay cannot be missed or billed twice.

On start the persisted state is read back (``restore``) so vacancies survive a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import Update, bindparam, select, update
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.aio import wait_for
from drivers.backoff import Backoff
from events import BerthState, BerthStateChanged
from gateway.directory.devices import DeviceDirectory
from gateway.infra.changes import transient
from gateway.infra.storage.schema import Base, BerthRow, SiteRow
from gateway.logs import OnceLogger
from gateway.metrics import Metrics
from parking.occupancy import OccupancyBook

if TYPE_CHECKING:
    from gateway.services.parking.sessions import SessionStore


def row_level(exc: BaseException) -> bool:
    """The database refused a row's values (out of range, a constraint), not the statement,
    the schema or the connection: that row alone is at fault."""
    return isinstance(exc, DataError | IntegrityError)


Ack = Callable[[], None]
Rows = list[tuple[Update, list[dict[str, Any]]]]  # statement, executemany parameters
# A berth change whose session could not be applied for a reason other than the database
# being away is tried with this many flushes, then counted as an error and left to the
# reconciler, so one bad change cannot hold every other uplink's acknowledgement.
MAX_SESSION_ATTEMPTS = 3
# A commit that has not answered in this long counts as failing (``/readyz``): a database cut
# off by a silent partition (packets lost, no reset) never answers and never errors, and the
# gateway would say it is ready while every acknowledgement waits (tests/test_faults_silent*).
STUCK_AFTER_S = 5.0

log = logging.getLogger(__name__)


def _by_key(name: str, columns: tuple[str, ...]) -> Update:
    """``UPDATE name SET col = :col, ... WHERE id = :id_`` for executemany."""
    table = Base.metadata.tables[name]
    return (
        update(table)
        .where(table.c.id == bindparam("id_"))
        .values({c: bindparam(c) for c in columns})
    )


_BERTH_UPDATE = _by_key("berths", ("state", "since", "last_seen", "last_fcnt"))
_SITE_UPDATE = _by_key("sites", ("occupied_count", "count_updated_at", "count_seq"))
# Lifecycle is not written here: a commissioned device's first uplink is made durable (and
# audited) by the activator (gateway.services.lifecycle), any other move is a technician's.
_DEVICE_UPDATE = _by_key("devices", ("last_seen", "battery_mv", "battery_pct", "rssi", "snr"))


class Persister:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        book: OccupancyBook,
        directory: DeviceDirectory,
        metrics: Metrics,
        interval_s: float = 1.0,
        *,
        session_store: SessionStore | None = None,
        commit_delay_s: float = 0.005,
        stuck_after_s: float = STUCK_AFTER_S,
    ) -> None:
        self._sessions = sessions
        self._book = book
        self._directory = directory
        self._metrics = metrics
        self._interval = interval_s
        self._commit_delay = commit_delay_s
        self._stuck_after = stuck_after_s
        self._flushing_since: float | None = None  # monotonic; None between flushes
        self._store = session_store
        self._warn = OnceLogger(log, "state persistence")
        self._session_warn = OnceLogger(log, "parking sessions from berth changes")
        self._row_warn = OnceLogger(log, "state rows refused by the database")
        self._pending: tuple[set[str], set[str], dict[str, dict[str, Any]]] = (set(), set(), {})
        self._changes: list[BerthStateChanged] = []  # taken from the book, not yet committed
        self._change_attempts = 0
        self._acks: list[Ack] = []
        self._wake = asyncio.Event()
        self._retry = Backoff(base=0.05, cap=2.0, rng=random.Random())
        self.flushes = 0

    @property
    def failing(self) -> bool:
        """The last commit failed, or the one under way has not answered for
        ``stuck_after_s``."""
        since = self._flushing_since
        stuck = since is not None and time.monotonic() - since > self._stuck_after
        return self._warn.failing or stuck

    def hold(self, ack: Ack) -> None:
        """Send *ack* once what was handled before it is committed (a flush is due now)."""
        self._acks.append(ack)
        if not self._wake.is_set():
            self._wake.set()

    @property
    def acks_held(self) -> int:
        return len(self._acks)

    async def run(self) -> None:
        try:
            while True:
                if not self._acks:  # acknowledgements kept from a failed commit do not wait
                    with contextlib.suppress(TimeoutError):
                        await wait_for(self._wake.wait(), self._interval)
                self._wake.clear()
                if self._acks and self._commit_delay:
                    await asyncio.sleep(self._commit_delay)  # gather a batch for one commit
                self._flushing_since = time.monotonic()
                try:
                    ok = await self.flush()
                finally:
                    self._flushing_since = None
                if ok:
                    self._retry.reset()
                else:  # the database is away: try again soon, without spinning
                    await asyncio.sleep(min(self._retry.next_delay(), self._interval))
        finally:
            # Cancellation (shutdown) still writes the last changes.
            await asyncio.shield(self.flush())

    async def flush(self) -> bool:
        """Write what changed (and the sessions it opens or closes), then send the PUBACKs
        held for it. False when the write failed: everything is kept for the next one."""
        # Taken together, with no await between: every ack taken covers only changes taken.
        acks, self._acks = self._acks, []
        berth_ids, site_ids = self._book.take_dirty()
        taken = self._book.take_changes()  # taken always: the journal must not grow unread
        if self._store is not None:
            self._changes.extend(taken)
        pend_b, pend_s, pend_d = self._pending
        berth_ids |= pend_b
        site_ids |= pend_s
        devices = self._dirty_devices(pend_d)
        changes = self._changes
        if not (berth_ids or site_ids or devices or changes):
            self._release(acks)
            return True
        rows = self._rows(berth_ids, site_ids, devices)
        started = time.perf_counter()
        try:
            outcomes = await self._write(rows, changes)
        except Exception as exc:
            pending = (berth_ids, site_ids, devices)
            if transient(exc) or not (changes or row_level(exc)):
                return self._failed(acks, pending, "state", exc)  # the database, not a row
            # A row the database refuses, or a change's session: neither may hold every
            # other uplink's state and acknowledgement. The rows one by one (a refused one
            # is counted and dropped), then the sessions alone.
            try:
                await self._write_each(rows)
            except Exception as exc2:
                return self._failed(acks, pending, "state", exc2)
            if changes:
                try:
                    outcomes = await self._write([], changes)
                except Exception as exc3:
                    if transient(exc3):  # the state is written; the changes wait, and the acks
                        return self._failed(acks, (set(), set(), {}), "sessions", exc3)
                    self._sessions_failed(exc3, changes)
                else:
                    self._sessions_done(outcomes)
        else:
            if changes:
                self._sessions_done(outcomes)
        self._pending = (set(), set(), {})
        self._warn.recovered()
        self.flushes += 1
        self._metrics.persist_seconds.observe(time.perf_counter() - started)
        self._release(acks)
        return True

    def _dirty_devices(self, pending: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """The device rows to write: those kept from a failed flush, and the health of every
        device heard since (newer values win)."""
        devices = dict(pending)
        for e in self._directory.take_dirty():
            devices[e.id] = {
                "id_": e.id,
                "last_seen": e.last_seen,
                "battery_mv": e.battery_mv,
                "battery_pct": e.battery_pct,
                "rssi": e.rssi,
                "snr": e.snr,
            }
        return devices

    def _sessions_done(self, outcomes: list[str]) -> None:
        assert self._store is not None
        self._store.count(outcomes)
        self._changes, self._change_attempts = [], 0
        self._session_warn.recovered()

    def _sessions_failed(self, exc: BaseException, changes: list[BerthStateChanged]) -> None:
        """The state is written, its changes' sessions are not: they are tried with the
        next flushes, then counted as errors and left to the reconciler."""
        self._change_attempts += 1
        self._session_warn.failed(f"{type(exc).__name__}: {exc}")
        self._metrics.persist_failed.labels("sessions").inc()
        if self._change_attempts >= MAX_SESSION_ATTEMPTS:
            assert self._store is not None
            self._store.count(["error"] * len(changes))
            self._changes, self._change_attempts = [], 0

    async def _write_each(self, rows: Rows) -> None:
        """*rows* one transaction each; a row the database refuses for its values (anything
        else is raised) is counted and dropped: it is written again when it
        changes again, and the book in memory stays right meanwhile."""
        for stmt, params in rows:
            for one in params:
                try:
                    async with self._sessions.begin() as db:
                        await db.execute(stmt, [one])
                except Exception as exc:
                    if not row_level(exc):
                        raise  # the database or the schema, not this row: keep everything
                    self._metrics.persist_failed.labels("row").inc()
                    self._row_warn.failed(f"{one.get('id_')}: {type(exc).__name__}: {exc}")
                else:
                    self._row_warn.recovered()

    def _failed(
        self,
        acks: list[Ack],
        pending: tuple[set[str], set[str], dict[str, dict[str, Any]]],
        kind: str,
        exc: BaseException,
    ) -> bool:
        self._pending = pending
        self._acks[:0] = acks  # still unacknowledged: they go out after a later commit
        self._metrics.acks_held.set(len(self._acks))
        self._metrics.persist_failed.labels(kind).inc()
        self._warn.failed(f"{type(exc).__name__}: {exc}")
        return False

    def _release(self, acks: list[Ack]) -> None:
        for ack in acks:
            ack()
        self._metrics.acks_held.set(len(self._acks))

    def _rows(
        self, berth_ids: set[str], site_ids: set[str], devices: dict[str, dict[str, Any]]
    ) -> Rows:
        # In key order, each table: two writers that lock rows in the same order cannot
        # deadlock on them (PostgreSQL aborts one of two that lock in opposite orders).
        berths = []
        for bid in sorted(berth_ids):
            try:
                v = self._book.berth(bid)
            except KeyError:
                continue  # removed by a town change meanwhile
            berths.append(
                {
                    "id_": bid,
                    "state": v.state.value,
                    "since": v.since,
                    "last_seen": v.last_seen,
                    "last_fcnt": v.last_fcnt,
                }
            )
        sites = []
        for sid in sorted(site_ids):
            try:
                count = self._book.controller_count(sid)
            except KeyError:
                continue
            if count is not None:
                sites.append(
                    {
                        "id_": sid,
                        "occupied_count": count,
                        "count_updated_at": self._book.site(sid).updated_at,
                        "count_seq": self._book.controller_seq(sid),
                    }
                )
        return [
            (_BERTH_UPDATE, berths),
            (_SITE_UPDATE, sites),
            (_DEVICE_UPDATE, [devices[k] for k in sorted(devices)]),
        ]

    async def _write(self, rows: Rows, changes: list[BerthStateChanged]) -> list[str]:
        """One transaction: the state rows, then the sessions of *changes* (in order)."""
        if not changes:
            async with self._sessions.begin() as db:
                await self._write_rows(db, rows)
            return []
        assert self._store is not None
        async with self._store.berth_lock, self._sessions.begin() as db:
            await self._write_rows(db, rows)
            return await self._store.apply_berth_changes(db, changes)

    @staticmethod
    async def _write_rows(db: AsyncSession, rows: Rows) -> None:
        # Core executemany by key: a fraction of the ORM bulk path's per-row cost, which runs
        # on the event loop.
        for stmt, params in rows:
            if params:
                await db.execute(stmt, params)


async def restore(sessions: async_sessionmaker[Any], book: OccupancyBook) -> int:
    """Load persisted berth states and car-park counts into *book*; returns berths restored."""
    n = 0
    async with sessions() as session:
        rows = await session.execute(select(BerthRow).where(BerthRow.since.is_not(None)))
        for b in rows.scalars():
            assert b.since is not None
            book.restore_berth(b.id, BerthState(b.state), b.since, b.last_seen, b.last_fcnt)
            n += 1
        sites = await session.execute(select(SiteRow).where(SiteRow.count_updated_at.is_not(None)))
        for s in sites.scalars():
            assert s.count_updated_at is not None
            book.restore_site_count(s.id, s.occupied_count, s.count_updated_at)
    return n
