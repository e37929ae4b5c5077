"""The body cam registry: provisioning cams and their digest credentials.

Shared by the CLI and the technicians' API; every change is recorded in the change feed in
the same transaction, so the running SIP platform picks up a new cam or password within
seconds. Only HA1 = MD5(id:realm:password) is stored (the digest needs nothing else), with
the realm it was made for; the password itself is shown once, where it was set.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.sip.digest import ha1
from gateway.directory.audit import SYSTEM, Actor, record_audit, snapshot
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import BodycamRow, OfficerRow

BodycamId = Annotated[
    str, Field(pattern=r"^[0-9]{20}$", description="the cam's 20-digit GB/T 28181 id")
]
Password = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[\x21-\x7e]+$")]


class BodycamError(Exception):
    """A provisioning request that cannot be done; ``status`` is the HTTP status that fits
    (404 no such cam, 409 already exists, 422 bad request)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class BodycamCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: BodycamId
    officer_id: str | None = Field(None, min_length=1, max_length=32, description="who carries it")
    password: Password | None = Field(
        None, description="the digest password set on the cam; generated (and shown) if absent"
    )


class BodycamPassword(BaseModel):
    model_config = ConfigDict(extra="forbid")
    password: Password | None = Field(None, description="generated (and shown) if absent")


def generate_password() -> str:
    """16 URL-safe characters (96 bits): short enough to type into a cam's menu."""
    return secrets.token_urlsafe(12)


async def add_bodycam(
    session: AsyncSession,
    cam_id: str,
    officer_id: str | None,
    realm: str,
    password: str | None,
    now: datetime,
    *,
    actor: Actor = SYSTEM,
) -> str:
    """Register a cam, ``provisioned`` (docs/lifecycle.md: it may REGISTER at once, its
    commissioning checks make it commissioned, its first REGISTER or message after that
    active); returns its password (shown once, stored as HA1)."""
    if await session.get(BodycamRow, cam_id) is not None:
        raise BodycamError(f"body cam {cam_id!r} already exists (rotate its password)", 409)
    if officer_id is not None and await session.get(OfficerRow, officer_id) is None:
        raise BodycamError(f"unknown officer {officer_id!r}")
    password = password or generate_password()
    row = BodycamRow(
        id=cam_id,
        officer_id=officer_id,
        ha1=ha1(cam_id, realm, password),
        realm=realm,
        password_set_at=now,
        lifecycle="provisioned",
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await record_change(session, "bodycam", cam_id, "add", now)
    await record_audit(session, actor, "bodycam", cam_id, "add", None, snapshot(row), now)
    return password


async def set_password(
    session: AsyncSession,
    cam_id: str,
    realm: str,
    password: str | None,
    now: datetime,
    *,
    actor: Actor = SYSTEM,
) -> str:
    """Set (or rotate) a cam's password; returns it. The old one stops working at once."""
    row = await session.get(BodycamRow, cam_id)
    if row is None:
        raise BodycamError(f"no body cam {cam_id!r}", 404)
    before = snapshot(row)
    password = password or generate_password()
    row.ha1 = ha1(cam_id, realm, password)
    row.realm = realm
    row.password_set_at = now
    row.updated_at = now
    await record_change(session, "bodycam", cam_id, "password", now)
    await record_audit(session, actor, "bodycam", cam_id, "password", before, snapshot(row), now)
    return password


async def set_passwords(
    session: AsyncSession,
    passwords: dict[str, str],
    realm: str,
    now: datetime,
    *,
    create: bool = False,
    actor: Actor = SYSTEM,
) -> int:
    """Set many cams' passwords in one transaction (the demo's 72); unknown ids are skipped,
    or registered without an officer with *create* (a bench's 2,000). Returns how many."""
    rows = (await session.execute(select(BodycamRow).where(BodycamRow.id.in_(passwords)))).scalars()
    known = set()
    for row in rows:
        await set_password(session, row.id, realm, passwords[row.id], now, actor=actor)
        known.add(row.id)
    if create:
        for cam_id in sorted(set(passwords) - known):
            await add_bodycam(session, cam_id, None, realm, passwords[cam_id], now, actor=actor)
            known.add(cam_id)
    return len(known)


@dataclass(frozen=True, slots=True)
class Credential:
    """What the registrar needs of a cam: its HA1 for the realm, whether it may register."""

    id: str
    officer_id: str | None
    ha1: str | None
    realm: str | None
    active: bool  # may register: anything but retired (gateway.directory.lifecycle)
    lifecycle: str = "active"


def credential_of(row: BodycamRow) -> Credential:
    return Credential(
        row.id, row.officer_id, row.ha1, row.realm, row.lifecycle != "retired", row.lifecycle
    )


async def credentials(session: AsyncSession) -> dict[str, Credential]:
    rows = (await session.execute(select(BodycamRow))).scalars()
    return {r.id: credential_of(r) for r in rows}


async def credential(session: AsyncSession, cam_id: str) -> Credential | None:
    row = await session.get(BodycamRow, cam_id)
    return None if row is None else credential_of(row)


def registry_line(row: BodycamRow, officer: OfficerRow | None) -> dict[str, Any]:
    """One cam of ``citygate bodycams list`` / the registry answers (never the HA1)."""
    return {
        "id": row.id,
        "officer_id": row.officer_id,
        "officer": officer.name if officer else None,
        "squad": officer.squad if officer else None,
        "lifecycle": row.lifecycle,
        "password_set": row.ha1 is not None,
        "password_set_at": None if row.password_set_at is None else row.password_set_at.isoformat(),
    }


async def registry_view(session: AsyncSession) -> list[dict[str, Any]]:
    """Every cam with its officer, by id: the one function behind ``GET
    /api/v1/devices/bodycams`` and ``citygate bodycams list``."""
    officers = {o.id: o for o in (await session.execute(select(OfficerRow))).scalars()}
    rows = (await session.execute(select(BodycamRow).order_by(BodycamRow.id))).scalars()
    return [registry_line(r, officers.get(r.officer_id or "")) for r in rows]
