"""The write-behind flush when several instances share the berths (``shared_berths``): the
queued uplinks are decided under their rows' locks and written, with their sessions and the
NOTIFY to the others, in one transaction; only then are their events published, their
verdicts counted and their PUBACKs sent."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import async_sessionmaker

from events import BerthStateChanged, CarParkCount, Event
from gateway.directory.devices import DeviceDirectory
from gateway.infra.changes import transient
from gateway.metrics import Metrics
from gateway.services.parking.persist import (
    _DEVICE_UPDATE,
    MAX_SESSION_ATTEMPTS,
    Ack,
    Persister,
)
from gateway.services.parking.shared_berths import Decided, Item, SharedBerths
from parking.occupancy import OccupancyBook, Outcome, SensorReport

if TYPE_CHECKING:
    from gateway.services.parking.sessions import SessionStore

log = logging.getLogger(__name__)

Settle = Callable[[SensorReport | CarParkCount, Outcome], None]


class SharedPersister(Persister):
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        book: OccupancyBook,
        directory: DeviceDirectory,
        metrics: Metrics,
        interval_s: float = 1.0,
        *,
        shared: SharedBerths,
        settle: Settle,
        publish: Callable[[Event], None],
        session_store: SessionStore | None = None,
        commit_delay_s: float = 0.005,
    ) -> None:
        super().__init__(
            sessions,
            book,
            directory,
            metrics,
            interval_s,
            session_store=session_store,
            commit_delay_s=commit_delay_s,
        )
        self._shared = shared
        shared.on_sweep = self._wake.set
        self._settle = settle
        self._publish = publish
        self._failures = 0  # failed decisions in a row, not the database being away
        self._unsure: _Unsure | None = None  # a decision whose COMMIT got no answer

    async def run(self) -> None:
        """The flushes, and the follower of the other instances' writes beside them (they
        live and die together)."""
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._shared.run(), name="shared-berths")
            await super().run()  # ends only by cancellation, which ends the follower too

    async def flush(self) -> bool:
        if self._unsure is not None and not await self._settle_unsure():
            return False
        acks, self._acks = self._acks, []
        items = self._shared.take()
        pend_b, pend_s, pend_d = self._pending
        berth_ids, site_ids = self._book.take_dirty()  # changed by other paths (bindings…)
        berth_ids |= pend_b
        site_ids |= pend_s
        earlier = self._book.take_changes()
        if self._store is not None:
            self._changes.extend(earlier)
        devices = self._dirty_devices(pend_d)
        due = self._shared.sweep_pending
        if not (items or berth_ids or site_ids or devices or self._changes or due):
            self._release(acks)
            return True
        degraded = self._failures >= MAX_SESSION_ATTEMPTS  # one bad change must not hold all
        if degraded and devices:
            rows = [(_DEVICE_UPDATE, [devices[k] for k in sorted(devices)])]
            try:
                await self._write_each(rows)  # a refused device row is counted and dropped
            except Exception as exc:
                self._shared.put_back(items, None)
                return self._failed(acks, (berth_ids, site_ids, devices), "state", exc)
            devices = {}
        started = time.perf_counter()
        decided: Decided | None = None
        mine: list[BerthStateChanged] = []
        outcomes: list[str] = []
        xid: int | None = None
        try:
            async with contextlib.AsyncExitStack() as stack:
                if self._store is not None:
                    await stack.enter_async_context(self._store.berth_lock)
                db = await stack.enter_async_context(self._sessions.begin())
                decided = await self._shared.decide(db, items)
                b, s = self._book.take_dirty()
                all_b, all_s = berth_ids | b, site_ids | s
                mine = self._book.take_changes()
                await self._write_rows(db, self._rows(all_b, all_s, devices))
                changes = self._changes + mine
                if changes and self._store is not None and not degraded:
                    outcomes = await self._store.apply_berth_changes(db, changes)
                await self._shared.notify(db, all_b, all_s, devices)
                # Set last: an error with it set came from the COMMIT, whose outcome is then
                # unknown (the answer lost with the connection), not a rollback.
                xid = int(await db.scalar(text("SELECT txid_current()")))
        except Exception as exc:
            self._shared.finished()
            if xid is not None and decided is not None:
                # Decided again from the rows, this would count our own committed uplinks
                # duplicates and drop their events: ask the database what became of it first.
                self._unsure = _Unsure(
                    xid, decided, items, acks, outcomes, len(self._changes) + len(mine),
                    degraded, (berth_ids, site_ids, devices),
                )  # fmt: skip
                self._metrics.persist_failed.labels("state").inc()
                self._warn.failed(f"{type(exc).__name__}: {exc}")
                return False
            self._shared.put_back(items, decided)  # decided again, from the rows, next time
            if not transient(exc):
                self._failures += 1
            return self._failed(acks, (berth_ids, site_ids, devices), "state", exc)
        self._shared.finished()
        assert decided is not None
        self._committed(decided, acks, outcomes, len(self._changes) + len(mine), degraded)
        self._metrics.persist_seconds.observe(time.perf_counter() - started)
        return True

    def _committed(
        self,
        decided: Decided,
        acks: list[Ack],
        outcomes: list[str],
        changes: int,
        degraded: bool,
    ) -> None:
        """A decision is committed: count its sessions, publish what it did, acknowledge."""
        if self._store is not None:
            if degraded and changes:
                self._store.count(["error"] * changes)
                log.error(
                    "berth changes left to the reconciler after %d failed flushes",
                    self._failures,
                )
            else:
                self._store.count(outcomes)
        self._changes = []
        self._failures = 0
        self._pending = (set(), set(), {})
        self._warn.recovered()
        self.flushes += 1
        for event, outcome in decided.outcomes:
            self._settle(event, outcome)
        for ev in decided.swept:
            self._publish(ev)
        self._release(acks)

    async def _settle_unsure(self) -> bool:
        """A decision whose COMMIT got no answer: committed (finish it as if it had
        answered) or not (decide it again). False while the database cannot say."""
        u = self._unsure
        assert u is not None
        try:
            async with self._sessions() as db:
                status = await db.scalar(text("SELECT txid_status(:x)"), {"x": u.xid})
        except Exception as exc:
            self._warn.failed(f"{type(exc).__name__}: {exc}")
            return False
        if status == "in progress":
            return False
        self._unsure = None
        log.info("state persistence: a commit that got no answer was %s", status or "forgotten")
        if status == "committed":
            self._committed(u.decided, u.acks, u.outcomes, u.changes, u.degraded)
        else:  # aborted, or too old to know (then its rows say; deciding again is safe)
            self._shared.put_back(u.items, u.decided)
            self._acks[:0] = u.acks
            self._pending = u.pending
        return True


@dataclass
class _Unsure:
    """What a decision whose COMMIT got no answer needs to be finished or undone."""

    xid: int
    decided: Decided
    items: list[Item]
    acks: list[Ack]
    outcomes: list[str]
    changes: int
    degraded: bool
    pending: tuple[set[str], set[str], dict[str, dict[str, Any]]]
