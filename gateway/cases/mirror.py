"""The local mirror of the case system's seven-step loop, fed by its signed callbacks.

Callbacks are retried by their sender and may cross on the network, so applying one is
idempotent (one history row per case and step) and monotonic (a late, older step is kept in
the history but never moves the current status back).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from events import utc
from gateway.infra.storage.schema import CaseReportRow, CaseStatusRow

__all__ = [
    "STEPS",
    "STEP_NAMES_ZH",
    "CallbackPayload",
    "CallbackResult",
    "CaseStep",
    "UnknownCase",
    "apply_callback",
    "history",
    "step_index",
]

log = logging.getLogger(__name__)

CaseStep = Literal[
    "reported", "registered", "dispatched", "handled", "verified", "closed", "evaluated"
]
#: The seven steps in order: 巡查上报 → 审核立案 → 任务派遣 → 任务处置 → 反馈核查 → 结案 → 综合评价.
STEPS: tuple[CaseStep, ...] = (
    "reported",
    "registered",
    "dispatched",
    "handled",
    "verified",
    "closed",
    "evaluated",
)
STEP_NAMES_ZH: dict[str, CaseStep] = {
    "巡查上报": "reported",
    "审核立案": "registered",
    "任务派遣": "dispatched",
    "任务处置": "handled",
    "反馈核查": "verified",
    "结案": "closed",
    "综合评价": "evaluated",
}


def step_index(step: str) -> int:
    """Position of *step* in the loop (unknown stored values sort first)."""
    return STEPS.index(step) if step in STEPS else -1


class CallbackPayload(BaseModel):
    """A status update from the case system (JSON body of ``POST /api/v1/cases/callback``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: Annotated[str, Field(min_length=1, max_length=36, description="citygate's report id")]
    case_id: Annotated[
        str | None, Field(default=None, min_length=1, max_length=64, description="remote id")
    ]
    status: CaseStep
    at: AwareDatetime
    note: Annotated[str | None, Field(default=None, max_length=500)]

    @field_validator("status", mode="before")
    @classmethod
    def _chinese_step(cls, value: Any) -> Any:
        if isinstance(value, str):
            return STEP_NAMES_ZH.get(value.strip(), value.strip())
        return value


class UnknownCase(LookupError):
    """The callback names a report citygate never filed."""

    def __init__(self, case_id: str) -> None:
        super().__init__(f"no case report with id {case_id!r}")
        self.case_id = case_id


@dataclass(frozen=True, slots=True)
class CallbackResult:
    """``result``: ``advanced`` (current status moved on), ``recorded`` (history only: an
    older step arriving late) or ``duplicate`` (already known, nothing changed)."""

    case: CaseReportRow
    result: Literal["advanced", "recorded", "duplicate"]


async def _insert_step(
    session: AsyncSession, case_id: str, payload: CallbackPayload, now: datetime
) -> bool:
    """One history row per (case, step), race-free on both backends. True if new."""
    values = {
        "case_id": case_id,
        "status": payload.status,
        "at": utc(payload.at),
        "note": payload.note or "",
        "received_at": utc(now),
    }
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    statement = (
        insert(CaseStatusRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["case_id", "status"])
    )
    result = await session.execute(statement)
    return bool(getattr(result, "rowcount", 0))


async def apply_callback(
    session: AsyncSession, payload: CallbackPayload, now: datetime
) -> CallbackResult:
    """Record *payload* in the case's history and move its status forward (never back).

    Runs in the caller's transaction. Raises :class:`UnknownCase` for an id citygate never
    filed. A callback also proves the case system has the report, so a report still pending
    (its confirmation was lost, say by a crash) is marked delivered.
    """
    row = await session.get(CaseReportRow, payload.id, with_for_update=True)
    if row is None:
        raise UnknownCase(payload.id)
    if payload.case_id is not None:
        if row.remote_id is None:
            row.remote_id = payload.case_id
        elif row.remote_id != payload.case_id:
            log.warning(
                "case %s: callback names remote case %r, but it was filed as %r (kept)",
                row.id,
                payload.case_id,
                row.remote_id,
            )
    if row.delivery_state != "delivered":
        row.delivery_state = "delivered"
        row.delivered_at = utc(now)
        row.next_attempt_at = None
    new = await _insert_step(session, row.id, payload, now)
    if not new:
        await session.flush()
        return CallbackResult(row, "duplicate")
    if step_index(payload.status) > step_index(row.status):
        row.status = payload.status
        row.status_at = utc(payload.at)
        await session.flush()
        return CallbackResult(row, "advanced")
    await session.flush()
    return CallbackResult(row, "recorded")


async def history(session: AsyncSession, case_id: str) -> list[CaseStatusRow]:
    """The case system's updates for one report, in the order of the loop's steps."""
    rows = list(
        (await session.scalars(select(CaseStatusRow).where(CaseStatusRow.case_id == case_id))).all()
    )
    rows.sort(key=lambda r: (step_index(r.status), r.at, r.id))
    return rows
