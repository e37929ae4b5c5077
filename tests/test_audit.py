"""The audit log on both backends: every writer that records a change in the feed records an
audit entry with before and after, in the same transaction, and no secret reaches it."""

from __future__ import annotations

import ast
import json
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.directory import bodycams, chargers, documents
from gateway.directory.audit import REDACTED, Actor
from gateway.directory.audit_view import audit_page
from gateway.directory.registry import Registry, RegistryError
from gateway.directory.tokens import Role, create_token, revoke_token, split_token
from gateway.directory.town import Town, load_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import (
    ApiTokenRow,
    AuditRow,
    BodycamRow,
    ChangeRow,
    ChargerRow,
    DeviceRow,
)

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
REALM = "6207250008"
TECH = Actor.of_token("aa11", "technician", "van 3")
CLI = Actor.cli("li", source="import")
CAM = "62072500081389990001"

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def sessions(db_url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield sessionmaker_for(engine)
    await engine.dispose()


def edited_town(town: Town) -> Town:
    """The sample town with a site renamed, two sensors' berths swapped, two officers' cams
    swapped, a drone's home moved, and a lane dropped whose camera another lane takes."""
    data = town.model_dump(mode="json")
    data["sites"][0]["name"] += " (新)"
    s0, s1 = data["sensors"][0], data["sensors"][1]
    s0["berth"], s1["berth"] = s1["berth"], s0["berth"]
    o0, o1 = data["officers"][0], data["officers"][1]
    o0["bodycam"], o1["bodycam"] = o1["bodycam"], o0["bodycam"]
    data["drones"][0]["home"] = [data["drones"][0]["home"][0] + 0.001, data["drones"][0]["home"][1]]
    lanes = data["lanes"]
    gone = lanes.pop(0)
    same_site = next(ln for ln in lanes if ln["site"] == gone["site"])
    same_site["camera"] = gone["camera"]
    return Town.model_validate(data)


async def exercise_every_writer(sessions: Sessions) -> set[str]:
    """Every provisioning writer, once at least; returns the secrets they handed out and
    stored (clear passwords, tokens, URL secrets, and their hashes)."""
    secrets: set[str] = set()
    town = load_town(None)
    async with sessions.begin() as s:
        await import_town(s, town, T0, actor=CLI)
    async with sessions.begin() as s:
        await import_town(s, edited_town(town), T0 + timedelta(minutes=1), actor=CLI)

    reg = Registry(sessions)
    now = T0 + timedelta(minutes=2)
    failed = town.sensors[-1]  # replacing a failed sensor: retire it, fit the new one
    await reg.update(failed.dev_eui, {"lifecycle": "retired"}, now, actor=TECH)
    free = failed.berth
    row, _ = await reg.provision("A1B2C3D4E5F60001", "nwave-nps405", now, actor=TECH)
    await reg.update(row.id, {"berth_id": free}, now, actor=TECH)
    await reg.update(row.id, {"notes": "fitted by van 3"}, now, actor=TECH)
    await reg.update(row.id, {"lifecycle": "retired"}, now, actor=TECH)
    with pytest.raises(RegistryError):  # refused: nothing recorded, nothing audited
        await reg.update("ffffffffffffffff", {"notes": "x"}, now, actor=TECH)
    site = town.sites[0].id
    _, secret = await reg.provision_camera("cam-audit-1", "hikvision", site, now, actor=TECH)
    secrets.add(secret)
    _, secret = await reg.rotate_camera_secret("cam-audit-1", now, actor=TECH)
    secrets.add(secret)

    async with sessions.begin() as s:
        info, token = await create_token(s, Role.TECHNICIAN, now, "van 7", actor=CLI)
        secrets |= {token, split_token(token)[1]}  # its secret may hold "_" too
        await revoke_token(s, info.id, now, actor=CLI)
        new = await chargers.charger_at(s, "AUDIT01", site, None, None, None)
        secrets.add(await chargers.add_charger(s, new, now, actor=TECH))
        secrets.add(await chargers.set_password(s, "AUDIT01", now, actor=TECH))
        await chargers.update_charger(s, "AUDIT01", {"place": "east gate"}, now, actor=TECH)
        await chargers.update_charger(s, "AUDIT01", {"lifecycle": "retired"}, now, actor=TECH)
        secrets.add(await bodycams.add_bodycam(s, CAM, None, REALM, None, now, actor=TECH))
        secrets.add(await bodycams.set_password(s, CAM, REALM, "typed-on-cam", now, actor=TECH))
        n = await bodycams.set_passwords(s, {CAM: "another-pass1"}, REALM, now, actor=TECH)
        assert n == 1
        secrets.add("another-pass1")
        text, source = await documents.in_force(sessions, "tariffs", None)
        await documents.import_document(s, "tariffs", text, source, now, ZONE, actor=CLI)
        await documents.import_document(s, "tariffs", text + "\n# v2\n", "t.toml", now, ZONE,
                                        actor=CLI)  # fmt: skip
        text, source = await documents.in_force(sessions, "rules", None)
        await documents.import_document(s, "rules", text, source, now, ZONE, actor=CLI)
    async with sessions() as s:
        for column in (ApiTokenRow.token_hash, ChargerRow.password_hash, BodycamRow.ha1,
                       DeviceRow.secret_hash):  # fmt: skip
            secrets |= {h for h in (await s.execute(select(column))).scalars() if h}
    return secrets


async def rows(sessions: Sessions, model: Any) -> list[Any]:
    async with sessions() as s:
        return list((await s.execute(select(model))).scalars())


# What each kind of change must leave in the log (kind, action): the test fails when a writer
# stops auditing, and when a new kind of change appears that this list does not name.
EXPECTED = {
    ("device", "import"), ("device", "unbind"), ("device", "provision"), ("device", "bind"),
    ("device", "update"), ("device", "retired"), ("camera", "provision"), ("camera", "secret"),
    ("token", "create"), ("token", "revoke"), ("charger", "import"), ("charger", "add"),
    ("charger", "password"), ("charger", "update"), ("charger", "retired"),
    ("bodycam", "import"), ("bodycam", "add"), ("bodycam", "password"), ("site", "import"),
    ("berth", "import"), ("zone", "import"), ("street", "import"), ("lane", "import"),
    ("lane", "delete"), ("officer", "import"), ("drone", "import"), ("tariffs", "import"),
    ("rules", "import"),
}  # fmt: skip


async def test_every_writer_audits_its_changes(sessions: Sessions) -> None:
    """One run of every writer (a town import costs a second), then what the log holds."""
    secrets = await exercise_every_writer(sessions)
    await every_change_in_the_feed_has_its_audit_entry(sessions)
    await before_and_after_say_what_changed(sessions)
    await no_secret_reaches_the_log(sessions, secrets)
    await filters_and_pages(sessions)


async def every_change_in_the_feed_has_its_audit_entry(sessions: Sessions) -> None:
    changes = await rows(sessions, ChangeRow)
    audits = await rows(sessions, AuditRow)
    feed = Counter((c.kind, c.key, c.op) for c in changes)
    # plate cameras are devices in the feed and cameras in the log
    logged = Counter(("device" if a.kind == "camera" else a.kind, a.key, a.action) for a in audits)
    assert logged == feed
    assert {(a.kind, a.action) for a in audits} == EXPECTED
    for a in audits:
        assert a.at.tzinfo is not None
        assert a.before is not None or a.after is not None
        if a.action in ("import", "add", "provision", "create") and a.before is None:
            assert a.after  # a creation says what was created


async def before_and_after_say_what_changed(sessions: Sessions) -> None:
    town = load_town(None)

    async def one(kind: str, key: str, action: str, n: int = -1) -> AuditRow:
        async with sessions() as s:
            q = select(AuditRow).where(
                AuditRow.kind == kind, AuditRow.key == key, AuditRow.action == action
            )
            return list((await s.execute(q.order_by(AuditRow.id))).scalars())[n]

    site = await one("site", town.sites[0].id, "import")
    assert site.before == {"name": town.sites[0].name}
    assert site.after == {"name": town.sites[0].name + " (新)"}
    assert (site.actor, site.source, site.role) == ("cli:li", "import", "cli")
    created = await one("site", town.sites[0].id, "import", 0)
    assert created.before is None and created.after["capacity"] == town.sites[0].capacity

    s0, s1 = town.sensors[0], town.sensors[1]
    unbind = await one("device", s0.dev_eui.lower(), "unbind")
    assert unbind.before == {"berth_id": s0.berth} and unbind.after == {"berth_id": None}
    rebound = await one("device", s0.dev_eui.lower(), "import")
    assert rebound.after["berth_id"] == s1.berth

    o0, o1 = town.officers[0], town.officers[1]
    assert o0.bodycam is not None
    moved = await one("bodycam", o0.bodycam, "import")
    assert (moved.before, moved.after) == ({"officer_id": o0.id}, {"officer_id": o1.id})

    drone = await one("drone", town.drones[0].id, "import")
    assert set(drone.before) == {"home_lon"} == set(drone.after)
    lane = await one("lane", town.lanes[0].id, "delete")
    assert lane.after is None and lane.before["camera_id"] == town.lanes[0].camera

    bind = await one("device", "a1b2c3d4e5f60001", "bind")
    assert bind.before["berth_id"] is None
    assert bind.after["berth_id"] == town.sensors[-1].berth
    assert (bind.actor, bind.actor_token_id, bind.role, bind.source) == (
        "van 3", "aa11", "technician", "api"
    )  # fmt: skip
    retired = await one("device", "a1b2c3d4e5f60001", "retired")
    assert retired.before["lifecycle"] == "provisioned" and retired.after["lifecycle"] == "retired"
    assert retired.before["berth_id"] is not None and retired.after["berth_id"] is None
    assert "last_seen" not in retired.after  # what the sensor reports is not provisioning

    secret = await one("camera", "cam-audit-1", "secret")
    assert secret.before["secret_hash"] == REDACTED == secret.after["secret_hash"]
    assert secret.before["updated_at"] <= secret.after["updated_at"]

    token = await one("token", (await rows(sessions, ApiTokenRow))[0].id, "create")
    assert token.after["label"] == "van 7" and "token_hash" not in token.after
    revoked = await one("token", token.key, "revoke")
    assert revoked.before["revoked_at"] is None and revoked.after["revoked_at"] is not None

    pw = await one("charger", "AUDIT01", "password")
    assert pw.after["password_hash"] == REDACTED
    assert pw.before["password_set_at"] is not None
    assert "connected" not in pw.after  # liveness is not provisioning
    update = await one("charger", "AUDIT01", "update")
    assert update.after["place"] == "east gate" != update.before["place"]

    cam = await one("bodycam", CAM, "password")
    assert cam.after["ha1"] == REDACTED and cam.after["realm"] == REALM

    async with sessions() as s:
        tariffs = list(
            (await s.execute(select(AuditRow).where(AuditRow.kind == "tariffs"))).scalars()
        )
    assert len(tariffs) == 2  # the same text twice is one version: one entry
    assert tariffs[0].before is None and tariffs[1].before == tariffs[0].after
    assert tariffs[1].after["source"] == "t.toml" and "content" not in tariffs[1].after


async def no_secret_reaches_the_log(sessions: Sessions, secrets: set[str]) -> None:
    assert len(secrets) > 10
    stored = json.dumps([[a.before, a.after] for a in await rows(sessions, AuditRow)])
    assert REDACTED in stored
    for secret in secrets:
        assert secret not in stored
    async with sessions() as s:
        page = (await audit_page(s, limit=1000)).model_dump_json()
    for secret in secrets:
        assert secret not in page


async def test_a_refused_change_leaves_no_entry(sessions: Sessions) -> None:
    """The entry is in the changing transaction: a writer that fails after it was added
    rolls both back."""

    async def fails_after_the_change() -> None:
        async with sessions.begin() as s:
            await create_token(s, Role.ADMIN, T0, "never", actor=CLI)
            raise RuntimeError("the rest of the transaction failed")

    async with sessions.begin() as s:
        await create_token(s, Role.ADMIN, T0, "kept", actor=CLI)
    with pytest.raises(RuntimeError):
        await fails_after_the_change()
    assert [a.after["label"] for a in await rows(sessions, AuditRow)] == ["kept"]
    assert len(await rows(sessions, ChangeRow)) == 1


async def filters_and_pages(sessions: Sessions) -> None:
    async with sessions() as s:
        ids = [a.id for a in sorted(await rows(sessions, AuditRow), key=lambda a: -a.id)]
        assert len(ids) > 1000  # the sample town's import: an entry per object
        first = (await audit_page(s, limit=1000)).entries
        assert [e.id for e in first] == ids[:1000]  # newest first, capped
        chargers_ = (await audit_page(s, kind="charger", key="AUDIT01")).entries
        assert [e.action for e in chargers_] == ["retired", "update", "password", "add"]
        mine = (await audit_page(s, actor_token_id="aa11", limit=1000)).entries
        assert mine and all(e.actor == "van 3" for e in mine)
        assert (await audit_page(s, actor="van 3", limit=1000)).entries == mine
        late = (await audit_page(s, since=T0 + timedelta(minutes=2), limit=1000)).entries
        assert late and all(e.at >= T0 + timedelta(minutes=2) for e in late)
        early = (await audit_page(s, until=T0 + timedelta(minutes=2), limit=5)).entries
        assert early[0].id == max(i for i in ids if i < late[-1].id)
        assert all(e.at < T0 + timedelta(minutes=2) for e in early)
        naive = (await audit_page(s, since=datetime(2026, 12, 3, 8, 2), limit=1000)).entries
        assert naive == late  # no zone: UTC
        walked: list[int] = []
        cursor = None
        while True:
            page = await audit_page(s, limit=400, cursor=cursor)
            walked += [e.id for e in page.entries]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert walked == ids
        assert len((await audit_page(s, limit=10**6)).entries) == 1000
        tiny = await audit_page(s, kind="charger", key="AUDIT01", limit=3)
        assert len(tiny.entries) == 3 and tiny.next_cursor == tiny.entries[-1].id
        rest = await audit_page(s, kind="charger", key="AUDIT01", cursor=tiny.next_cursor)
        assert [e.action for e in rest.entries] == ["add"] and rest.next_cursor is None


def _calls(fn: ast.AST) -> set[str]:
    names = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Call):
            f = node.func
            names.add(f.id if isinstance(f, ast.Name) else getattr(f, "attr", ""))
    return names


def test_every_function_recording_a_change_records_an_audit_entry() -> None:
    """Statically: no function of the gateway writes the change feed without the audit log
    (a new writer that forgets fails here before it ships)."""
    root = Path(__file__).resolve().parent.parent / "gateway"
    writers = []
    for path in root.rglob("*.py"):
        if path.name == "changes.py" and path.parent.name == "infra":
            continue  # the feed itself
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                calls = _calls(node)
                if calls & {"record_change", "record_changes"}:
                    writers.append(f"{path.relative_to(root)}:{node.name}")
                    assert calls & {"record_audit", "record_audits"}, writers[-1]
    assert len(writers) >= 13, writers  # the 13 of today: none lost by a refactoring


async def test_a_password_the_charger_took_over_ocpp_is_audited(sessions: Sessions) -> None:
    """Not a change of the feed (the charger has it already), but a password change."""
    ocpp = Actor("charger:OCPP01", None, "system", "ocpp", "")
    async with sessions.begin() as s:
        new = await chargers.charger_at(s, "OCPP01", None, "depot", 38.78, 101.08)
        await chargers.add_charger(s, new, T0, actor=TECH)
    async with sessions.begin() as s:
        await chargers.store_password(s, "OCPP01", "taken-by-the-charger-1", T0, actor=ocpp)
    entry = (await rows(sessions, AuditRow))[-1]
    assert (entry.actor, entry.source, entry.action) == ("charger:OCPP01", "ocpp", "password")
    assert entry.after["password_hash"] == REDACTED
    assert "taken-by-the-charger-1" not in json.dumps([entry.before, entry.after])
    assert [c.op for c in await rows(sessions, ChangeRow)] == ["add"]
