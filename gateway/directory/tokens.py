"""Role-scoped API bearer tokens, stored hashed.

Every request verifies its token against the database (one read by primary key), so a token
works, or stops working, the moment its transaction commits, on every instance; creations and
revocations still go into the change feed, for any cache a future instance may keep.

A token is ``cg_<id>_<secret>``: the id finds the row, the secret is checked against a SHA-256
hash in constant time. The secret has 256 bits of entropy, so a fast hash is sufficient (slow
password hashes exist for low-entropy human passwords). The clear token is shown once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.directory.audit import SYSTEM, Actor, record_audit
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import ApiTokenRow


class Role(StrEnum):
    """Who may do what: devices push observations, the app's payment backend records payments,
    operators handle enforcement and refunds, technicians provision, inspectors read."""

    DEVICE = "device"
    PAYMENTS = "payments"
    TECHNICIAN = "technician"
    INSPECTOR = "inspector"
    OPERATOR = "operator"
    ADMIN = "admin"


class TokenError(Exception):
    """Malformed, unknown or revoked token. ``reason`` is a metric label."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    role: Role
    label: str
    created_at: datetime
    revoked_at: datetime | None


PREFIX = "cg_"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def split_token(token: str) -> tuple[str, str]:
    if not token.startswith(PREFIX) or len(token) > 200:
        raise TokenError("malformed")
    parts = token[len(PREFIX) :].split("_", 1)
    if len(parts) != 2 or not parts[0] or not parts[1]:
        raise TokenError("malformed")
    return parts[0], parts[1]


async def create_token(
    session: AsyncSession, role: Role, now: datetime, label: str = "", *, actor: Actor = SYSTEM
) -> tuple[TokenInfo, str]:
    """Create a token; returns its info and the clear token (shown once, never stored)."""
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = ApiTokenRow(
        id=token_id, role=role.value, token_hash=_hash(secret), label=label, created_at=now
    )
    session.add(row)
    await session.flush()
    await record_change(session, "token", token_id, "create", now)
    await record_audit(session, actor, "token", token_id, "create", None, _public(row), now)
    return _info(row), f"{PREFIX}{token_id}_{secret}"


async def verify_token(session: AsyncSession, token: str) -> TokenInfo:
    token_id, secret = split_token(token)
    row = await session.get(ApiTokenRow, token_id)
    if row is None:
        raise TokenError("unknown")
    if not hmac.compare_digest(row.token_hash, _hash(secret)):
        raise TokenError("mismatch")
    if row.revoked_at is not None:
        raise TokenError("revoked")
    return _info(row)


async def revoke_token(
    session: AsyncSession, token_id: str, now: datetime, *, actor: Actor = SYSTEM
) -> bool:
    """Revoke by id (or by a full token). Returns False if there is no such token."""
    if token_id.startswith(PREFIX):
        token_id = split_token(token_id)[0]
    row = await session.get(ApiTokenRow, token_id)
    if row is None:
        return False
    if row.revoked_at is None:
        before = _public(row)
        row.revoked_at = now
        await record_change(session, "token", token_id, "revoke", now)
        await record_audit(session, actor, "token", token_id, "revoke", before, _public(row), now)
    return True


async def list_tokens(session: AsyncSession) -> list[TokenInfo]:
    rows = await session.execute(select(ApiTokenRow).order_by(ApiTokenRow.created_at))
    return [_info(r) for r in rows.scalars()]


def _public(row: ApiTokenRow) -> dict[str, Any]:
    """What the audit log keeps of a token: never its hash (nor, of course, its secret)."""
    return {
        "id": row.id,
        "role": row.role,
        "label": row.label,
        "created_at": row.created_at,
        "revoked_at": row.revoked_at,
    }


def _info(row: ApiTokenRow) -> TokenInfo:
    return TokenInfo(row.id, Role(row.role), row.label, row.created_at, row.revoked_at)
