"""Reading the audit log: the one query behind ``GET /api/v1/audit`` and ``citygate audit``.

Newest first; a page holds at most ``MAX_LIMIT`` entries and names the cursor of the next
(older) page. Entries are redacted again on the way out, so nothing a future writer forgot to
hide can leave through here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.directory.audit import redact
from gateway.infra.storage.schema import AuditRow

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str = Field(description="the token's label, `cli:<user>`, or `system`")
    actor_token_id: str | None = Field(None, description="the API token's id (API changes)")
    role: str = Field(description="the token's role; `cli` or `system` otherwise")
    source: str = Field(description="api, cli, import, startup, ocpp or system")
    request_id: str | None = Field(None, description="shared by the entries of one request")
    kind: str = Field(description="device, camera, charger, bodycam, token, site, berth, ...")
    key: str
    action: str
    before: Any = Field(None, description="public fields before (null: it did not exist)")
    after: Any = Field(None, description="public fields after (null: it is gone)")


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: int | None = Field(
        None, description="pass as `cursor` for the next (older) page; null: no more"
    )


def as_utc(value: datetime | None) -> datetime | None:
    """A query bound in UTC (a bound without a zone is read as UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # 0001-01-01 east of UTC, 9999-12-31 west of it: the ends of time
        return (datetime.min if value.year == 1 else datetime.max).replace(tzinfo=UTC)


def _entry(row: AuditRow) -> AuditEntry:
    return AuditEntry(
        id=row.id,
        at=row.at,
        actor=row.actor,
        actor_token_id=row.actor_token_id,
        role=row.role,
        source=row.source,
        request_id=row.request_id,
        kind=row.kind,
        key=row.key,
        action=row.action,
        before=redact(row.before),
        after=redact(row.after),
    )


async def audit_page(
    session: AsyncSession,
    *,
    kind: str | None = None,
    key: str | None = None,
    actor: str | None = None,
    actor_token_id: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = DEFAULT_LIMIT,
    cursor: int | None = None,
) -> AuditPage:
    """Entries matching every filter given, newest first: *since* inclusive, *until*
    exclusive, *cursor* the ``next_cursor`` of the page before. *limit* is capped."""
    limit = max(1, min(limit, MAX_LIMIT))
    q = select(AuditRow).order_by(AuditRow.id.desc()).limit(limit + 1)
    if kind is not None:
        q = q.where(AuditRow.kind == kind)
    if key is not None:
        q = q.where(AuditRow.key == key)
    if actor is not None:
        q = q.where(AuditRow.actor == actor)
    if actor_token_id is not None:
        q = q.where(AuditRow.actor_token_id == actor_token_id)
    if (start := as_utc(since)) is not None:
        q = q.where(AuditRow.at >= start)
    if (end := as_utc(until)) is not None:
        q = q.where(AuditRow.at < end)
    if cursor is not None:
        q = q.where(AuditRow.id < cursor)
    rows = list((await session.execute(q)).scalars())
    more = len(rows) > limit
    rows = rows[:limit]
    return AuditPage(
        entries=[_entry(r) for r in rows], next_cursor=rows[-1].id if more and rows else None
    )
