"""HTTP API against a running gateway: public reads, tokens and roles, hostile input, SSE."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from drivers.sensors import nwave
from gateway.directory.town import load_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")
TOWN = load_town(None)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("api") / "cg.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}", mosquitto, api={"max_body_bytes": 4096, "sse_keepalive_s": 0.2}
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


async def test_sites_list_shape(http: httpx.AsyncClient) -> None:
    r = await http.get("/api/v1/sites")
    assert r.status_code == 200
    sites = r.json()["sites"]
    assert len(sites) == len(TOWN.sites)
    car_parks = [s for s in sites if s["kind"] == "car_park"]
    assert len(car_parks) == 24 and sum(s["capacity"] for s in car_parks) == 1382
    assert any("市民大厅" in s["name"] for s in car_parks)
    for s in sites:
        assert 0 <= s["free"] <= s["capacity"]
        assert s["free"] + s["occupied"] + s["unknown"] == s["capacity"]
        assert s["age_s"] >= 0 and s["updated_at"].endswith(("Z", "+00:00"))
    only_street = (await http.get("/api/v1/sites", params={"kind": "on_street"})).json()["sites"]
    assert only_street and all(s["kind"] == "on_street" for s in only_street)
    assert (await http.get("/api/v1/sites", params={"kind": "moon"})).status_code == 422


async def test_unknown_site_is_404(http: httpx.AsyncClient) -> None:
    for path in ("/api/v1/sites/nope", "/api/v1/sites/nope/berths"):
        r = await http.get(path)
        p = r.json()
        assert r.status_code == 404 and p["code"] == "no_site" and "nope" in p["detail"], p
        assert r.headers["content-type"] == "application/problem+json" and p["status"] == 404


async def test_berths_and_map(http: httpx.AsyncClient) -> None:
    site = next(s for s in TOWN.sites if s.kind.value == "on_street")
    berths = (await http.get(f"/api/v1/sites/{site.id}/berths")).json()["berths"]
    assert len(berths) == site.capacity
    assert all(b["sensor"] is not None and b["state"] == "unknown" for b in berths)
    geo = (await http.get("/api/v1/map")).json()
    assert geo["type"] == "FeatureCollection" and len(geo["features"]) == len(TOWN.sites)
    lon, lat = geo["features"][0]["geometry"]["coordinates"]
    assert 100.9 < lon < 101.2 and 38.7 < lat < 38.9


async def test_public_api_is_read_only(http: httpx.AsyncClient) -> None:
    for method, path in (
        ("POST", "/api/v1/sites"),
        ("DELETE", "/api/v1/sites/x"),
        ("PUT", "/api/v1/map"),
    ):
        assert (await http.request(method, path)).status_code == 405


async def test_devices_need_a_token_with_the_right_role(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    assert (await http.get("/api/v1/devices")).status_code == 401
    bad = await http.get("/api/v1/devices", headers={"Authorization": "Bearer cg_x_y"})
    assert bad.status_code == 401
    for role in ("technician", "inspector", "operator", "admin"):
        r = await http.get(
            "/api/v1/devices",
            headers={"Authorization": f"Bearer {tokens[role]}"},
            params={"kind": "berth_sensor"},
        )
        assert r.status_code == 200, role
        assert len(r.json()["devices"]) == len(TOWN.sensors)
    body = {"dev_eui": "70b3d59ba0ffff01", "model": "nwave-nps405"}
    forbidden = await http.post(
        "/api/v1/devices", json=body, headers={"Authorization": f"Bearer {tokens['inspector']}"}
    )
    assert forbidden.status_code == 403
    assert tokens["inspector"] not in forbidden.text


async def test_technician_replaces_a_sensor(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str], mosquitto: Broker
) -> None:
    auth = {"Authorization": f"Bearer {tokens['technician']}"}
    old = TOWN.sensors[3]
    r = await http.post(
        "/api/v1/devices",
        headers=auth,
        json={"dev_eui": "70B3D59BA0FFFF02", "model": "nwave-nps405", "berth_id": old.berth},
    )
    assert r.status_code == 409  # berth still held by the old sensor
    r = await http.patch(
        f"/api/v1/devices/{old.dev_eui}",
        headers=auth,
        json={"lifecycle": "retired", "notes": "water damage"},
    )
    assert r.status_code == 200 and r.json()["berth_id"] is None
    r = await http.post(
        "/api/v1/devices",
        headers=auth,
        json={"dev_eui": "70B3D59BA0FFFF02", "model": "nwave-nps405", "berth_id": old.berth},
    )
    assert r.status_code == 201, r.text
    assert r.json()["lifecycle"] == "provisioned"
    # The new sensor reports: the berth follows it (it stays provisioned until commissioned).
    port, data = nwave.encode_status(True)
    import aiomqtt

    up = {
        "deviceInfo": {"devEui": "70b3d59ba0ffff02"},
        "fCnt": 1,
        "fPort": port,
        "data": base64.b64encode(data).decode(),
    }
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await c.publish("application/a/device/70b3d59ba0ffff02/event/up", json.dumps(up), qos=1)
        # ... and the retired one is refused.
        await c.publish(
            f"application/a/device/{old.dev_eui.lower()}/event/up",
            json.dumps({**up, "deviceInfo": {"devEui": old.dev_eui.lower()}}),
            qos=1,
        )
    await wait_for(lambda: gw.services.live.book.berth(old.berth).state.value == "occupied", 10)
    await wait_for(
        lambda: gw.metrics_value(
            "citygate_messages_rejected_total", source="chirpstack", reason="retired_device"
        ),
        10,
    )
    dev = (await http.get("/api/v1/devices/70b3d59ba0ffff02", headers=auth)).json()
    # Heard from, but not in service before its commissioning checks pass (docs/lifecycle.md).
    assert dev["lifecycle"] == "provisioned" and dev["rssi"] is None and dev["last_seen"]


async def test_hostile_bodies(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {tokens['technician']}"}
    cases = [
        b"{not json",
        b"[]",
        json.dumps({"dev_eui": "zz", "model": "nwave-nps405"}).encode(),
        json.dumps({"dev_eui": "70b3d59ba0ffff03", "model": "x", "extra": 1}).encode(),
        json.dumps(
            {"dev_eui": "70b3d59ba0ffff03", "model": "nwave-nps405", "heartbeat_s": -1}
        ).encode(),
    ]
    for body in cases:
        r = await http.post(
            "/api/v1/devices", content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert r.status_code == 422, body
        p = r.json()
        assert r.headers["content-type"] == "application/problem+json"
        assert p["status"] == 422 and p["code"] == "invalid" and p["errors"], p
        assert all({"loc", "msg", "type"} <= e.keys() for e in p["errors"]), p
    big = b'{"notes": "' + b"x" * 10_000 + b'"}'
    r = await http.post(
        "/api/v1/devices", content=big, headers={**auth, "Content-Type": "application/json"}
    )
    assert r.status_code == 413 and r.json()["code"] == "too_large", r.text
    assert r.headers["content-type"] == "application/problem+json"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length, streams past the limit
        for _ in range(10):
            yield b"x" * 1000

    r = await http.post("/api/v1/devices", content=chunks(), headers=auth)
    assert r.status_code == 413
    assert (await http.get("/healthz")).status_code == 200


async def test_sse_stream_sends_snapshot_then_changes(
    gw: Any, http: httpx.AsyncClient, mosquitto: Broker
) -> None:
    sensor = TOWN.sensors[10]
    berth = next(b for b in TOWN.berths if b.id == sensor.berth)
    events: list[tuple[str, Any]] = []

    async def listen() -> None:
        async with http.stream("GET", "/api/v1/vacancies/stream", params={"site": berth.site}) as r:
            assert r.headers["content-type"].startswith("text/event-stream")
            name = ""
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name, json.loads(line[6:])))
                    if name == "counts":
                        return

    task = asyncio.create_task(listen())
    await wait_for(lambda: events, 10, what="snapshot")
    assert events[0][0] == "snapshot" and events[0][1]["sites"][0]["id"] == berth.site
    codec = {"nwave-nps405": "drivers.sensors.nwave", "bosch-tps110": "drivers.sensors.bosch"}
    import importlib

    import aiomqtt

    if sensor.model in codec:
        port, data = importlib.import_module(codec[sensor.model]).encode_status(True)
        up = {
            "deviceInfo": {"devEui": sensor.dev_eui.lower()},
            "fCnt": 7,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
        }
        topic, payload = f"application/a/device/{sensor.dev_eui.lower()}/event/up", json.dumps(up)
    else:
        pytest.fail("pick a LoRaWAN sensor for this test")
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
        await c.publish(topic, payload, qos=1)
    await asyncio.wait_for(task, 10)
    name, counts = events[-1]
    assert name == "counts" and counts["site_id"] == berth.site and counts["occupied"] >= 1


async def test_health_ready_metrics(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    assert (await http.get("/healthz")).json() == {"status": "ok"}
    ready = await http.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["mqtt"] is True
    auth = {"Authorization": f"Bearer {tokens['inspector']}"}
    text = (await http.get("/metrics", headers=auth)).text
    assert "citygate_messages_in_total" in text and "citygate_queue_depth" in text


async def test_metrics_need_a_scraper_token(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """[api] metrics_token_required (default): no token 401, a made-up one 401, a role that
    is not a reader 403; inspector, operator and admin scrape. Nothing secret in a label."""
    missing = await http.get("/metrics")
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["code"] == "token_required"
    forged = "cg_abcdefgh_" + "x" * 43
    bad = await http.get("/metrics", headers={"Authorization": f"Bearer {forged}"})
    assert bad.status_code == 401
    for role in ("device", "payments", "technician"):
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == 403, role
    for role in ("inspector", "operator", "admin"):
        r = await http.get("/metrics", headers={"Authorization": f"Bearer {tokens[role]}"})
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain"), role
    text = r.text
    for token in tokens.values():  # neither a token nor its secret part
        assert token not in text and token.rsplit("_", 1)[1] not in text
    assert forged not in text and "abcdefgh" not in text
    assert 'citygate_api_auth_failures_total{reason="missing"}' in text


async def test_metrics_without_token_when_configured(mosquitto: Broker, tmp_path: Path) -> None:
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        api={"metrics_token_required": False},
    )
    async with running_gateway(settings) as gw, httpx.AsyncClient() as http:
        r = await http.get(f"http://127.0.0.1:{gw.api_port}/metrics")
        assert r.status_code == 200 and "citygate_messages_in_total" in r.text


async def test_openapi_docs(http: httpx.AsyncClient) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert "/api/v1/sites/{site_id}/berths" in spec["paths"]
    assert (await http.get("/docs")).status_code == 200


async def test_docs_need_no_internet(http: httpx.AsyncClient) -> None:
    """/docs must work on the bureau's offline network: every asset comes from us."""
    page = await http.get("/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "cdn" not in html.lower()
    external = re.findall(r"(?:https?:)?//[^\s\"'<>]+", html)
    assert external == [], f"/docs refers to other hosts: {external}"
    refs = re.findall(r'(?:src|href)="([^"]+)"', html)
    kinds = {
        ".js": "text/javascript",
        ".css": "text/css",
        ".png": "image/png",
    }
    assert sorted(Path(r).suffix for r in refs) == [".css", ".js", ".png"], refs
    for ref in refs:
        asset = await http.get(ref)
        assert asset.status_code == 200, ref
        assert asset.headers["content-type"].startswith(kinds[Path(ref).suffix]), ref
        assert len(asset.content) > 100, ref
    script = next(r for r in refs if r.endswith(".js"))
    assert "SwaggerUIBundle" in (await http.get(script)).text
    # Only what the page needs is served, and ReDoc (CDN-only) is not offered.
    assert (await http.get("/static/swagger/index.html")).status_code == 404
    assert (await http.get("/redoc")).status_code == 404


async def test_posted_tariffs(http: httpx.AsyncClient) -> None:
    body = (await http.get("/api/v1/tariffs")).json()
    assert body["current"] in {v["version"] for v in body["versions"]}
    v = body["versions"][-1]
    assert "22:00" in v["summary_zh"] and v["summary_en"]
    site = (await http.get("/api/v1/sites/cp-shiminting/tariff")).json()
    assert (
        site["site_id"] == "cp-shiminting" and site["free_first"]["cp-shiminting"]["minutes"] == 60
    )
    assert {r["site_class"] for r in site["rates"]} == {site["site_class"]}
    assert (await http.get("/api/v1/sites/nope/tariff")).status_code == 404


async def test_quote_matches_cli_and_adds_up(gw: Any, http: httpx.AsyncClient) -> None:
    req = {
        "site_id": "cp-shiminting",
        "vehicle_class": "small",
        "entry": "2026-11-28T09:00:00+08:00",
        "exit": "2026-11-28T23:30:00+08:00",
    }
    r = await http.post("/api/v1/quotes", json=req)
    assert r.status_code == 200, r.text
    q = r.json()
    assert q["total_fen"] == sum(line["amount_fen"] for line in q["lines"])
    assert (
        q["lines"][0]["rule"].startswith("first 60 min free") and q["lines"][0]["amount_fen"] == 0
    )
    assert any("night free" in line["rule"] for line in q["lines"])
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "tariff",
        "quote",
        "--site",
        req["site_id"],
        "--vehicle",
        "small",
        "--entry",
        req["entry"],
        "--exit",
        req["exit"],
        stdout=asyncio.subprocess.PIPE,
        # The CLI finds the tariff in force where the gateway does: in its database.
        env={**os.environ, "CITYGATE_DATABASE__URL": json.dumps(gw.settings.database.url)},
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0 and json.loads(out) == q  # the same JSON, whoever computes it
    # A new-energy plate (8 characters) is priced as new energy; the province is kept.
    by_plate = {**req, "plate": "甘GD12345"}
    del by_plate["vehicle_class"]
    assert (await http.post("/api/v1/quotes", json=by_plate)).json()[
        "vehicle_class"
    ] == "new_energy"


async def test_bad_quotes_say_what_is_wrong(http: httpx.AsyncClient) -> None:
    base = {
        "site_id": "cp-shiminting",
        "vehicle_class": "small",
        "entry": "2026-11-28T09:00:00+08:00",
        "exit": "2026-11-28T10:00:00+08:00",
    }
    cases = {
        "timezone": {**base, "entry": "2026-11-28T09:00:00"},
        "before entry": {**base, "exit": "2026-11-28T08:00:00+08:00"},
        "unknown site": {**base, "site_id": "cp-moon"},
        "exactly one": {**base, "plate": "甘G12345"},
    }
    for expected, body in cases.items():
        r = await http.post("/api/v1/quotes", json=body)
        assert r.status_code == 422, expected
        assert expected in r.text, (expected, r.text)
