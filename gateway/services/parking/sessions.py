"""Parking sessions in the database, opened and closed from berth occupancy and plate reads.

Each observation is decided by the pure rules of ``parking.sessions`` against a snapshot read
in the same transaction that applies the decision, under a per-berth / per-vehicle lock; the
partial unique indexes of ``parking_sessions`` back the "one open session" rule in the
database itself. Fees are priced with the posted tariff in force at entry
(``parking.tariffs.settle``), so a stay is priced the same whoever asks and whenever.

Over 400 lines on purpose: berth stays and lane reads share the locks, the snapshot and the
one-open-session rule; split, each half would re-implement them.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import BerthState, BerthStateChanged, PlateRead
from gateway.directory.town import Berth, Site
from gateway.infra.locks import KeyedLocks
from gateway.infra.storage.schema import Base, ParkingSessionRow, PlateReadRow
from gateway.metrics import Metrics
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


class Priceable(Protocol):
    """What pricing reads of a stay: a session row, or the batch writer's lighter record."""

    site_id: str
    vehicle_class: str
    entry_at: datetime
    exit_at: datetime | None
    paid_fen: int
    paid_at: datetime | None


@dataclass(slots=True)
class _BerthStay:
    """A berth session as the batch writer handles it (no ORM object: a burst of thousands
    of changes is written with two executemany statements)."""

    id: str
    site_id: str
    berth_id: str
    entry_at: datetime
    entry_source: str
    vehicle_class: str = "small"
    paid_fen: int = 0
    paid_at: datetime | None = None
    note: str = ""
    exit_at: datetime | None = None
    exit_source: str | None = None
    fee_fen: int = 0
    tariff_version: str | None = None
    new: bool = False

    def insert_values(self, now: datetime) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": "berth",
            "site_id": self.site_id,
            "berth_id": self.berth_id,
            "plate": None,
            "vehicle_class": self.vehicle_class,
            "state": "open" if self.exit_at is None else "closed",
            "entry_at": self.entry_at,
            "exit_at": self.exit_at,
            "entry_source": self.entry_source,
            "exit_source": self.exit_source,
            "tariff_version": self.tariff_version,
            "fee_fen": self.fee_fen,
            "paid_fen": self.paid_fen,
            "paid_at": self.paid_at,
            "note": self.note,
            "created_at": now,
            "updated_at": now,
        }


_SESSIONS = Base.metadata.tables["parking_sessions"]
_CLOSE_BERTH = (
    update(_SESSIONS)
    .where(_SESSIONS.c.id == bindparam("id_"))
    .values(
        state="closed",
        exit_at=bindparam("exit_at"),
        exit_source=bindparam("exit_source"),
        fee_fen=bindparam("fee_fen"),
        tariff_version=bindparam("tariff_version"),
        note=bindparam("note"),
        updated_at=bindparam("updated_at"),
    )
)


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
        self.tariffs = tariffs  # replaced live when new tariffs are imported
        self._metrics = metrics
        self._clock = clock
        self._dedup = plate_dedup
        self._locks = KeyedLocks()  # per vehicle at a car park
        self._berth_lock = asyncio.Lock()  # berth sessions: the persister and the reconciler

    # ----- pricing -------------------------------------------------------------------------

    def price(self, row: Priceable, at: datetime) -> tuple[Settlement | None, str | None]:
        """The stay's settlement up to its exit (or ``at`` while open); an error message
        instead when the posted tariff cannot price it (e.g. an entry before the first one)."""
        site = self._sites.get(row.site_id)
        if site is None:
            return None, f"unknown site {row.site_id!r}"
        end = row.exit_at if row.exit_at is not None else max(at, row.entry_at)
        vehicle: VehicleClass = row.vehicle_class  # type: ignore[assignment]
        try:
            s = settle(
                self.tariffs,
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

    def _settle_exit(self, stay: Priceable) -> tuple[int, str | None, str]:
        """(fee, tariff version, note suffix) of a stay whose exit is set."""
        assert stay.exit_at is not None
        s, err = self.price(stay, stay.exit_at)
        if s is None:
            return 0, None, f"not priced: {err}"
        return s.quote.total_fen, s.quote.tariff_version, ""

    def _close(self, row: ParkingSessionRow, exit_at: datetime, source: str, now: datetime) -> None:
        row.state = "closed"
        row.exit_at = exit_at
        row.exit_source = source
        row.updated_at = now
        row.fee_fen, version, why = self._settle_exit(row)
        if version is not None:
            row.tariff_version = version
        if why:
            row.note = (row.note + " " + why).strip()[:200]

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
        (outcome,) = await self.on_berth_changes([event])
        return outcome

    async def on_berth_changes(
        self, events: Sequence[BerthStateChanged], source: str = "berth"
    ) -> list[str]:
        """Apply berth changes in order in a transaction of their own; returns each event's
        outcome (also counted)."""
        async with self.berth_lock, self._sessions.begin() as db:
            outcomes = await self.apply_berth_changes(db, events)
        self.count(outcomes, source)
        return outcomes

    @property
    def berth_lock(self) -> asyncio.Lock:
        """Held by whoever applies berth changes (the persister's flush, the reconciler): the
        open-session snapshot each reads must not change under it."""
        return self._berth_lock

    def count(self, outcomes: Sequence[str], source: str = "berth") -> None:
        """Count committed outcomes (after the transaction, so a rollback counts nothing)."""
        for outcome in outcomes:
            self._metrics.sessions.labels(source, outcome).inc()

    async def apply_berth_changes(
        self, db: AsyncSession, events: Sequence[BerthStateChanged]
    ) -> list[str]:
        """Apply berth changes in order inside *db*'s transaction (the caller holds
        ``berth_lock``), as two executemany statements: a busy street's burst costs one
        commit, not one per event. Returns each event's outcome, not yet counted."""
        now = self._clock()
        S = ParkingSessionRow
        ids = {e.berth_id for e in events if e.berth_id in self._berths}
        outcomes: list[str] = []
        open_: dict[str, _BerthStay] = {}
        last_exit: dict[str, datetime] = {}
        if ids:
            found = await db.execute(
                select(
                    S.id, S.site_id, S.berth_id, S.entry_at, S.entry_source,
                    S.vehicle_class, S.paid_fen, S.paid_at, S.note,
                ).where(S.berth_id.in_(ids), S.state == "open")
            )  # fmt: skip
            for r in found:
                open_[r.berth_id] = _BerthStay(
                    r.id, r.site_id, r.berth_id, r.entry_at, r.entry_source,
                    r.vehicle_class, r.paid_fen, r.paid_at, r.note,
                )  # fmt: skip
            for berth_id, exit_at in await db.execute(
                select(S.berth_id, func.max(S.exit_at))
                .where(S.berth_id.in_(ids), S.state == "closed")
                .group_by(S.berth_id)
            ):
                if berth_id is not None and exit_at is not None:
                    last_exit[berth_id] = exit_at
        inserts: dict[str, _BerthStay] = {}
        closes: list[dict[str, Any]] = []
        for event in events:
            outcomes.append(self._apply_berth(event, open_, last_exit, inserts, closes))
        # Closes first: a berth closed and reopened in one batch must leave the open index
        # before its new session enters it.
        if closes:
            for c in closes:
                c["updated_at"] = now
            await db.execute(_CLOSE_BERTH, closes)
        if inserts:
            await db.execute(insert(S), [x.insert_values(now) for x in inserts.values()])
        return outcomes

    def _apply_berth(
        self,
        event: BerthStateChanged,
        open_: dict[str, _BerthStay],
        last_exit: dict[str, datetime],
        inserts: dict[str, _BerthStay],
        closes: list[dict[str, Any]],
    ) -> str:
        berth_id = event.berth_id
        if berth_id not in self._berths:
            return "unknown_berth"
        occupied = {BerthState.OCCUPIED: True, BerthState.FREE: False}.get(event.state)
        stay = open_.get(berth_id)
        snap = StaySnapshot(
            open_entry=stay.entry_at if stay else None, last_exit=last_exit.get(berth_id)
        )
        action = decide_berth(snap, occupied, event.since)
        if isinstance(action, Open):
            new = _BerthStay(
                new_session_id(), event.site_id, berth_id, action.entry, event.device_id, new=True
            )
            open_[berth_id] = inserts[new.id] = new
            return "opened"
        if isinstance(action, Close):
            assert stay is not None
            del open_[berth_id]
            last_exit[berth_id] = action.exit
            stay.exit_at, stay.exit_source = action.exit, event.device_id
            stay.fee_fen, stay.tariff_version, why = self._settle_exit(stay)
            if why:
                stay.note = (stay.note + " " + why).strip()[:200]
            if not stay.new:  # a stay opened in this batch is inserted closed
                closes.append(
                    {
                        "id_": stay.id,
                        "exit_at": stay.exit_at,
                        "exit_source": stay.exit_source,
                        "fee_fen": stay.fee_fen,
                        "tariff_version": stay.tariff_version,
                        "note": stay.note,
                    }
                )
            return "closed"
        assert isinstance(action, Ignore)
        return action.reason

    async def reconcile(self, book: OccupancyBook) -> int:
        """Bring berth sessions in line with the live occupancy (at start, and periodically,
        so a change that could not be applied — a bug, a berth removed and re-added — cannot
        leave a stay open or unopened). Returns how many sessions it opened or closed."""
        async with self._sessions() as db:
            open_berths = set(
                (
                    await db.execute(
                        select(ParkingSessionRow.berth_id).where(
                            ParkingSessionRow.state == "open",
                            ParkingSessionRow.berth_id.is_not(None),
                        )
                    )
                ).scalars()
            )
        fixes: list[BerthStateChanged] = []
        for site_id in {b.site for b in self._berths.values()}:
            try:
                views = book.berths(site_id)
            except KeyError:
                continue
            for v in views:
                has_open = v.berth_id in open_berths
                if (
                    v.state is BerthState.OCCUPIED
                ) != has_open and v.state is not BerthState.UNKNOWN:
                    fixes.append(
                        BerthStateChanged(
                            device_id="reconcile",
                            ts=v.since,
                            site_id=site_id,
                            berth_id=v.berth_id,
                            state=v.state,
                            previous=v.state,
                            since=v.since,
                        )
                    )
        if not fixes:
            return 0
        outcomes = await self.on_berth_changes(fixes, source="reconcile")
        return sum(o in ("opened", "closed") for o in outcomes)

    # ----- plate reads ---------------------------------------------------------------------

    async def on_plate_read(self, read: PlateRead) -> PlateOutcome:
        """Apply a lane read (plate already validated by the caller, site known)."""
        plate = normalise_plate(read.plate)
        async with self.plate_lock(read.site_id, plate), self._sessions.begin() as db:
            result = await self.plate_read_in(db, read)
        self.count([result.outcome], "plate")
        return result

    def plate_lock(self, site_id: str, plate: str) -> asyncio.Lock:
        """The lock of one vehicle at one car park: held around the transaction of its read
        (taken before the transaction begins, as every caller does, so locks and the
        database's write lock are always taken in the same order)."""
        return self._locks[site_id, normalise_plate(plate)]

    async def plate_read_in(self, db: AsyncSession, read: PlateRead) -> PlateOutcome:
        """Apply a lane read inside the caller's transaction (the caller holds
        ``plate_lock`` and counts the outcome with ``count`` once it is committed): a lane
        stores the camera's read, this step and its gate decision in one commit."""
        plate = normalise_plate(read.plate)
        now = self._clock()
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
        return result

    async def _plate(
        self, db: AsyncSession, read: PlateRead, plate: str, now: datetime
    ) -> PlateOutcome:
        S = ParkingSessionRow
        # The vehicle's stays at the car park in one round trip (a lane waits on it): its
        # open stay, its last exit and a pending exit read this entry may pair with.
        open_id = (
            select(S.id)
            .where(S.site_id == read.site_id, S.plate == plate, S.state == "open")
            .limit(1)
            .scalar_subquery()
        )
        last_exit_q = (
            select(func.max(S.exit_at))
            .where(S.site_id == read.site_id, S.plate == plate, S.state == "closed")
            .scalar_subquery()
        )
        pending_id = (
            select(PlateReadRow.id)
            .where(
                PlateReadRow.site_id == read.site_id,
                PlateReadRow.plate == plate,
                PlateReadRow.outcome == PENDING_EXIT,
                PlateReadRow.read_at > read.ts,
                PlateReadRow.read_at <= read.ts + PAIRING_WINDOW,
            )
            .order_by(PlateReadRow.read_at)
            .limit(1)
            .scalar_subquery()
        )
        found = (await db.execute(select(open_id, last_exit_q, pending_id))).one()
        open_row = None if found[0] is None else await db.get(S, found[0])
        last_exit = found[1]
        pending = None if found[2] is None else await db.get(PlateReadRow, found[2])
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
            return await self.get_in(db, session_id)

    async def get_in(self, db: AsyncSession, session_id: str) -> SessionView | None:
        """The session as *db* sees it (inside a transaction: with its own changes)."""
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
