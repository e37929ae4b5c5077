"""The chargers as the runtime knows them: loaded from the database at start (registry, last
known state, 8 days of history), followed live through the change feed, and the state every
part of the charging runtime shares (the book, live sessions, the recorder's queue)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import async_sessionmaker

from charging.billing import ChargingTariffBook
from charging.health import (
    Change,
    ChargerBook,
    ChargerState,
    ConnectorState,
    Outage,
    ProbeState,
    StatusReport,
)
from drivers.ocpp import Link
from events import (
    Event,
)
from gateway.config import OcppConfig
from gateway.infra.bus import EventBus
from gateway.infra.storage.schema import (
    ChargerEventRow,
    ChargerRow,
    ChargingSessionRow,
    ConnectorRow,
    SiteRow,
)
from gateway.logs import OnceLogger
from gateway.metrics import Metrics

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from gateway.directory.audit import Actor
    from gateway.services.charging.cluster_rules import Outcome

log = logging.getLogger(__name__)

# Recorder queue depths between which chargers are slowed down (their sessions stop reading
# frames) rather than their events dropped: a 5,000-charger fleet's minute is ~50,000 events.
HIGH_WATER = 100_000
LOW_WATER = 50_000


HISTORY = timedelta(days=8)


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


def liveness_to_row(row: ChargerRow, s: ChargerState) -> None:
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


class Cluster(Protocol):
    """What the charging runtime asks of the cluster (``cluster.ChargerCluster``)."""

    def responsible(self, charger_id: str) -> bool: ...
    def holder(self, charger_id: str) -> str | None: ...
    async def claim(self, charger_id: str, protocol: str, remote: str) -> bool: ...
    def let_go(self, charger_id: str) -> None: ...
    async def announce(self, db: AsyncSession, ids: set[str], history: set[str]) -> None: ...
    async def relay(
        self, charger_id: str, command: str, params: Mapping[str, Any], actor: Actor
    ) -> Outcome | None: ...


class ChargerFleet:
    """The charger book and registry, loaded from the database; the shared state of the
    charging runtime (``ChargingRuntime`` builds on it)."""

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
        # outages), so all writes of chargers go through one task, in order. Not bounded by
        # dropping: above HIGH_WATER the sessions stop reading frames (``room``) until the
        # recorder has caught up below LOW_WATER.
        self._queue: asyncio.Queue[tuple[Event | tuple[Change, ...], datetime]] = asyncio.Queue()
        self._room = asyncio.Event()
        self._room.set()
        # Charger events queued and committed (or counted lost), for ``durable``: a
        # transaction message is answered once the recorder has written up to it.
        self._events_queued = 0
        self._events_written = 0
        self._events_taken = 0
        self._durable_waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._next_tx = 1
        self._tx_sessions: dict[tuple[str, str], str] = {}  # (charger, tx) -> session id
        self._retry: list[Any] = []  # the recorder's units kept while the database is away
        # (charger, connector | -1) -> when last written / the latest change not written yet
        self._lazy_written: dict[tuple[str, int], datetime] = {}
        self._lazy_pending: dict[tuple[str, int], Change] = {}
        self._flush_all = False
        self._warn = OnceLogger(log, "charger recorder")
        self._probing: set[str] = set()
        # a commissioned charger's first BootNotification/Heartbeat (the lifecycle activator)
        self.activate: Callable[[str], None] = lambda charger_id: None
        # Several instances on one PostgreSQL database: who holds which charger, commands to
        # the others' chargers (None: SQLite, one instance, everything is here).
        self.cluster: Cluster | None = None

    def acts_for(self, charger_id: str) -> bool:
        """Whether this instance probes, sweeps and reports *charger_id*: always alone; in a
        cluster, the charger's holder does, and the leader for the chargers nobody holds."""
        if self.cluster is None or charger_id in self.live:
            return True
        return self.cluster.responsible(charger_id)

    def in_maintenance(self, charger_id: str) -> bool:
        info = self.chargers.get(charger_id)
        return info is not None and info.lifecycle == "maintenance"

    def in_service(self, charger_id: str) -> bool:  # active: its faults are reported
        info = self.chargers.get(charger_id)
        return info is not None and info.lifecycle == "active"

    async def load(self, *, restart: bool = True, elsewhere: frozenset[str] = frozenset()) -> None:
        """Registry, last known state and 8 days of history from the database. ``restart``: this
        process is the gateway starting, so no socket survived (each charger has the grace to
        reconnect, see ``ChargerBook.restore``) and what the restart changed is written back;
        without it the book is the running gateway's as persisted (the CLI reads it so).
        ``elsewhere``: chargers another live instance holds (PostgreSQL): their sockets did
        survive, so they are taken as persisted and not written back."""
        async with self._sessions() as db:
            sites = {r.id: r for r in (await db.execute(select(SiteRow))).scalars()}
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
        restored = await self._restore(sites, None, restart=restart, elsewhere=elsewhere)
        if restart and restored:
            await self._save_liveness([s for s in restored if s.charger_id not in elsewhere])

    async def reload(
        self,
        ids: set[str] | frozenset[str],
        skip: Callable[[str], bool] = lambda _: False,
        *,
        history: set[str] | frozenset[str] | None = None,
        taking: bool = False,
    ) -> None:
        """Take these chargers' state as the database has them now (another instance wrote
        them: the charger is connected there, or was until a moment ago); their 8 days of
        history too for those in *history* (all if ``None``: a status or an outage was
        written), the rest keep the book's. *skip*, asked after the read, keeps the ones this
        instance took meanwhile. ``taking``: this instance takes the charger over, its next
        1.6 transaction id goes above every one the charger had."""
        if not ids:
            return
        async with self._sessions() as db:
            site_ids = {c.site_id for i in ids if (c := self.chargers.get(i)) and c.site_id}
            sites = {
                r.id: r
                for r in (
                    await db.execute(select(SiteRow).where(SiteRow.id.in_(site_ids)))
                ).scalars()
            }
            if taking:  # 1.6 transaction ids are per charger
                tx = ChargingSessionRow.transaction_id
                rows = await db.execute(
                    select(tx).where(ChargingSessionRow.charger_id.in_(ids), func.length(tx) <= 10)
                )
                digits = [int(t) for (t,) in rows if t.isdigit()]
                self._next_tx = max(self._next_tx, 1 + max(digits, default=0))
        await self._restore(
            sites, ids, restart=False, elsewhere=frozenset(), skip=skip, fresh=history
        )

    async def _restore(
        self,
        sites: dict[str, SiteRow],
        ids: set[str] | frozenset[str] | None,
        *,
        restart: bool,
        elsewhere: frozenset[str],
        skip: Callable[[str], bool] = lambda _: False,
        fresh: set[str] | frozenset[str] | None = None,
    ) -> list[ChargerState]:
        """Read chargers (all, or *ids*), their connectors and 8 days of history, and put
        them in the book."""
        now = self._clock()
        C, K, E = ChargerRow, ConnectorRow, ChargerEventRow
        async with self._sessions() as db:
            q_rows, q_conns = select(C), select(K)
            recent = select(E).where(E.ts >= now - HISTORY, E.kind.in_(("status", "outage")))
            if ids is not None:
                q_rows = q_rows.where(C.id.in_(ids))
                q_conns = q_conns.where(K.charger_id.in_(ids))
                recent = recent.where(E.charger_id.in_(ids if fresh is None else fresh))
            rows = list((await db.execute(q_rows)).scalars())
            conns: dict[str, dict[int, ConnectorRow]] = {}
            for c in (await db.execute(q_conns)).scalars():
                conns.setdefault(c.charger_id, {})[c.connector_id] = c
            history: dict[tuple[str, int], list[StatusReport]] = {}
            outages: dict[str, list[Outage]] = {}
            for e in (await db.execute(recent.order_by(E.ts, E.id))).scalars():
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
        restored: list[ChargerState] = []
        for r in rows:
            if r.lifecycle == "retired" or skip(r.id):
                continue  # retired: refused at the handshake, out of the fleet
            site = r.site_id and sites.get(r.site_id)
            ids_ = self._put(r, site or None)
            mine = conns.get(r.id, {})
            kept = fresh is not None and r.id not in fresh and r.id in self.book
            held = set(self.book.state(r.id).connectors) if kept else set()
            known = sorted(
                set(ids_) | set(mine) | held | {cid for (ch, cid) in history if ch == r.id}
            )
            snapshot = _snapshot(r, mine, known, self.config.heartbeat_s)
            if kept:  # nothing new in its history: the book's stays
                for cid in known:
                    history[(r.id, cid)] = list(self.book.history(r.id, cid))
                outages[r.id] = list(self.book.outages(r.id, now))
            restored.append(
                self.book.restore(
                    snapshot,
                    now=now,
                    history={cid: history.get((r.id, cid), []) for cid in known},
                    outages=outages.get(r.id, []),
                    restart=restart and r.id not in elsewhere,
                )
            )
        return restored

    async def _save_liveness(self, states: list[ChargerState]) -> None:
        """Write back what the restart did to the chargers' sockets and probes, so the CLI and
        another restart see it."""
        by_id = {s.charger_id: s for s in states}
        async with self._sessions.begin() as db:
            for row in (
                await db.execute(select(ChargerRow).where(ChargerRow.id.in_(by_id)))
            ).scalars():
                liveness_to_row(row, by_id[row.id])

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
