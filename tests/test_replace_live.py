"""A replacement against a running gateway, on SQLite and PostgreSQL: under load (uplinks of
the old sensor, the new one and other sensors flowing through a real Mosquitto while the
replacement is made in another process's transaction and followed from the change feed),
nothing is lost and nothing misattributed; through the API, the roles and statuses, and a
sensor's and a charger's replacement live at once; through the CLI, a gate controller's,
followed from the feed."""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import httpx
import pytest
import pytest_asyncio
from sqlalchemy import select
from websockets.exceptions import InvalidStatus

from drivers.sensors import nwave
from events import InputRejected, SensorStatus
from gateway.demo.cameras import HikvisionCamera, VzenithCamera
from gateway.demo.ocpp import Charger16
from gateway.directory.devices import Lifecycle
from gateway.directory.replace import replace_device
from gateway.directory.replace_rules import ReplaceRequest
from gateway.directory.town import load_town
from gateway.infra.storage.db import create_engine, sessionmaker_for
from gateway.infra.storage.schema import ParkingSessionRow
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.sip_uac import Uac

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

TOWN = load_town(None)
LIVE_S = 5.0  # the change feed polls every 0.5 s on SQLite; a generous bound for CI
ROUNDS_AT_LEAST = 40  # of six uplinks: however fast the switch, a load (240 and more)


def street_sensors(n: int) -> list[tuple[str, str]]:
    """(dev_eui, berth) of *n* Nwave sensors on berth-counted sites."""
    sites = {s.id: s for s in TOWN.sites}
    berths = {b.id: b for b in TOWN.berths}
    out = [
        (s.dev_eui.lower(), s.berth)
        for s in TOWN.sensors
        if s.model == "nwave-nps405"
        and sites[berths[s.berth].site].counting.value == "berth_sensors"
    ]
    return out[:n]


def chirpstack(dev_eui: str, occupied: bool, f_cnt: int) -> bytes:
    port, data = nwave.encode_status(occupied)
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "app-1", "devEui": dev_eui},
            "fCnt": f_cnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
        }
    ).encode()


def topic(dev_eui: str) -> str:
    return f"application/app-1/device/{dev_eui}/event/up"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    async with running_gateway(gateway_settings(module_db_url, mosquitto)) as gateway:
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


async def test_a_replacement_under_load_loses_and_misattributes_nothing(
    gw: Any, mosquitto: Broker, module_db_url: str, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    (old, berth), *others = street_sensors(6)
    new = "a1b2c3d4e5f60001"
    r = await http.post(
        "/api/v1/devices",
        json={"dev_eui": new, "model": "nwave-nps405"},
        headers=auth(tokens["technician"]),
    )
    assert r.status_code == 201, r.text
    live, bus = gw.services.live, gw.services.bus
    sent: dict[str, list[tuple[int, bool, bool]]] = {}  # dev -> (fcnt, occupied, after switch)
    switched = asyncio.Event()
    finished = asyncio.Event()

    def is_switched() -> bool:
        entry = live.directory.get(old)
        return bool(
            entry is not None
            and entry.lifecycle is Lifecycle.RETIRED
            and live.book.berth(berth).dev_eui == new
        )

    async def watch() -> None:
        await wait_for(is_switched, LIVE_S, interval=0.005, what="the switch, live")
        switched.set()

    async def stream() -> None:
        """Rounds of one status per sensor; the old and new sensors both talk throughout."""
        async with aiomqtt.Client(mosquitto.host, mosquitto.port, identifier="t-load") as c:
            rnd, after = 0, 0
            while (after < 15 or rnd < ROUNDS_AT_LEAST) and rnd < 3000:
                rnd += 1
                on = switched.is_set()
                for dev in [old, new, *(d for d, _ in others)]:
                    occupied = rnd % 2 == 1
                    sent.setdefault(dev, []).append((rnd, occupied, on))
                    await c.publish(topic(dev), chirpstack(dev, occupied, rnd), qos=1)
                after += on
                await asyncio.sleep(0.01)  # a steady stream: ~600 uplinks a second
            for dev in [new, *(d for d, _ in others)]:  # the last word: free (sessions close)
                rnd += 1
                sent[dev].append((rnd, False, True))
                await c.publish(topic(dev), chirpstack(dev, False, rnd), qos=1)
        finished.set()

    async with bus.subscription("test-load", maxsize=100_000) as sub:
        streaming = asyncio.create_task(stream())
        await wait_for(lambda: len(sent.get(old, ())) >= 10, 5, what="the stream flowing")
        # the berth's history so far: sessions the old sensor opened
        await wait_for(lambda: _sessions(gw, berth), 5, 0.05, what="earlier sessions")
        earlier = await _sessions(gw, berth)
        watcher = asyncio.create_task(watch())
        # another process's transaction (as the CLI's): this gateway learns it from the feed
        engine = create_engine(module_db_url)
        try:
            await replace_device(
                sessionmaker_for(engine), old, ReplaceRequest(new=new), datetime.now(UTC),
                realm="6207250008",
            )  # fmt: skip
        finally:
            await engine.dispose()
        await watcher
        await streaming
        seen: list[Any] = []

        def everything_arrived() -> bool:
            while not sub.queue.empty():
                seen.append(sub.queue.get_nowait())
            statuses = {(e.device_id, e.fcnt) for e in seen if isinstance(e, SensorStatus)}
            want = {(d, f) for d, _ in others for f, _, _ in sent[d]}
            want |= {(new, f) for f, _, on in sent[new] if on}
            return want <= statuses

        await wait_for(everything_arrived, 10, what="every uplink of the others and of the new")

    statuses = [e for e in seen if isinstance(e, SensorStatus)]
    old_after = {f for f, _, on in sent[old] if on}
    assert len(old_after) >= 15, "the old sensor kept talking after the switch"
    assert sum(len(v) for v in sent.values()) >= 6 * ROUNDS_AT_LEAST  # a load, not a trickle
    # nothing misattributed: no uplink of the old sensor after the switch was applied ...
    assert not {e.fcnt for e in statuses if e.device_id == old} & old_after
    # ... each was refused and counted as from a retired device
    retired = [e for e in seen if isinstance(e, InputRejected) and e.device_id == old]
    assert {e.reason for e in retired} == {"retired_device"}
    assert len(retired) >= len(old_after)
    # nothing lost: the others' berths and the replaced berth end as last reported (free)
    for d, b in [*others, (new, berth)]:
        assert live.book.berth(b).dev_eui == d
        assert live.book.berth(b).state.value == "free", (d, b)

    # the berth's history is continuous: its earlier sessions kept, the new ones after them
    def closed_by_new(rows: list[ParkingSessionRow]) -> bool:
        return bool(rows) and rows[-1].state == "closed" and rows[-1].exit_source == new

    rows: list[ParkingSessionRow] = await wait_for(
        lambda: _sessions(gw, berth, closed_by_new), 10, 0.05, what="sessions written"
    )
    assert {r.id for r in earlier} <= {r.id for r in rows}
    assert {r.entry_source for r in earlier} == {old}
    assert {r.entry_source for r in rows} <= {old, new} and new in {r.exit_source for r in rows}
    for first, then in itertools.pairwise(rows):
        assert first.exit_at is not None and first.exit_at <= then.entry_at  # one at a time
        assert not (first.entry_source == new and then.entry_source == old)  # never back
    assert rows[-1].state == "closed"


async def _sessions(gw: Any, berth: str, accept: Any = bool) -> Any:
    """The berth's parking sessions as recorded, oldest first (None unless *accept* them)."""
    async with gw.services.persister._sessions() as s:
        q = (
            select(ParkingSessionRow)
            .where(ParkingSessionRow.berth_id == berth)
            .order_by(ParkingSessionRow.entry_at)
        )
        rows = list((await s.execute(q)).scalars())
    return rows if accept(rows) else None


async def test_the_api_replaces_for_technicians_only_and_says_why_not(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    (old, berth), (other, _) = street_sensors(8)[6:8]
    path = f"/api/v1/devices/{old}/replace"
    body = {"new": "a1b2c3d4e5f60002", "model": "nwave-nps405"}
    assert (await http.post(path, json=body)).status_code == 401
    for role in ("inspector", "operator", "device", "payments"):
        r = await http.post(path, json=body, headers=auth(tokens[role]))
        assert r.status_code == 403, (role, r.text)
    tech = auth(tokens["technician"])
    cases = [
        ("/api/v1/devices/ffffffffffffffff/replace", body, 404, "no_device"),
        (path, {"new": other}, 409, "new_bound"),
        (path, {"new": "a1b2c3d4e5f60002"}, 422, "no_new_device"),
        (path, {"new": "a1b2c3d4e5f60002", "model": "nope"}, 422, "invalid"),
        (path, {"new": TOWN.chargers[0].id}, 422, "kinds_differ"),
        (path, {"new": "x", "colour": "red"}, 422, None),  # unknown field
        (path, {"new": ""}, 422, None),
    ]
    for where, payload, status, code in cases:
        r = await http.post(where, json=payload, headers=tech)
        assert r.status_code == status, (payload, r.text)
        if code is not None:
            assert r.json()["code"] == code, r.text
    r = await http.post(path, json=body, headers=auth(tokens["admin"]))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["old"]["lifecycle"] == "retired" and out["new"]["created"] is True
    # this instance applied it at once: no wait for the feed
    live = gw.services.live
    assert live.book.berth(berth).dev_eui == "a1b2c3d4e5f60002"
    entry = live.directory.get(old)
    assert entry is not None and entry.lifecycle is Lifecycle.RETIRED
    r = await http.post(path, json={"new": "a1b2c3d4e5f60003", "model": "nwave-nps405"},
                        headers=tech)  # fmt: skip
    assert (r.status_code, r.json()["code"]) == (409, "old_retired")
    r = await http.get("/api/v1/audit", params={"key": old}, headers=auth(tokens["admin"]))
    assert r.status_code == 200
    assert "replace" in {e["action"] for e in r.json()["entries"]}


async def test_a_replaced_charger_is_refused_and_its_successor_connects(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    tech = auth(tokens["technician"])
    r = await http.post("/api/v1/chargers", json={"id": "REPL-OLD-1", "site_id": "cp-tonghe"},
                        headers=tech)  # fmt: skip
    assert r.status_code == 201, r.text
    old_password = r.json()["password"]
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    async with Charger16(url, "REPL-OLD-1", old_password) as c:
        await c.boot()
    r = await http.post("/api/v1/devices/REPL-OLD-1/replace", json={"new": "REPL-NEW-1"},
                        headers=tech)  # fmt: skip
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["place"]["site_id"] == "cp-tonghe"
    password = out["credentials"]["password"]

    async def old_refused() -> bool:
        try:
            async with Charger16(url, "REPL-OLD-1", old_password) as c:
                await c.boot()
        except InvalidStatus:
            return True
        return False

    await wait_for(old_refused, LIVE_S, what="the old charger refused")

    async def new_online() -> bool:
        async with Charger16(url, "REPL-NEW-1", password) as c:
            await c.boot()
            got = await http.get("/api/v1/chargers/REPL-NEW-1", headers=auth(tokens["inspector"]))
            return got.status_code == 200 and bool(got.json()["online"])

    await wait_for(new_online, LIVE_S, what="the new charger online")


async def test_a_lane_reads_its_new_camera_and_keeps_its_decisions(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    lane = TOWN.lanes[0]
    assert lane.kind == "entry"
    tech, base = auth(tokens["technician"]), f"http://127.0.0.1:{gw.api_port}"
    r = await http.post(
        "/api/v1/devices/cameras",
        json={"id": lane.camera, "vendor": "hikvision", "site_id": lane.site, "lane_id": lane.id},
        headers=tech,
    )
    assert r.status_code == 201, r.text
    old_cam = HikvisionCamera(base, lane.camera, r.json()["secret"])

    async def decided(plate: str) -> bool:
        got = await http.get(f"/api/v1/lanes/{lane.id}", headers=auth(tokens["operator"]))
        return plate in {d["plate"] for d in got.json().get("decisions", [])}

    try:
        assert (await old_cam.push("甘G12345")).status_code == 200
        await wait_for(lambda: decided("甘G12345"), LIVE_S, what="the old camera's decision")
        r = await http.post(
            f"/api/v1/devices/{lane.camera}/replace",
            json={"new": "cam-repl-new", "vendor": "vzenith"},
            headers=tech,
        )
        assert r.status_code == 200, r.text
        creds = r.json()["credentials"]
        assert (await old_cam.heartbeat()).status_code == 403  # retired: refused at once
    finally:
        await old_cam.aclose()
    await wait_for(lambda: gw.services.lanes.serves("cam-repl-new"), LIVE_S, what="the lane")
    assert not gw.services.lanes.serves(lane.camera)
    new_cam = VzenithCamera(base, "cam-repl-new", creds["secret"])
    try:
        assert (await new_cam.push("甘G54321")).status_code == 200
    finally:
        await new_cam.aclose()
    await wait_for(lambda: decided("甘G54321"), LIVE_S, what="the new camera's decision")
    assert await decided("甘G12345")  # the lane's history carries on


async def test_a_replaced_body_cam_no_longer_registers_and_its_successor_does(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    officer = TOWN.officers[-1]
    old, new = officer.bodycam, "62072500081389990099"
    assert old is not None
    tech, cfg = auth(tokens["technician"]), gw.settings.bodycams
    r = await http.post(f"/api/v1/devices/bodycams/{old}/password",
                        json={"password": "old-cam-pass-1"}, headers=tech)  # fmt: skip
    assert r.status_code == 200, r.text

    async def registers(cam: str, password: str) -> bool:
        uac = await Uac(cam, password, cfg.effective_realm, cfg.platform_id).open(gw.sip_port)
        try:
            return (await uac.register()).status == 200
        finally:
            uac.close()

    await wait_for(lambda: registers(old, "old-cam-pass-1"), LIVE_S, 0.2, what="old registers")
    r = await http.post(f"/api/v1/devices/{old}/replace",
                        json={"new": new, "password": "new-cam-pass-1"}, headers=tech)  # fmt: skip
    assert r.status_code == 200, r.text
    assert r.json()["place"] == {"officer_id": officer.id} and "credentials" not in r.json()

    async def old_refused() -> bool:
        return not await registers(old, "old-cam-pass-1")

    await wait_for(old_refused, LIVE_S, 0.2, what="the old cam refused")
    await wait_for(lambda: registers(new, "new-cam-pass-1"), LIVE_S, 0.2, what="new registers")


async def test_a_gate_controller_replaced_through_the_cli_is_live(
    gw: Any, module_db_url: str
) -> None:
    lane = TOWN.lanes[-1]
    code, out, err = await citygate(module_db_url, "devices", "replace", lane.id,
                                    "tcp://10.9.9.9:502", "--unit", "7", "--json")  # fmt: skip
    assert code == 0, err
    done = json.loads(out)
    assert (done["kind"], done["new"]["bus"], done["new"]["unit"]) == (
        "gate",
        "tcp://10.9.9.9:502",
        7,
    )

    def moved() -> bool:
        rt = gw.services.lanes.lanes.get(lane.id)
        return rt is not None and (rt.config.gate_bus, rt.config.gate_unit) == (
            "tcp://10.9.9.9:502",
            7,
        )

    await wait_for(moved, LIVE_S, what="the lane's new gate controller, live")


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
