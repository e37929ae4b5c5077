"""Parking sessions in the database, opened and closed from berth occupancy and plate reads.

Each observation is decided by the pure rules of ``parking.sessions`` against a snapshot read
in the same transaction that applies the decision, under a per-berth / per-vehicle lock; the
partial unique indexes of ``parking_sessions`` back the "one open session" rule in the
database itself. Fees are priced with the posted tariff in force at entry
(``parking.tariffs.settle``), so a stay is priced the same whoever asks and whenever.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import BerthState, BerthStateChanged, PlateRead
from gateway.bus import EventBus
from gateway.metrics import Metrics
from gateway.storage.schema import ParkingSessionRow, PlateReadRow
from gateway.town import Berth, Site
from parking.occupancy import OccupancyBook
from parking.sessions import (
    Action,
    Close,
    ClosePrevious,
    Ignore,
    Open,
    OpenClosed,
    RecordExit,
    StaySnapshot,
    decide_berth,
    decide_plate,
    normalise_plate,
    vehicle_class,
)
from parking.tariffs import QuoteLine, Settlement, TariffBook, VehicleClass, settle

log = logging.getLogger(__name__)

PENDING_EXIT = "pending_exit"
PAIRING_WINDOW = timedelta(days=7)  # a late entry read pairs with an exit read at most this later


def new_session_id() -> str:
    """112 random bits: a session id is the app's handle and must not be guessable."""
    return "ps_" + secrets.token_hex(14)


@dataclass(frozen=True, slots=True)
class SessionView:
    """A session as the app and the operators see it, priced at ``priced_at``."""

    id: str
    kind: str
    site_id: str
    berth_id: str | None
    berth_number: str | None
    plate: str | None
    vehicle_class: str
    state: str
    entry: datetime
    exit: datetime | None
    note: str
    paid_fen: int
    paid_at: datetime | None
    settlement: Settlement | None
    pricing_error: str | None
    priced_at: datetime

    @property
    def lines(self) -> tuple[QuoteLine, ...]:
        return () if self.settlement is None else self.settlement.quote.lines


@dataclass(frozen=True, slots=True)
class PlateOutcome:
    outcome: str
    session_id: str | None


class SessionStore:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        sites: dict[str, Site],
        berths: dict[str, Berth],
        tariffs: TariffBook,
        metrics: Metrics,
        clock: Callable[[], datetime],
        plate_dedup: timedelta = timedelta(minutes=5),
    ) -> None:
        self._sessions = sessions
        self._sites = sites
        self._berths = berths
        self._tariffs = tariffs
        self._metrics = metrics
        self._clock = clock
        self._dedup = plate_dedup
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    def _lock(self, *key: str) -> asyncio.Lock:
        k = (key[0], key[1])
        lock = self._locks.get(k)
        if lock is None:
            lock = self._locks[k] = asyncio.Lock()
        return lock

    # ----- pricing -------------------------------------------------------------------------

    def price(self, row: ParkingSessionRow, at: datetime) -> tuple[Settlement | None, str | None]:
        """The stay's settlement up to its exit (or ``at`` while open); an error message
        instead when the posted tariff cannot price it (e.g. an entry before the first one)."""
        site = self._sites.get(row.site_id)
        if site is None:
            return None, f"unknown site {row.site_id!r}"
        end = row.exit_at if row.exit_at is not None else max(at, row.entry_at)
        vehicle: VehicleClass = row.vehicle_class  # type: ignore[assignment]
        try:
            s = settle(
                self._tariffs,
                site.id,
                site.segment_class,
                vehicle,
                row.entry_at,
                end,
                row.paid_fen,
                row.paid_at,
            )
        except ValueError as exc:
            return None, str(exc)
        return s, None

    def _close(self, row: ParkingSessionRow, exit_at: datetime, source: str, now: datetime) -> None:
        row.state = "closed"
        row.exit_at = exit_at
        row.exit_source = source
        row.updated_at = now
        s, err = self.price(row, exit_at)
        if s is None:
            row.fee_fen = 0
            row.note = (row.note + f" not priced: {err}").strip()[:200]
        else:
            row.fee_fen = s.quote.total_fen
            row.tariff_version = s.quote.tariff_version

    def _new(
        self,
        *,
        kind: str,
        site_id: str,
        berth_id: str | None,
        plate: str | None,
        vclass: str,
        entry: datetime,
        source: str,
        now: datetime,
    ) -> ParkingSessionRow:
        return ParkingSessionRow(
            id=new_session_id(),
            kind=kind,
            site_id=site_id,
            berth_id=berth_id,
            plate=plate,
            vehicle_class=vclass,
            state="open",
            entry_at=entry,
            entry_source=source,
            fee_fen=0,
            paid_fen=0,
            note="",
            created_at=now,
            updated_at=now,
        )

    # ----- berth occupancy -----------------------------------------------------------------

    async def on_berth_change(self, event: BerthStateChanged) -> str:
        """Open or close the berth's session; returns the outcome (also counted)."""
        occupied = {BerthState.OCCUPIED: True, BerthState.FREE: False}.get(event.state)
        outcome = await self._berth(
            event.berth_id, event.site_id, occupied, event.since, event.device_id
        )
        self._metrics.sessions.labels("berth", outcome).inc()
        return outcome

    async def _berth(
        self, berth_id: str, site_id: str, occupied: bool | None, since: datetime, source: str
    ) -> str:
        if berth_id not in self._berths:
            return "unknown_berth"
        now = self._clock()
        async with self._lock("berth", berth_id), self._sessions.begin() as db:
            open_row = await db.scalar(
                select(ParkingSessionRow).where(
                    ParkingSessionRow.berth_id == berth_id, ParkingSessionRow.state == "open"
                )
            )
            last_exit = await db.scalar(
                select(func.max(ParkingSessionRow.exit_at)).where(
                    ParkingSessionRow.berth_id == berth_id, ParkingSessionRow.state == "closed"
                )
            )
            snap = StaySnapshot(
                open_entry=open_row.entry_at if open_row else None, last_exit=last_exit
            )
            action = decide_berth(snap, occupied, since)
            if isinstance(action, Open):
                db.add(
                    self._new(
                        kind="berth",
                        site_id=site_id,
                        berth_id=berth_id,
                        plate=None,
                        vclass="small",
                        entry=action.entry,
                        source=source,
                        now=now,
                    )
                )
                return "opened"
            if isinstance(action, Close):
                assert open_row is not None
                self._close(open_row, action.exit, source, now)
                return "closed"
            assert isinstance(action, Ignore)
            return action.reason

    async def reconcile(self, book: OccupancyBook) -> int:
        """Bring berth sessions in line with the live occupancy (at start, and periodically,
        so an event lost on the way — a crash, a full queue — cannot leave a stay open or
        unopened). Returns how many sessions it opened or closed."""
        async with self._sessions() as db:
            open_berths = {
                r.berth_id: r.entry_at
                for r in (
                    await db.execute(
                        select(ParkingSessionRow).where(
                            ParkingSessionRow.state == "open",
                            ParkingSessionRow.berth_id.is_not(None),
                        )
                    )
                ).scalars()
            }
        changed = 0
        for site_id in {b.site for b in self._berths.values()}:
            try:
                views = book.berths(site_id)
            except KeyError:
                continue
            for view in views:
                has_open = view.berth_id in open_berths
                if view.state is BerthState.OCCUPIED and not has_open:
                    outcome = await self._berth(
                        view.berth_id, site_id, True, view.since, "reconcile"
                    )
                elif view.state is BerthState.FREE and has_open:
                    outcome = await self._berth(
                        view.berth_id, site_id, False, view.since, "reconcile"
                    )
                else:
                    continue
                if outcome in ("opened", "closed"):
                    changed += 1
                    self._metrics.sessions.labels("reconcile", outcome).inc()
        return changed

    async def consume(self, bus: EventBus) -> None:
        """Follow berth changes from the bus (a task of the gateway)."""
        async with bus.subscription(
            "sessions", accepts=lambda e: isinstance(e, BerthStateChanged)
        ) as sub:
            async for event in sub:
                assert isinstance(event, BerthStateChanged)
                try:
                    await self.on_berth_change(event)
                except Exception:
                    self._metrics.sessions.labels("berth", "error").inc()
                    log.exception("session update failed for berth %s", event.berth_id)

    # ----- plate reads ---------------------------------------------------------------------

    async def on_plate_read(self, read: PlateRead) -> PlateOutcome:
        """Apply a lane read (plate already validated by the caller, site known)."""
        plate = normalise_plate(read.plate)
        now = self._clock()
        async with self._lock(read.site_id, plate), self._sessions.begin() as db:
            result = await self._plate(db, read, plate, now)
            db.add(
                PlateReadRow(
                    device_id=read.device_id,
                    site_id=read.site_id,
                    direction=read.direction,
                    plate=plate,
                    colour=read.colour,
                    confidence=read.confidence,
                    lane=read.lane,
                    image_ref=read.image_ref,
                    read_at=read.ts,
                    received_at=now,
                    outcome=result.outcome,
                    session_id=result.session_id,
                )
            )
        self._metrics.sessions.labels("plate", result.outcome).inc()
        return result

    async def _plate(
        self, db: AsyncSession, read: PlateRead, plate: str, now: datetime
    ) -> PlateOutcome:
        S = ParkingSessionRow
        open_row = await db.scalar(
            select(S).where(S.site_id == read.site_id, S.plate == plate, S.state == "open")
        )
        last_exit = await db.scalar(
            select(func.max(S.exit_at)).where(
                S.site_id == read.site_id, S.plate == plate, S.state == "closed"
            )
        )
        pending = await db.scalar(
            select(PlateReadRow)
            .where(
                PlateReadRow.site_id == read.site_id,
                PlateReadRow.plate == plate,
                PlateReadRow.outcome == PENDING_EXIT,
                PlateReadRow.read_at > read.ts,
                PlateReadRow.read_at <= read.ts + PAIRING_WINDOW,
            )
            .order_by(PlateReadRow.read_at)
            .limit(1)
        )
        blocked = False
        if pending is not None:
            blocked = (
                await db.scalar(
                    select(func.count())
                    .select_from(S)
                    .where(
                        S.site_id == read.site_id,
                        S.plate == plate,
                        S.state == "closed",
                        S.entry_at < pending.read_at,
                        S.exit_at > read.ts,
                    )
                )
            ) != 0
        snap = StaySnapshot(
            open_entry=open_row.entry_at if open_row else None,
            last_exit=last_exit,
            pending_exit=pending.read_at if pending else None,
            pending_blocked=blocked,
        )
        action: Action = decide_plate(snap, read.direction, read.ts, self._dedup)
        vclass = vehicle_class(plate, read.colour)

        def new(entry: datetime) -> ParkingSessionRow:
            row = self._new(
                kind="plate",
                site_id=read.site_id,
                berth_id=None,
                plate=plate,
                vclass=vclass,
                entry=entry,
                source=read.device_id,
                now=now,
            )
            db.add(row)
            return row

        if isinstance(action, Open):
            return PlateOutcome("opened", new(action.entry).id)
        if isinstance(action, Close):
            assert open_row is not None
            self._close(open_row, action.exit, read.device_id, now)
            return PlateOutcome("closed", open_row.id)
        if isinstance(action, ClosePrevious):
            assert open_row is not None
            open_row.note = "exit not read: closed at the next entry (review)"
            self._close(open_row, action.exit, "next-entry", now)
            await db.flush()  # the old session leaves the open index before the new one enters
            return PlateOutcome("reopened", new(action.entry).id)
        if isinstance(action, OpenClosed):
            assert pending is not None
            row = new(action.entry)
            self._close(row, action.exit, pending.device_id, now)
            row.note = "entry read arrived after the exit read"
            pending.outcome = "paired"
            pending.session_id = row.id
            return PlateOutcome("paired", row.id)
        if isinstance(action, RecordExit):
            return PlateOutcome(PENDING_EXIT, None)
        assert isinstance(action, Ignore)
        return PlateOutcome(action.reason, open_row.id if open_row else None)

    # ----- reading -------------------------------------------------------------------------

    def view(self, row: ParkingSessionRow, at: datetime | None = None) -> SessionView:
        when = at or self._clock()
        s, err = self.price(row, when)
        berth = self._berths.get(row.berth_id) if row.berth_id else None
        return SessionView(
            id=row.id,
            kind=row.kind,
            site_id=row.site_id,
            berth_id=row.berth_id,
            berth_number=berth.number if berth else None,
            plate=row.plate,
            vehicle_class=row.vehicle_class,
            state=row.state,
            entry=row.entry_at,
            exit=row.exit_at,
            note=row.note,
            paid_fen=row.paid_fen,
            paid_at=row.paid_at,
            settlement=s,
            pricing_error=err,
            priced_at=when,
        )

    async def get(self, session_id: str) -> SessionView | None:
        async with self._sessions() as db:
            row = await db.get(ParkingSessionRow, session_id)
        return None if row is None else self.view(row)

    async def find(
        self,
        *,
        plate: str | None = None,
        berth_id: str | None = None,
        site_id: str | None = None,
        since: datetime | None = None,
        limit: int = 20,
    ) -> list[SessionView]:
        """Open sessions first, then the most recent closed ones (since ``since``)."""
        S = ParkingSessionRow
        q = select(S)
        if plate is not None:
            q = q.where(S.plate == normalise_plate(plate))
        if berth_id is not None:
            q = q.where(S.berth_id == berth_id)
        if site_id is not None:
            q = q.where(S.site_id == site_id)
        if since is not None:
            q = q.where((S.state == "open") | (S.exit_at >= since))
        q = q.order_by((S.state == "open").desc(), S.entry_at.desc()).limit(limit)
        async with self._sessions() as db:
            rows: Sequence[ParkingSessionRow] = (await db.execute(q)).scalars().all()
        now = self._clock()
        return [self.view(r, now) for r in rows]

    async def open_stays(self) -> list[ParkingSessionRow]:
        async with self._sessions() as db:
            return list(
                (
                    await db.execute(
                        select(ParkingSessionRow).where(ParkingSessionRow.state == "open")
                    )
                ).scalars()
            )
