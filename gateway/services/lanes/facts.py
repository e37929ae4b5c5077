"""The facts the pure lane decisions need from a read: the session step it made and, at an
exit, what is still owed.

The read is recorded through ``SessionStore.on_plate_read`` (exactly what
``POST /api/v1/plate-reads`` does), and an exit is priced by the session's own settlement
(what ``GET /api/v1/sessions/{id}`` shows as ``due_fen``): the posted tariff in force at
entry with its night band, the first free hour and the exit grace after a payment.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from events import PlateRead
from gateway.services.lanes.config import LaneConfig
from gateway.services.lanes.contract import PlateReadLike
from gateway.services.parking.sessions import SessionStore
from parking.sessions import PlateError, normalise_plate

COLOURS = frozenset({"blue", "yellow", "green", "yellow_green", "white", "black"})


class HasPlate(Protocol):
    @property
    def plate(self) -> str | None: ...
    @property
    def confidence(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class ReadFacts:
    outcome: str  # the session step (opened, closed, duplicate, ...) or "unread"
    session_id: str | None
    due_fen: int | None  # exits: what is owed on the stay (None: no stay, or not priced)
    step_outcome: str | None = None  # the session step, when ``outcome`` says something else


class Facts:
    def __init__(
        self,
        store: SessionStore,
        sessions: async_sessionmaker[Any],
        dedup: timedelta,
        min_confidence: float,
    ) -> None:
        self._store = store
        self._sessions = sessions
        self._dedup = dedup
        self._min_confidence = min_confidence

    def plate_of(self, read: HasPlate) -> str | None:
        """The normalised plate, or None when it cannot be trusted to bill a stay (unread,
        impossible characters, below the configured confidence)."""
        if read.plate is None:
            return None
        if read.confidence is not None and read.confidence < self._min_confidence:
            return None
        try:
            return normalise_plate(read.plate)
        except PlateError:
            return None

    def lock(
        self, lane: LaneConfig, plate: str | None
    ) -> contextlib.AbstractAsyncContextManager[Any]:
        """The vehicle's lock at the lane's car park (nothing to lock for an unread plate):
        taken before the transaction of the read, as ``SessionStore.plate_lock`` says."""
        if plate is None:
            return contextlib.nullcontext()
        return self._store.plate_lock(lane.site_id, plate)

    async def of_read(
        self, lane: LaneConfig, read: PlateReadLike, plate: str | None, now: datetime
    ) -> ReadFacts:
        """``of_read_in`` in a transaction of its own."""
        async with self.lock(lane, plate), self._sessions.begin() as db:
            facts = await self.of_read_in(db, lane, read, plate, now)
        self.count(facts)
        return facts

    def count(self, facts: ReadFacts) -> None:
        """Count the session step of *facts* (once its transaction is committed)."""
        if facts.outcome != "unread":
            self._store.count([facts.step_outcome or facts.outcome], "plate")

    async def of_read_in(
        self,
        db: AsyncSession,
        lane: LaneConfig,
        read: PlateReadLike,
        plate: str | None,
        now: datetime,
    ) -> ReadFacts:
        """Record the read as a session step in *db* (the caller holds ``lock``) and price
        an exit as *db* sees it: the stay this very read closed included."""
        if plate is None:
            return ReadFacts("unread", None, None)
        ts = min(read.ts, now)  # a camera clock ahead would open a stay in the future
        colour = read.colour if read.colour in COLOURS else None
        step = await self._store.plate_read_in(
            db,
            PlateRead(
                device_id=lane.camera_id,
                ts=ts,
                site_id=lane.site_id,
                direction=lane.direction,
                plate=plate,
                colour=colour,
                confidence=read.confidence,
                lane=lane.id[:32],
            ),
        )
        if lane.kind == "entry":
            return ReadFacts(step.outcome, step.session_id, None)
        session_id = step.session_id if step.outcome == "closed" else None
        if step.outcome == "duplicate" and step.session_id is None:
            # The same car read again just after its exit closed the stay (a restart in
            # between forgot the lane's wait): that stay is what it owes.
            session_id = await self._recent_stay(lane, plate, now)
        if session_id is None:
            return ReadFacts(step.outcome, None, None)
        view = await self._store.get_in(db, session_id)
        due = None if view is None or view.settlement is None else view.settlement.due_fen
        if due is None:
            return ReadFacts("unpriced", session_id, None, step.outcome)
        return ReadFacts(step.outcome, session_id, due)

    async def _recent_stay(self, lane: LaneConfig, plate: str, now: datetime) -> str | None:
        found = await self._store.find(
            plate=plate, site_id=lane.site_id, since=now - self._dedup, limit=1
        )
        return next((v.id for v in found if v.state == "closed"), None)

    async def due(self, session_id: str) -> int | None:
        """What is owed on the stay now (None when it is gone or cannot be priced)."""
        view = await self._store.get(session_id)
        if view is None or view.settlement is None:
            return None
        return view.settlement.due_fen
