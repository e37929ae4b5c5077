"""Gate decisions in the database: written ``pending`` before the command goes out, so no
raise is ever sent that a restart would not know of, and never sent twice.

``pending`` (committed before ``Gate.command``, so "pending" means "may have been sent")
-> ``confirmed | unconfirmed | failed`` (its outcome, with the time it was sent). No commit
sits between the decision and the command: a ``sent`` mark would tell a restart nothing that
``pending`` does not (databases of earlier releases may still hold it). At start, whatever
is still ``pending`` or ``sent`` is marked ``interrupted``: the gate may or may not have
moved, so the lane asks an operator instead of repeating it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.infra.storage.schema import LaneDecisionRow

OPEN_STATES = ("pending", "sent")
INTERRUPTED = "gateway restarted before the gate's outcome was known (not resent)"


def new_decision_id() -> str:
    return "ld_" + secrets.token_hex(12)


@dataclass(slots=True)
class Decision:
    """A decision as the lane keeps it in memory (mutable: its state moves on)."""

    id: str
    lane_id: str
    plate: str | None
    session_id: str | None
    reason: str
    verdict: str
    state: str
    detail: str
    operator: str | None
    created_at: datetime
    sent_at: datetime | None = None
    done_at: datetime | None = None

    @classmethod
    def of(cls, r: LaneDecisionRow) -> Decision:
        return cls(
            r.id, r.lane_id, r.plate, r.session_id, r.reason, r.verdict, r.state, r.detail,
            r.operator, r.created_at, r.sent_at, r.done_at,
        )  # fmt: skip


class DecisionStore:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self._sessions = sessions

    async def record(self, d: Decision) -> None:
        """Write *d* (``pending``) in a transaction of its own, committed before it is sent."""
        async with self._sessions.begin() as db:
            self.add(db, d)

    @staticmethod
    def add(db: AsyncSession, d: Decision) -> None:
        """Write *d* (``pending``) in the caller's transaction (a lane's read, its session
        step and its decision are one commit), which commits before the gate is commanded."""
        db.add(
            LaneDecisionRow(
                id=d.id,
                lane_id=d.lane_id,
                plate=d.plate,
                session_id=d.session_id,
                reason=d.reason[:300],
                verdict=d.verdict[:32],
                state=d.state,
                detail=d.detail[:300],
                operator=d.operator,
                created_at=d.created_at,
            )
        )

    async def done(
        self, decision_id: str, state: str, detail: str, sent_at: datetime, at: datetime
    ) -> None:
        """The gate's outcome; a decision already marked interrupted keeps that mark."""
        async with self._sessions.begin() as db:
            await db.execute(
                update(LaneDecisionRow)
                .where(LaneDecisionRow.id == decision_id, LaneDecisionRow.state.in_(OPEN_STATES))
                .values(state=state, detail=detail[:300], sent_at=sent_at, done_at=at)
            )

    async def interrupt_open(self, at: datetime) -> list[Decision]:
        """Mark every ``pending``/``sent`` decision ``interrupted`` (at start); returns them."""
        async with self._sessions.begin() as db:
            rows: Sequence[LaneDecisionRow] = (
                (
                    await db.execute(
                        select(LaneDecisionRow)
                        .where(LaneDecisionRow.state.in_(OPEN_STATES))
                        .order_by(LaneDecisionRow.created_at)
                        .with_for_update()
                    )
                )
                .scalars()
                .all()
            )
            for r in rows:
                r.state, r.detail, r.done_at = "interrupted", INTERRUPTED, at
            return [Decision.of(r) for r in rows]

    async def recent(self, lane_id: str, limit: int) -> list[Decision]:
        """The lane's last *limit* decisions, oldest first."""
        async with self._sessions() as db:
            rows = (
                await db.execute(
                    select(LaneDecisionRow)
                    .where(LaneDecisionRow.lane_id == lane_id)
                    .order_by(LaneDecisionRow.created_at.desc(), LaneDecisionRow.id.desc())
                    .limit(limit)
                )
            ).scalars()
            return [Decision.of(r) for r in reversed(list(rows))]
