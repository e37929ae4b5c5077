"""The case outbox: reports are written in the same transaction as the state change that
raised them, and leave only when the case system has confirmed them.

Nothing here commits: ``record_case`` joins the caller's transaction (so a rolled-back state
change files no report, and a committed one cannot lose its report), and the delivery commits
its own short transactions around, never across, network I/O.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from events import CaseRaised, utc
from gateway.infra.storage.schema import CaseReportRow

__all__ = [
    "DELIVERY_STATES",
    "CasePage",
    "claim",
    "decode_cursor",
    "due",
    "encode_cursor",
    "get_case",
    "list_cases",
    "mark_delivered",
    "mark_rejected",
    "mark_retry",
    "next_due_at",
    "normalise_plate",
    "pending_summary",
    "record_case",
    "requeue",
]

DELIVERY_STATES = ("pending", "delivered", "rejected")

# Column widths of case_reports: PostgreSQL enforces them, SQLite does not, so check here.
_LIMITS = {
    "category": 16,
    "rule_id": 64,
    "dedup_key": 200,
    "site_id": 64,
    "berth_id": 64,
    "zone_id": 64,
    "device_id": 64,
    "plate": 16,
}
_TITLE = 200
_ERROR = 300
_REMOTE_ID = 64
#: Class id of the PostgreSQL advisory locks taken per situation ("CASE").
_LOCK_CLASS = 0x43415345


def normalise_plate(plate: str | None) -> str | None:
    """Plates compare without spaces and in upper case; the province character stays."""
    if plate is None:
        return None
    cleaned = "".join(plate.split()).upper()
    return cleaned or None


def _check(event: CaseRaised, plate: str | None) -> None:
    values = {name: getattr(event, name) for name in _LIMITS if name != "plate"}
    values["plate"] = plate
    for name, value in values.items():
        if value is not None and len(value) > _LIMITS[name]:
            raise ValueError(f"CaseRaised.{name} is longer than {_LIMITS[name]} characters")
    if not event.category or not event.dedup_key:
        raise ValueError("CaseRaised needs a category and a dedup_key")
    if event.dedup_window_s < 0:
        raise ValueError("CaseRaised.dedup_window_s must not be negative")
    for name in ("lat", "lon"):
        v = getattr(event, name)
        if v is not None and not math.isfinite(v):
            raise ValueError(f"CaseRaised.{name} is not a finite number")
    for key, v in event.details.items():
        if isinstance(v, float) and not math.isfinite(v):
            raise ValueError(f"CaseRaised.details[{key!r}] is not a finite number")


async def _lock_situation(session: AsyncSession, dedup_key: str) -> None:
    """Serialise recorders of the same situation until the caller's transaction ends, so two
    concurrent transactions cannot both find "no report yet" and file it twice."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        digest = hashlib.sha256(dedup_key.encode()).digest()
        key = int.from_bytes(digest[:4], "big", signed=True)
        await session.execute(
            text("SELECT pg_advisory_xact_lock(:cls, :key)"), {"cls": _LOCK_CLASS, "key": key}
        )
    elif dialect == "sqlite":
        # A write that changes nothing still takes SQLite's single write lock (held to commit).
        await session.execute(
            update(CaseReportRow)
            .where(text("0 = 1"))
            .values(attempts=0)
            .execution_options(synchronize_session=False)
        )


async def record_case(
    session: AsyncSession, event: CaseRaised, now: datetime
) -> CaseReportRow | None:
    """File *event* as a report inside the caller's transaction (never commits).

    Returns ``None`` when a report with the same ``dedup_key`` was observed within
    ``dedup_window_s`` either side of ``event.ts`` (the same situation). Otherwise the new row:
    pending delivery now, status ``reported``, with the plate's earlier reports counted in
    ``prior_offences`` (两轻一免 needs it). Raises ``ValueError`` for an event the report
    cannot carry (over-long ids, non-finite numbers).
    """
    now = utc(now)
    observed = utc(event.ts)
    plate = normalise_plate(event.plate)
    _check(event, plate)
    await _lock_situation(session, event.dedup_key)
    window = timedelta(seconds=event.dedup_window_s)
    same = await session.scalar(
        select(CaseReportRow.id)
        .where(
            CaseReportRow.dedup_key == event.dedup_key,
            CaseReportRow.observed_at >= observed - window,
            CaseReportRow.observed_at <= observed + window,
        )
        .limit(1)
    )
    if same is not None:
        return None
    prior = 0
    if plate is not None:
        prior = (
            await session.scalar(
                select(func.count())
                .select_from(CaseReportRow)
                .where(CaseReportRow.plate == plate, CaseReportRow.observed_at < observed)
            )
            or 0
        )
    title = event.title if len(event.title) <= _TITLE else event.title[: _TITLE - 1] + "…"
    row = CaseReportRow(
        id=str(uuid.uuid4()),
        category=event.category,
        rule_id=event.rule_id,
        title=title,
        dedup_key=event.dedup_key,
        site_id=event.site_id,
        berth_id=event.berth_id,
        zone_id=event.zone_id,
        lat=event.lat,
        lon=event.lon,
        observed_at=observed,
        device_id=event.device_id,
        plate=plate,
        prior_offences=prior,
        evidence=list(event.evidence),
        details=dict(event.details),
        created_at=now,
        delivery_state="pending",
        attempts=0,
        next_attempt_at=now,
        delivered_at=None,
        last_error="",
        remote_id=None,
        status="reported",
        status_at=now,
    )
    session.add(row)
    await session.flush()
    return row


def _due_query(now: datetime, limit: int) -> Any:
    """Select[...] spells differently in SQLAlchemy 2.0 and 2.1; callers know the row type."""
    return (
        select(CaseReportRow)
        .where(CaseReportRow.delivery_state == "pending", CaseReportRow.next_attempt_at <= now)
        .order_by(CaseReportRow.next_attempt_at, CaseReportRow.created_at, CaseReportRow.id)
        .limit(limit)
    )


async def due(session: AsyncSession, now: datetime, limit: int) -> list[CaseReportRow]:
    """Pending reports whose next attempt is due, longest waiting first (read only)."""
    rows: list[CaseReportRow] = list((await session.scalars(_due_query(utc(now), limit))).all())
    return rows


async def claim(
    session: AsyncSession, now: datetime, limit: int, lease_until: datetime
) -> list[CaseReportRow]:
    """Take up to *limit* due reports for sending: their next attempt moves to *lease_until*,
    so another gateway instance skips them and, should this process die mid-send, they fall
    due again by themselves. The caller commits before sending."""
    query = _due_query(utc(now), limit).with_for_update(skip_locked=True)
    rows: list[CaseReportRow] = list((await session.scalars(query)).all())
    for row in rows:
        row.next_attempt_at = utc(lease_until)
    await session.flush()
    return rows


async def next_due_at(session: AsyncSession) -> datetime | None:
    """When the earliest pending report falls due (``None``: nothing pending)."""
    value: datetime | None = await session.scalar(
        select(func.min(CaseReportRow.next_attempt_at)).where(
            CaseReportRow.delivery_state == "pending"
        )
    )
    return value


async def pending_summary(session: AsyncSession) -> tuple[int, datetime | None]:
    """How many reports wait for delivery, and when the oldest of them was filed."""
    count, oldest = (
        await session.execute(
            select(func.count(), func.min(CaseReportRow.created_at)).where(
                CaseReportRow.delivery_state == "pending"
            )
        )
    ).one()
    return int(count), oldest


def _short(text_: str, limit: int = _ERROR) -> str:
    text_ = " ".join(text_.split())
    return text_ if len(text_) <= limit else text_[: limit - 1] + "…"


async def mark_delivered(
    session: AsyncSession, case_id: str, now: datetime, remote_id: str | None = None
) -> bool:
    """The case system confirmed the report. False if it was no longer pending."""
    values: dict[str, object] = {
        "delivery_state": "delivered",
        "delivered_at": utc(now),
        "next_attempt_at": None,
        "attempts": CaseReportRow.attempts + 1,
        "last_error": "",
    }
    if remote_id:
        values["remote_id"] = remote_id[:_REMOTE_ID]
    result = await session.execute(
        update(CaseReportRow)
        .where(CaseReportRow.id == case_id, CaseReportRow.delivery_state == "pending")
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def mark_retry(
    session: AsyncSession, case_id: str, next_attempt_at: datetime, error: str
) -> bool:
    """The attempt failed in a way worth retrying: count it and schedule the next one."""
    result = await session.execute(
        update(CaseReportRow)
        .where(CaseReportRow.id == case_id, CaseReportRow.delivery_state == "pending")
        .values(
            attempts=CaseReportRow.attempts + 1,
            next_attempt_at=utc(next_attempt_at),
            last_error=_short(error),
        )
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def mark_rejected(session: AsyncSession, case_id: str, error: str) -> bool:
    """The case system refused the report itself: keep it, with why, and stop trying."""
    result = await session.execute(
        update(CaseReportRow)
        .where(CaseReportRow.id == case_id, CaseReportRow.delivery_state == "pending")
        .values(
            delivery_state="rejected",
            attempts=CaseReportRow.attempts + 1,
            next_attempt_at=None,
            last_error=_short(error),
        )
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


async def requeue(session: AsyncSession, case_id: str, now: datetime) -> bool:
    """Send a rejected report again (an operator fixed the cause): pending, due now, attempts
    counted afresh; ``last_error`` keeps why it was refused until the next answer."""
    result = await session.execute(
        update(CaseReportRow)
        .where(CaseReportRow.id == case_id, CaseReportRow.delivery_state == "rejected")
        .values(delivery_state="pending", attempts=0, next_attempt_at=utc(now))
        .execution_options(synchronize_session=False)
    )
    return _changed(result)


def _changed(result: object) -> bool:
    return bool(getattr(result, "rowcount", 0))


async def get_case(session: AsyncSession, case_id: str) -> CaseReportRow | None:
    return await session.get(CaseReportRow, case_id)


# -- listing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CasePage:
    """Newest first. ``next_before``: pass as ``before`` for the next (older) page, ``None``
    at the end; ``next_after``: pass as ``after`` to poll for newer reports."""

    cases: list[CaseReportRow]
    next_before: str | None
    next_after: str | None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def encode_cursor(created_at: datetime, case_id: str) -> str:
    micros = (utc(created_at) - _EPOCH) // _MICRO  # exact, unlike float timestamps
    raw = f"{micros}|{case_id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    """Raises ``ValueError`` for anything :func:`encode_cursor` did not make."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        micros, case_id = raw.split("|", 1)
        when = _EPOCH + int(micros) * _MICRO
    except (binascii.Error, UnicodeDecodeError, ValueError, OverflowError, OSError):
        raise ValueError("invalid cursor") from None
    if not case_id or len(case_id) > 36:
        raise ValueError("invalid cursor")
    return when, case_id


def _cursor_of(row: CaseReportRow) -> str:
    return encode_cursor(row.created_at, row.id)


async def list_cases(
    session: AsyncSession,
    *,
    status: str | None = None,
    category: str | None = None,
    delivery: str | None = None,
    limit: int = 100,
    before: str | None = None,
    after: str | None = None,
    site: str | None = None,
) -> CasePage:
    """Reports newest first, filtered; ``before``/``after`` are cursors of an earlier page
    (``ValueError`` if both are given or one is not a cursor)."""
    if before is not None and after is not None:
        raise ValueError("give before or after, not both")
    if limit < 1:
        raise ValueError("limit must be at least 1")
    created, cid = CaseReportRow.created_at, CaseReportRow.id
    query = select(CaseReportRow)
    filters = ((CaseReportRow.status, status), (CaseReportRow.category, category),
               (CaseReportRow.delivery_state, delivery), (CaseReportRow.site_id, site))  # fmt: skip
    for column, value in filters:
        if value is not None:
            query = query.where(column == value)
    if after is not None:
        # The *oldest* reports newer than the cursor, so a poller misses none; shown newest first.
        at, at_id = decode_cursor(after)
        query = query.where(or_(created > at, and_(created == at, cid > at_id)))
        rows = list((await session.scalars(query.order_by(created, cid).limit(limit))).all())
        rows.reverse()
        more_older = True
    else:
        if before is not None:
            at, at_id = decode_cursor(before)
            query = query.where(or_(created < at, and_(created == at, cid < at_id)))
        query = query.order_by(created.desc(), cid.desc()).limit(limit + 1)
        rows = list((await session.scalars(query)).all())
        more_older = len(rows) > limit
        rows = rows[:limit]
    return CasePage(
        cases=rows,
        next_before=_cursor_of(rows[-1]) if rows and more_older else None,
        next_after=_cursor_of(rows[0]) if rows else after,
    )
