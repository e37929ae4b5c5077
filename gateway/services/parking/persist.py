"""Write-behind persistence of live state (berth states, car-park counts, device health).

The in-memory book is authoritative while running; this flushes what changed every interval
and once more at shutdown, in one transaction per flush, so ingest never waits on the disk.
On start the persisted state is read back (``restore``) so vacancies survive a restart.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy import Update, bindparam, case, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from events import BerthState
from gateway.directory.devices import DeviceDirectory
from gateway.infra.storage.schema import Base, BerthRow, SiteRow
from gateway.logs import OnceLogger
from gateway.metrics import Metrics
from parking.occupancy import OccupancyBook

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
_SITE_UPDATE = _by_key("sites", ("occupied_count", "count_updated_at"))
_DEVICE_UPDATE = _by_key(
    "devices", ("last_seen", "battery_mv", "battery_pct", "rssi", "snr")
).values(
    # The only lifecycle step made in memory is a provisioned device's first uplink; any other
    # lifecycle is a technician's, recorded in the database (maybe by another instance).
    lifecycle=case(
        (Base.metadata.tables["devices"].c.lifecycle == "provisioned", bindparam("lifecycle")),
        else_=Base.metadata.tables["devices"].c.lifecycle,
    )
)


class Persister:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        book: OccupancyBook,
        directory: DeviceDirectory,
        metrics: Metrics,
        interval_s: float = 1.0,
    ) -> None:
        self._sessions = sessions
        self._book = book
        self._directory = directory
        self._metrics = metrics
        self._interval = interval_s
        self._warn = OnceLogger(log, "state persistence")
        self._pending: tuple[set[str], set[str], dict[str, dict[str, Any]]] = (set(), set(), {})
        self.flushes = 0

    @property
    def failing(self) -> bool:
        return self._warn.failing

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self._interval)
                await self.flush()
        finally:
            # Cancellation (shutdown) still writes the last changes.
            await asyncio.shield(self.flush())

    async def flush(self) -> None:
        berth_ids, site_ids = self._book.take_dirty()
        pend_b, pend_s, pend_d = self._pending
        berth_ids |= pend_b
        site_ids |= pend_s
        devices = dict(pend_d)
        for e in self._directory.take_dirty():
            devices[e.id] = {
                "id_": e.id,
                "last_seen": e.last_seen,
                "battery_mv": e.battery_mv,
                "battery_pct": e.battery_pct,
                "rssi": e.rssi,
                "snr": e.snr,
                "lifecycle": e.lifecycle.value,
            }
        if not (berth_ids or site_ids or devices):
            return
        berths = []
        for bid in berth_ids:
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
        for sid in site_ids:
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
                    }
                )
        started = time.perf_counter()
        try:
            async with self._sessions.begin() as session:
                # Core executemany by key: a fraction of the ORM bulk path's per-row cost,
                # which runs on the event loop.
                for stmt, rows in (
                    (_BERTH_UPDATE, berths),
                    (_SITE_UPDATE, sites),
                    (_DEVICE_UPDATE, list(devices.values())),
                ):
                    if rows:
                        await session.execute(stmt, rows)
        except Exception as exc:  # database down or locked: keep the work for the next round
            self._pending = (berth_ids, site_ids, devices)
            self._warn.failed(f"{type(exc).__name__}: {exc}")
            return
        self._pending = (set(), set(), {})
        self._warn.recovered()
        self.flushes += 1
        self._metrics.persist_seconds.observe(time.perf_counter() - started)


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
