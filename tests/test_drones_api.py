"""The drones' API on a running gateway (sample town, SQLite): operators only, hostile bodies
are 422 problems (never a 5xx), commands answer their final record, drones are in the field
picture, a drone's detection can raise a case, and ``citygate drones --json`` is the API's
view. The links are test doubles of the protocol (tests/drones_fakes.py) put where
``build_links`` would put the real ones."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from dronelink.model import CommandOutcome, CommandStatus, DroneFix, DroneReport
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.drones_fakes import FakeLink
from tests.test_cli_parity import cli_json

pytestmark = pytest.mark.asyncio(loop_scope="module")

ROUTES = [
    ("GET", "/api/v1/drones", None),
    ("GET", "/api/v1/drones/drone-1", None),
    ("POST", "/api/v1/drones/drone-1/speaker", {"text": "请勿占道经营", "volume": 60}),
    ("POST", "/api/v1/drones/drone-1/speaker/stop", None),
    ("POST", "/api/v1/drones/drone-1/return-home", None),
]
AMBULANCE = (101.08238, 38.78460)  # 同和医院急救通道, under drone-2


@pytest.fixture(scope="module")
def db_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("drones-api") / "citygate.db"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, db_file: Path) -> AsyncIterator[Any]:
    settings = gateway_settings(f"sqlite+aiosqlite:///{db_file}", mosquitto,
                                drones={"persist_interval_s": 0.1})  # fmt: skip
    async with running_gateway(settings) as gateway:
        links = gateway.services.drones.links
        links["dji"] = FakeLink("dji")
        links["mavlink"] = FakeLink("mavlink", speaker_supported=False)
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


async def test_operators_only(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for method, path, body in ROUTES:
        r = await http.request(method, path, json=body)
        assert r.status_code == 401 and r.json()["code"] == "token_required", path
        for role in ("inspector", "device", "technician"):
            r = await http.request(method, path, json=body, headers=auth(tokens[role]))
            assert r.status_code == 403 and r.json()["code"] == "wrong_role", (path, role)
        r = await http.request(method, path, json=body, headers=auth(tokens["operator"]))
        assert r.status_code == 200, (path, r.text)


async def test_the_town_drones_and_one_drone(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    now = gw.services.clock()
    fix = DroneFix(38.7850, 101.0820, 1700.0, 80.0, 5.0, 45.0)
    report = DroneReport("mavlink", "1", now, fix=fix, battery_percent=64.0, flying=True)
    gw.services.drones.on_report(report)
    r = await http.get("/api/v1/drones", headers=auth(tokens["operator"]))
    view = r.json()
    assert view["datum"] == "WGS-84" and view["total"] == 2 and view["online"] == 1
    two = next(d for d in view["drones"] if d["id"] == "drone-2")
    assert two["link"] == "online" and two["battery_percent"] == 64.0 and two["flying"] is True
    assert two["position"]["lat"] == 38.7850 and two["dock"] is None and two["system_id"] == 1
    r = await http.get("/api/v1/drones/drone-1", headers=auth(tokens["operator"]))
    one = r.json()
    assert one["kind"] == "dji" and one["dock"]["sn"] == "7CTDM1234567890"
    assert len(one["patrol_area"]) == 4 and isinstance(one["commands"], list)
    r = await http.get("/api/v1/drones/drone-9", headers=auth(tokens["operator"]))
    assert r.status_code == 404 and r.json()["code"] == "no_such_drone"
    assert r.headers["content-type"] == "application/problem+json"
    # the field picture carries the drones next to the cams
    r = await http.get("/api/v1/field", headers=auth(tokens["operator"]))
    field = r.json()
    assert "cams" in field and [d["id"] for d in field["drones"]] == ["drone-1", "drone-2"]
    assert field["drones"][1]["position"]["lon"] == 101.0820


HOSTILE: list[Any] = [
    {"text": "x", "volume": 50, "colour": "red"},
    {"text": "x" * 201},
    {"text": "x" * 2001},
    {"text": ""},
    {"text": "   \n\t "},
    {"text": "x", "volume": 101},
    {"text": "x", "volume": -1},
    {"text": "x", "volume": "50"},
    {"text": "x", "volume": 50.5},
    {"text": "x", "loop": "yes"},
    {"text": "bell\x07"},
    {"text": 5},
    {"volume": 5},
    [],
    None,
    "text",
]


async def test_hostile_bodies_are_422_problems(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = auth(tokens["operator"])
    for body in HOSTILE:
        r = await http.post("/api/v1/drones/drone-1/speaker", json=body, headers=h)
        assert r.status_code == 422, (body, r.status_code, r.text)
        assert r.headers["content-type"] == "application/problem+json", body
    for raw in (b"{", b"\xff\xfe", b'{"text": "\xed\xa0\x80"}'):
        r = await http.post("/api/v1/drones/drone-1/speaker", content=raw,
                            headers={**h, "content-type": "application/json"})  # fmt: skip
        assert 400 <= r.status_code < 500, (raw, r.status_code)
    r = await http.post("/api/v1/drones/drone-1/speaker", content=b'{"text": "\\ud800 x"}',
                        headers={**h, "content-type": "application/json"})  # fmt: skip
    assert r.status_code == 422  # refused before the route (any lone surrogate is)
    r = await http.post("/api/v1/drones/drone-1/speaker", json={"text": "x" * 201}, headers=h)
    assert r.json()["code"] == "text_too_long"
    r = await http.post("/api/v1/drones/" + "x" * 65 + "/return-home", headers=h)
    assert r.status_code == 422
    r = await http.post("/api/v1/drones/drone-9/return-home", headers=h)
    assert r.status_code == 404 and r.json()["code"] == "no_such_drone"


async def test_commands_answer_their_final_record(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = auth(tokens["operator"])
    body = {"text": "  请不要  在此处摆摊 ", "loop": True}
    r = await http.post("/api/v1/drones/drone-1/speaker", json=body, headers=h)
    rec = r.json()
    assert r.status_code == 200 and rec["status"] == "ok" and rec["final"] is True
    assert rec["args"] == {"text": "请不要 在此处摆摊", "volume": 80, "loop": True}
    assert rec["requested_by"] == "test operator" and rec["kind"] == "speaker"
    dji = gw.services.drones.links["dji"]
    assert dji.calls[-1].args == {"text": "请不要 在此处摆摊", "volume": 80, "loop": True}
    assert dji.calls[-1].key == "1581F5FHD2345678"
    r = await http.post("/api/v1/drones/drone-2/speaker", json={"text": "x"}, headers=h)
    assert r.status_code == 200 and r.json()["status"] == "rejected"
    assert "no loudspeaker" in r.json()["detail"]
    r = await http.post("/api/v1/drones/drone-2/return-home", headers=h)
    assert r.json()["status"] == "ok"
    r = await http.get("/api/v1/drones/drone-1", headers=h)
    assert rec["id"] in [c["id"] for c in r.json()["commands"]]


async def test_a_second_command_in_flight_is_409(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    h = auth(tokens["operator"])
    dji: FakeLink = gw.services.drones.links["dji"]
    dji.hold = True
    try:
        first = asyncio.create_task(http.post("/api/v1/drones/drone-1/return-home", headers=h))
        await wait_for(dji.waiting, 5, what="the first return-home at the link")
        (cid,) = dji.waiting()
        r = await http.post("/api/v1/drones/drone-1/return-home", headers=h)
        assert r.status_code == 409 and r.json()["code"] == "command_in_flight"
        assert r.json()["command_id"] == cid
        r = await http.get("/api/v1/drones/drone-1", headers=h)
        assert r.json()["commands"][0]["status"] == "pending"
        dji.release(cid, CommandOutcome(CommandStatus.OK, 1, 0))
        assert (await first).json()["status"] == "ok"
    finally:
        dji.hold = False


async def test_a_drones_detection_raises_a_case(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    seen = datetime.now(UTC) - timedelta(minutes=1)
    body = {
        "device_id": "drone-2",
        "kind": "non_motor_blocking",
        "observed_at": seen.isoformat(),
        "confidence": 0.92,
        "image_ref": "drone-2:frame-20261202-0001.jpg",
        "lon": AMBULANCE[0],
        "lat": AMBULANCE[1],
    }
    r = await http.post("/api/v1/detections", json=body, headers=auth(tokens["device"]))
    out = r.json()
    assert r.status_code == 200 and out["outcome"] == "case" and len(out["case_ids"]) == 1
    r = await http.get(f"/api/v1/cases/{out['case_ids'][0]}", headers=auth(tokens["operator"]))
    case = r.json()
    assert r.status_code == 200, r.text
    assert case["device_id"] == "drone-2" and case["category"] == "0506"
    body = {**body, "kind": "street_vending", "image_ref": "drone-2:frame-0002.jpg"}
    r = await http.post("/api/v1/detections", json=body, headers=auth(tokens["operator"]))
    assert r.status_code == 200 and r.json()["outcome"] == "case"


async def test_cli_shows_what_the_api_shows(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], db_file: Path, tmp_path: Path
) -> None:
    (tmp_path / "citygate.toml").write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{db_file}"\n', "utf-8"
    )
    h = auth(tokens["operator"])
    await gw.services.drones.flush()
    api = (await http.get("/api/v1/drones", headers=h)).json()
    cli = await cli_json(tmp_path, "drones", "--json")
    assert {**cli, "at": None} == {**api, "at": None}
    api = (await http.get("/api/v1/drones/drone-1", headers=h)).json()
    cli = await cli_json(tmp_path, "drones", "show", "drone-1", "--json")
    assert {**cli, "at": None} == {**api, "at": None}
    assert cli["commands"], "the commands of the earlier tests are shown"


async def test_a_town_import_is_live_through_the_change_feed(gw: Any) -> None:
    from gateway.directory.town import load_town
    from gateway.directory.town_import import import_town

    town = load_town(None)
    moved = town.model_copy(
        update={"drones": [town.drones[0], town.drones[1].model_copy(update={"system_id": 5})]}
    )
    async with gw.services.sessions.begin() as db:
        await import_town(db, moved, gw.services.clock())
    gw.services.follower.kick()
    service = gw.services.drones
    await wait_for(lambda: service.drones["drone-2"].key == "5", 10, what="the feed applied")
    service.on_report(DroneReport("mavlink", "5", gw.services.clock(), battery_percent=42.0))
    assert service.live["drone-2"].battery_percent == 42.0
