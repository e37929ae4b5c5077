"""The charger registry: provisioning chargers and their OCPP basic-auth passwords.

Shared by the CLI and the technicians' API; every change is recorded in the change feed in
the same transaction, so running gateways register, move or retire the charger live.

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
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.directory.audit import SYSTEM, Actor, record_audit, snapshot
from gateway.directory.devices import Lifecycle
from gateway.directory.lifecycle import Cause, LifeKind, Refused, decide
from gateway.directory.town import ChargePointId, Ident, Lat, Lon
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import ChargerRow, SiteRow

AuthVerdict = str  # "ok" | "unknown" | "bad_password" | "no_password" | "retired"


LIFECYCLES: tuple[str, ...] = tuple(s.value for s in Lifecycle)  # the one lifecycle's names
LifecycleName = Literal["provisioned", "commissioned", "active", "maintenance", "retired"]
Name = Annotated[str, Field(min_length=1, max_length=64)]


class ChargerError(Exception):
    """A provisioning request that cannot be done; the message says why and ``status`` is the
    HTTP status that fits (404 no such charger, 409 already exists, 422 bad request)."""

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.status = status


class LifecycleRefused(ChargerError):
    """A lifecycle move of a charger that the one lifecycle refuses (409); the message says
    what to do instead (``gateway.directory.lifecycle``)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status=409)


class ChargerCreate(BaseModel):
    """A charger to register: where it stands (a site, or a place with coordinates) and
    what it can do."""

    model_config = ConfigDict(extra="forbid")
    id: ChargePointId = Field(description="OCPP charge point id (the user of basic auth)")
    site_id: Ident | None = Field(None, description="the car park it stands in")
    place: str | None = Field(None, min_length=1, max_length=200, description="default: site")
    lat: Lat | None = None
    lon: Lon | None = None
    vendor: Name = "unknown"
    model: Name = "unknown"
    current: Literal["AC", "DC"] = "AC"
    power_kw: float = Field(7.0, gt=0, le=1000, strict=True)
    connectors: int = Field(1, ge=1, le=8)

    @model_validator(mode="after")
    def _where(self) -> Self:
        if self.site_id is None and (self.place is None or self.lat is None or self.lon is None):
            raise ValueError("give site_id, or place with lat and lon")
        return self


class ChargerPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: Ident | None = Field(None, description="null: no longer in a car park")
    place: str | None = Field(None, min_length=1, max_length=200)
    lat: Lat | None = None
    lon: Lon | None = None
    lifecycle: LifecycleName | None = Field(
        None,
        description="a move of the device lifecycle (docs/lifecycle.md), as an operator's: "
        "retired is final (refused at the OCPP handshake, out of the fleet view)",
    )


# What the charger and the gateway's liveness book write, not provisioning: not audited.
_RUNTIME = (
    "protocol", "firmware", "serial", "last_boot_at", "last_boot_reason", "last_seen",
    "connected", "connected_at", "disconnected_at", "disconnect_reason", "restarted_at",
    "probe_state", "probe_at",
)  # fmt: skip


def charger_fields(row: ChargerRow) -> dict[str, Any]:
    """A charger's audited fields (its password hash is redacted when stored)."""
    return snapshot(row, exclude=_RUNTIME)


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


async def charger_at(
    session: AsyncSession,
    charger_id: str,
    site_id: str | None,
    place: str | None,
    lat: float | None,
    lon: float | None,
    **rest: Any,
) -> NewCharger:
    """A new charger's record, its place and position defaulting to its site's."""
    site = await session.get(SiteRow, site_id) if site_id else None
    if site_id and site is None:
        raise ChargerError(f"unknown site {site_id!r}")
    place = place or (site.name if site else None)
    lat = lat if lat is not None else (site.lat if site else None)
    lon = lon if lon is not None else (site.lon if site else None)
    if place is None or lat is None or lon is None:
        raise ChargerError("without a site, give place, lat and lon")
    return NewCharger(id=charger_id, site_id=site_id, place=place, lat=lat, lon=lon, **rest)


_RETIRED = (
    "retired is final: register the charger that now stands in its bay under a new id "
    "(`citygate chargers add NEW_ID ...`, POST /api/v1/chargers); next time replace a failing "
    "charger instead of retiring it (`citygate devices replace OLD NEW` moves its bay in one step)"
)


async def add_charger(
    session: AsyncSession, new: NewCharger, now: datetime, *, actor: Actor = SYSTEM
) -> str:
    """Register a charger, ``provisioned`` (docs/lifecycle.md: its commissioning checks make
    it commissioned, its first BootNotification or Heartbeat after that active); returns its
    password (shown once, stored hashed)."""
    existing = await session.get(ChargerRow, new.id)
    if existing is not None and existing.lifecycle == "retired":
        raise ChargerError(f"charger {new.id!r} is retired: {_RETIRED}", status=409)
    if existing is not None:
        raise ChargerError(
            f"charger {new.id!r} already exists (rotate with set-password)", status=409
        )
    if new.site_id is not None and await session.get(SiteRow, new.site_id) is None:
        raise ChargerError(f"unknown site {new.site_id!r}")
    password = generate_password()
    row = ChargerRow(
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
        lifecycle=Lifecycle.PROVISIONED.value,
        password_hash=hash_password(password),
        password_set_at=now,
        heartbeat_s=300,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    await session.flush()
    await record_change(session, "charger", new.id, "add", now)
    await record_audit(session, actor, "charger", new.id, "add", None, charger_fields(row), now)
    return password


async def store_password(
    session: AsyncSession, charger_id: str, password: str, now: datetime, *, actor: Actor = SYSTEM
) -> None:
    """Store the hash of a password the charger itself accepted (a rotation through OCPP:
    1.6 AuthorizationKey, 2.0.1 BasicAuthPassword); the old one stops working."""
    row = await session.get(ChargerRow, charger_id)
    if row is None:
        raise ChargerError(f"no charger {charger_id!r}")
    before = charger_fields(row)
    row.password_hash = hash_password(password)
    row.password_set_at = now
    row.updated_at = now
    after = charger_fields(row)
    await record_audit(session, actor, "charger", charger_id, "password", before, after, now)


async def set_password(
    session: AsyncSession, charger_id: str, now: datetime, *, actor: Actor = SYSTEM
) -> str:
    """Rotate a charger's password; returns the new one (the old one stops working)."""
    row = await session.get(ChargerRow, charger_id)
    if row is None:
        raise ChargerError(f"no charger {charger_id!r}", status=404)
    if row.lifecycle == "retired":  # a password it could not use anyway
        raise ChargerError(f"charger {charger_id!r} is retired: {_RETIRED}", status=409)
    before = charger_fields(row)
    password = generate_password()
    row.password_hash = hash_password(password)
    row.password_set_at = now
    row.updated_at = now
    await record_change(session, "charger", charger_id, "password", now)
    after = charger_fields(row)
    await record_audit(session, actor, "charger", charger_id, "password", before, after, now)
    return password


async def update_charger(
    session: AsyncSession,
    charger_id: str,
    changes: dict[str, Any],
    now: datetime,
    *,
    actor: Actor = SYSTEM,
) -> ChargerRow:
    """Move a charger (``site_id``, ``place``, ``lat``, ``lon``) or move it in the device
    lifecycle (``lifecycle``, an operator's move: ``gateway.directory.lifecycle`` decides; a
    refused move is a 409 and changes nothing). A retired charger is refused at the OCPP
    handshake and leaves the fleet; retired is final."""
    row = await session.get(ChargerRow, charger_id)
    if row is None:
        raise ChargerError(f"no charger {charger_id!r}", status=404)
    unknown = set(changes) - {"site_id", "place", "lat", "lon", "lifecycle"}
    if unknown:
        raise ChargerError(f"cannot change {', '.join(sorted(unknown))}")
    lifecycle = changes.get("lifecycle")
    if lifecycle is not None:
        _decide(charger_id, row.lifecycle, lifecycle)
    before = charger_fields(row)
    if "site_id" in changes:
        site_id = changes["site_id"]
        if site_id is not None and await session.get(SiteRow, site_id) is None:
            raise ChargerError(f"unknown site {site_id!r}")
        row.site_id = site_id
    for key in ("place", "lat", "lon"):
        if changes.get(key) is not None:
            setattr(row, key, changes[key])
    if lifecycle is not None:
        row.lifecycle = lifecycle
    row.updated_at = now
    await session.flush()
    op = lifecycle or "update"
    await record_change(session, "charger", charger_id, op, now)
    await record_audit(session, actor, "charger", charger_id, op, before, charger_fields(row), now)
    return row


def _decide(charger_id: str, old: str, new: str) -> None:
    """An operator's lifecycle move of a charger, or ``ChargerError`` (422 no such state,
    409 a move the lifecycle refuses, with what to do instead)."""
    if new not in LIFECYCLES:
        raise ChargerError(f"lifecycle must be one of {', '.join(LIFECYCLES)}")
    try:
        decide(LifeKind.CHARGER, charger_id, Lifecycle(old), Lifecycle(new), Cause.OPERATOR)
    except Refused as exc:
        hint = _RETIRED if exc.old is Lifecycle.RETIRED else exc.hint
        message = f"charger {charger_id!r}: cannot move from {old} to {new}: {hint}"
        raise LifecycleRefused(message) from None
