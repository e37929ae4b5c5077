"""The charger registry: provisioning chargers and their OCPP basic-auth passwords.

Security profiles 1 and 2 authenticate a charge point by HTTP basic auth (user = its id). The
password is generated here, shown once, and stored as a SHA-256 hash: 192 random bits make a
fast hash sufficient, and a slow one would cost minutes of CPU when a fleet reconnects.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from gateway.infra.storage.schema import ChargerRow, SiteRow

AuthVerdict = str  # "ok" | "unknown" | "bad_password" | "no_password" | "retired"


class ChargerError(Exception):
    """A provisioning request that cannot be done; the message says why."""


def generate_password() -> str:
    """32 URL-safe characters (192 bits): within OCPP's 16..40 character password rule."""
    return secrets.token_urlsafe(24)


def hash_password(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def check_password(row: ChargerRow | None, password: str | None) -> AuthVerdict:
    """Whether *password* opens *row*'s connection, in constant time."""
    if row is None:
        return "unknown"
    if row.lifecycle == "retired":
        return "retired"
    if row.password_hash is None:
        return "no_password"
    given = hash_password(password or "")
    return "ok" if hmac.compare_digest(given, row.password_hash) else "bad_password"


@dataclass(frozen=True, slots=True)
class NewCharger:
    id: str
    site_id: str | None
    place: str
    lat: float
    lon: float
    vendor: str = "unknown"
    model: str = "unknown"
    current: str = "AC"
    power_kw: float = 7.0
    connectors: int = 1


async def add_charger(session: AsyncSession, new: NewCharger, now: datetime) -> str:
    """Register a charger; returns its password (shown once, stored hashed)."""
    if await session.get(ChargerRow, new.id) is not None:
        raise ChargerError(f"charger {new.id!r} already exists (rotate with set-password)")
    if new.site_id is not None and await session.get(SiteRow, new.site_id) is None:
        raise ChargerError(f"unknown site {new.site_id!r}")
    password = generate_password()
    session.add(
        ChargerRow(
            id=new.id,
            site_id=new.site_id,
            place=new.place,
            lat=new.lat,
            lon=new.lon,
            vendor=new.vendor,
            model=new.model,
            current=new.current,
            power_kw=new.power_kw,
            connectors=new.connectors,
            lifecycle="active",
            password_hash=hash_password(password),
            password_set_at=now,
            heartbeat_s=300,
            created_at=now,
            updated_at=now,
        )
    )
    await session.flush()
    return password


async def set_password(session: AsyncSession, charger_id: str, now: datetime) -> str:
    """Rotate a charger's password; returns the new one (the old one stops working)."""
    row = await session.get(ChargerRow, charger_id)
    if row is None:
        raise ChargerError(f"no charger {charger_id!r}")
    password = generate_password()
    row.password_hash = hash_password(password)
    row.password_set_at = now
    row.updated_at = now
    return password
