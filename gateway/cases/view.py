"""The operators' view of case reports: one model and one formatting function, shown by
``GET /api/v1/cases`` and ``citygate cases list`` alike (so the two never disagree)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.cases.mirror import history
from gateway.cases.outbox import list_cases
from gateway.infra.storage.schema import CaseReportRow

DeliveryState = Literal["pending", "delivered", "rejected"]


class PlaceOut(BaseModel):
    site_id: str | None
    berth_id: str | None
    zone_id: str | None
    lat: float | None
    lon: float | None


class DeliveryOut(BaseModel):
    state: DeliveryState
    attempts: int
    next_attempt_at: datetime | None = Field(description="when a pending report is tried next")
    delivered_at: datetime | None
    last_error: str = Field(description="why the last attempt failed or was refused")


class StatusOut(BaseModel):
    status: str
    at: datetime = Field(description="when the case system says the step happened")
    note: str
    received_at: datetime


class CaseOut(BaseModel):
    id: str = Field(description="citygate's id, also the Idempotency-Key of the report")
    remote_id: str | None = Field(description="the case system's own case id, once known")
    category: str
    rule_id: str
    title: str
    observed_at: datetime
    reported_at: datetime
    place: PlaceOut
    device_id: str
    plate: str | None
    prior_offences: int = Field(description="earlier reports of the same plate (两轻一免)")
    evidence: list[str]
    details: dict[str, Any]
    status: str = Field(description="current step of the seven-step loop (never moves back)")
    status_at: datetime | None
    delivery: DeliveryOut


class CaseDetailOut(CaseOut):
    history: list[StatusOut] = Field(description="the case system's updates, in step order")


class CasesOut(BaseModel):
    cases: list[CaseOut]
    next_before: str | None = Field(description="cursor of the next (older) page; null at end")
    next_after: str | None = Field(description="cursor to poll for newer reports")


def case_out(row: CaseReportRow) -> CaseOut:
    return CaseOut(**_fields(row))


def _fields(row: CaseReportRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "remote_id": row.remote_id,
        "category": row.category,
        "rule_id": row.rule_id,
        "title": row.title,
        "observed_at": row.observed_at,
        "reported_at": row.created_at,
        "place": PlaceOut(
            site_id=row.site_id,
            berth_id=row.berth_id,
            zone_id=row.zone_id,
            lat=row.lat,
            lon=row.lon,
        ),
        "device_id": row.device_id,
        "plate": row.plate,
        "prior_offences": row.prior_offences,
        "evidence": list(row.evidence),
        "details": dict(row.details),
        "status": row.status,
        "status_at": row.status_at,
        "delivery": DeliveryOut(
            state=row.delivery_state,
            attempts=row.attempts,
            next_attempt_at=row.next_attempt_at,
            delivered_at=row.delivered_at,
            last_error=row.last_error,
        ),
    }


async def case_detail(session: AsyncSession, row: CaseReportRow) -> CaseDetailOut:
    steps = await history(session, row.id)
    return CaseDetailOut(
        **_fields(row),
        history=[
            StatusOut(status=s.status, at=s.at, note=s.note, received_at=s.received_at)
            for s in steps
        ],
    )


async def cases_page(
    session: AsyncSession,
    *,
    status: str | None = None,
    category: str | None = None,
    delivery: str | None = None,
    limit: int = 100,
    before: str | None = None,
    after: str | None = None,
    site: str | None = None,
) -> CasesOut:
    """One page of reports, newest first (``ValueError`` for a bad cursor)."""
    page = await list_cases(
        session,
        status=status,
        category=category,
        delivery=delivery,
        limit=limit,
        before=before,
        after=after,
        site=site,
    )
    return CasesOut(
        cases=[case_out(r) for r in page.cases],
        next_before=page.next_before,
        next_after=page.next_after,
    )


def place_text(place: PlaceOut) -> str:
    """The place of a report in one table cell: berth, site, zone or coordinates."""
    if place.berth_id or place.site_id or place.zone_id:
        return str(place.berth_id or place.site_id or place.zone_id)
    if place.lat is not None and place.lon is not None:
        return f"{place.lat:.5f},{place.lon:.5f}"
    return ""
