"""Body cams through a running gateway, with SIPp as the cam (a peer nobody here wrote):
digest registration over UDP and TCP, a wrong password, keepalives keeping a cam online and
silence taking it offline, positions in both forms, an alarm, expiry and unregistration, and a
Catalog split over two messages; what the operator sees comes from ``GET /api/v1/field``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.directory.bodycams import set_passwords
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.sipp_device import run_sipp

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLATFORM = "62072500082000000001"
REALM = "6207250008"
PASSWORD = "s1pp-test-pw"


def cam(n: int) -> str:
    return f"62072500081380{n:06d}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bcam') / 'citygate.db'}"
    settings = gateway_settings(
        db,
        mosquitto,
        bodycams={
            "keepalive_interval_s": 1.0,
            "keepalive_count": 2,
            "register_expires_min_s": 1,
            "persist_interval_s": 0.1,
            "alarm_cases": True,
        },
    )
    async with running_gateway(settings) as gateway:
        async with gateway.services.sessions.begin() as s:
            await set_passwords(s, {cam(n): PASSWORD for n in range(1, 73)}, REALM,
                                gateway.services.clock())  # fmt: skip
        await wait_for(lambda: gateway.services.bodycams.credentials[cam(1)].ha1, 10)
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as client:
        yield client


async def sipp(gw: Any, tmp_path: Path, scenario: str, n: int, **kw: Any) -> Any:
    kw.setdefault("password", PASSWORD)
    result = await run_sipp(scenario, gw.sip_port, cam(n), realm=REALM, platform=PLATFORM,
                            workdir=tmp_path, **kw)  # fmt: skip
    return result


async def field(http: httpx.AsyncClient, tokens: dict[str, str], n: int) -> dict[str, Any]:
    r = await http.get(
        f"/api/v1/field/{cam(n)}", headers={"Authorization": f"Bearer {tokens['operator']}"}
    )
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def count(gw: Any, what: str, outcome: str) -> float:
    value: float = gw.metrics_value("citygate_bodycam_sip_total", what=what, outcome=outcome)
    return value


async def test_register_with_digest_over_udp(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    result = await sipp(gw, tmp_path, "register.xml", 1)
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    body = await field(http, tokens, 1)
    assert body["online"] is True
    assert body["officer_id"] == "of-001" and body["squad"] == "督查中队"
    assert body["registered_until"] is not None
