"""The device lifecycle of every kind against a running gateway, on SQLite and PostgreSQL:
provisioned -> commissioned (the commissioning service's move) -> active (the first good
message: a real MQTT uplink for a sensor, each service's entry point for the others; an
operator's move for a gate, which sends no messages) -> maintenance -> active -> retired
(the CLI in its own process, with ``--json``), a refused move back from retired; the audit
entries of each step, the running gateway's views following each move through the change
feed, the API's role checks, and the commissioning checks commissioning a provisioned device.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import aiomqtt
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select, update

from drivers.sensors import nwave
from dronelink.model import DroneReport
from events import ChargerHeartbeat, now_utc
from gateway.directory.audit import Actor
from gateway.directory.lifecycle import LifeKind
from gateway.infra.changes import record_change
from gateway.infra.storage.schema import (
    AuditRow,
    BodycamRow,
    BodycamStateRow,
    ChargerRow,
    DroneRow,
    LaneRow,
)
from gateway.services import lifecycle
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
LIVE_S = 10.0
CHECKS = Actor("checks van 5", None, "technician", "api")
SENSOR, CAMERA = "70b3d5ae0c0ffee1", "cam-lifecycle-1"
CHARGER, BODYCAM, DRONE, GATE = "SDEV002", "62072500081380000002", "drone-2", "ln-shiminting-in"
# Town devices put back to provisioned for the walk: (row, column, change-feed kind)
TOWN_ROWS: dict[str, tuple[Any, str, str]] = {
    CHARGER: (ChargerRow, "lifecycle", "charger"),
    BODYCAM: (BodycamRow, "lifecycle", "bodycam"),
    DRONE: (DroneRow, "lifecycle", "drone"),
    GATE: (LaneRow, "gate_lifecycle", "lane"),
}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto)
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def citygate(db_url: str, *args: str) -> tuple[int, str, str]:
    """The CLI in its own process, on the gateway's database (as a technician runs it)."""
    env = {**os.environ, "CITYGATE_DATABASE__URL": json.dumps(db_url)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def live_state(gw: Any, kind: LifeKind, key: str) -> str | None:
    """What the running gateway's own view of the device says (None: not in it)."""
    sv = gw.services
    if kind in (LifeKind.SENSOR, LifeKind.CAMERA):
        entry = sv.live.directory.get(key)
        return None if entry is None else str(entry.lifecycle.value)
    if kind is LifeKind.CHARGER:
        info = sv.charging.chargers.get(key)
        return None if info is None else str(info.lifecycle)
    if kind is LifeKind.BODYCAM:
        cred = sv.bodycams.credentials.get(key)
        return None if cred is None else (cred.lifecycle if cred.active else None)
    if kind is LifeKind.DRONE:
        drone = sv.drones.drones.get(key)
        return None if drone is None else str(drone.lifecycle)
    rt = sv.lanes.lanes.get(key)
    return None if rt is None else str(rt.config.gate_lifecycle)


async def stored(gw: Any, kind: LifeKind, key: str) -> str | None:
    async with gw.services.sessions() as db:
        return await lifecycle.state_of(db, kind, key)


async def until_live(gw: Any, kind: LifeKind, key: str, want: str | None) -> None:
    await wait_for(lambda: live_state(gw, kind, key) == want, LIVE_S,
                   what=f"{kind} {key} {want} in the running gateway")  # fmt: skip


async def until_stored(gw: Any, kind: LifeKind, key: str, want: str) -> None:
    async def check() -> bool:
        return await stored(gw, kind, key) == want

    await wait_for(check, LIVE_S, what=f"{kind} {key} stored {want}")


async def audit_trail(gw: Any, key: str) -> list[tuple[str, str, str | None, str | None]]:
    """(action, actor, lifecycle before, lifecycle after) of the lifecycle moves of *key*."""
    async with gw.services.sessions() as db:
        rows = (await db.execute(select(AuditRow).where(AuditRow.key == key)
                                 .order_by(AuditRow.id))).scalars()  # fmt: skip
        return [
            (r.action, r.actor, (r.before or {}).get("lifecycle"), (r.after or {}).get("lifecycle"))
            for r in rows
            if r.after is not None and "cause" in r.after
        ]


async def back_to_provisioned(gw: Any, key: str) -> None:
    """Test setup: a town device as if just registered (and the gateway told so)."""
    cls, column, feed = TOWN_ROWS[key]
    async with gw.services.sessions.begin() as db:
        await db.execute(update(cls).where(cls.id == key).values({column: "provisioned"}))
        await record_change(db, feed, key, "test")
    gw.services.follower.kick()


async def uplink(broker: Broker, dev_eui: str, fcnt: int) -> None:
    port, data = nwave.encode_status(fcnt % 2 == 1)
    up = {"deviceInfo": {"devEui": dev_eui}, "fCnt": fcnt, "fPort": port,
          "data": base64.b64encode(data).decode(),
          "rxInfo": [{"rssi": -90, "snr": 7.5}]}  # fmt: skip
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(f"application/a/device/{dev_eui}/event/up", json.dumps(up), qos=1)


async def first_message(gw: Any, mosquitto: Broker, kind: LifeKind, key: str) -> None:
    """The device's first good message after commissioning, through its real entry point."""
    sv, now = gw.services, now_utc()
    if kind is LifeKind.SENSOR:
        await uplink(mosquitto, key, 2)  # a real uplink over the test broker
    elif kind is LifeKind.CAMERA:
        sv.live.directory.seen(sv.live.directory.get(key), now)  # what an accepted push does
    elif kind is LifeKind.CHARGER:
        sv.charging.publish(ChargerHeartbeat(device_id=key, ts=now))  # what a Heartbeat does
    elif kind is LifeKind.BODYCAM:
        sv.bodycams.good_message(key)  # what an accepted REGISTER or keepalive does
    elif kind is LifeKind.DRONE:
        sv.drones.on_report(DroneReport(source="mavlink", key="1", at=now))


async def register(gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], kind: LifeKind) -> str:
    """A provisioned device of *kind* (a new sensor or camera; a town device otherwise)."""
    h = auth(tokens["technician"])
    if kind is LifeKind.SENSOR:
        r = await http.post("/api/v1/devices", headers=h,
                            json={"dev_eui": SENSOR.upper(), "model": "nwave-nps405"})  # fmt: skip
        assert r.status_code == 201, r.text
        return SENSOR
    if kind is LifeKind.CAMERA:
        site = next(iter(gw.services.live.sites))
        r = await http.post("/api/v1/devices/cameras", headers=h,
                            json={"id": CAMERA, "vendor": "vzenith", "site_id": site})  # fmt: skip
        assert r.status_code == 201, r.text
        return CAMERA
    key = {LifeKind.CHARGER: CHARGER, LifeKind.BODYCAM: BODYCAM, LifeKind.DRONE: DRONE,
           LifeKind.GATE: GATE}[kind]  # fmt: skip
    await back_to_provisioned(gw, key)
    return key


async def retire(gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], kind: LifeKind) -> None:
    """*kind*'s test device retired, registered first if this module has not made it yet."""
    key = {LifeKind.SENSOR: SENSOR, LifeKind.DRONE: DRONE, LifeKind.BODYCAM: BODYCAM}[kind]
    if await stored(gw, kind, key) is None:
        key = await register(gw, http, tokens, kind)
    if await stored(gw, kind, key) != "retired":
        r = await move(http, tokens["technician"], key, "retired")
        assert r.status_code == 200, r.text
    await until_live(gw, kind, key, "retired" if kind is LifeKind.SENSOR else None)  # gone


async def move(
    http: httpx.AsyncClient, token: str, key: str, state: str, **kw: Any
) -> httpx.Response:
    return await http.post(f"/api/v1/devices/{key}/lifecycle", headers=auth(token),
                           json={"state": state, **kw})  # fmt: skip


@pytest.mark.parametrize("kind", list(LifeKind))
async def test_every_step_for_every_kind(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], mosquitto: Broker,
    module_db_url: str, kind: LifeKind,
) -> None:  # fmt: skip
    tech, admin = tokens["technician"], tokens["admin"]
    key = await register(gw, http, tokens, kind)
    await until_live(gw, kind, key, "provisioned")
    assert await stored(gw, kind, key) == "provisioned"

    # Not yet: an operator cannot skip the checks (the answer says what to do instead).
    r = await move(http, tech, key, "active")
    assert r.status_code == 409 and r.json()["code"] == "refused_transition"
    how = "devices lifecycle" if kind is LifeKind.DRONE else "commission"
    assert f"citygate {how} {key}" in r.json()["detail"]

    if kind is LifeKind.SENSOR:  # heard while provisioned: it counts, and stays provisioned
        await uplink(mosquitto, key, 1)
        await wait_for(lambda: gw.services.live.directory.get(key).last_seen is not None, LIVE_S)
        assert live_state(gw, kind, key) == "provisioned"

    # The commissioning checks pass: commissioned, live in the gateway through the feed.
    state, moved = await lifecycle.commissioned(gw.services.sessions, kind, key, now_utc(), CHECKS)
    assert (state, moved) == ("commissioned", True)
    gw.services.follower.kick()
    await until_live(gw, kind, key, "commissioned")
    # Passing again moves nothing.
    assert await lifecycle.commissioned(gw.services.sessions, kind, key, now_utc(), CHECKS) == (
        "commissioned", False,
    )  # fmt: skip

    # The first good message: active at once in memory, then durable and audited.
    if kind is LifeKind.GATE:  # no messages of its own: the technician puts it in service
        r = await move(http, tech, key, "active", reason="barrier cycled by hand")
        assert r.status_code == 200 and r.json()["from"] == "commissioned", r.text
    else:
        await first_message(gw, mosquitto, kind, key)
    await until_stored(gw, kind, key, "active")
    await until_live(gw, kind, key, "active")

    # Maintenance and back (a technician, then an admin), through the API.
    r = await move(http, tech, key, "maintenance", reason="lens cleaning")
    assert r.status_code == 200, r.text
    assert r.json() == {"device_id": key, "kind": kind.value, "from": "active",
                        "to": "maintenance", "changed": True, "reason": "lens cleaning",
                        "at": r.json()["at"]}  # fmt: skip
    await until_live(gw, kind, key, "maintenance")
    r = await move(http, tech, key, "maintenance")  # already there: no move, no audit entry
    assert r.status_code == 200 and r.json()["changed"] is False
    r = await move(http, admin, key, "active", kind=kind.value)
    assert r.status_code == 200 and r.json()["to"] == "active"
    await until_live(gw, kind, key, "active")

    # Retired (the CLI's move of the same: test_the_cli_in_its_own_process).
    r = await move(http, tech, key, "retired", reason="water damage")
    assert (r.status_code, r.json()["from"], r.json()["to"]) == (200, "active", "retired")
    gone = kind in (LifeKind.CHARGER, LifeKind.BODYCAM, LifeKind.DRONE)  # out of their service
    await until_live(gw, kind, key, None if gone else "retired")

    # Retired is final: refused, with what to do instead.
    for state in ("active", "maintenance", "provisioned"):
        r = await move(http, admin, key, state)
        assert r.status_code == 409 and "retired is final" in r.json()["detail"]
    assert await stored(gw, kind, key) == "retired"

    # Every move audited, before and after, by whom.
    message_actor = "test technician" if kind is LifeKind.GATE else f"{kind.value}:{key}"
    assert await audit_trail(gw, key) == [
        ("commissioned", "checks van 5", "provisioned", "commissioned"),
        ("active", message_actor, "commissioned", "active"),
        ("maintenance", "test technician", "active", "maintenance"),
        ("active", "test admin", "maintenance", "active"),
        ("retired", "test technician", "active", "retired"),
    ]


async def test_a_retired_devices_messages_are_refused_and_counted(
    gw: Any, mosquitto: Broker, tokens: dict[str, str], http: httpx.AsyncClient
) -> None:
    """A retired sensor's uplink, drone's report and body cam's REGISTER (retired by the walk
    above when it ran first; here otherwise, so the test stands alone)."""
    for kind in (LifeKind.SENSOR, LifeKind.DRONE, LifeKind.BODYCAM):
        await retire(gw, http, tokens, kind)
    before = gw.metrics_value("citygate_messages_rejected_total", source="chirpstack",
                              reason="retired_device")  # fmt: skip
    await uplink(mosquitto, SENSOR, 9)
    await wait_for(lambda: gw.metrics_value("citygate_messages_rejected_total",
                                            source="chirpstack", reason="retired_device")
                   > before, LIVE_S)  # fmt: skip
    drones: Callable[[], float] = lambda: gw.metrics_value(  # noqa: E731
        "citygate_drone_reports_total", what="report", outcome="unknown_drone"
    )
    seen = drones()
    gw.services.drones.on_report(DroneReport(source="mavlink", key="1", at=now_utc()))
    assert drones() == seen + 1
    assert gw.services.bodycams.credentials[BODYCAM].active is False  # REGISTER refused


async def test_roles_and_bad_requests(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    path = f"/api/v1/devices/{DRONE}/lifecycle"
    r = await http.post(path, json={"state": "maintenance"})
    assert r.status_code == 401
    for role in ("inspector", "operator", "device", "payments"):
        r = await http.post(path, json={"state": "maintenance"}, headers=auth(tokens[role]))
        assert r.status_code == 403 and r.json()["code"] == "wrong_role", role
    tech = auth(tokens["technician"])
    r = await http.post("/api/v1/devices/no-such-thing/lifecycle", json={"state": "retired"},
                        headers=tech)  # fmt: skip
    assert r.status_code == 404 and r.json()["code"] == "no_device"
    for body in ({"state": "broken"}, {"state": "active", "extra": 1}, {},
                 {"state": "active", "reason": "x" * 501}):  # fmt: skip
        r = await http.post(path, json=body, headers=tech)
        assert r.status_code == 422, body
    r = await http.post(f"/api/v1/devices/{SENSOR}/lifecycle", json={"state": "active",
                        "kind": "charger"}, headers=tech)  # fmt: skip
    assert r.status_code == 404


async def test_maintenance_keeps_messages_but_drives_nothing(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], mosquitto: Broker
) -> None:
    """A sensor in maintenance: its uplinks are taken (last seen moves) but its berth is
    unknown meanwhile; back in service, it drives its berth again. A drone in maintenance
    raises no alert."""
    from gateway.directory.town import load_town

    sv, tech = gw.services, tokens["technician"]
    sensor = next(s for s in load_town(None).sensors if s.model == "nwave-nps405")
    dev, berth = sensor.dev_eui.lower(), sensor.berth

    def berth_state() -> str:
        return str(sv.live.book.berth(berth).state.value)

    await uplink(mosquitto, dev, 101)  # odd: occupied
    await wait_for(lambda: berth_state() == "occupied", LIVE_S)
    assert (await move(http, tech, dev, "maintenance")).status_code == 200
    await wait_for(lambda: berth_state() == "unknown", LIVE_S)
    seen = sv.live.directory.get(dev).last_seen
    await uplink(mosquitto, dev, 102)  # even: free, if it counted
    await wait_for(lambda: sv.live.directory.get(dev).last_seen != seen, LIVE_S)
    assert berth_state() == "unknown"
    assert (await move(http, tech, dev, "active")).status_code == 200
    await uplink(mosquitto, dev, 103)
    await wait_for(lambda: berth_state() == "occupied", LIVE_S)

    def low_battery_alerts() -> float:
        return float(gw.metrics_value("citygate_drone_alerts_total", alert="low_battery",
                                      change="raised"))  # fmt: skip

    assert (await move(http, tech, "drone-1", "maintenance")).status_code == 200
    await until_live(gw, LifeKind.DRONE, "drone-1", "maintenance")
    before = low_battery_alerts()
    low = DroneReport(source="dji", key="1581F5FHD2345678", at=now_utc(), battery_percent=3.0)
    sv.drones.on_report(low)
    assert sv.drones.live["drone-1"].battery_percent == 3.0  # taken
    assert low_battery_alerts() == before  # but no alert
    assert (await move(http, tech, "drone-1", "active")).status_code == 200
    await until_live(gw, LifeKind.DRONE, "drone-1", "active")
    sv.drones.on_report(low)  # back in service: the same report alerts
    assert low_battery_alerts() == before + 1


@pytest.mark.slow  # CLI processes: a few seconds each
async def test_the_cli_in_its_own_process(gw: Any, module_db_url: str) -> None:
    """``citygate devices lifecycle``: its table line, ``--json``, exit codes; the running
    gateway follows its moves through the change feed."""
    d = "drone-1"
    first, unknown, bad = await asyncio.gather(
        citygate(module_db_url, "devices", "lifecycle", d, "maintenance", "--reason", "rotor"),
        citygate(module_db_url, "devices", "lifecycle", "nope", "active", "--json"),
        citygate(module_db_url, "devices", "lifecycle", d, "asleep"),
    )
    assert first[0] == 0 and first[1].strip() == "drone drone-1: active -> maintenance", first
    error = json.loads(unknown[1])["error"]  # with --json the error is the one document
    assert unknown[0] == 3 and error["code"] == "no_device"
    assert "no device 'nope'" in error["message"]
    assert bad[0] == 2  # argparse: not a state
    await until_live(gw, LifeKind.DRONE, d, "maintenance")
    code, out, err = await citygate(module_db_url, "devices", "lifecycle", d, "retired", "--json")
    assert code == 0, err
    doc = json.loads(out)
    assert (doc["kind"], doc["from"], doc["to"], doc["changed"]) == (
        "drone", "maintenance", "retired", True,
    )  # fmt: skip
    await until_live(gw, LifeKind.DRONE, d, None)
    again, refused = await asyncio.gather(
        citygate(module_db_url, "devices", "lifecycle", d, "retired"),
        citygate(module_db_url, "devices", "lifecycle", d, "active", "--json"),
    )
    assert again[0] == 0 and again[1].strip() == "drone drone-1: already retired"
    error = json.loads(refused[1])["error"]
    assert refused[0] == 4 and error["code"] == "refused_transition"
    assert "retired is final" in error["message"]
    me = f"cli:{getpass.getuser()}"
    mine = [a for a in await audit_trail(gw, d) if a[1] == me]
    assert mine == [("maintenance", me, "active", "maintenance"),
                    ("retired", me, "maintenance", "retired")]  # fmt: skip


async def test_the_commissioning_checks_commission(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """``POST /api/v1/commission/{id}``: a provisioned device whose checks pass becomes
    commissioned; one whose checks fail stays provisioned."""
    h = auth(tokens["technician"])
    now = now_utc()
    cam, never = "62072500081380000003", "62072500081380000004"
    async with gw.services.sessions.begin() as db:  # a cam that registered and keeps alive
        for c in (cam, never):
            await db.execute(update(BodycamRow).where(BodycamRow.id == c)
                             .values(lifecycle="provisioned", ha1="0" * 32))  # fmt: skip
        db.add(BodycamStateRow(device_id=cam, registered_until=now + timedelta(hours=1),
                               last_keepalive=now, updated_at=now))  # fmt: skip
    r = await http.post(f"/api/v1/commission/{cam}", headers=h)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["passed"] is True and doc["lifecycle"] == "commissioned"
    assert doc["commissioned_now"] is True
    r = await http.post(f"/api/v1/commission/{never}", headers=h)
    doc = r.json()  # never registered: fails, stays provisioned
    assert doc["passed"] is False and doc["lifecycle"] == "provisioned"
    assert doc["commissioned_now"] is False
    assert [a[:2] for a in await audit_trail(gw, cam)] == [("commissioned", "test technician")]


async def test_the_migration_keeps_what_rows_meant(db_url: str) -> None:
    """0013: a gate controller of a lane made before it is active (it was driven as a working
    gate); every other kind's stored names are left as they were."""
    from sqlalchemy import text

    from gateway.infra.storage.db import create_engine, current_revision, downgrade, migrate

    engine = create_engine(db_url)
    try:
        await migrate(engine)
        await downgrade(engine, "0012_audit")
        at = datetime(2026, 12, 1, 8, tzinfo=UTC)
        async with engine.begin() as c:
            await c.execute(text(
                "INSERT INTO sites (id, name, kind, lat, lon, capacity, counting, segment_class) "
                "VALUES ('s1', 's', 'car_park', 38.7, 101.0, 1, 'berth_sensors', 'A')"
            ))  # fmt: skip
            await c.execute(text(
                "INSERT INTO lanes (id, site_id, kind, camera_id, gate_bus, gate_unit, gate_model,"
                " created_at, updated_at) VALUES ('ln1', 's1', 'entry', 'c1', 'tcp://h:1', 1, "
                "'example-relay4', :at, :at)"
            ), {"at": at})  # fmt: skip
            for dev, state in (("d-active", "active"), ("d-maint", "maintenance")):
                await c.execute(text(
                    "INSERT INTO devices (id, kind, protocol, model, address, lifecycle, notes, "
                    "created_at, updated_at) VALUES (:dev, 'berth_sensor', 'lorawan', "
                    "'nwave-nps405', :dev, :state, '', :at, :at)"
                ), {"dev": dev, "state": state, "at": at})  # fmt: skip
        await migrate(engine)
        assert await current_revision(engine) == "0018_gate_cluster"
        async with engine.connect() as c:
            gate = (await c.execute(text("SELECT gate_lifecycle FROM lanes"))).scalar_one()
            rows = (await c.execute(text("SELECT id, lifecycle FROM devices"))).all()
            devices = {str(k): str(v) for k, v in rows}
        assert gate == "active"
        assert devices == {"d-active": "active", "d-maint": "maintenance"}
    finally:
        await engine.dispose()
