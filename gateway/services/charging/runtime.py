"""The chargers at run time: the OCPP backend (auth, live sessions, transaction ids), the
recorder that turns charger events into health, history, charging sessions and bills in the
database, and the watch loop (probes before declaring a charger offline, outages, maintenance
reports through the case outbox).

A charger's receive loop never waits on the database: events are queued (``publish``) and
written in batches by the recorder. Authentication reads one row by primary key.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from charging.billing import Bill, ChargingSessionData, ChargingTariffBook, bill, parking_waiver
from charging.health import (
    Change,
    ChargerBook,
    ChargerChanged,
    ChargerHealth,
    ChargerState,
    ConnectorChanged,
    ConnectorState,
    Outage,
    OutageEnded,
    OutageStarted,
    ProbeState,
    StatusRecorded,
    StatusReport,
    UnknownCharger,
)
from drivers.ocpp import AuthVerdict, IdTagStatus, Link
from events import (
    ChargerBooted,
    ChargerNotice,
    ChargingEnded,
    ChargingStarted,
    ConnectorStatusChanged,
    Event,
    MeterSample,
)
from gateway.cases.outbox import record_case
from gateway.config import OcppConfig
from gateway.directory.chargers import check_password, store_password
from gateway.infra.bus import EventBus
from gateway.infra.storage.schema import (
    ChargerEventRow,
    ChargerRow,
    ChargingSampleRow,
    ChargingSessionRow,
    ConnectorRow,
    SiteRow,
)
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

log = logging.getLogger(__name__)

HISTORY = timedelta(days=8)
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


@dataclass(frozen=True, slots=True)
class ChargerInfo:
    """What the registry says of a charger (the town file or ``citygate chargers add``)."""

    id: str
    site_id: str | None
    location: str  # the site id, or ``place:<name>`` for a charger outside any car park
    place: str
    lat: float
    lon: float
    vendor: str
    model: str
    current: str
    power_kw: float
    connectors: int
    site_class: str
    lifecycle: str


def _location(row: ChargerRow) -> str:
    return row.site_id or f"place:{row.place}"


def bill_json(b: Bill) -> dict[str, Any]:
    return {
        "site_id": b.site_id,
        "tariff_version": b.tariff_version,
        "start": b.start.isoformat(),
        "charging_end": b.charging_end.isoformat() if b.charging_end else None,
        "idle_end": b.idle_end.isoformat() if b.idle_end else None,
        "energy_wh": b.energy_wh,
        "energy_fen": b.energy_fen,
        "service_fen": b.service_fen,
        "idle_fen": b.idle_fen,
        "total_fen": b.total_fen,
        "lines": [
            {
                "start": ln.start.isoformat(),
                "end": ln.end.isoformat(),
                "kind": ln.kind,
                "band": ln.band,
                "rule": ln.rule,
                "wh": ln.wh,
                "amount_fen": ln.amount_fen,
            }
            for ln in b.lines
        ],
    }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def fleet_line(h: ChargerHealth, rt: ChargingRuntime) -> dict[str, Any]:
    """One charger's line of the fleet view (and the head of its detail view)."""
    info = rt.chargers.get(h.charger_id)
    return {
        "id": h.charger_id,
        "site_id": info.site_id if info else None,
        "place": info.place if info else None,
        "state": h.state.value,
        "reason": h.reason,
        "since": _iso(h.since),
        "online": h.liveness == "online",
        "liveness": h.liveness,
    }


def fleet_view(rt: ChargingRuntime, now: datetime) -> dict[str, Any]:
    """The inspectors' fleet view at ``now``: counts by state, chargers worst first. The one
    function behind ``GET /api/v1/chargers`` and ``citygate chargers health``, so both show
    the same thing from the same state."""
    fleet = rt.book.fleet(now)
    return {
        "at": fleet.at.isoformat(),
        "total": len(fleet.chargers),
        "counts": {k.value: v for k, v in fleet.counts.items()},
        "chargers": [fleet_line(h, rt) for h in fleet.chargers],
    }


@dataclass(slots=True)
class _Rows:
    """The charger and connector rows of one recorder batch, read up front."""

    chargers: dict[str, ChargerRow]
    connectors: dict[tuple[str, int], ConnectorRow]


def _liveness_to_row(row: ChargerRow, s: ChargerState) -> None:
    row.last_seen = s.last_message_at
    row.connected = s.connected
    row.connected_at = s.connected_at
    row.disconnected_at = s.disconnected_at
    row.disconnect_reason = s.disconnect_reason and s.disconnect_reason[:64]
    row.restarted_at = s.restarted_at
    row.probe_state = s.probe_state
    row.probe_at = s.probe_at


def _probe_state(value: str) -> ProbeState:
    return "pending" if value == "pending" else "failed" if value == "failed" else "idle"


def _snapshot(
    r: ChargerRow, conns: dict[int, ConnectorRow], ids: list[int], heartbeat_s: int
) -> ChargerState:
    """A charger as the database last knew it: liveness, boot facts and its connectors'
    status, meter, energy today and transaction."""
    return ChargerState(
        charger_id=r.id,
        site_id=_location(r),
        heartbeat_s=heartbeat_s,
        connectors={
            cid: ConnectorState(
                cid,
                status=c.status if c.status != "Unknown" else None,
                since=c.since,
                reported_at=c.since,
                error_code=c.error_code,
                vendor_error_code=c.vendor_error_code,
                info=c.info,
                last_meter_wh=c.last_meter_wh,
                last_meter_at=c.last_meter_at,
                energy_today_wh=c.energy_today_wh,
                energy_day=c.energy_day,
                transaction_id=c.transaction_id,
                transaction_at=c.transaction_at,
            )
            if (c := conns.get(cid)) is not None
            else ConnectorState(cid)
            for cid in ids
        },
        connected=r.connected,
        protocol=r.protocol,
        connected_at=r.connected_at,
        disconnected_at=r.disconnected_at,
        disconnect_reason=r.disconnect_reason,
        last_message_at=r.last_seen,
        restarted_at=r.restarted_at,
        probe_state=_probe_state(r.probe_state),
        probe_at=r.probe_at,
        vendor=r.vendor,
        model=r.model,
        serial=r.serial,
        firmware=r.firmware,
        last_boot_reason=r.last_boot_reason,
        last_boot_at=r.last_boot_at,
    )


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


class ChargingRuntime:
    """The gateway's ``ChargerBackend`` and the tasks behind it."""

    def __init__(
        self,
        config: OcppConfig,
        sessions: async_sessionmaker[Any],
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], datetime],
        tariffs: ChargingTariffBook,
        zone: ZoneInfo,
        on_case: Callable[[], None] = lambda: None,
    ) -> None:
        self.config = config
        self._sessions = sessions
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self.tariffs = tariffs
        self._on_case = on_case
        self.zone = zone  # the town's: energy today is counted in it
        self.book = ChargerBook(zone, factor=config.silence_factor)
        self.live: dict[str, Link] = {}
        self.chargers: dict[str, ChargerInfo] = {}
        # Everything the recorder writes: charger events, and the book's own changes (probes,
        # outages), so all writes of chargers go through one task, in order.
        self._queue: asyncio.Queue[tuple[Event | tuple[Change, ...], datetime]] = asyncio.Queue(
            maxsize=500_000
        )
        self._next_tx = 1
        self._tx_sessions: dict[tuple[str, str], str] = {}  # (charger, tx) -> session id
        # (charger, connector | -1) -> when last written / the latest change not written yet
        self._lazy_written: dict[tuple[str, int], datetime] = {}
        self._lazy_pending: dict[tuple[str, int], Change] = {}
        self._flush_all = False
        self._warn = OnceLogger(log, "charger recorder")
        self._probing: set[str] = set()

    # -- start-up -----------------------------------------------------------------------------

    async def load(self, *, restart: bool = True) -> None:
        """Registry, last known state and 8 days of history from the database. ``restart``: this
        process is the gateway starting, so no socket survived (each charger has the grace to
        reconnect, see ``ChargerBook.restore``) and what the restart changed is written back;
        without it the book is the running gateway's as persisted (the CLI reads it so)."""
        now = self._clock()
        async with self._sessions() as db:
            sites = {r.id: r for r in (await db.execute(select(SiteRow))).scalars()}
            rows = list((await db.execute(select(ChargerRow))).scalars())
            conns: dict[str, dict[int, ConnectorRow]] = {}
            for c in (await db.execute(select(ConnectorRow))).scalars():
                conns.setdefault(c.charger_id, {})[c.connector_id] = c
            history: dict[tuple[str, int], list[StatusReport]] = {}
            outages: dict[str, list[Outage]] = {}
            recent = select(ChargerEventRow).where(
                ChargerEventRow.ts >= now - HISTORY,
                ChargerEventRow.kind.in_(("status", "outage")),
            )
            for e in (await db.execute(recent.order_by(ChargerEventRow.ts))).scalars():
                if e.kind == "status" and e.connector_id is not None:
                    history.setdefault((e.charger_id, e.connector_id), []).append(
                        StatusReport(
                            e.ts, e.status, e.error_code, e.vendor_error_code, e.detail or None
                        )
                    )
                elif e.kind == "outage" and e.status == "ended" and e.detail:
                    outages.setdefault(e.charger_id, []).append(
                        Outage(e.ts, datetime.fromisoformat(e.detail))
                    )
            # 1.6 ids are the gateway's own increasing integers (2.0.1 ids are the charger's
            # strings): the largest is among the longest all-digit ids.
            tx = ChargingSessionRow.transaction_id
            longest = await db.execute(
                select(tx)
                .where(func.length(tx) <= 10)
                .order_by(func.length(tx).desc(), tx.desc())
                .limit(100)
            )
            digits = [int(t) for (t,) in longest if t.isdigit()]
        self._next_tx = 1 + max(digits, default=0)
        restored: list[ChargerState] = []
        for r in rows:
            if r.lifecycle == "retired":
                continue  # refused at the handshake, out of the fleet
            ids = self._put(r, sites.get(r.site_id) if r.site_id else None)
            mine = conns.get(r.id, {})
            known = sorted(set(ids) | set(mine) | {cid for (ch, cid) in history if ch == r.id})
            snapshot = _snapshot(r, mine, known, self.config.heartbeat_s)
            restored.append(
                self.book.restore(
                    snapshot,
                    now=now,
                    history={cid: history.get((r.id, cid), []) for cid in known},
                    outages=outages.get(r.id, []),
                    restart=restart,
                )
            )
        if restart and restored:
            await self._save_liveness(restored)

    async def _save_liveness(self, states: list[ChargerState]) -> None:
        """Write back what the restart did to the chargers' sockets and probes, so the CLI and
        another restart see it."""
        by_id = {s.charger_id: s for s in states}
        async with self._sessions.begin() as db:
            for row in (
                await db.execute(select(ChargerRow).where(ChargerRow.id.in_(by_id)))
            ).scalars():
                _liveness_to_row(row, by_id[row.id])

    def _put(self, r: ChargerRow, site: SiteRow | None) -> range:
        """Register (or update) a charger from its row; returns its connector ids."""
        self.chargers[r.id] = ChargerInfo(
            id=r.id,
            site_id=r.site_id,
            location=_location(r),
            place=r.place,
            lat=r.lat,
            lon=r.lon,
            vendor=r.vendor,
            model=r.model,
            current=r.current,
            power_kw=r.power_kw,
            connectors=r.connectors,
            site_class=site.segment_class if site else "C",
            lifecycle=r.lifecycle,
        )
        ids = range(1, r.connectors + 1)  # connector 0 (the charger) only if it reports
        self.book.register(
            r.id, _location(r), heartbeat_s=self.config.heartbeat_s, connector_ids=ids
        )
        return ids

    async def refresh_charger(self, charger_id: str) -> ChargerInfo | None:
        """Follow a registry change (the change feed): re-read the charger and register it,
        move it, or, retired or gone, drop it and close its connection."""
        async with self._sessions() as db:
            row = await db.get(ChargerRow, charger_id)
            site = await db.get(SiteRow, row.site_id) if row and row.site_id else None
        if row is not None and row.lifecycle != "retired":
            self._put(row, site)
            return self.chargers[charger_id]
        self.chargers.pop(charger_id, None)
        self.book.forget(charger_id)
        session = self.live.get(charger_id)
        if session is not None:
            session.begin_close("retired")
        return None

    # -- ChargerBackend -------------------------------------------------------------------------

    async def authenticate(self, charger_id: str, password: str | None) -> AuthVerdict:
        async with self._sessions() as db:
            row = await db.get(ChargerRow, charger_id)
            verdict = check_password(row, password)
            if verdict == "ok" and row is not None and charger_id not in self.chargers:
                # Registered a moment ago (the change feed is on its way): register it now, so
                # its first messages are not lost.
                self._put(row, await db.get(SiteRow, row.site_id) if row.site_id else None)
        return verdict  # type: ignore[return-value]  # counted by the server

    async def password_changed(self, charger_id: str, password: str) -> None:
        """The charger took a new password (the command's answer waits for this write)."""
        async with self._sessions.begin() as db:
            await store_password(db, charger_id, password, self._clock())

    def connected(self, charger_id: str, session: Link) -> None:
        self.live[charger_id] = session
        self._metrics.chargers_connected.set(len(self.live))

    def disconnected(self, charger_id: str, session: Link, reason: str) -> None:
        if self.live.get(charger_id) is session:
            del self.live[charger_id]
        self._metrics.chargers_connected.set(len(self.live))

    def publish(self, event: Event) -> None:
        self._bus.publish(event)
        try:
            self._queue.put_nowait((event, self._clock()))
        except asyncio.QueueFull:
            self._metrics.ocpp_rejected.labels("recorder", "queue_full").inc()
            self._warn.failed("recorder queue full: charger events are being dropped")

    def heartbeat_interval(self, charger_id: str) -> int:
        return self.config.heartbeat_s

    def authorize(self, charger_id: str, id_tag: str) -> IdTagStatus:
        """Public chargers: any well-formed id tag may charge (the app or card settles the
        bill); an empty or oversized one may not."""
        return "Accepted" if 0 < len(id_tag) <= 36 else "Invalid"

    def new_transaction_id(self, charger_id: str) -> int:
        tx, self._next_tx = self._next_tx, self._next_tx + 1
        return tx

    def count(self, what: str, reason: str) -> None:
        self._metrics.ocpp_rejected.labels(what, reason).inc()

    # -- the recorder ---------------------------------------------------------------------------

    async def record(self, batch: int = 1000) -> None:
        """Write charger events in batches (a task of the gateway); cancelled (the gateway
        stops), it writes the changes it was holding back first."""
        try:
            while True:
                items = [await self._queue.get()]
                while len(items) < batch and not self._queue.empty():
                    items.append(self._queue.get_nowait())
                try:
                    await self._write(items)
                    self._warn.recovered()
                except Exception as exc:
                    self._lazy_written.clear()  # what was skipped as written may not be
                    self._metrics.ocpp_rejected.labels("recorder", "write_failed").inc(len(items))
                    self._warn.failed(f"{type(exc).__name__}: {exc}")
                finally:
                    for _ in items:
                        self._queue.task_done()
        except asyncio.CancelledError:
            held = tuple(self._lazy_pending.values())
            self._lazy_pending.clear()
            if held:
                with contextlib.suppress(Exception):
                    await self._write([(held, self._clock())])
            raise

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

    async def _write(self, items: list[tuple[Event | tuple[Change, ...], datetime]]) -> None:
        """One transaction per batch; only what is due is written (``LAZY_WRITE``).

        The leading run of events that write nothing of their own (meter readings outside a
        transaction, heartbeats, connections) goes to the book first, so only the rows of the
        changes due are read. From the first event that does (a transaction, a status, a
        notice) on, each event goes to the book right before its own writes, in order. The
        rows the writes touch are read up front, two queries for the whole batch, and nothing
        is flushed until the end: per-event reads and flushes made the recorder 18x slower
        (the ceiling of a 5,000-charger fleet)."""
        early: list[tuple[list[Change], datetime]] = []
        rest = 0
        for n, (event, received) in enumerate(items, 1):
            if n % 100 == 0:
                await asyncio.sleep(0)  # a big batch must not stall the chargers' answers (5 ms)
            if isinstance(event, tuple) or _recorded(event):
                rest = n - 1
                break
            rest = n
            if event.device_id not in self.chargers:
                continue
            try:
                changes = self.book.apply(event, received)
            except UnknownCharger:
                continue
            due = [c for c in changes if self._due(c, received)]
            if due:
                early.append((due, received))
        later = items[rest:]
        ids = {_charger_of(c) for due, _ in early for c in due}
        for event, _ in later:
            if isinstance(event, tuple):
                ids.update(_charger_of(c) for c in event)
            elif event.device_id in self.chargers:
                ids.add(event.device_id)
        if not early and not later:
            return
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
                for due, received in early:
                    for change in due:
                        self._persist(db, rows, change, received)
                for event, received in later:
                    await self._record_one(db, rows, event, received)

    async def _record_one(
        self,
        db: AsyncSession,
        rows: _Rows,
        event: Event | tuple[Change, ...],
        received: datetime,
    ) -> None:
        if event == ():
            held = self._held(received)
            missing = {_charger_of(c) for c in held} - set(rows.chargers)
            if missing:  # rows the batch did not read up front
                for r in (
                    await db.execute(select(ChargerRow).where(ChargerRow.id.in_(missing)))
                ).scalars():
                    rows.chargers[r.id] = r
                for rc in (
                    await db.execute(
                        select(ConnectorRow).where(ConnectorRow.charger_id.in_(missing))
                    )
                ).scalars():
                    rows.connectors[(rc.charger_id, rc.connector_id)] = rc
            for n, change in enumerate(held, 1):
                if n % 100 == 0:
                    await asyncio.sleep(0)  # a minute's worth of held-back rows: in steps
                self._persist(db, rows, change, received)
            return
        if isinstance(event, tuple):
            for change in event:
                self._persist(db, rows, change, received)
            return
        if event.device_id not in self.chargers:
            return
        try:
            changes = self.book.apply(event, received)
        except UnknownCharger:
            return
        for change in changes:
            if self._due(change, received):
                self._persist(db, rows, change, received)
        await self._transactions(db, event, received)
        self._notice(db, event, received)

    def _persist(self, db: AsyncSession, rows: _Rows, change: Change, now: datetime) -> None:
        if isinstance(change, ChargerChanged):
            s = change.state
            row = rows.chargers.get(s.charger_id)
            if row is None:
                return
            _liveness_to_row(row, s)
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

    async def session_data(
        self, db: AsyncSession, row: ChargingSessionRow, now: datetime
    ) -> ChargingSessionData:
        """What billing needs of a session (up to ``now`` while it is open)."""
        samples = (
            await db.execute(
                select(ChargingSampleRow.ts, ChargingSampleRow.energy_wh)
                .where(ChargingSampleRow.session_id == row.id)
                .order_by(ChargingSampleRow.ts)
            )
        ).all()
        stop = row.ended_at or max(now, row.started_at)
        return ChargingSessionData(
            start=row.started_at,
            stop=stop,
            samples=tuple((ts, round(wh)) for ts, wh in samples),
            meter_start_wh=None if row.meter_start_wh is None else round(row.meter_start_wh),
            meter_stop_wh=None if row.meter_stop_wh is None else round(row.meter_stop_wh),
            charging_end=min(row.charging_ended_at, stop) if row.charging_ended_at else None,
        )

    async def price(self, db: AsyncSession, row: ChargingSessionRow, now: datetime) -> Bill | None:
        """The itemised bill of a session (up to ``now`` while it is open)."""
        info = self.chargers.get(row.charger_id)
        if info is None:
            return None
        data = await self.session_data(db, row, now)
        try:
            return bill(self.tariffs, info.location, info.site_class, data)
        except ValueError as exc:
            self._metrics.ocpp_rejected.labels("billing", "unpriced").inc()
            log.warning("charging session %s not billed: %s", row.id, exc)
            return None

    async def waiver(
        self, db: AsyncSession, row: ChargingSessionRow, now: datetime
    ) -> dict[str, Any] | None:
        """The stretch of parking the site waives for this charging session, if any."""
        info = self.chargers.get(row.charger_id)
        if info is None or info.site_id is None:
            return None
        try:
            w = parking_waiver(self.tariffs, info.site_id, await self.session_data(db, row, now))
        except ValueError:
            return None
        if w is None:
            return None
        return {
            "site_id": w.site_id,
            "start": w.start.isoformat(),
            "end": w.end.isoformat(),
            "rule": w.rule,
        }

    # -- the watch loop -------------------------------------------------------------------------

    async def watch(self) -> None:
        """Probe silent chargers, declare outages, raise maintenance reports."""
        interval_s = self.config.watch_interval_s
        # Maintenance findings wait an hour (by default) before they are reported: looking for
        # them every pass cost a 20 ms stall every 5 s at 5,000 chargers, a twentieth of the
        # shortest wait is soon enough (at most a minute).
        shortest = min(self.config.faulted_report_after_s, self.config.offline_report_after_s)
        every = timedelta(seconds=max(interval_s, min(60.0, shortest / 20)))
        due_maintenance: datetime | None = None
        async with asyncio.TaskGroup() as tg:
            while True:
                now = self._clock()
                for charger_id in self.book.due_probes(now):
                    session = self.live.get(charger_id)
                    if session is None or charger_id in self._probing:
                        continue
                    self._probing.add(charger_id)
                    self._enqueue_changes(self.book.probe_sent(charger_id, now))
                    tg.create_task(self._probe(charger_id, session))
                # Each pass over a 5,000-charger book takes 6-20 ms: let the chargers' answers
                # in between (one 30 ms stall every few seconds showed in the p99).
                await asyncio.sleep(0)
                self._enqueue_changes(self.book.sweep(now))
                if due_maintenance is None or now >= due_maintenance:
                    await asyncio.sleep(0)
                    await self._maintenance(now)
                    due_maintenance = now + every
                self._enqueue_lazy_flush()  # the held-back writes that are overdue
                await asyncio.sleep(interval_s)

    async def _probe(self, charger_id: str, session: Link) -> None:
        try:
            ok = await session.probe(self.config.probe_timeout_s)
        finally:
            self._probing.discard(charger_id)
        self._metrics.ocpp_probes.labels("answered" if ok else "silent").inc()
        self._enqueue_changes(self.book.probe_result(charger_id, ok, self._clock()))

    def _enqueue_changes(self, changes: tuple[Change, ...]) -> None:
        if changes:
            try:
                self._queue.put_nowait((changes, self._clock()))
            except asyncio.QueueFull:
                self._metrics.ocpp_rejected.labels("recorder", "queue_full").inc()

    async def _maintenance(self, now: datetime) -> None:
        findings = self.book.maintenance(
            now,
            timedelta(seconds=self.config.faulted_report_after_s),
            timedelta(seconds=self.config.offline_report_after_s),
        )
        if not findings:
            return
        filed = 0
        try:
            async with self._sessions.begin() as db:
                for f in findings:
                    case = f.to_case()
                    row = await record_case(db, case, now)
                    self._metrics.cases_raised.labels(
                        case.category, "duplicate" if row is None else "recorded"
                    ).inc()
                    if row is not None:
                        filed += 1
                        self._bus.publish(case)
        except Exception as exc:
            self._warn.failed(f"maintenance reports: {type(exc).__name__}: {exc}")
            return
        if filed:
            self._on_case()
