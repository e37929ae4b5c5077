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
        },
    )
    async with running_gateway(settings) as gateway:
        # as the demo does: the 72 sample cams' passwords set from code, live at once
        n = await gateway.services.bodycams.set_passwords({cam(n): PASSWORD for n in range(1, 73)})
        assert n == 72 and gateway.services.bodycams.credentials[cam(72)].ha1
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
    # the platform asked DeviceInfo and DeviceStatus and subscribed to MobilePosition
    await wait_for(lambda: count(gw, "query", "200") >= 2, 10, what="queries answered")
    await wait_for(lambda: count(gw, "subscribe", "200") >= 1, 10, what="SUBSCRIBE answered")
    assert gw.services.bodycams.cams[cam(1)].subscription is not None


async def test_register_over_tcp(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    result = await sipp(gw, tmp_path, "register.xml", 2, transport="t1")
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    body = await field(http, tokens, 2)
    assert body["online"] is True
    assert gw.services.bodycams.cams[cam(2)].peer.transport == "TCP"


async def test_a_wrong_password_is_refused(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    before = count(gw, "register", "bad_password")
    result = await sipp(gw, tmp_path, "wrong_password.xml", 3, password="not-the-password")
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    assert count(gw, "register", "bad_password") == before + 1
    assert (await field(http, tokens, 3))["online"] is False


async def test_keepalives_keep_a_cam_online_and_silence_takes_it_offline(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    # keepalive interval 1 s x 2: the scenario sends three, 1.2 s apart (2.4 s in all: past
    # one interval x count from the REGISTER, so only the keepalives keep it online)
    import asyncio

    run = asyncio.create_task(sipp(gw, tmp_path, "keepalive.xml", 4, pause_ms=1200))
    seen_online = []
    while not run.done():
        body = await field(http, tokens, 4)
        if body["registered_until"] is not None:
            seen_online.append(body["online"])
        await asyncio.sleep(0.2)
    result = run.result()
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    assert len(seen_online) >= 8 and all(seen_online), seen_online
    assert count(gw, "message", "Keepalive") >= 3

    async def offline() -> bool:
        return (await field(http, tokens, 4))["online"] is False

    await wait_for(offline, 5, what="offline after silence")
    body = await field(http, tokens, 4)
    assert body["registered_until"] is not None  # still registered: offline from silence alone


async def test_positions_in_the_flat_and_the_list_form(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    events = gw.metrics_value("citygate_events_total", kind="BodycamPosition")
    result = await sipp(gw, tmp_path, "position_flat.xml", 5)
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    p = (await field(http, tokens, 5))["position"]
    assert p["lat"] == 38.7851 and p["lon"] == 101.0852
    assert p["speed_kmh"] == 4.5 and p["direction_deg"] == 90
    assert p["at"].startswith("2026-12-02T06:30:05")  # 14:30:05 in China is 06:30:05 UTC

    result = await sipp(gw, tmp_path, "position_list.xml", 6)
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    p = (await field(http, tokens, 6))["position"]
    assert (p["lat"], p["lon"]) == (38.7862, 101.0862)  # the newer of the two items
    assert p["at"].startswith("2026-12-02T06:31:05")
    # three positions into telemetry (bodycam_position)
    assert gw.metrics_value("citygate_events_total", kind="BodycamPosition") == events + 3


async def test_an_alarm_alerts_the_operator_and_files_a_case(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    result = await sipp(gw, tmp_path, "alarm.xml", 7)
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    body = await field(http, tokens, 7)
    (alarm,) = body["alarms"]
    assert alarm["priority"] == 1 and alarm["method"] == 2 and alarm["alarm_type"] == 1
    assert alarm["description"] == "SOS button"
    assert (alarm["lat"], alarm["lon"]) == (38.787, 101.087)
    assert alarm["case_id"] is not None  # priority 1: the sample rules' officer-alarm files one
    assert count(gw, "alarm", "1") == 1


async def test_expiry_and_unregister(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], tmp_path: Path
) -> None:
    import asyncio

    # registered for 2 s, then silent: offline when the registration lapses
    run = asyncio.create_task(
        sipp(gw, tmp_path, "unregister.xml", 8, pause_ms=4000, keys={"expires": "2"})
    )

    async def state() -> dict[str, Any]:
        return await field(http, tokens, 8)

    await wait_for(lambda: _online(state), 5, what="registered")
    await wait_for(lambda: _offline(state), 5, what="offline at expiry")
    result = await run
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]

    # registered for an hour, then Expires: 0: offline at once
    before = count(gw, "register", "unregister")
    run = asyncio.create_task(
        sipp(gw, tmp_path, "unregister.xml", 9, pause_ms=1500, keys={"expires": "3600"})
    )
    await wait_for(lambda: _online(lambda: field(http, tokens, 9)), 5, what="registered")
    result = await run
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    assert count(gw, "register", "unregister") == before + 1
    body = await field(http, tokens, 9)
    assert body["online"] is False and body["registered_until"] is None


async def _online(get: Any) -> bool:
    return bool((await get())["online"])


async def _offline(get: Any) -> bool:
    return not (await get())["online"]


async def test_a_catalog_split_over_two_messages(gw: Any, tmp_path: Path) -> None:
    result = await sipp(gw, tmp_path, "catalog.xml", 10)
    assert result.ok(), result.stdout[-2000:] + result.errors[-2000:]
    assert gw.services.bodycams.cams[cam(10)].catalog_items == 2
