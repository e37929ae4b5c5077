"""Replacing a failed device: one transaction retires it and moves its place (berth, lane,
charger bay, officer) to the new device, with an audit entry per changed object and the
change in the feed, so every running instance moves the binding within seconds. The rules
(what is refused, and what to do instead) are in ``replace_rules``; this module is the I/O.

Exactly one of two concurrent replacements of the same device wins, on SQLite and
PostgreSQL: the old device is claimed first by a conditional update (``lifecycle`` still what
was read), which PostgreSQL re-checks after the row lock and SQLite runs under its one writer
lock; the loser's update matches nothing and it is refused with nothing written. Everything
else is read again after the claim (the new device under ``FOR UPDATE``), so the checks judge
what is committed. A unique constraint that still trips at commit (a berth taken by a
concurrent bind) is a refusal too, never a half-move.

This module is long because it holds one replacement per kind of device side by side (they
share the claim, the checks and the record, and differ in what their place is).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import exists, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.backoff import Backoff
from drivers.gates.bus import BusUrlError, canonical_bus_url
from drivers.gates.models import MapError, shipped_model
from drivers.sensors.messages import CodecError
from drivers.sensors.registry import get_codec
from drivers.sip.digest import ha1
from gateway.api.models import CameraCreate, DeviceCreate
from gateway.directory import chargers as chg
from gateway.directory.audit import SYSTEM, Actor, Edit, record_audits, snapshot
from gateway.directory.bodycams import BodycamCreate, generate_password
from gateway.directory.cameras import hash_secret, new_secret
from gateway.directory.registry import device_fields
from gateway.directory.replace_rules import (
    PROVISIONED,
    RETIRED,
    Kind,
    Refused,
    ReplaceRequest,
    Side,
    check_kind,
    check_new,
    check_old,
    next_lifecycle,
    raced,
)
from gateway.directory.town_import import lane_fields
from gateway.infra.changes import record_changes
from gateway.infra.storage.schema import (
    BodycamRow,
    ChargerRow,
    ChargingSessionRow,
    DeviceRow,
    LaneRow,
)

log = logging.getLogger(__name__)
DEVICE_KINDS: dict[str, Kind] = {"berth_sensor": "sensor", "camera": "camera"}
PUSH_PATHS = {"hikvision": "/hikvision", "vzenith": "/vzenith", "dahua": ""}


@dataclass
class Replaced:
    """What a replacement did; ``credentials`` (a new device's password or push URL
    secret) are shown this once and stored only hashed."""

    kind: Kind
    old: dict[str, Any]
    new: dict[str, Any]
    place: dict[str, Any]
    created: bool
    at: datetime
    credentials: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """The one JSON shape of ``citygate devices replace --json`` and the API's answer."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "old": self.old,
            "new": {**self.new, "created": self.created},
            "place": self.place,
            "at": self.at.isoformat(),
        }
        if self.credentials:
            out["credentials"] = self.credentials
        return out


@dataclass
class _Job:
    db: AsyncSession
    old_id: str
    req: ReplaceRequest
    now: datetime
    actor: Actor
    realm: str
    changes: list[tuple[str, str, str]] = field(default_factory=list)
    edits: list[Edit] = field(default_factory=list)

    def changed(self, feed_kind: str, audit: str, key: str, before: Any, after: Any) -> None:
        self.changes.append((feed_kind, key, "replace"))
        self.edits.append(Edit(audit, key, "replace", before, after))

    async def record(self) -> None:
        await record_changes(self.db, self.changes, self.now)
        await record_audits(self.db, self.actor, self.edits, self.now)


async def kinds_of(db: AsyncSession, device_id: str) -> list[tuple[Kind | str, str]]:
    """Every kind *device_id* is (with the id as stored); a device of a kind that has no
    replacement comes back by its own kind name."""
    hits: list[tuple[Kind | str, str]] = []
    dev = await db.get(DeviceRow, device_id.lower())
    if dev is not None:
        hits.append((DEVICE_KINDS.get(dev.kind, dev.kind), dev.id))
    if await db.get(ChargerRow, device_id) is not None:
        hits.append(("charger", device_id))
    if await db.get(BodycamRow, device_id) is not None:
        hits.append(("bodycam", device_id))
    if await db.get(LaneRow, device_id) is not None:
        hits.append(("gate", device_id))
    return hits


async def resolve_old(db: AsyncSession, old_id: str, asked: Kind | None) -> tuple[Kind, str]:
    hits = await kinds_of(db, old_id)
    if asked is not None and len(hits) > 1:
        hits = [h for h in hits if h[0] == asked] or hits
    if not hits:
        raise Refused(
            404,
            "no_device",
            f"no device {old_id!r}: check the id (`citygate devices list`, `chargers list`, "
            "`bodycams list`; a gate controller: its lane's id)",
        )
    if len(hits) > 1:
        kinds = ", ".join(str(h[0]) for h in hits)
        raise Refused(409, "ambiguous", f"{old_id!r} is a {kinds}: say which with kind")
    kind, stored = hits[0]
    if kind not in DEVICE_KINDS.values() and kind not in ("charger", "bodycam", "gate"):
        raise Refused(422, "not_replaceable", f"{old_id!r} is a {kind}: it has no replacement")
    check_kind(asked, kind, stored)  # type: ignore[arg-type]
    return kind, stored  # type: ignore[return-value]


async def _not_another_kind(job: _Job, kind: Kind) -> None:
    """A new id unknown for *kind*: refused as another kind's when it is one."""
    others = [h for h in await kinds_of(job.db, job.req.new) if h[0] != kind]
    if others:
        raise Refused(
            422,
            "kinds_differ",
            f"{job.req.new} is a {others[0][0]} and {job.old_id} a {kind}: a device is "
            "replaced by one of its own kind",
        )


async def _claim(job: _Job, row_type: Any, key: str, kind: Kind, seen: str) -> None:
    """Retire the old device if it still is as read (see the module docstring)."""
    claimed = await job.db.execute(
        update(row_type)
        .where(row_type.id == key, row_type.lifecycle == seen)
        .values(lifecycle=RETIRED)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise raced(kind, key)


def _invalid(exc: ValidationError, what: str) -> Refused:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or what
    return Refused(422, "invalid", f"invalid new {what}: {where}: {err['msg']}")


def _id_of(row: DeviceRow | ChargerRow | BodycamRow) -> dict[str, Any]:
    return {"id": row.id, "lifecycle": row.lifecycle}


# -- berth sensors -------------------------------------------------------------------------


async def _sensor(job: _Job, old_id: str) -> Replaced:
    db, req = job.db, job.req
    old = await db.get(DeviceRow, old_id)
    assert old is not None
    seen = old.lifecycle
    check_old(Side(old.id, "sensor", seen, old.berth_id))
    await _claim(job, DeviceRow, old.id, "sensor", seen)
    old = await db.get(DeviceRow, old.id, populate_existing=True)
    assert old is not None
    before_old = {**device_fields(old), "lifecycle": seen}
    berth_id = old.berth_id
    check_old(Side(old.id, "sensor", seen, berth_id))
    new_id = req.new.lower()
    new = await db.get(DeviceRow, new_id, with_for_update=True, populate_existing=True)
    before_new: dict[str, Any] | None = None
    if new is None:
        await _not_another_kind(job, "sensor")
        if req.model is None:
            raise Refused(
                422,
                "no_new_device",
                f"no sensor {new_id}: provision it first (`citygate devices add {new_id} "
                "--model MODEL`, or a bulk import), or give its model to provision it here",
            )
        try:
            body = DeviceCreate(dev_eui=req.new, model=req.model, heartbeat_s=req.heartbeat_s)
            codec = get_codec(body.model)
        except ValidationError as exc:
            raise _invalid(exc, "sensor") from None
        except CodecError:
            raise Refused(422, "invalid", f"unsupported sensor model {req.model!r}") from None
        new = DeviceRow(
            id=new_id, kind="berth_sensor", protocol=codec.transport, model=body.model,
            address=new_id, heartbeat_s=body.heartbeat_s, lifecycle=PROVISIONED, notes="",
            created_at=job.now, updated_at=job.now,
        )  # fmt: skip
        db.add(new)
    else:
        kind = DEVICE_KINDS.get(new.kind)
        check_new(
            Side(old.id, "sensor", seen, berth_id),
            Side(new.id, kind or new.kind, new.lifecycle, new.berth_id),
        )
        before_new = device_fields(new)
        if req.heartbeat_s is not None:
            new.heartbeat_s = req.heartbeat_s
    old.berth_id = None  # the berth is unique to one sensor: freed first, then taken
    old.lifecycle = RETIRED
    old.updated_at = job.now
    await db.flush()
    new.berth_id, new.site_id = berth_id, old.site_id
    new.lifecycle = next_lifecycle(new.lifecycle)
    new.updated_at = job.now
    await db.flush()
    job.changed(
        "device", "device", old.id, before_old, {**device_fields(old), "replaced_by": new.id}
    )
    job.changed("device", "device", new.id, before_new, {**device_fields(new), "replaces": old.id})
    await job.record()
    return Replaced(
        "sensor", _id_of(old), _id_of(new), {"berth_id": berth_id, "site_id": old.site_id},
        before_new is None, job.now,
    )  # fmt: skip


# -- plate cameras -------------------------------------------------------------------------


async def _camera(job: _Job, old_id: str) -> Replaced:
    db, req = job.db, job.req
    old = await db.get(DeviceRow, old_id)
    assert old is not None
    seen = old.lifecycle
    lane = await _lane_of_camera(db, old.id)
    place = old.lane_id or (lane.id if lane else None)
    check_old(Side(old.id, "camera", seen, place))
    await _claim(job, DeviceRow, old.id, "camera", seen)
    old = await db.get(DeviceRow, old.id, populate_existing=True)
    assert old is not None
    lane = await _lane_of_camera(db, old.id, lock=True)
    place = old.lane_id or (lane.id if lane else None)
    check_old(Side(old.id, "camera", seen, place))
    before_old = {**device_fields(old), "lifecycle": seen}
    new_id = req.new.lower()
    new = await db.get(DeviceRow, new_id, with_for_update=True, populate_existing=True)
    before_new: dict[str, Any] | None = None
    credentials: dict[str, str] = {}
    if new is None:
        await _not_another_kind(job, "camera")
        if req.vendor is None:
            raise Refused(
                422,
                "no_new_device",
                f"no camera {new_id}: register it first (`citygate devices add-camera "
                f"{new_id} --vendor V --site S`), or give its vendor to register it here",
            )
        try:
            body = CameraCreate(id=new_id, vendor=req.vendor, site_id=old.site_id or "")
        except ValidationError as exc:
            raise _invalid(exc, "camera") from None
        secret = new_secret()
        new = DeviceRow(
            id=new_id, kind="camera", protocol="http-push", model=body.vendor,
            address=f"/cameras/{new_id}/", lifecycle=PROVISIONED, notes="", vendor=body.vendor,
            secret_hash=hash_secret(secret), created_at=job.now, updated_at=job.now,
        )  # fmt: skip
        db.add(new)
        credentials = {
            "secret": secret,
            "push_path": f"/cameras/{new_id}/{secret}{PUSH_PATHS.get(body.vendor, '')}",
        }
    else:
        kind = DEVICE_KINDS.get(new.kind)
        new_lane = await _lane_of_camera(db, new.id)
        serves = new.lane_id or (new_lane.id if new_lane else None)
        check_new(
            Side(old.id, "camera", seen, place),
            Side(new.id, kind or new.kind, new.lifecycle, serves),
        )
        before_new = device_fields(new)
    lane_id, direction = place, old.direction
    old.lane_id = None
    old.lifecycle = RETIRED
    old.updated_at = job.now
    await db.flush()
    new.site_id, new.lane_id, new.direction = old.site_id, lane_id, direction
    new.lifecycle = next_lifecycle(new.lifecycle)
    new.updated_at = job.now
    await db.flush()
    job.changed(
        "device", "camera", old.id, before_old, {**device_fields(old), "replaced_by": new.id}
    )
    job.changed("device", "camera", new.id, before_new, {**device_fields(new), "replaces": old.id})
    if lane is not None:
        before_lane = lane_fields(lane)
        lane.camera_id = new.id
        lane.updated_at = job.now
        await db.flush()
        job.changed("lane", "lane", lane.id, before_lane, lane_fields(lane))
    await job.record()
    return Replaced(
        "camera", _id_of(old), _id_of(new),
        {"lane_id": lane_id, "site_id": old.site_id, "direction": direction},
        before_new is None, job.now, credentials,
    )  # fmt: skip


async def _lane_of_camera(db: AsyncSession, camera_id: str, lock: bool = False) -> LaneRow | None:
    q = select(LaneRow).where(LaneRow.camera_id == camera_id)
    if lock:
        q = q.with_for_update().execution_options(populate_existing=True)
    return (await db.execute(q)).scalar_one_or_none()


# -- gate controllers (a lane's bus, unit and register map) ------------------------------


def _gate(lane: LaneRow) -> dict[str, Any]:
    return {"id": lane.id, "bus": lane.gate_bus, "unit": lane.gate_unit, "model": lane.gate_model}


def _spelt(bus: str) -> str:
    """A stored bus in its one spelling (a row from before it was kept so may differ)."""
    try:
        return canonical_bus_url(bus)
    except BusUrlError:
        return bus


async def _gate_controller(job: _Job, lane_id: str) -> Replaced:
    db, req = job.db, job.req
    lane = await db.get(LaneRow, lane_id)
    assert lane is not None
    seen = (lane.gate_bus, lane.gate_unit, lane.gate_model)
    unit, model = req.unit or lane.gate_unit, req.model or lane.gate_model
    try:
        bus = canonical_bus_url(req.new)  # stored and compared in its one spelling
        shipped_model(model)
    except (BusUrlError, MapError) as exc:
        raise Refused(422, "invalid", f"invalid new gate controller: {exc}") from None
    if (bus, unit, model) == (_spelt(seen[0]), *seen[1:]):
        raise Refused(
            422, "same_device", f"lane {lane.id} uses {bus} unit {unit} ({model}) already: give "
            "the new controller's bus URL (and unit or model when they differ)",
        )  # fmt: skip
    taken = (
        await db.execute(
            select(LaneRow.id).where(
                LaneRow.gate_bus == bus, LaneRow.gate_unit == unit, LaneRow.id != lane.id
            )
        )
    ).first()
    if taken is not None:
        raise Refused(
            409, "new_bound", f"{bus} unit {unit} already moves lane {taken[0]}'s barrier: "
            "give the new controller its own unit (or free it there first)",
        )  # fmt: skip
    before = lane_fields(lane)
    old = _gate(lane)
    claimed = await db.execute(
        update(LaneRow)
        .where(
            LaneRow.id == lane.id,
            LaneRow.gate_bus == seen[0],
            LaneRow.gate_unit == seen[1],
            LaneRow.gate_model == seen[2],
        )
        .values(gate_bus=bus, gate_unit=unit, gate_model=model, updated_at=job.now)
        .execution_options(synchronize_session=False)
    )
    if getattr(claimed, "rowcount", 0) != 1:
        raise raced("gate", lane.id)
    lane = await db.get(LaneRow, lane.id, populate_existing=True)
    assert lane is not None
    job.changed("lane", "lane", lane.id, before, {**lane_fields(lane), "replaced": old})
    await job.record()
    return Replaced(
        "gate", {**old, "lifecycle": RETIRED}, {**_gate(lane), "lifecycle": None},
        {"lane_id": lane.id, "site_id": lane.site_id}, True, job.now,
    )  # fmt: skip


# -- chargers (the bay: site, place and position) -----------------------------------------


def _bay(row: ChargerRow) -> dict[str, Any]:
    return {"site_id": row.site_id, "place": row.place, "lat": row.lat, "lon": row.lon}


async def _charger(job: _Job, old_id: str) -> Replaced:
    db, req = job.db, job.req
    old = await db.get(ChargerRow, old_id)
    assert old is not None
    seen = old.lifecycle
    check_old(Side(old.id, "charger", seen, old.place))
    await _claim(job, ChargerRow, old.id, "charger", seen)
    old = await db.get(ChargerRow, old.id, populate_existing=True)
    assert old is not None
    before_old = {**chg.charger_fields(old), "lifecycle": seen}
    bay = _bay(old)
    new = await db.get(ChargerRow, req.new, with_for_update=True, populate_existing=True)
    before_new: dict[str, Any] | None = None
    credentials: dict[str, str] = {}
    if new is None:
        await _not_another_kind(job, "charger")
        try:
            body = chg.ChargerCreate(
                id=req.new, site_id=old.site_id, place=old.place, lat=old.lat, lon=old.lon,
                vendor=req.vendor or old.vendor, model=req.model or old.model,
                current=old.current, power_kw=old.power_kw, connectors=old.connectors,
            )  # fmt: skip
        except ValidationError as exc:
            raise _invalid(exc, "charger") from None
        password = chg.generate_password()
        new = ChargerRow(
            id=body.id, site_id=old.site_id, place=old.place, lat=old.lat, lon=old.lon,
            vendor=body.vendor, model=body.model, current=body.current, power_kw=body.power_kw,
            connectors=body.connectors, lifecycle=PROVISIONED,
            password_hash=chg.hash_password(password), password_set_at=job.now,
            heartbeat_s=old.heartbeat_s, created_at=job.now, updated_at=job.now,
        )  # fmt: skip
        db.add(new)
        credentials = {"password": password}
    else:
        charged = await db.scalar(select(exists().where(ChargingSessionRow.charger_id == new.id)))
        elsewhere = charged and (new.site_id, new.place) != (old.site_id, old.place)
        check_new(
            Side(old.id, "charger", seen, old.place),
            Side(new.id, "charger", new.lifecycle, new.place if elsewhere else None),
        )
        before_new = chg.charger_fields(new)
        new.site_id, new.place, new.lat, new.lon = old.site_id, old.place, old.lat, old.lon
    old.lifecycle = RETIRED
    old.updated_at = new.updated_at = job.now
    await db.flush()
    job.changed(
        "charger", "charger", old.id, before_old, {**chg.charger_fields(old), "replaced_by": new.id}
    )
    job.changed(
        "charger", "charger", new.id, before_new, {**chg.charger_fields(new), "replaces": old.id}
    )
    await job.record()
    return Replaced(
        "charger", _id_of(old), _id_of(new), bay, before_new is None, job.now, credentials
    )


# -- body cams (the officer who carries it) -----------------------------------------------


async def _bodycam(job: _Job, old_id: str) -> Replaced:
    db, req = job.db, job.req
    old = await db.get(BodycamRow, old_id)
    assert old is not None
    seen = old.lifecycle
    check_old(Side(old.id, "bodycam", seen, old.officer_id))
    await _claim(job, BodycamRow, old.id, "bodycam", seen)
    old = await db.get(BodycamRow, old.id, populate_existing=True)
    assert old is not None
    officer_id = old.officer_id
    check_old(Side(old.id, "bodycam", seen, officer_id))
    before_old = {**snapshot(old), "lifecycle": seen}
    new = await db.get(BodycamRow, req.new, with_for_update=True, populate_existing=True)
    before_new: dict[str, Any] | None = None
    credentials: dict[str, str] = {}
    if new is None:
        await _not_another_kind(job, "bodycam")
        try:
            body = BodycamCreate(id=req.new, officer_id=officer_id, password=req.password)
        except ValidationError as exc:
            raise _invalid(exc, "body cam") from None
        password = body.password or generate_password()
        new = BodycamRow(
            id=body.id, ha1=ha1(body.id, job.realm, password), realm=job.realm,
            password_set_at=job.now, lifecycle=PROVISIONED, created_at=job.now, updated_at=job.now,
        )  # fmt: skip
        db.add(new)
        if body.password is None:
            credentials = {"password": password}
    else:
        check_new(
            Side(old.id, "bodycam", seen, officer_id),
            Side(new.id, "bodycam", new.lifecycle, new.officer_id),
        )
        before_new = snapshot(new)
    old.officer_id = None
    old.lifecycle = RETIRED
    old.updated_at = job.now
    await db.flush()
    new.officer_id = officer_id
    new.updated_at = job.now
    await db.flush()
    job.changed("bodycam", "bodycam", old.id, before_old, {**snapshot(old), "replaced_by": new.id})
    job.changed("bodycam", "bodycam", new.id, before_new, {**snapshot(new), "replaces": old.id})
    await job.record()
    return Replaced(
        "bodycam", _id_of(old), _id_of(new), {"officer_id": officer_id}, before_new is None,
        job.now, credentials,
    )  # fmt: skip


_Replacer = Callable[[_Job, str], Coroutine[Any, Any, Replaced]]
_REPLACERS: dict[Kind, _Replacer] = {
    "sensor": _sensor,
    "camera": _camera,
    "gate": _gate_controller,
    "charger": _charger,
    "bodycam": _bodycam,
}


ATTEMPTS = 5  # a replacement chosen as a deadlock's victim is tried again, this often
_RETRY_STATES = frozenset({"40P01", "40001"})  # PostgreSQL: deadlock, serialization failure


def _retryable(exc: DBAPIError) -> bool:
    """PostgreSQL aborted the transaction to break a deadlock (the write-behind persister
    updates the same devices' rows in its own order): nothing was written, try again."""
    orig = exc.orig
    return any(
        getattr(e, "sqlstate", None) in _RETRY_STATES
        for e in (orig, getattr(orig, "__cause__", None))
    )


async def replace_device(
    sessions: async_sessionmaker[Any],
    old_id: str,
    req: ReplaceRequest,
    now: datetime,
    *,
    realm: str,
    actor: Actor = SYSTEM,
) -> Replaced:
    """Replace *old_id* by ``req.new`` in one transaction (see the module docstring);
    raises ``Refused`` with nothing written. *realm*: the body cams' digest realm (a new cam's
    HA1 is made for it)."""
    backoff = Backoff(base=0.02, cap=0.5, rng=random.Random())
    for attempt in range(1, ATTEMPTS + 1):
        try:
            async with sessions.begin() as db:
                kind, stored = await resolve_old(db, old_id, req.kind)
                job = _Job(db, stored, req, now, actor, realm)
                return await _REPLACERS[kind](job, stored)
        except IntegrityError:
            raise raced(req.kind or "device", old_id) from None  # type: ignore[arg-type]
        except DBAPIError as exc:
            if attempt == ATTEMPTS or not _retryable(exc):
                raise
            log.info("replacing %s: deadlock %d, trying again", old_id, attempt)
            await asyncio.sleep(backoff.next_delay())
    raise AssertionError("unreachable")
