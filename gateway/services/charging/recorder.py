"""The recorder: the one task that writes chargers' events and the book's changes to the
database, in batches and in order (health, history, charging sessions, bills).

A charger's receive loop never waits on the database: events are queued (``publish``) and
written here.

Over 400 lines on purpose: the batch write is one transaction whose rules (what is due now,
what is held back, rows read up front, transactions and samples) depend on each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from charging.health import (
    Change,
    ChargerChanged,
    ConnectorChanged,
    OutageEnded,
    OutageStarted,
    StatusRecorded,
    UnknownCharger,
)
from drivers.aio import wait_for
from drivers.backoff import Backoff
from events import (
    ChargerBooted,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    Event,
    MeterSample,
)
from gateway.infra.storage.schema import (
    ChargerEventRow,
    ChargerRow,
    ChargingSampleRow,
    ChargingSessionRow,
    ConnectorRow,
)
from gateway.services.charging.fleet import LOW_WATER, liveness_to_row
from gateway.services.charging.pricing import Pricing, bill_json

log = logging.getLogger(__name__)

QueueItem = tuple[Event | tuple[Change, ...], datetime]  # what the recorder's queue holds


# A charger's last message and a connector's last meter reading (and energy today) change with
# every message. The book in memory is their live truth; their rows only seed it after a
# restart. So a change of nothing else is written at most once a minute per charger and
# connector (the latest one: writing every one was most of the recorder's cost, and the event
# loop's stalls, at fleet scale); the watch loop writes the overdue ones, ``flushed()`` and a
# stop write them all. Any other field a change carries (status, codes, transaction, boot,
# connection, probe) is written at once. After a crash, they are at most a minute old.
LAZY_WRITE = timedelta(seconds=60)
_LAZY_CHARGER = frozenset({"last_message_at"})
_LAZY_CONNECTOR = frozenset(
    {"last_meter_wh", "last_meter_at", "energy_today_wh", "last_power_w", "reported_at"}
)


@dataclass(slots=True)
class _Rows:
    """The charger and connector rows of one recorder batch, read up front."""

    chargers: dict[str, ChargerRow]
    connectors: dict[tuple[str, int], ConnectorRow]


@dataclass(slots=True)
class _Unit:
    """What one item of a batch writes: the book's changes that are due and, if it is
    recorded itself (history, a charging session), the event."""

    changes: list[Change]
    event: Event | None
    received: datetime


# Units kept for the next batch while the database is away (about a minute of a big fleet);
# beyond it the recorder stops taking events and the chargers wait (back-pressure).
_RETRY_MAX = 50_000
_TRANSIENT = (OperationalError, InterfaceError, OSError, TimeoutError)


def _transient(exc: BaseException) -> bool:
    """Whether a write failed because the database is away or busy (worth trying again),
    not because of what was written."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, _TRANSIENT)


def _recorded(event: Event) -> bool:
    """Whether *event* itself is written (history, charging sessions), beyond its changes."""
    if isinstance(event, MeterSample):
        return bool(event.transaction_id) and event.energy_wh is not None
    return isinstance(
        event,
        ChargingStarted | ChargingEnded | ConnectorStatusChanged | ChargerNotice | ChargerBooted,
    )


def _charger_of(change: Change) -> str:
    return change.state.charger_id if isinstance(change, ChargerChanged) else change.charger_id


class Recorder(Pricing):
    """Writes what the chargers said and what the book made of it (``record``, a task)."""

    async def record(self, batch: int = 1000) -> None:
        """Write charger events in batches (a task of the gateway); cancelled (the gateway
        stops), it writes the changes it was holding back first."""
        backoff = Backoff(base=0.1, cap=5.0, rng=random.Random())
        try:
            while True:
                items = await self._next_items(batch, backoff)
                if not self._room.is_set() and self._queue.qsize() <= LOW_WATER:
                    self._room.set()
                try:
                    await self._write(items)
                finally:
                    for _ in items:
                        self._queue.task_done()
                self._events_taken += sum(not isinstance(item[0], tuple) for item in items)
                if not self._retry:
                    backoff.reset()
                    self._written_up_to(self._events_taken)
        except asyncio.CancelledError:
            held = tuple(self._lazy_pending.values())
            self._lazy_pending.clear()
            units, self._retry = self._retry, []
            if held:
                units.append(_Unit(list(held), None, self._clock()))
            if units:  # the batch a stop interrupted was rolled back: write it again
                self._rolled_back()
                try:
                    await self._write_units(units)
                except Exception as exc:
                    self._metrics.ocpp_rejected.labels("recorder", "write_failed").inc(len(units))
                    log.warning("[chargers] stopping: %d writes lost: %r", len(units), exc)
            raise

    def _written_up_to(self, n: int) -> None:
        """Every event up to the *n*-th is committed (or counted lost): wake their answers."""
        self._events_written = n
        if self._durable_waiters:
            waiting = []
            for target, waiter in self._durable_waiters:
                if target <= n:
                    if not waiter.done():
                        waiter.set_result(None)
                else:
                    waiting.append((target, waiter))
            self._durable_waiters = waiting

    async def _next_items(self, batch: int, backoff: Backoff) -> list[QueueItem]:
        """The next batch to write. While writes fail (the database is away) the kept units
        are tried again after a backoff even if nothing new arrived, and once they reach
        ``_RETRY_MAX`` nothing more is taken: the queue grows and the chargers are slowed
        down (``room``), never their events dropped."""
        if len(self._retry) >= _RETRY_MAX:
            await asyncio.sleep(backoff.next_delay())
            return []
        items: list[QueueItem] = []
        if self._retry:
            with contextlib.suppress(TimeoutError):
                items.append(await wait_for(self._queue.get(), backoff.next_delay()))
        else:
            items.append(await self._queue.get())
        while items and len(items) < batch and not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    async def flushed(self) -> None:
        """Wait until everything queued so far is written (or counted as failed), the changes
        held back (``LAZY_WRITE``) included."""
        self._flush_all = True
        self._enqueue_lazy_flush()
        await self._queue.join()

    def _enqueue_lazy_flush(self) -> None:
        """Ask the recorder to write the held-back changes that are due (an empty batch of
        changes is that request)."""
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(((), self._clock()))

    def _held(self, now: datetime) -> list[Change]:
        """The held-back changes to write now: all after ``flushed()``, else the overdue."""
        everything, self._flush_all = self._flush_all, False
        keys = [
            k
            for k in self._lazy_pending
            if everything or now - self._lazy_written.get(k, now) >= LAZY_WRITE
        ]
        out = [self._lazy_pending.pop(k) for k in keys]
        for k in keys:
            self._lazy_written[k] = now
        return out

    def _due(self, change: Change, received: datetime) -> bool:
        """Whether *change* is to be written now (see ``LAZY_WRITE``); if not, it is held."""
        if isinstance(change, ChargerChanged):
            key, lazy = (change.state.charger_id, -1), change.fields <= _LAZY_CHARGER
        elif isinstance(change, ConnectorChanged):
            key = (change.charger_id, change.connector.connector_id)
            lazy = change.fields <= _LAZY_CONNECTOR
        else:
            return True
        last = self._lazy_written.get(key)
        if lazy and last is not None and timedelta(0) <= received - last < LAZY_WRITE:
            self._lazy_pending[key] = change  # the latest state supersedes a held one
            return False
        self._lazy_pending.pop(key, None)  # this write carries the whole, newer, state
        self._lazy_written[key] = received
        return True

    def _lost(self, unit: _Unit, exc: BaseException) -> None:
        """One unit that cannot be written, ever (counted and logged; the others are kept)."""
        self._metrics.ocpp_rejected.labels("recorder", "row_failed").inc()
        what = type(unit.event).__name__ if unit.event is not None else "changes"
        who = unit.event.device_id if unit.event is not None else ""
        log.warning("[chargers] %s of %s not written: %s: %s", what, who, type(exc).__name__, exc)

    def _units(self, items: list[tuple[Event | tuple[Change, ...], datetime]]) -> list[_Unit]:
        """Each item applied to the book, in order (memory only): what to write for it. An
        event the book cannot apply costs that event only (counted)."""
        units: list[_Unit] = []
        for event, received in items:
            if event == ():
                held = self._held(received)
                if held:
                    units.append(_Unit(held, None, received))
                continue
            if isinstance(event, tuple):
                units.append(_Unit(list(event), None, received))
                continue
            if event.device_id not in self.chargers:
                continue
            try:
                changes = self.book.apply(event, received)
            except UnknownCharger:
                continue
            except Exception as exc:  # a value the book cannot take: that event only
                self._lost(_Unit([], event, received), exc)
                continue
            due = [c for c in changes if self._due(c, received)]
            if due or _recorded(event):
                units.append(_Unit(due, event if _recorded(event) else None, received))
        return units

    async def _write(self, items: list[QueueItem]) -> None:
        """Apply *items* to the book and write what is due (``LAZY_WRITE``), with what an
        earlier batch could not write for a transient reason first.

        One transaction per batch, the rows it touches read up front (two queries) and nothing
        flushed until the end: per-event reads and flushes made the recorder 18x slower (the
        ceiling of a 5,000-charger fleet). If the batch fails for a transient reason (the
        database is away) it is kept and tried again with the next one; if it fails for any
        other, each unit is written in its own transaction, so one bad row costs that row
        only (counted, logged), never another charger's history."""
        units = self._retry + self._units(items)
        self._retry = units  # in flight: a stop meanwhile writes them (``record``)
        if not units:
            return
        try:
            await self._write_units(units)
        except Exception as exc:
            self._rolled_back()
            if _transient(exc):
                self._keep(units)
                self._warn.failed(f"{type(exc).__name__}: {exc}")
                return
            await self._one_by_one(units)
            return
        self._retry = []
        self._warn.recovered()

    async def _one_by_one(self, units: list[_Unit]) -> None:
        for n, unit in enumerate(units):
            try:
                await self._write_units([unit])
            except Exception as exc:
                self._rolled_back()
                if _transient(exc):  # the database went away meanwhile: keep the rest
                    self._keep(units[n:])
                    self._warn.failed(f"{type(exc).__name__}: {exc}")
                    return
                self._lost(unit, exc)
            self._retry = units[n + 1 :]

    def _keep(self, units: list[_Unit]) -> None:
        """Hold *units* for the next batch (no more are taken beyond ``_RETRY_MAX``)."""
        self._retry = units

    def _rolled_back(self) -> None:
        self._lazy_written.clear()  # what was skipped as written may not be
        self._tx_sessions.clear()  # session ids of a rolled-back batch may not exist

    async def _write_units(self, units: list[_Unit]) -> None:
        """*units* in one transaction, in order."""
        ids = {_charger_of(c) for u in units for c in u.changes}
        ids.update(u.event.device_id for u in units if u.event is not None)
        async with self._sessions.begin() as db:
            with db.no_autoflush:
                rows = _Rows(
                    {
                        r.id: r
                        for r in (
                            await db.execute(select(ChargerRow).where(ChargerRow.id.in_(ids)))
                        ).scalars()
                    },
                    {
                        (r.charger_id, r.connector_id): r
                        for r in (
                            await db.execute(
                                select(ConnectorRow).where(ConnectorRow.charger_id.in_(ids))
                            )
                        ).scalars()
                    },
                )
                for n, unit in enumerate(units, 1):
                    if n % 100 == 0:
                        await asyncio.sleep(0)  # a big batch must not stall the chargers (5 ms)
                    for change in unit.changes:
                        self._persist(db, rows, change, unit.received)
                    if unit.event is not None:
                        await self._transactions(db, unit.event, unit.received)
                        self._notice(db, unit.event, unit.received)
                if self.cluster is not None:  # the other instances re-read these chargers
                    history = {
                        c.charger_id
                        for u in units
                        for c in u.changes
                        if isinstance(c, StatusRecorded | OutageStarted | OutageEnded)
                    }
                    await self.cluster.announce(db, ids, history)

    def _persist(self, db: AsyncSession, rows: _Rows, change: Change, now: datetime) -> None:
        if isinstance(change, ChargerChanged):
            s = change.state
            row = rows.chargers.get(s.charger_id)
            if row is None:
                return
            liveness_to_row(row, s)
            row.protocol = s.protocol
            if s.firmware:
                row.firmware = s.firmware
            if s.serial:
                row.serial = s.serial
            row.last_boot_at = s.last_boot_at
            row.last_boot_reason = s.last_boot_reason
        elif isinstance(change, ConnectorChanged):
            c = change.connector
            key = (change.charger_id, c.connector_id)
            row_c = rows.connectors.get(key)
            if row_c is None:
                row_c = rows.connectors[key] = ConnectorRow(
                    charger_id=change.charger_id, connector_id=c.connector_id
                )
                db.add(row_c)
            row_c.status = c.status or "Unknown"
            row_c.since = c.since
            row_c.error_code = c.error_code
            row_c.vendor_error_code = c.vendor_error_code
            row_c.info = (c.info or None) and c.info[:200]
            row_c.last_meter_wh = c.last_meter_wh
            row_c.last_meter_at = c.last_meter_at
            row_c.energy_today_wh = c.energy_today_wh
            row_c.energy_day = c.energy_day
            row_c.transaction_id = c.transaction_id and c.transaction_id[:36]
            row_c.transaction_at = c.transaction_at
        elif isinstance(change, StatusRecorded):
            r = change.report
            db.add(
                ChargerEventRow(
                    charger_id=change.charger_id,
                    connector_id=change.connector_id,
                    ts=r.ts,
                    received_at=now,
                    kind="status",
                    status=r.status[:50],
                    error_code=r.error_code,
                    vendor_error_code=r.vendor_error_code,
                    detail=(r.info or "")[:500],
                )
            )
        elif isinstance(change, OutageStarted):
            db.add(
                ChargerEventRow(
                    charger_id=change.charger_id, connector_id=None, ts=change.start,
                    received_at=now, kind="outage", status="started", detail=change.reason[:500],
                )
            )  # fmt: skip
        elif isinstance(change, OutageEnded):
            o = change.outage
            db.add(
                ChargerEventRow(
                    charger_id=change.charger_id, connector_id=None, ts=o.start,
                    received_at=now, kind="outage", status="ended",
                    detail=o.end.isoformat() if o.end else "",
                )
            )  # fmt: skip

    def _notice(self, db: AsyncSession, event: Event, now: datetime) -> None:
        if isinstance(event, ChargerNotice):
            db.add(
                ChargerEventRow(
                    charger_id=event.device_id, connector_id=None, ts=event.ts, received_at=now,
                    kind=event.notice[:24], status=event.status[:50], detail=event.detail[:500],
                )
            )  # fmt: skip
        elif isinstance(event, ChargerBooted):
            db.add(
                ChargerEventRow(
                    charger_id=event.device_id, connector_id=None, ts=event.ts, received_at=now,
                    kind="boot", status=(event.reason or "boot")[:50],
                    detail=f"{event.vendor} {event.model} firmware {event.firmware or '?'}"[:500],
                )
            )  # fmt: skip

    async def _session_id(self, db: AsyncSession, charger_id: str, tx: str) -> str | None:
        key = (charger_id, tx)
        found = self._tx_sessions.get(key)
        if found is None:
            found = await db.scalar(
                select(ChargingSessionRow.id).where(
                    ChargingSessionRow.charger_id == charger_id,
                    ChargingSessionRow.transaction_id == tx,
                )
            )
            if found is not None:
                self._tx_sessions[key] = found
        return found

    async def _transactions(self, db: AsyncSession, event: Event, now: datetime) -> None:
        cid = event.device_id
        if isinstance(event, ChargingStarted):
            if await self._session_id(db, cid, event.transaction_id) is not None:
                return  # re-sent: recorded once
            sid = str(uuid.uuid4())
            db.add(
                ChargingSessionRow(
                    id=sid, charger_id=cid, connector_id=event.connector_id,
                    transaction_id=event.transaction_id[:36], id_tag=event.id_tag,
                    state="open", started_at=event.ts, meter_start_wh=event.meter_start_wh,
                    updated_at=now,
                )
            )  # fmt: skip
            self._tx_sessions[(cid, event.transaction_id)] = sid
            await db.flush()
            if event.meter_start_wh is not None:
                await self._sample(db, sid, event.ts, event.meter_start_wh)
        elif (
            isinstance(event, MeterSample) and event.transaction_id and event.energy_wh is not None
        ):
            found = await self._session_id(db, cid, event.transaction_id)
            if found is not None:
                await self._sample(db, found, event.ts, event.energy_wh)
        elif isinstance(event, ConnectorStatusChanged) and event.status in (
            "SuspendedEV",
            "Finishing",
        ):
            row = await db.scalar(
                select(ChargingSessionRow).where(
                    ChargingSessionRow.charger_id == cid,
                    ChargingSessionRow.connector_id == event.connector_id,
                    ChargingSessionRow.state == "open",
                )
            )
            if row is not None and row.charging_ended_at is None and event.ts >= row.started_at:
                row.charging_ended_at = event.ts
        elif isinstance(event, ChargingEnded):
            ended = await self._session_id(db, cid, event.transaction_id)
            if ended is None:
                self._metrics.ocpp_rejected.labels("message", "end_without_start").inc()
                return
            row_s = await db.get(ChargingSessionRow, ended)
            if row_s is None or row_s.state == "closed":
                return  # re-sent
            if event.meter_stop_wh is not None:
                await self._sample(db, ended, event.ts, event.meter_stop_wh)
            self._tx_sessions.pop((cid, event.transaction_id), None)  # a late reading asks the DB
            row_s.state = "closed"
            row_s.ended_at = event.ts
            row_s.meter_stop_wh = event.meter_stop_wh
            row_s.stop_reason = (event.reason or "")[:32] or None
            row_s.updated_at = now
            await db.flush()
            b = await self.price(db, row_s, event.ts)
            if b is not None:
                row_s.total_fen = b.total_fen
                row_s.tariff_version = b.tariff_version
                row_s.bill = bill_json(b)

    async def _sample(self, db: AsyncSession, sid: str, ts: datetime, wh: float) -> None:
        exists = await db.scalar(
            select(func.count())
            .select_from(ChargingSampleRow)
            .where(ChargingSampleRow.session_id == sid, ChargingSampleRow.ts == ts)
        )
        if not exists:
            db.add(ChargingSampleRow(session_id=sid, ts=ts, energy_wh=wh))
            await db.flush()
