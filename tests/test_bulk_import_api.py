"""``POST /api/v1/import`` and ``citygate import`` beside a running gateway, on SQLite and
PostgreSQL: roles, hostile bodies (4xx, never 5xx), an imported sensor live in the running
gateway, the CLI's --json equal to the API's answer, secrets never in logs or stderr."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]
MAX_BYTES = 8192
CSV = {"Content-Type": "text/csv"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    settings = gateway_settings(module_db_url, mosquitto,
                                bulk_import={"max_file_bytes": MAX_BYTES})  # fmt: skip
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


def auth(token: str, **headers: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **headers}


async def citygate(db_url: str, *args: str) -> tuple[int, str, str]:
    """The CLI in its own process, on the gateway's database (as a technician runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    env["CITYGATE_DATABASE__URL"] = json.dumps(db_url)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_roles_technician_and_admin_yes_inspector_no(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = "dev_eui,model\na840410001900001,nwave-nps405\n"
    for role, status in (("inspector", 403), ("operator", 403), ("technician", 200),
                         ("admin", 200)):  # fmt: skip
        r = await http.post("/api/v1/import?kind=sensor&dry_run=true", content=body,
                            headers=auth(tokens[role], **CSV))  # fmt: skip
        assert r.status_code == status, (role, r.text)
    r = await http.post("/api/v1/import?kind=sensor", content=body, headers=CSV)
    assert r.status_code == 401


@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"dev_eui,model\n" + b"a840410001900002,nwave-nps405\n" * 400, CSV, 413),
        (b'{"dev_eui": "a840410001900002"}', {"Content-Type": "application/json"}, 415),
        (b"dev_eui,model\n", {}, 415),
        (bytes(range(256)) * 4, CSV, 400),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", {"Content-Type": "application/toml"}, 400),
        (b"[[sensors]\nid=", {"Content-Type": "application/toml"}, 422),
        (b'a,"b\n', CSV, 422),
        (b"dev_eui,model\n", CSV | {"X": "no kind"}, 422),
        (b"dev_eui,model\n" + b"a840410001900002,nwave-nps405\n" * 2, CSV, 422),  # no kind
    ],
)
async def test_hostile_bodies_get_a_4xx_problem(
    http: httpx.AsyncClient, tokens: dict[str, str], body: bytes, headers: dict[str, str],
    status: int,
) -> None:  # fmt: skip
    r = await http.post("/api/v1/import", content=body, headers=auth(tokens["technician"],
                                                                      **headers))  # fmt: skip
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")


async def test_a_rejected_row_is_a_422_naming_row_and_field(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = "dev_eui,model\na840410001900003,nwave-nps405\nzz,nwave-nps405\n"
    r = await http.post("/api/v1/import?kind=sensor", content=body,
                        headers=auth(tokens["technician"], **CSV))  # fmt: skip
    assert r.status_code == 422
    doc = r.json()["import"]
    assert [(e["row"], e["field"]) for e in doc["errors"]] == [("line 3", "dev_eui")]
    assert not doc["imported"] and gw.services.live.directory.get("a840410001900003") is None


async def test_an_imported_sensor_is_live_and_secrets_stay_out_of_the_logs(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    body = (
        "[[sensors]]\ndev_eui = 'A840410001900004'\nmodel = 'nwave-nps405'\nnotes = '新装'\n"
        "[[chargers]]\nid = 'CP-API-1'\nsite_id = 'cp-dongguan'\n"
    )
    toml = auth(tokens["technician"], **{"Content-Type": "application/toml"})
    r = await http.post("/api/v1/import", content=body.encode(), headers=toml)
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["imported"] and doc["added"] == {"sensor": ["a840410001900004"],
                                                 "charger": ["CP-API-1"]}  # fmt: skip
    (secret,) = doc["secrets"]
    await wait_for(lambda: gw.services.live.directory.get("a840410001900004"), 5,
                   what="the imported sensor in the running gateway's directory")  # fmt: skip
    assert secret["password"] not in caplog.text
    devices = await http.get("/api/v1/devices/a840410001900004",
                             headers=auth(tokens["technician"]))  # fmt: skip
    assert devices.json()["lifecycle"] == "provisioned"


async def test_the_cli_json_is_the_api_answer_and_the_cli_goes_live(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], module_db_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "sensors.csv"
    path.write_text("dev_eui,model,notes\na840410001900005,bosch-tps110,南门\n"
                    "a840410001900004,nwave-nps405,新装 已校准\n", "utf-8-sig")  # fmt: skip
    code, out, err = await citygate(module_db_url, "import", str(path), "--kind", "sensor",
                                    "--dry-run", "--json")  # fmt: skip
    assert code == 0, err
    r = await http.post("/api/v1/import?kind=sensor&dry_run=true", content=path.read_bytes(),
                        headers=auth(tokens["technician"], **CSV))  # fmt: skip
    assert json.loads(out) == r.json()
    assert r.json()["changed"]["sensor"][0]["fields"] == {"notes": ["新装", "新装 已校准"]}
    code, out, err = await citygate(module_db_url, "import", str(path), "--kind", "sensor")
    assert code == 0, err
    assert "writing: 2/2 rows (100%)" in err and "1 added, 1 changed" in out
    await wait_for(lambda: gw.services.live.directory.get("a840410001900005"), 5,
                   what="the CLI's sensor in the running gateway")  # fmt: skip
    # a charger's generated password: on stdout once, never on stderr (logs)
    chargers = tmp_path / "chargers.csv"
    chargers.write_text("id,site_id\nCP-CLI-1,cp-dongguan\n", "utf-8")
    code, out, err = await citygate(module_db_url, "import", str(chargers), "--kind", "charger")
    assert code == 0, err
    password = out.strip().splitlines()[-1].split("password=")[1]
    assert len(password) == 32 and password not in err and out.count(password) == 1
