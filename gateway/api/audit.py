"""The audit log (token): who changed which device, binding, password, token or town object,
when, and its public fields before and after. Admins see every entry, technicians the
entries of their own token. The same query as ``citygate audit``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.bounds import Instant
from gateway.directory.audit_view import DEFAULT_LIMIT, MAX_LIMIT, AuditPage, audit_page
from gateway.directory.tokens import Role, TokenInfo

router = APIRouter(prefix="/api/v1", tags=["Audit log"])
StateDep = Annotated[AppState, Depends(get_state)]
Reader = Annotated[TokenInfo, Depends(require(Role.TECHNICIAN))]
_TEXT = r"^[^\x00-\x1f\x7f]+$"  # no control characters (PostgreSQL refuses NUL in text)


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The audit log, newest first (admin: all; technician: their own changes)",
    description="Filters combine; `since` is inclusive, `until` exclusive (ISO 8601 with "
    "offset). A page holds at most `limit` entries; `next_cursor` fetches the next, older "
    "one. Secrets (passwords, hashes, token secrets) are never in an entry.",
)
async def audit(
    state: StateDep,
    who: Reader,
    kind: Annotated[str | None, Query(min_length=1, max_length=16, pattern=_TEXT)] = None,
    key: Annotated[str | None, Query(min_length=1, max_length=200, pattern=_TEXT)] = None,
    actor: Annotated[str | None, Query(min_length=1, max_length=200, pattern=_TEXT)] = None,
    since: Instant | None = None,
    until: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
    cursor: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> AuditPage:
    own = None if who.role is Role.ADMIN else who.id
    async with state.sessions() as db:
        return await audit_page(
            db, kind=kind, key=key, actor=actor, actor_token_id=own, since=since, until=until,
            limit=limit, cursor=cursor,
        )  # fmt: skip
