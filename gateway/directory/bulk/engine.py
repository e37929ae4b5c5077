"""Diff a parsed bulk import against the database and apply it, in one transaction.

The caller's transaction holds everything: the reads the diff is made of, the checks against
the database (berths, sites, officers, bindings), and the writes. Any rejected row and
nothing is written; the result says what would have been done. Writes go through the
directory's writers (chargers, body cams: ``add_charger``, ``update_charger``,
``add_bodycam``, ``set_password``) or, for the thousands of sensors a town has, their bulk
equivalents: one executemany per statement (plain rows, ``insert_plain``), one audit entry
per device, and one change-feed entry naming every device written (``record_batch``), so
running gateways follow the import live, re-reading the devices in a few queries.

Retiring (``retire_missing``, scoped to the kinds in the file): sensors and cameras go
``retired`` as ``Registry.update`` retires them (a sensor frees its berth), chargers as
``update_charger`` retires them; body cams have no retire in the directory and are left.

The module is long because the four kinds' diffs and writes belong together: one plan, one
transaction, one order of writes (retire, unbind, insert, update) that keeps the berth binding
unique.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from drivers.sensors.registry import get_codec
from drivers.sip.digest import ha1
from gateway.directory import bodycams as cams
from gateway.directory import chargers as chg
from gateway.directory.audit import SYSTEM, Actor, Edit, record_audit, record_audits
from gateway.directory.bulk.parse import KINDS, Parsed, Row, RowError
from gateway.directory.cameras import hash_secret, new_secret
from gateway.directory.devices import Lifecycle
from gateway.infra.changes import record_batch, record_changes
from gateway.infra.gcpause import gc_paused
from gateway.infra.storage.plain import insert_plain, rows_of
from gateway.infra.storage.schema import BerthRow, BodycamRow, ChargerRow, DeviceRow, SiteRow

Progress = Callable[[int, int], None]  # (rows written, rows to write)
DEVICE_KIND = {"sensor": "berth_sensor", "camera": "camera"}
CHUNK = 2500
DEVICES = cast(Table, DeviceRow.__table__)
_SENSOR_COLUMNS = ("id", "kind", "protocol", "model", "address", "berth_id", "site_id",
                   "heartbeat_s", "lifecycle", "notes")  # fmt: skip
# the columns a new row of each kind gives (a sensor has no vendor, secret, lane, direction)
NEW_COLUMNS = {
    "berth_sensor": _SENSOR_COLUMNS,
    "camera": (*_SENSOR_COLUMNS, "vendor", "secret_hash", "lane_id", "direction"),
}
NO_RETIRE = {"bodycam": "body cams have no retire in the directory: left as they are"}


@dataclass
class Outcome:
    """What an import did (or, dry or rejected, would do)."""

    dry_run: bool
    retire_missing: bool
    rows: int = 0
    added: dict[str, list[str]] = field(default_factory=dict)
    changed: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    retired: dict[str, list[str]] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    errors: list[RowError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # generated secrets, shown once (never those the file gave: the technician has them)
    secrets: list[dict[str, str]] = field(default_factory=list)

    @property
    def imported(self) -> bool:
        return not self.dry_run and not self.errors

    def as_dict(self) -> dict[str, Any]:
        """The one JSON shape of ``citygate import --json`` and ``POST /api/v1/import``."""
        return {
            "imported": self.imported,
            "dry_run": self.dry_run,
            "retire_missing": self.retire_missing,
            "rows": self.rows,
            "summary": {
                k: {
                    "added": len(self.added.get(k, [])),
                    "changed": len(self.changed.get(k, [])),
                    "retired": len(self.retired.get(k, [])),
                    "unchanged": self.unchanged.get(k, 0),
                }
                for k in KINDS
                if k in self.added or k in self.changed or k in self.retired or k in self.unchanged
            },
            "added": self.added,
            "changed": self.changed,
            "retired": self.retired,
            "errors": [e.as_dict() for e in self.errors],
            "notes": self.notes,
            "secrets": self.secrets,
        }


HIDDEN = "(hidden)"


async def run_import(
    session: AsyncSession,
    parsed: Parsed,
    now: datetime,
    *,
    realm: str,
    dry_run: bool = False,
    retire_missing: bool = False,
    progress: Progress | None = None,
    actor: Actor = SYSTEM,
) -> Outcome:
    """Diff *parsed* against the database in *session*'s transaction and, unless *dry_run*
    or a row is rejected, apply it there. The caller commits (or rolls back on an error)."""
    out = Outcome(dry_run=dry_run, retire_missing=retire_missing, rows=parsed.count)
    out.errors.extend(parsed.errors)
    plan = _Plan(out, now)
    if parsed.rows.get("sensor") or parsed.rows.get("camera"):
        await plan.devices(session, parsed, retire_missing)
    if "charger" in parsed.rows:
        await plan.chargers(session, parsed.rows["charger"], retire_missing)
    if "bodycam" in parsed.rows:
        await plan.bodycams(session, parsed.rows["bodycam"], realm)
        if retire_missing:
            out.notes.append(NO_RETIRE["bodycam"])
    if dry_run or out.errors:
        return out
    await plan.write(session, now, realm, progress, actor)
    return out


def _site_of(sites: dict[str, SiteRow], site_id: str | None) -> SiteRow | None:
    return sites.get(site_id) if site_id else None


class _Plan:
    """The writes an import needs, found while diffing."""

    def __init__(self, out: Outcome, now: datetime) -> None:
        self.out = out
        self.now = now
        self.dev_new: list[dict[str, Any]] = []
        self.dev_upd: list[dict[str, Any]] = []
        self.dev_unbind: list[str] = []
        self.dev_retire: list[str] = []
        self.charger_new: list[tuple[Row, chg.NewCharger]] = []
        self.charger_upd: list[tuple[Row, dict[str, Any]]] = []
        self.charger_retire: list[str] = []
        self.cam_new: list[Row] = []
        self.cam_upd: list[tuple[Row, dict[str, Any]]] = []
        self.secrets: dict[tuple[str, str], str] = {}  # generated at write time
        self.total = 0

    def _changed(self, kind: str, key: str, fields: dict[str, list[Any]]) -> None:
        self.out.changed.setdefault(kind, []).append({"id": key, "fields": fields})

    def _error(self, row: Row, field_name: str, message: str) -> None:
        self.out.errors.append(RowError(row.where, field_name, message))

    # -- sensors and plate cameras (the devices table) -------------------------------------

    async def devices(self, session: AsyncSession, parsed: Parsed, retire: bool) -> None:
        cols = (DeviceRow.id, DeviceRow.kind, DeviceRow.model, DeviceRow.berth_id,
                DeviceRow.site_id, DeviceRow.heartbeat_s, DeviceRow.notes, DeviceRow.lifecycle,
                DeviceRow.vendor, DeviceRow.lane_id, DeviceRow.direction,
                DeviceRow.secret_hash)  # fmt: skip
        existing = {r.id: r for r in (await session.execute(select(*cols))).all()}
        berths = {
            b: s for b, s in (await session.execute(select(BerthRow.id, BerthRow.site_id))).all()
        }
        sites = set((await session.execute(select(SiteRow.id))).scalars())
        with gc_paused():  # no await in here: the diff of thousands of rows
            self._diff_devices(parsed, retire, existing, berths, sites)

    def _diff_devices(
        self,
        parsed: Parsed,
        retire: bool,
        existing: dict[str, Any],
        berths: dict[str, str],
        sites: set[str],
    ) -> None:
        holder = {r.berth_id: r.id for r in existing.values() if r.berth_id is not None}
        in_file = {k: {r.id for r in parsed.rows.get(k, [])} for k in ("sensor", "camera")}
        moving = {r.id for r in parsed.rows.get("sensor", []) if "berth_id" in r.given}
        if retire:
            for kind in ("sensor", "camera"):
                if kind not in parsed.rows:
                    continue
                gone = sorted(
                    r.id
                    for r in existing.values()
                    if r.kind == DEVICE_KIND[kind]
                    and r.id not in in_file[kind]
                    and r.lifecycle != Lifecycle.RETIRED.value
                )
                if gone:
                    self.out.retired[kind] = gone
                    self.dev_retire.extend(gone)
        retired = set(self.dev_retire)
        wanted: dict[str, str] = {}  # berth -> the file's sensor that takes it
        for row in parsed.rows.get("sensor", []):
            berth = row.values["berth_id"]
            if berth is None:
                continue
            if berth not in berths:
                self._error(row, "berth_id", f"no berth {berth!r}")
            elif berth in wanted:
                self._error(row, "berth_id", f"berth {berth} is also given to {wanted[berth]}")
            else:
                wanted[berth] = row.id
        for berth, dev in wanted.items():
            old = holder.get(berth)
            if old is None or old == dev or old in retired or old in moving:
                continue  # free, already its, freed by a retire, or moves with this file
            row = next(r for r in parsed.rows["sensor"] if r.id == dev)
            self._error(row, "berth_id", f"berth {berth} is bound to {old}: unbind or retire it")
        for row in parsed.rows.get("sensor", []):
            self._sensor(row, existing.get(row.id), berths, wanted)
        for row in parsed.rows.get("camera", []):
            if row.values["site_id"] not in sites:
                self._error(row, "site_id", f"no site {row.values['site_id']!r}")
                continue
            self._camera(row, existing.get(row.id))

    def _sensor(self, row: Row, old: Any, berths: dict[str, str], wanted: dict[str, str]) -> None:
        v = row.values
        berth = v["berth_id"]
        site = berths.get(berth) if berth else None
        if old is None:
            self.out.added.setdefault("sensor", []).append(row.id)
            self.dev_new.append(
                {
                    "id": row.id,
                    "kind": "berth_sensor",
                    "protocol": get_codec(v["model"]).transport,
                    "model": v["model"],
                    "address": row.id,
                    "berth_id": berth,
                    "site_id": site,
                    "heartbeat_s": v["heartbeat_s"],
                    "lifecycle": Lifecycle.PROVISIONED.value,
                    "notes": v["notes"],
                    "vendor": None,
                    "secret_hash": None,
                    "lane_id": None,
                    "direction": None,
                }
            )  # fmt: skip (no times: bound once for all rows at the write)
            return
        if old.kind != "berth_sensor":
            self._error(row, "dev_eui", f"{row.id} is a {old.kind}, not a berth sensor")
            return
        diff = {f: [getattr(old, f), v[f]] for f in sorted(row.given) if getattr(old, f) != v[f]}
        if not diff:
            self.out.unchanged["sensor"] = self.out.unchanged.get("sensor", 0) + 1
            return
        if "berth_id" in diff and berth is not None and old.lifecycle == Lifecycle.RETIRED.value:
            self._error(row, "berth_id", f"{row.id} is retired: a retired sensor holds no berth")
            return
        self._changed("sensor", row.id, diff)
        values = {f: v[f] for f in diff}
        if "model" in values:
            values["protocol"] = get_codec(v["model"]).transport
        if "berth_id" in values:
            values["site_id"] = site
            if old.berth_id is not None:
                self.dev_unbind.append(row.id)  # first, so berths can move between sensors
        self.dev_upd.append({"id": row.id, **values})

    def _camera(self, row: Row, old: Any) -> None:
        v = row.values
        if old is None:
            self.out.added.setdefault("camera", []).append(row.id)
            self.cam_new.append(row)
            return
        if old.kind != "camera":
            self._error(row, "id", f"{row.id} is a {old.kind}, not a camera")
            return
        diff = {f: [getattr(old, f), v[f]] for f in sorted(row.given) if getattr(old, f) != v[f]}
        values = {f: v[f] for f in diff}
        if row.secret is not None and hash_secret(row.secret) != old.secret_hash:
            diff["secret"] = [HIDDEN, HIDDEN]
            values["secret_hash"] = hash_secret(row.secret)
        if not diff:
            self.out.unchanged["camera"] = self.out.unchanged.get("camera", 0) + 1
            return
        if "vendor" in values:
            values["model"] = values["vendor"]
        self._changed("camera", row.id, diff)
        self.dev_upd.append({"id": row.id, **values})

    # -- chargers --------------------------------------------------------------------------

    async def chargers(self, session: AsyncSession, rows: list[Row], retire: bool) -> None:
        existing = {r.id: r for r in (await session.execute(select(ChargerRow))).scalars()}
        sites = {s.id: s for s in (await session.execute(select(SiteRow))).scalars()}
        for row in rows:
            v = dict(row.values)
            site = _site_of(sites, v["site_id"])
            if v["site_id"] and site is None:
                self._error(row, "site_id", f"unknown site {v['site_id']!r}")
                continue
            v["place"] = v["place"] or (site.name if site else None)
            for k in ("lat", "lon"):
                v[k] = v[k] if v[k] is not None else (getattr(site, k) if site else None)
            old = existing.get(row.id)
            if old is None:
                fields = {k: v[k] for k in ("vendor", "model", "current", "power_kw", "connectors")}
                r = row.values  # the charger's place defaults to its site's, as for one
                try:
                    new = await chg.charger_at(
                        session, row.id, r["site_id"], r["place"], r["lat"], r["lon"], **fields
                    )
                except chg.ChargerError as exc:
                    self._error(row, "place", str(exc))
                    continue
                self.out.added.setdefault("charger", []).append(row.id)
                self.charger_new.append((row, new))
                continue
            diff = {
                f: [getattr(old, f), v[f]] for f in sorted(row.given) if getattr(old, f) != v[f]
            }
            if row.secret is not None and chg.hash_password(row.secret) != old.password_hash:
                diff["password"] = [HIDDEN, HIDDEN]
            if not diff:
                self.out.unchanged["charger"] = self.out.unchanged.get("charger", 0) + 1
                continue
            self._changed("charger", row.id, diff)
            self.charger_upd.append((row, {f: v[f] for f in diff if f != "password"}))
        if retire:
            in_file = {r.id for r in rows}
            gone = sorted(k for k, r in existing.items() if k not in in_file
                          and r.lifecycle != "retired")  # fmt: skip
            if gone:
                self.out.retired["charger"] = gone
                self.charger_retire = gone

    # -- body cams -------------------------------------------------------------------------

    async def bodycams(self, session: AsyncSession, rows: list[Row], realm: str) -> None:
        from gateway.infra.storage.schema import OfficerRow

        existing = {r.id: r for r in (await session.execute(select(BodycamRow))).scalars()}
        officers = set((await session.execute(select(OfficerRow.id))).scalars())
        for row in rows:
            officer = row.values["officer_id"]
            if officer is not None and officer not in officers:
                self._error(row, "officer_id", f"unknown officer {officer!r}")
                continue
            old = existing.get(row.id)
            if old is None:
                self.out.added.setdefault("bodycam", []).append(row.id)
                self.cam_new.append(row)
                continue
            diff: dict[str, list[Any]] = {}
            if "officer_id" in row.given and old.officer_id != officer:
                diff["officer_id"] = [old.officer_id, officer]
            if row.secret is not None and (
                old.realm != realm or old.ha1 != ha1(row.id, realm, row.secret)
            ):
                diff["password"] = [HIDDEN, HIDDEN]
            if not diff:
                self.out.unchanged["bodycam"] = self.out.unchanged.get("bodycam", 0) + 1
                continue
            self._changed("bodycam", row.id, diff)
            self.cam_upd.append((row, diff))

    # -- writing ---------------------------------------------------------------------------

    async def write(
        self,
        session: AsyncSession,
        now: datetime,
        realm: str,
        progress: Progress | None,
        actor: Actor = SYSTEM,
    ) -> None:
        total = (len(self.dev_new) + len(self.dev_upd) + len(self.dev_retire)
                 + len(self.charger_new) + len(self.charger_upd) + len(self.charger_retire)
                 + len(self.cam_new) + len(self.cam_upd))  # fmt: skip
        done = 0

        def step(n: int) -> None:
            nonlocal done
            done += n
            if progress is not None:
                progress(done, total)

        if progress is not None:
            progress(0, total)
        feed: list[str] = []  # the devices written
        if self.dev_retire:  # as Registry.update retires: a retired sensor frees its berth
            for chunk in _chunks(self.dev_retire):
                await session.execute(
                    update(DeviceRow),
                    [{"id": k, "lifecycle": "retired", "berth_id": None, "updated_at": now}
                     for k in chunk],
                )  # fmt: skip
                step(len(chunk))
            feed.extend(self.dev_retire)
        if self.dev_unbind:
            for chunk in _chunks(self.dev_unbind):
                await session.execute(
                    update(DeviceRow), [{"id": k, "berth_id": None} for k in chunk]
                )
        for row in self.cam_new:
            if row.kind != "camera":
                continue
            v = row.values
            secret = row.secret
            if secret is None:
                secret = new_secret()
                self._secret("camera", row.id, "secret", secret, push_path=_push(row, secret))
            self.dev_new.append({
                "id": row.id, "kind": "camera", "protocol": "http-push", "model": v["vendor"],
                "address": f"/cameras/{row.id}/", "berth_id": None, "site_id": v["site_id"],
                "heartbeat_s": None, "lifecycle": Lifecycle.PROVISIONED.value,
                "notes": v["notes"], "vendor": v["vendor"], "secret_hash": hash_secret(secret),
                "lane_id": v["lane_id"], "direction": v["direction"],
            })  # fmt: skip
        times = {"created_at": now, "updated_at": now}
        for chunk in _chunks(self.dev_new):
            for kind, columns in NEW_COLUMNS.items():
                rows = rows_of([d for d in chunk if d["kind"] == kind], columns)
                await insert_plain(session, DEVICES, columns, rows, times)
            step(len(chunk))
        feed.extend(d["id"] for d in self.dev_new)
        for chunk in _chunks(self.dev_upd):
            await session.execute(update(DeviceRow), [{**d, "updated_at": now} for d in chunk])
            step(len(chunk))
        feed.extend(d["id"] for d in self.dev_upd)
        # one change for every device written: running gateways re-read them in a few queries
        await record_batch(session, "device", feed, now)
        with gc_paused():
            edits = self._device_edits()
        await record_audits(session, actor, edits, now)
        await session.flush()
        await self._write_chargers(session, now, step, actor)
        await self._write_bodycams(session, now, realm, step, actor)

    def _device_edits(self) -> list[Edit]:
        """The audit entries of the devices' bulk writes (what the feed says, with before and
        after: the new row, the fields the diff changed, the lifecycle retired)."""
        kinds = {d["id"]: d["kind"] for d in self.dev_new}
        edits = [
            Edit(_audit_kind(d["kind"]), d["id"], "provision", None, d) for d in self.dev_new
        ]  # the new row as written (its times aside)
        for kind in ("sensor", "camera"):
            for change in self.out.changed.get(kind, []):
                if change["id"] in kinds:
                    continue
                fields = change["fields"]
                edits.append(Edit(_audit_kind(kind), change["id"], "update",
                                  {k: v[0] for k, v in fields.items()},
                                  {k: v[1] for k, v in fields.items()}))  # fmt: skip
        for key in self.dev_retire:
            edits.append(Edit("device", key, "retired", None, {"lifecycle": "retired"}))
        return edits

    def _secret(self, kind: str, key: str, name: str, value: str, **extra: str) -> None:
        self.out.secrets.append({"kind": kind, "id": key, name: value, **extra})

    async def _write_chargers(
        self, session: AsyncSession, now: datetime, step: Callable[[int], None], actor: Actor
    ) -> None:
        for row, new in self.charger_new:
            password = await chg.add_charger(session, new, now, actor=actor)
            if row.secret is not None:
                await chg.store_password(session, row.id, row.secret, now, actor=actor)
            else:
                self._secret("charger", row.id, "password", password)
            step(1)
        for row, changes in self.charger_upd:
            if row.secret is not None:
                await chg.store_password(session, row.id, row.secret, now, actor=actor)
            where: dict[str, Any] = {
                k: changes.pop(k) for k in ("site_id", "place", "lat", "lon") if k in changes
            }
            charger = await session.get(ChargerRow, row.id)
            assert charger is not None
            for key, value in changes.items():  # what update_charger does not move
                setattr(charger, key, value)
            await chg.update_charger(session, row.id, where, now, actor=actor)
            step(1)
        for key in self.charger_retire:
            await chg.update_charger(session, key, {"lifecycle": "retired"}, now, actor=actor)
            step(1)

    async def _write_bodycams(
        self,
        session: AsyncSession,
        now: datetime,
        realm: str,
        step: Callable[[int], None],
        actor: Actor,
    ) -> None:
        for row in self.cam_new:
            if row.kind != "bodycam":
                continue
            officer = row.values["officer_id"]
            password = await cams.add_bodycam(
                session, row.id, officer, realm, row.secret, now, actor=actor
            )
            if row.secret is None:
                self._secret("bodycam", row.id, "password", password)
            step(1)
        for row, diff in self.cam_upd:
            if "password" in diff:
                await cams.set_password(session, row.id, realm, row.secret, now, actor=actor)
            if "officer_id" in diff:
                cam = await session.get(BodycamRow, row.id)
                assert cam is not None
                before = {"officer_id": cam.officer_id}
                cam.officer_id = row.values["officer_id"]
                cam.updated_at = now
                await record_changes(session, [("bodycam", row.id, "update")], now)
                await record_audit(session, actor, "bodycam", row.id, "update", before,
                                   {"officer_id": cam.officer_id}, now)  # fmt: skip
            step(1)


def _audit_kind(kind: str) -> str:
    """The audit log's kind: plate cameras are ``camera``, sensors ``device`` (as the
    registry's own entries)."""
    return "camera" if kind == "camera" else "device"


def _push(row: Row, secret: str) -> str:
    from gateway.api.devices import PUSH_PATHS

    return f"/cameras/{row.id}/{secret}{PUSH_PATHS.get(row.values['vendor'], '')}"


def _chunks(items: list[Any]) -> list[list[Any]]:
    return [items[i : i + CHUNK] for i in range(0, len(items), CHUNK)]
