"""Enforcement through a running gateway: detections and long stays become case reports,
delivered signed to a real HTTP case system, mirrored back by its signed callbacks."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio

from drivers.sensors import nwave
from gateway.cases.signing import sign
from tests.case_system import CaseSystem
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.test_e2e_sensors import chirpstack, publish, sensor_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

LOCAL = ZoneInfo("Asia/Shanghai")
MARKET = (101.0760, 38.77622)  # 文化街早市
AMBULANCE = (101.08238, 38.78460)  # 同和医院急救通道
YESTERDAY = (datetime.now(LOCAL) - timedelta(days=1)).date()


def local(hhmm: str) -> datetime:
    h, m = map(int, hhmm.split(":"))
    return datetime(YESTERDAY.year, YESTERDAY.month, YESTERDAY.day, h, m, tzinfo=LOCAL)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def case_system(module_db_url: str) -> AsyncIterator[CaseSystem]:
    """One case system per database backend (the reports of one run only)."""
    system = CaseSystem()
    await system.start()
    try:
        yield system
    finally:
        await system.stop()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str, case_system: CaseSystem) -> AsyncIterator[Any]:
    settings = gateway_settings(
        module_db_url,
        mosquitto,
        cases={"url": case_system.url, "secret": case_system.secret.decode()},
        enforcement={"sweep_interval_s": 0.2},
    )
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


async def detect(
    http: httpx.AsyncClient,
    token: str,
    kind: str,
    at: datetime,
    where: tuple[float, float],
    **kw: Any,
) -> dict[str, Any]:
    body = {
        "device_id": "ai-cam-07",
        "kind": kind,
        "observed_at": at.isoformat(),
        "confidence": 0.9,
        "image_ref": f"oss://evidence/{kind}/{at:%H%M}.jpg",
        "lon": where[0],
        "lat": where[1],
        **kw,
    }
    r = await http.post("/api/v1/detections", json=body, headers=auth(token))
    assert r.status_code == 200, r.text
    out: dict[str, Any] = r.json()
    return out


def received(system: CaseSystem, case_id: str) -> dict[str, Any] | None:
    return system.cases.get(case_id)


async def test_stall_outside_the_market_window_is_reported_once(
    http: httpx.AsyncClient, tokens: dict[str, str], case_system: CaseSystem
) -> None:
    first = await detect(http, tokens["device"], "street_vending", local("10:30"), MARKET)
    assert first["outcome"] == "case" and len(first["case_ids"]) == 1
    (case_id,) = first["case_ids"]
    report = await wait_for(lambda: received(case_system, case_id), 10, what="report delivered")
    assert report["category"] == "0504" and report["id"] == case_id
    assert report["place"]["zone_id"] == "zn-wenhuajie-market"
    assert report["evidence"] == ["oss://evidence/street_vending/1030.jpg"]
    assert report["device_id"] == "ai-cam-07"
    (receipt,) = case_system.receipts(case_id)
    assert receipt.signature_ok and receipt.key == case_id

    # The same vendor seen a few minutes later is the same situation: no second report.
    again = await detect(http, tokens["device"], "street_vending", local("10:36"), MARKET)
    assert again["outcome"] == "duplicate" and again["case_ids"] == []
    # Inside the early-market window, stalls are allowed; a blurry frame decides nothing.
    inside = await detect(http, tokens["device"], "street_vending", local("07:15"), MARKET)
    assert inside["outcome"] == "allowed_window"
    unsure = await detect(
        http, tokens["device"], "mobile_vendor", local("12:00"), MARKET, confidence=0.2
    )
    assert unsure["outcome"] == "below_confidence"


async def test_ambulance_lane_and_prior_offences(
    http: httpx.AsyncClient, tokens: dict[str, str], case_system: CaseSystem
) -> None:
    bikes = await detect(http, tokens["operator"], "non_motor_blocking", local("14:00"), AMBULANCE)
    assert bikes["outcome"] == "case"
    report = await wait_for(lambda: received(case_system, bikes["case_ids"][0]), 10)
    assert report["category"] == "0506"

    # The same plate offending twice in different places: the second carries the count.
    first = await detect(
        http, tokens["device"], "illegal_parking", local("15:00"), AMBULANCE, plate="甘G·77777"
    )
    second = await detect(
        http,
        tokens["device"],
        "abandoned_vehicle",
        local("16:00"),
        MARKET,
        plate="甘G77777",
    )
    r1 = await wait_for(lambda: received(case_system, first["case_ids"][0]), 10)
    r2 = await wait_for(lambda: received(case_system, second["case_ids"][0]), 10)
    assert (r1["category"], r1["plate"], r1["prior_offences"]) == ("0505", "甘G77777", 0)
    assert (r2["category"], r2["plate"], r2["prior_offences"]) == ("0107", "甘G77777", 1)


async def test_zombie_car_is_reported_once_by_the_sweep(
    mosquitto: Broker, gw: Any, case_system: CaseSystem
) -> None:
    dev_eui, berth_id, _ = sensor_of("nwave-nps405")
    port, data = nwave.encode_status(True)
    uplink = json.loads(chirpstack(dev_eui, port, data, 3))
    uplink["time"] = (datetime.now(UTC) - timedelta(days=8)).isoformat()
    await publish(
        mosquitto, f"application/app-1/device/{dev_eui}/event/up", json.dumps(uplink).encode()
    )

    def zombie() -> list[dict[str, Any]]:
        return [
            c
            for c in case_system.cases.values()
            if c["category"] == "0107" and c["place"]["berth_id"] == berth_id
        ]

    (report,) = await wait_for(zombie, 10, what="zombie car reported")
    assert report["details"]["stay_minutes"] >= 7 * 24 * 60
    # Several more sweeps (every 0.2 s) file nothing new for the same car.
    sweeps = gw.metrics_value("citygate_cases_raised_total", category="0107", outcome="duplicate")
    await wait_for(
        lambda: (
            gw.metrics_value("citygate_cases_raised_total", category="0107", outcome="duplicate")
            >= sweeps + 3
        ),
        10,
        what="more sweeps",
    )
    assert len(zombie()) == 1


async def test_callbacks_mirror_the_case_and_the_cli_lists_it(
    http: httpx.AsyncClient,
    tokens: dict[str, str],
    case_system: CaseSystem,
    gw: Any,
    tmp_path: Path,
) -> None:
    bikes = await detect(http, tokens["device"], "non_motor_blocking", local("18:00"), AMBULANCE)
    (case_id,) = bikes["case_ids"]
    await wait_for(lambda: received(case_system, case_id), 10)
    for step, at in (("审核立案", "18:05"), ("dispatched", "18:10")):
        body = json.dumps(
            {"id": case_id, "case_id": case_system.remote_ids[case_id], "status": step,
             "at": local(at).isoformat()}, ensure_ascii=False
        ).encode()  # fmt: skip
        signature = sign(case_system.secret, body, int(datetime.now(UTC).timestamp()))
        r = await http.post(
            "/api/v1/cases/callback",
            content=body,
            headers={"X-Citygate-Signature": signature, "Content-Type": "application/json"},
        )
        assert r.status_code == 200, r.text
    forged = await http.post(
        "/api/v1/cases/callback",
        content=body,
        headers={"X-Citygate-Signature": "t=1,v1=00", "Content-Type": "application/json"},
    )
    assert forged.status_code == 401

    assert (await http.get("/api/v1/cases")).status_code == 401
    r = await http.get(f"/api/v1/cases/{case_id}", headers=auth(tokens["inspector"]))
    assert r.status_code == 200
    case = r.json()
    assert case["status"] == "dispatched" and case["delivery"]["state"] == "delivered"
    assert [h["status"] for h in case["history"]][-2:] == ["registered", "dispatched"]

    # The operator's CLI shows the same mirror.
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "cases", "list", "--json", "--category", "0506",
        env={**os.environ, "CITYGATE_DATABASE__URL": json.dumps(gw.settings.database.url)},
        stdout=asyncio.subprocess.PIPE, cwd=tmp_path,
    )  # fmt: skip
    stdout, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0
    out = stdout.decode()
    listed = {c["id"]: c for c in json.loads(out)["cases"]}
    assert listed[case_id]["status"] == "dispatched"
    assert listed[case_id]["delivery"]["state"] == "delivered"
    api = await http.get("/api/v1/cases?category=0506", headers=auth(tokens["inspector"]))
    assert {c["id"]: c for c in api.json()["cases"]}[case_id] == listed[case_id]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"kind": "graffiti"}, "kind"),
        ({"lat": None, "lon": None}, "needs a place"),
        ({"lon": None}, "lat and lon together"),
        ({"confidence": 2}, "confidence"),
        ({"observed_at": "2026-11-27T10:00:00"}, "timezone"),
        ({"observed_at": "2099-01-01T00:00:00+08:00"}, "future"),
        ({"site_id": "cp-nowhere"}, "unknown site"),
        ({"berth_id": "nope"}, "unknown berth"),
        ({"plate": "12345"}, "not a plate"),
        ({"image_ref": ""}, "image_ref"),
    ],
)
async def test_bad_detections_say_what_is_wrong(
    http: httpx.AsyncClient, tokens: dict[str, str], change: dict[str, Any], says: str
) -> None:
    body = {
        "device_id": "ai-cam-07",
        "kind": "street_vending",
        "observed_at": local("11:00").isoformat(),
        "confidence": 0.9,
        "image_ref": "oss://x.jpg",
        "lon": MARKET[0],
        "lat": MARKET[1],
    }
    body.update(change)
    body = {k: v for k, v in body.items() if v is not None}
    r = await http.post("/api/v1/detections", json=body, headers=auth(tokens["device"]))
    assert r.status_code == 422 and says in r.text


async def test_detections_need_a_device_or_operator_token(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    body = {"device_id": "x", "kind": "street_vending", "observed_at": local("11:00").isoformat(),
            "confidence": 0.9, "image_ref": "oss://x.jpg", "site_id": "cp-shiminting"}  # fmt: skip
    assert (await http.post("/api/v1/detections", json=body)).status_code == 401
    r = await http.post("/api/v1/detections", json=body, headers=auth(tokens["inspector"]))
    assert r.status_code == 403


async def test_a_resent_detection_is_kept_once(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    kw = {"detection_id": "cam07-000123"}
    a = await detect(http, tokens["device"], "mobile_vendor", local("20:00"), MARKET, **kw)
    b = await detect(http, tokens["device"], "mobile_vendor", local("20:00"), MARKET, **kw)
    assert a["outcome"] == "case" and b["replayed"] is True
    assert b["id"] == a["id"] and b["case_ids"] == a["case_ids"]
