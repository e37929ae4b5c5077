"""Commissioning through the API of a running gateway, against real devices: an ``ocpp`` 1.6
charge point that boots and reports its connectors, SIPp registering a body cam and sending
keepalives, a plate camera's test push over HTTP. The roles, and the CLI's ``--json`` equal to
the API's answer on the same database."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from drivers.sensors import nwave
from events import now_utc
from gateway.config import load_settings
from gateway.demo.cameras import HikvisionCamera
from gateway.demo.ocpp import Charger16
from gateway.directory.chargers import set_password
from tests.conftest import Broker, make_tokens, running_gateway, wait_for
from tests.sipp_device import run_sipp
from tests.test_e2e_sensors import chirpstack, publish, sensor_of

pytestmark = pytest.mark.asyncio(loop_scope="module")
CAM_OK, CAM_NEVER = "62072500081380000001", "62072500081380000002"
PASSWORD = "s1pp-test-pw"


@pytest.fixture(scope="module")
def config_dir(tmp_path_factory: pytest.TempPathFactory, mosquitto: Broker) -> Path:
    d = tmp_path_factory.mktemp("commission")
    (d / "citygate.toml").write_text(
        f'[database]\nurl = "sqlite+aiosqlite:///{d}/citygate.db"\n'
        f'[telemetry]\nspool_dir = "{d}/spool"\nhealth_interval_s = 3600\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\n'
        f'client_id = "cg-comm-{uuid.uuid4().hex[:8]}"\n'
        "[api]\nport = 0\nrate_limit_per_s = 0\n[ocpp]\nport = 0\n"
        f'[cameras]\nevidence_dir = "{d}/ev"\n'
        "[bodycams]\nsip_port = 0\npersist_interval_s = 0.1\n[drones]\nmavlink_port = 0\n"
        '[lanes]\ngates = "none"\n[occupancy]\npersist_interval_s = 0.1\n',
        "utf-8",
    )
    return d


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(config_dir: Path) -> AsyncIterator[Any]:
    settings = load_settings(config_dir / "citygate.toml", environ={})
    async with running_gateway(settings) as gateway:
        await gateway.services.bodycams.set_passwords({CAM_OK: PASSWORD, CAM_NEVER: PASSWORD})
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


async def commission(
    http: httpx.AsyncClient, token: str, device: str, body: Any = None, status: int = 200
) -> dict[str, Any]:
    r = await http.post(f"/api/v1/commission/{device}", json=body, headers=auth(token))
    assert r.status_code == status, r.text
    out: dict[str, Any] = r.json()
    return out


def results(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


async def cli(cwd: Path, *args: str) -> tuple[int, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "commission", *args, "--json", cwd=cwd, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode in (0, 1), err.decode()
    return proc.returncode, json.loads(out)


def without_at(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k != "at"}


async def test_a_sensor_after_real_uplinks_passes(
    mosquitto: Broker, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    dev_eui, _, _ = sensor_of("nwave-nps405")
    before = await commission(http, tokens["technician"], dev_eui)
    assert results(before)["heard"] == "failed" and before["passed"] is False
    port, data = nwave.encode_status(True)
    up = f"application/app-1/device/{dev_eui}/event/up"
    await publish(mosquitto, up, chirpstack(dev_eui, port, data, 1))
    status = {
        "deduplicationId": str(uuid.uuid4()), "time": now_utc().isoformat(),
        "deviceInfo": {"tenantId": "t", "applicationId": "app-1", "devEui": dev_eui},
        "margin": 7, "batteryLevel": 82.5,
    }  # fmt: skip
    await publish(mosquitto, up.replace("/up", "/status"), json.dumps(status).encode())

    async def passing() -> dict[str, Any] | None:
        doc = await commission(http, tokens["technician"], dev_eui)
        return doc if doc["passed"] else None

    doc = await wait_for(passing, 10, interval=0.1, what="the sensor passes")
    observed = {c["name"]: c["observed"] for c in doc["checks"]}
    assert observed["rssi"] == "-97 dBm" and observed["snr"] == "7.5 dB"
    assert observed["battery"] == "82.5 %" and observed["first_status"].startswith("occupied")


async def test_a_booted_charger_passes_and_the_cli_says_the_same(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], config_dir: Path
) -> None:
    async with gw.services.persister._sessions.begin() as s:
        password = await set_password(s, "SDEV001", gw.services.clock())
    url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
    async with Charger16(url, "SDEV001", password, firmware="2.3.1") as c:
        await c.boot()
        await c.status(1, "Available")

        async def one_connector() -> bool:
            doc = await commission(http, tokens["technician"], "SDEV001")
            return results(doc)["heartbeat"] == "passed" and "1 Available" in str(doc)

        await wait_for(one_connector, 10, interval=0.1, what="boot and connector 1 seen")
        doc = await commission(http, tokens["technician"], "SDEV001")
        assert results(doc)["connectors"] == "failed"  # connector 2 not reported yet
        assert "2" in next(x for x in doc["checks"] if x["name"] == "connectors")["hint"]
        await c.status(2, "Available")

        async def passing() -> dict[str, Any] | None:
            doc = await commission(http, tokens["technician"], "SDEV001", {"cycle": False})
            return doc if doc["passed"] else None

        doc = await wait_for(passing, 10, interval=0.1, what="charger passes")
        assert doc["kind"] == "charger" and set(results(doc).values()) == {"passed"}
        rc, from_cli = await cli(config_dir, "SDEV001")
        assert rc == 0 and without_at(from_cli) == without_at(doc)


async def test_a_charger_that_never_connected_fails(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    doc = await commission(http, tokens["admin"], "SDEV002")
    assert doc["passed"] is False
    failed = {n for n, s in results(doc).items() if s == "failed"}
    assert {"boot_accepted", "connected", "heartbeat", "connectors", "password"} <= failed


async def test_a_bodycam_after_sipp_registration_and_keepalives(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    b = gw.settings.bodycams
    sipp = await run_sipp(
        "keepalive.xml", gw.sip_port, CAM_OK, PASSWORD,
        realm=b.effective_realm, platform=b.platform_id, workdir=tmp_path,
    )  # fmt: skip
    assert sipp.ok(), sipp.stdout[-2000:] + sipp.errors[-2000:]
    doc = await commission(http, tokens["technician"], CAM_OK)
    assert doc["kind"] == "bodycam" and doc["passed"] is True, doc
    assert results(doc) == {"lifecycle": "passed", "password": "passed", "officer": "passed",
                            "registered": "passed", "keepalive": "passed"}  # fmt: skip
    never = await commission(http, tokens["technician"], CAM_NEVER)
    assert results(never)["registered"] == results(never)["keepalive"] == "failed"


async def test_a_camera_after_a_test_push_and_one_without(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], config_dir: Path
) -> None:
    secrets = {}
    for cam in ("cam-comm-1", "cam-comm-2"):
        r = await http.post(
            "/api/v1/devices/cameras",
            json={"id": cam, "vendor": "hikvision", "site_id": "cp-shiminting", "direction": "in"},
            headers=auth(tokens["technician"]),
        )
        assert r.status_code == 201, r.text
        secrets[cam] = r.json()["secret"]
    before = await commission(http, tokens["technician"], "cam-comm-1")
    assert results(before)["test_push"] == "failed" and before["passed"] is False
    camera = HikvisionCamera(str(http.base_url), "cam-comm-1", secrets["cam-comm-1"])
    try:
        r = await camera.push("甘G24680", now_utc())
        assert r.status_code == 200, r.text
    finally:
        await camera.aclose()
    after = await commission(http, tokens["technician"], "cam-comm-1")
    assert after["passed"] is True and results(after)["test_push"] == "passed"
    push = next(c for c in after["checks"] if c["name"] == "test_push")
    assert "甘G24680" in push["observed"]
    without = await commission(http, tokens["technician"], "cam-comm-2")
    assert results(without)["test_push"] == "failed"
    rc, from_cli = await cli(config_dir, "cam-comm-2")
    assert rc == 1 and without_at(from_cli) == without_at(without)


async def test_roles_and_refusals(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    for role in ("inspector", "operator"):
        r = await http.post("/api/v1/commission/SDEV003", headers=auth(tokens[role]))
        assert r.status_code == 403 and r.json()["code"] == "wrong_role"
    r = await http.post("/api/v1/commission/SDEV003")
    assert r.status_code == 401
    gone = await commission(http, tokens["technician"], "no-such-device", status=404)
    assert gone["code"] == "no_device"
    ctl = await commission(http, tokens["technician"], "ctl-shiminting", status=409)
    assert ctl["code"] == "cannot_commission"
    bad = await commission(http, tokens["technician"], "SDEV003", {"cycle": "yes"}, 422)
    assert bad["status"] == 422
    extra = await commission(http, tokens["technician"], "SDEV003", {"moves": True}, 422)
    assert extra["status"] == 422
    ok = await commission(http, tokens["technician"], "SDEV003", {"kind": "charger"})
    assert ok["kind"] == "charger"


async def test_the_route_is_in_the_openapi_document(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    op = spec["paths"]["/api/v1/commission/{device_id}"]["post"]
    assert {"401", "403", "404", "409", "422"} <= set(op["responses"])
