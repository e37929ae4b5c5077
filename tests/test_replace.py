"""Replacing a failed device, on both backends: each kind's place (berth, lane, gate, charger
bay, officer) moves to the new device in one transaction with an audit entry per changed
object and the change in the feed; every refusal names what to do and writes nothing;
concurrent replacements of one device: exactly one wins."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from gateway.directory.audit import Actor
from gateway.directory.bulk.engine import run_import
from gateway.directory.bulk.parse import parse
from gateway.directory.bulk.service import limits_of
from gateway.directory.chargers import check_password
from gateway.directory.registry import Registry
from gateway.directory.replace import replace_device
from gateway.directory.replace_rules import Refused, ReplaceRequest
from gateway.directory.town import load_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import (
    AuditRow,
    BodycamRow,
    ChangeRow,
    ChargerRow,
    ChargingSessionRow,
    DeviceRow,
    LaneRow,
)
from tests.conftest import wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

T0 = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
REALM = "6207250008"
TECH = Actor.of_token("aa11", "technician", "van 3")
TOWN = load_town(None)
Sessions = async_sessionmaker[AsyncSession]


async def _town_db(url: str) -> AsyncIterator[Sessions]:
    engine = create_engine(url)
    await migrate(engine)
    made = sessionmaker_for(engine)
    async with made.begin() as s:
        await import_town(s, TOWN, T0)
    yield made
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def sessions(module_db_url: str) -> AsyncIterator[Sessions]:
    async for made in _town_db(module_db_url):
        yield made


@pytest_asyncio.fixture(loop_scope="module")
async def pg_sessions(pg_url: str) -> AsyncIterator[Sessions]:
    """The sample town on PostgreSQL alone: row locks and deadlocks are its own (SQLite has
    one writer, so there is nothing to test there)."""
    async for made in _town_db(pg_url):
        yield made


_taken: set[str] = set()


def sensor() -> tuple[str, str]:
    """(dev_eui, berth) of a sample sensor no other test of the module used."""
    for s in TOWN.sensors:
        if s.dev_eui.lower() not in _taken:
            _taken.add(s.dev_eui.lower())
            return s.dev_eui.lower(), s.berth
    raise LookupError("sensors")


def officer() -> tuple[str, str]:
    for o in TOWN.officers:
        if o.bodycam and o.id not in _taken:
            _taken.add(o.id)
            return o.id, o.bodycam
    raise LookupError("officers")


def charger() -> Any:
    for c in TOWN.chargers:
        if c.id not in _taken:
            _taken.add(c.id)
            return c
    raise LookupError("chargers")


_eui = iter(range(1, 10_000))


def new_eui() -> str:
    return f"a1b2c3d4{next(_eui):08x}"


async def replace(sessions: Sessions, old: str, **body: Any) -> dict[str, Any]:
    req = ReplaceRequest.model_validate(body)
    done = await replace_device(
        sessions, old, req, T0 + timedelta(hours=1), realm=REALM, actor=TECH
    )
    return done.as_dict()


async def provision(sessions: Sessions, dev_eui: str, berth: str | None = None) -> None:
    await Registry(sessions).provision(dev_eui, "nwave-nps405", T0, berth_id=berth)


async def counts(sessions: Sessions) -> tuple[int, int]:
    async with sessions() as s:
        c = await s.scalar(select(func.count()).select_from(ChangeRow))
        a = await s.scalar(select(func.count()).select_from(AuditRow))
    return int(c or 0), int(a or 0)


async def audits(sessions: Sessions, key: str) -> list[AuditRow]:
    async with sessions() as s:
        q = select(AuditRow).where(AuditRow.key == key, AuditRow.action == "replace")
        return list((await s.execute(q)).scalars())


async def refused(sessions: Sessions, old: str, status: int, code: str, **body: Any) -> str:
    before = await counts(sessions)
    with pytest.raises(Refused) as info:
        await replace(sessions, old, **body)
    assert (info.value.status, info.value.code) == (status, code), info.value.message
    assert await counts(sessions) == before  # nothing written: no change, no audit entry
    return info.value.message


async def test_a_sensor_is_replaced_by_a_provisioned_one(sessions: Sessions) -> None:
    old, berth = sensor()
    new = new_eui()
    await provision(sessions, new)
    out = await replace(sessions, old.upper(), new=new.upper())
    assert out["kind"] == "sensor" and out["place"]["berth_id"] == berth
    assert out["old"] == {"id": old, "lifecycle": "retired"}
    assert out["new"] == {"id": new, "lifecycle": "provisioned", "created": False}
    async with sessions() as s:
        o, n = await s.get(DeviceRow, old), await s.get(DeviceRow, new)
    assert o is not None and n is not None
    assert (o.lifecycle, o.berth_id) == ("retired", None)
    assert (n.lifecycle, n.berth_id, n.site_id) == ("provisioned", berth, o.site_id)
    (a_old,) = await audits(sessions, old)
    (a_new,) = await audits(sessions, new)
    assert a_old.actor == "van 3" and a_old.request_id == a_new.request_id
    assert a_old.before["berth_id"] == berth and a_old.before["lifecycle"] != "retired"
    assert a_old.after["lifecycle"] == "retired" and a_old.after["replaced_by"] == new
    assert a_new.before["berth_id"] is None and a_new.after["berth_id"] == berth
    async with sessions() as s:
        feed = [
            (c.kind, c.key, c.op)
            for c in (await s.execute(select(ChangeRow).where(ChangeRow.op == "replace"))).scalars()
        ]
    assert ("device", old, "replace") in feed and ("device", new, "replace") in feed


async def test_a_sensor_is_replaced_by_one_given_inline(sessions: Sessions) -> None:
    old, berth = sensor()
    new = new_eui()
    msg = await refused(sessions, old, 422, "no_new_device", new=new)
    assert "--model" in msg or "give its model" in msg
    await refused(sessions, old, 422, "invalid", new=new, model="no-such-codec")
    await refused(sessions, old, 422, "invalid", new="not-a-deveui", model="nwave-nps405")
    out = await replace(sessions, old, new=new, model="bosch-tps110", heartbeat_s=900)
    assert out["new"]["created"] is True
    async with sessions() as s:
        n = await s.get(DeviceRow, new)
    assert n is not None and (n.berth_id, n.model, n.heartbeat_s) == (berth, "bosch-tps110", 900)
    (a_new,) = await audits(sessions, new)
    assert a_new.before is None and a_new.after["berth_id"] == berth


async def test_refusals_name_what_to_do_and_write_nothing(sessions: Sessions) -> None:
    old, berth = sensor()
    other, other_berth = sensor()
    await refused(sessions, "ffffffffffffffff", 404, "no_device", new=new_eui())
    await refused(sessions, old, 409, "new_bound", new=other)  # serves another berth
    await refused(sessions, old, 422, "same_device", new=old)
    await refused(sessions, old, 422, "kinds_differ", new=TOWN.chargers[-1].id)
    await refused(sessions, old, 422, "kinds_differ", new=new_eui(), kind="charger")
    # a retired new device is not put back; the old one, once replaced, is not replaced again
    spare = new_eui()
    await provision(sessions, spare)
    await Registry(sessions).update(spare, {"lifecycle": "retired"}, T0)
    await refused(sessions, old, 409, "new_retired", new=spare)
    fresh = new_eui()
    await provision(sessions, fresh)
    await replace(sessions, old, new=fresh)
    msg = await refused(sessions, old, 409, "old_retired", new=new_eui(), model="nwave-nps405")
    assert "replace the device that now serves its berth" in msg
    # an unbound sensor has no place to hand over
    loose = new_eui()
    await provision(sessions, loose)
    await refused(sessions, loose, 409, "old_unbound", new=new_eui(), model="nwave-nps405")
    async with sessions() as s:
        o = await s.get(DeviceRow, other)
    assert o is not None and o.berth_id == other_berth and berth != other_berth


async def test_a_lane_camera_is_replaced_and_the_lane_reads_the_new_one(
    sessions: Sessions,
) -> None:
    lane = TOWN.lanes[0]
    registry = Registry(sessions)
    await registry.provision_camera(
        lane.camera, "hikvision", lane.site, T0, lane_id=lane.id, direction="in"
    )
    await refused(sessions, lane.camera, 422, "no_new_device", new="cam-new-1")
    await refused(sessions, lane.camera, 422, "invalid", new="cam-new-1", vendor="acme")
    out = await replace(sessions, lane.camera, new="cam-new-1", vendor="vzenith")
    assert out["place"] == {"lane_id": lane.id, "site_id": lane.site, "direction": "in"}
    secret = out["credentials"]["secret"]
    assert out["credentials"]["push_path"] == f"/cameras/cam-new-1/{secret}/vzenith"
    async with sessions() as s:
        ln = await s.get(LaneRow, lane.id)
        o, n = await s.get(DeviceRow, lane.camera), await s.get(DeviceRow, "cam-new-1")
    assert ln is not None and ln.camera_id == "cam-new-1"
    assert o is not None and (o.lifecycle, o.lane_id) == ("retired", None)
    assert n is not None and (n.lane_id, n.direction, n.vendor) == (lane.id, "in", "vzenith")
    (a_lane,) = await audits(sessions, lane.id)
    assert (a_lane.kind, a_lane.before["camera_id"], a_lane.after["camera_id"]) == (
        "lane",
        lane.camera,
        "cam-new-1",
    )
    assert [a.kind for a in await audits(sessions, "cam-new-1")] == ["camera"]
    assert secret not in str([a_lane.after, (await audits(sessions, "cam-new-1"))[0].after])
    # a provisioned camera reading another lane is refused
    other = TOWN.lanes[1]
    await registry.provision_camera(other.camera, "hikvision", other.site, T0, lane_id=other.id)
    await refused(sessions, "cam-new-1", 409, "new_bound", new=other.camera)


async def test_a_gate_controller_is_replaced_by_its_lane(sessions: Sessions) -> None:
    lane, neighbour = TOWN.lanes[2], TOWN.lanes[3]
    assert lane.gate.bus == neighbour.gate.bus
    bus = lane.gate.bus
    await refused(sessions, lane.id, 422, "same_device", new=bus)
    await refused(sessions, lane.id, 409, "new_bound", new=bus, unit=neighbour.gate.unit)
    await refused(sessions, lane.id, 422, "invalid", new="carrier-pigeon://x")
    await refused(sessions, lane.id, 422, "invalid", new=bus, unit=9, model="no-such-map")
    out = await replace(sessions, lane.id, new="tcp://10.20.0.7:502", unit=5)
    assert out["kind"] == "gate"
    assert out["old"] == {
        "id": lane.id, "bus": bus, "unit": lane.gate.unit, "model": lane.gate.model,
        "lifecycle": "retired",
    }  # fmt: skip
    assert (out["new"]["bus"], out["new"]["unit"]) == ("tcp://10.20.0.7:502", 5)
    async with sessions() as s:
        ln = await s.get(LaneRow, lane.id)
    assert ln is not None and (ln.gate_bus, ln.gate_unit) == ("tcp://10.20.0.7:502", 5)
    (entry,) = await audits(sessions, lane.id)
    assert entry.before["gate_bus"] == bus and entry.after["gate_unit"] == 5


async def test_a_charger_is_replaced_in_its_bay(sessions: Sessions) -> None:
    old = charger()
    await refused(sessions, old.id, 422, "invalid", new="bad id with spaces")
    out = await replace(sessions, old.id, new=f"{old.id}-R", model="EVB-2")
    assert out["place"]["site_id"] == old.site and out["place"]["place"] == old.place
    password = out["credentials"]["password"]
    async with sessions() as s:
        o, n = await s.get(ChargerRow, old.id), await s.get(ChargerRow, f"{old.id}-R")
    assert o is not None and n is not None
    assert o.lifecycle == "retired" and check_password(o, "x") == "retired"
    assert (n.site_id, n.place, n.lat, n.lon) == (o.site_id, o.place, o.lat, o.lon)
    assert (n.model, n.vendor, n.connectors) == ("EVB-2", o.vendor, o.connectors)
    assert n.lifecycle == "provisioned"  # a new charger, as one added: commissioned next
    assert check_password(n, password) == "ok"
    entries = await audits(sessions, f"{old.id}-R")
    assert password not in str([e.after for e in entries])
    # a provisioned charger that charged elsewhere keeps its own history: refused; one that
    # never charged is moved into the bay
    second, spare, used = charger(), charger(), charger()
    async with sessions.begin() as s:
        s.add(
            ChargingSessionRow(
                id="cs-elsewhere", charger_id=used.id, connector_id=1, transaction_id="1",
                state="closed", started_at=T0, updated_at=T0,
            )
        )  # fmt: skip
    if (used.site, used.place) != (second.site, second.place):
        await refused(sessions, second.id, 409, "new_bound", new=used.id)
    out = await replace(sessions, second.id, new=spare.id)
    assert out["new"]["created"] is False and "credentials" not in out
    async with sessions() as s:
        moved = await s.get(ChargerRow, spare.id)
    assert moved is not None and (moved.site_id, moved.place) == (second.site, second.place)


async def test_a_body_cam_is_replaced_for_its_officer(sessions: Sessions) -> None:
    officer_id, cam = officer()
    other_officer, other_cam = officer()
    async with sessions.begin() as s:
        assert (await s.get(BodycamRow, cam)) is not None
    await refused(sessions, cam, 409, "new_bound", new=other_cam)
    await refused(sessions, cam, 422, "invalid", new="123")
    out = await replace(sessions, cam, new="62072500081389990077")
    assert out["place"] == {"officer_id": officer_id}
    assert len(out["credentials"]["password"]) >= 16
    async with sessions() as s:
        o, n = await s.get(BodycamRow, cam), await s.get(BodycamRow, "62072500081389990077")
    assert o is not None and (o.lifecycle, o.officer_id) == ("retired", None)
    assert n is not None and (n.officer_id, n.realm) == (officer_id, REALM)
    assert n.lifecycle == "provisioned"  # a new cam, as one added: commissioned next
    (entry,) = await audits(sessions, "62072500081389990077")
    assert entry.after["ha1"] == "[redacted]" and entry.after["replaces"] == cam
    assert other_officer != officer_id


async def test_concurrent_replacements_of_one_device_exactly_one_wins(
    sessions: Sessions,
) -> None:
    old, berth = sensor()
    news = [new_eui() for _ in range(6)]
    for n in news:
        await provision(sessions, n)
    results = await asyncio.gather(
        *(replace(sessions, old, new=n) for n in news), return_exceptions=True
    )
    won = [r for r in results if isinstance(r, dict)]
    lost = [r for r in results if isinstance(r, Refused)]
    assert len(won) == 1 and len(lost) == len(news) - 1, results
    assert all(r.status == 409 for r in lost)
    winner = won[0]["new"]["id"]
    async with sessions() as s:
        bound = list(
            (await s.execute(select(DeviceRow.id).where(DeviceRow.berth_id == berth))).scalars()
        )
    assert bound == [winner]
    assert len(await audits(sessions, old)) == 1
    # and two replacements racing for one new device: one wins, the other is refused
    a, _ = sensor()
    b, _ = sensor()
    spare = new_eui()
    await provision(sessions, spare)
    pair = await asyncio.gather(
        replace(sessions, a, new=spare), replace(sessions, b, new=spare), return_exceptions=True
    )
    assert sorted(type(r).__name__ for r in pair) == ["Refused", "dict"], pair


async def test_a_replacement_chosen_as_a_deadlock_victim_is_tried_again(
    pg_sessions: Sessions,
) -> None:
    """The write-behind persister updates devices' rows in its own order: a replacement that
    PostgreSQL aborts to break a deadlock wrote nothing and is made again."""
    sessions = pg_sessions
    old, berth = sensor()
    new = new_eui()
    await provision(sessions, new)
    async with sessions() as other, other.begin():
        await other.execute(select(DeviceRow).where(DeviceRow.id == new).with_for_update())
        task = asyncio.create_task(replace(sessions, old, new=new))

        async def replacement_waits() -> bool:
            async with sessions() as probe:
                n = await probe.scalar(
                    text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")
                )
            return bool(n)

        await wait_for(replacement_waits, 10, what="the replacement waiting for the new row")
        with contextlib.suppress(DBAPIError):  # whichever PostgreSQL aborts
            await other.execute(
                update(DeviceRow).where(DeviceRow.id == old).values(notes="the persister")
            )
    out = await asyncio.wait_for(task, 20)
    assert out["place"]["berth_id"] == berth
    async with sessions() as s:
        bound = await s.scalar(select(DeviceRow.id).where(DeviceRow.berth_id == berth))
    assert bound == new


async def test_devices_provisioned_by_a_bulk_import_replace_failed_ones(
    sessions: Sessions,
) -> None:
    old_sensor, berth = sensor()
    old_charger = charger()
    spare_eui = new_eui()
    data = (
        "[[sensors]]\n"
        f'dev_eui = "{spare_eui}"\nmodel = "nwave-nps405"\n'
        "[[chargers]]\n"
        f'id = "BULK-SPARE-1"\nplace = "depot"\nlat = 38.78\nlon = 101.08\n'
    ).encode()
    parsed = parse(data, "toml", limits_of(1 << 20, 100))
    assert not parsed.errors
    async with sessions.begin() as s:
        outcome = await run_import(s, parsed, T0, realm=REALM)
    assert outcome.imported
    out = await replace(sessions, old_sensor, new=spare_eui)
    assert out["new"]["created"] is False and out["place"]["berth_id"] == berth
    out = await replace(sessions, old_charger.id, new="BULK-SPARE-1")
    assert out["new"]["created"] is False and out["place"]["site_id"] == old_charger.site
    async with sessions() as s:
        moved = await s.get(ChargerRow, "BULK-SPARE-1")
    assert moved is not None and moved.place == old_charger.place  # from the depot to the bay
