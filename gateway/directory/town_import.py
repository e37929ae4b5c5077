"""Load or update a town into the database, idempotently.

The town file is authoritative for what it describes (names, coordinates, capacities, bindings);
runtime facts (berth state, last seen, battery) are never touched by an import. Devices that are
no longer in the file are left alone: retiring hardware is a technician's decision, not a side
effect of editing a file. A lane that is no longer in the file is left too, unless the file
gives its camera to another lane (a camera reads one lane): then it goes. Every row created or
updated goes into the change feed, in the same transaction, so running gateways follow the
import live, and into the audit log (one entry per object created, updated or deleted, with
the fields the file sets before and after; unchanged objects leave no entry).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.sensors.registry import get_codec
from gateway.directory.audit import SYSTEM, Actor, Edit, record_audits
from gateway.directory.drones import import_drones
from gateway.directory.town import Counting, Lane, Town
from gateway.infra.changes import record_changes
from gateway.infra.storage.schema import (
    BerthRow,
    BodycamRow,
    ChargerRow,
    DeviceRow,
    LaneRow,
    OfficerRow,
    SiteRow,
    StreetRow,
    ZoneRow,
)


@dataclass
class ImportReport:
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)

    def note(self, table: str, outcome: str) -> None:
        bucket = getattr(self, outcome)
        bucket[table] = bucket.get(table, 0) + 1

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {"created": self.created, "updated": self.updated, "unchanged": self.unchanged}


def _apply(row: Any, values: dict[str, Any]) -> bool:
    changed = False
    for key, value in values.items():
        if getattr(row, key) != value:
            setattr(row, key, value)
            changed = True
    return changed


async def import_town(
    session: AsyncSession, town: Town, now: datetime, *, actor: Actor = SYSTEM
) -> ImportReport:
    """Upsert *town* in one transaction owned by the caller."""
    report = ImportReport()
    changed: list[Edit] = []  # for the change feed and the audit log
    kinds = {"zones": "zone", "streets": "street", "sites": "site", "berths": "berth",
             "chargers": "charger", "officers": "officer", "bodycams": "bodycam"}  # fmt: skip
    # One query per table instead of one per row: a town has thousands of rows.
    existing: dict[Any, dict[str, Any]] = {}
    for model in (ZoneRow, StreetRow, SiteRow, BerthRow, DeviceRow, ChargerRow, LaneRow, OfficerRow,
                  BodycamRow):  # fmt: skip
        rows: Any = (await session.execute(select(model))).scalars()
        existing[model] = {r.id: r for r in rows}

    async def upsert(model: Any, key: str, values: dict[str, Any], table: str) -> Any:
        return _upsert(session, existing[model], model, key, values, table, kinds[table],
                       report, changed)  # fmt: skip

    for z in town.zones:
        polygon = [[lon, lat] for lon, lat in z.polygon]
        await upsert(
            ZoneRow, z.id, {"name": z.name, "kind": z.kind.value, "polygon": polygon}, "zones"
        )
    for st in town.streets:
        line = [[lon, lat] for lon, lat in st.line]
        await upsert(
            StreetRow, st.id, {"name": st.name, "kind": st.kind.value, "line": line}, "streets"
        )
    # The file is the whole outline: a street it no longer names is gone from the map.
    gone = sorted(set(existing[StreetRow]) - {st.id for st in town.streets})
    if gone:
        await session.execute(delete(StreetRow).where(StreetRow.id.in_(gone)))
        for key in gone:
            old = existing[StreetRow][key]
            gone_fields = {"name": old.name, "kind": old.kind}
            changed.append(Edit("street", key, "delete", gone_fields, None))
    await session.flush()
    for s in town.sites:
        await upsert(
            SiteRow,
            s.id,
            {
                "name": s.name,
                "kind": s.kind.value,
                "lat": s.lat,
                "lon": s.lon,
                "capacity": s.capacity,
                "counting": s.counting.value,
                "segment_class": s.segment_class,
                "zone_id": s.zone,
                "address": s.address,
                "controller_id": s.controller_id,
            },
            "sites",
        )
    await session.flush()
    for b in town.berths:
        await upsert(
            BerthRow,
            b.id,
            {"site_id": b.site, "number": b.number, "lat": b.lat, "lon": b.lon},
            "berths",
        )
    await session.flush()

    berth_site = {b.id: b.site for b in town.berths}
    wanted = {s.dev_eui.lower(): s.berth for s in town.sensors}
    wanted_berths = set(wanted.values())
    # Free berths the file gives to another sensor first, so the unique binding holds.
    for dev in list(existing[DeviceRow].values()):
        if dev.berth_id is None:
            continue
        if dev.berth_id in wanted_berths and wanted.get(dev.id) != dev.berth_id:
            changed.append(Edit("device", dev.id, "unbind", {"berth_id": dev.berth_id},
                                {"berth_id": None}))  # fmt: skip
            dev.berth_id = None
            dev.updated_at = now
    await session.flush()

    for sensor in town.sensors:
        codec = get_codec(sensor.model)
        dev_id = sensor.dev_eui.lower()
        values = {
            "kind": "berth_sensor",
            "protocol": codec.transport,
            "model": sensor.model,
            "address": dev_id,
            "berth_id": sensor.berth,
            "site_id": berth_site[sensor.berth],
            "heartbeat_s": sensor.heartbeat_s,
        }
        _upsert(session, existing[DeviceRow], DeviceRow, dev_id, values, "devices", "device",
                report, changed, now=now, created={"lifecycle": "active"})  # fmt: skip
    for site in town.sites:
        if site.counting is not Counting.ENTRY_EXIT or site.controller_id is None:
            continue
        values = {
            "kind": "carpark_controller",
            "protocol": "mqtt-json",
            "model": "entry-exit-counter",
            "address": site.controller_id,
            "site_id": site.id,
            "berth_id": None,
        }
        _upsert(session, existing[DeviceRow], DeviceRow, site.controller_id, values, "devices",
                "device", report, changed, now=now,
                created={"lifecycle": "active", "heartbeat_s": None})  # fmt: skip
    await session.flush()

    # Chargers: what the file says of them; passwords and live state are the gateway's own.
    for c in town.chargers:
        charger: dict[str, Any] = {
            "site_id": c.site,
            "place": c.place,
            "lat": c.lat,
            "lon": c.lon,
            "vendor": c.vendor,
            "model": c.model,
            "current": c.current,
            "power_kw": c.power_kw,
            "connectors": c.connectors,
        }
        _upsert(session, existing[ChargerRow], ChargerRow, c.id, charger, "chargers", "charger",
                report, changed, now=now,
                created={"lifecycle": "active", "heartbeat_s": 300})  # fmt: skip
    await session.flush()
    await _import_lanes(session, town.lanes, existing[LaneRow], report, changed, now)
    # Officers and the cam each carries; a cam's credential and live state are the gateway's.
    for o in town.officers:
        person: dict[str, Any] = {"name": o.name, "squad": o.squad, "role": o.role}
        person["updated_at"] = now
        if o.id not in existing[OfficerRow] or _differs(existing[OfficerRow][o.id], person):
            await upsert(OfficerRow, o.id, person, "officers")
        else:
            report.note("officers", "unchanged")
    await session.flush()
    for o in town.officers:
        if o.bodycam is not None:
            _upsert(session, existing[BodycamRow], BodycamRow, o.bodycam, {"officer_id": o.id},
                    "bodycams", "bodycam", report, changed, now=now,
                    created={"lifecycle": "active"})  # fmt: skip
    await session.flush()
    drone_edits: dict[str, Edit] = {}
    for outcome, _kind, key in await import_drones(session, town.drones, now, drone_edits):
        if outcome != "deleted":  # a drone whose keys the file gave to another
            report.note("drones", outcome)
        if outcome != "unchanged":
            changed.append(drone_edits[key])
    await record_changes(session, [(e.kind, e.key, e.action) for e in changed], now)
    await record_audits(session, actor, changed, now)
    return report


def _differs(row: Any, values: dict[str, Any]) -> bool:
    return any(getattr(row, k) != v for k, v in values.items() if k != "updated_at")


def _upsert(
    session: AsyncSession,
    rows: dict[str, Any],
    model: Any,
    key: str,
    values: dict[str, Any],
    table: str,
    kind: str,
    report: ImportReport,
    changed: list[Edit],
    *,
    now: datetime | None = None,
    created: dict[str, Any] | None = None,
) -> Any:
    """Create the row *key* with *values* (and *created*, what only a new row gets) or bring
    the existing one (from *rows*) to *values*; count it in *report* and, when it changed,
    note it for the change feed. With *now* the row's created_at/updated_at are stamped."""
    row = rows.get(key)
    stamps = {} if now is None else {"created_at": now, "updated_at": now}
    if row is None:
        row = model(id=key, **stamps, **(created or {}), **values)
        session.add(row)
        report.note(table, "created")
        changed.append(Edit(kind, key, "import", None, {**(created or {}), **values}))
        return row
    before = {k: getattr(row, k) for k in values}
    if _apply(row, values):
        if now is not None:
            row.updated_at = now
        report.note(table, "updated")
        changed.append(
            Edit(kind, key, "import", _differing(before, values), _differing(values, before))
        )
    else:
        report.note(table, "unchanged")
    return row


def _differing(these: dict[str, Any], others: dict[str, Any]) -> dict[str, Any]:
    """The fields of *these* whose value *others* does not share (an update's before/after)."""
    return {k: v for k, v in these.items() if k != "updated_at" and others.get(k) != v}


def lane_fields(row: LaneRow) -> dict[str, Any]:
    """A stored lane's town-file fields (what the audit log keeps of a deleted lane)."""
    return {k: getattr(row, k) for k in LANE_FIELDS}


LANE_FIELDS = ("site_id", "kind", "camera_id", "gate_bus", "gate_unit", "gate_model", "display")


def lane_values(ln: Lane) -> dict[str, Any]:
    return {
        "site_id": ln.site,
        "kind": ln.kind,
        "camera_id": ln.camera,
        "gate_bus": ln.gate.bus,
        "gate_unit": ln.gate.unit,
        "gate_model": ln.gate.model,
        "display": None if ln.display is None else ln.display.model_dump(),
    }


async def _import_lanes(
    session: AsyncSession,
    lanes: list[Lane],
    existing: dict[str, LaneRow],
    report: ImportReport,
    changed: list[Edit],
    now: datetime,
) -> None:
    """Upsert the file's lanes; a lane outside the file holding a camera the file gives to
    another lane is deleted first, so the one-camera-one-lane constraint holds."""
    wanted = {ln.camera: ln.id for ln in lanes}
    in_file = {ln.id for ln in lanes}
    taken = [r for r in existing.values() if wanted.get(r.camera_id, r.id) != r.id]
    stale = [r.id for r in taken if r.id not in in_file]
    if stale:
        await session.execute(delete(LaneRow).where(LaneRow.id.in_(stale)))
        changed.extend(Edit("lane", k, "delete", lane_fields(existing[k]), None) for k in stale)
    moving = [r for r in taken if r.id in in_file]
    for row in moving:  # cameras swapped between lanes of the file: free them first
        row.camera_id = f"~{row.id}"[:64]
    if moving:
        await session.flush()
    for ln in lanes:
        _upsert(session, existing, LaneRow, ln.id, lane_values(ln), "lanes", "lane", report,
                changed, now=now)  # fmt: skip
    await session.flush()
