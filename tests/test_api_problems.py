"""Every refusal is a Problem (application/problem+json: status, title, code, detail, errors),
and the OpenAPI document lists Problem for every 4xx of every operation."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.api.app import create_app
from gateway.api.problems import MEDIA_TYPE
from gateway.api.state import AppState
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("problems") / "cg.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}", mosquitto, api={"max_body_bytes": 4096}
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


def problem_of(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The Problem *r* carries, checked whole."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == MEDIA_TYPE, r.headers
    p: dict[str, Any] = r.json()
    assert set(p) >= {"status", "title", "code", "detail", "errors"}, p
    assert p["status"] == status and p["code"] == code, p
    assert isinstance(p["title"], str) and p["title"] and isinstance(p["detail"], str), p
    assert isinstance(p["errors"], list), p
    return p


async def test_401_and_403_are_problems_with_the_challenge(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    r = await http.get("/api/v1/devices")
    problem_of(r, 401, "token_required")
    assert r.headers["www-authenticate"] == "Bearer"
    r = await http.get("/api/v1/devices", headers={"Authorization": "Bearer cg_nope_nope"})
    problem_of(r, 401, "invalid_token")
    assert "invalid_token" in r.headers["www-authenticate"]
    r = await http.get("/api/v1/devices", headers={"Authorization": f"Bearer {tokens['device']}"})
    assert "device" in problem_of(r, 403, "wrong_role")["detail"]


async def test_404_from_a_route_and_from_routing(http: httpx.AsyncClient) -> None:
    assert "nope" in problem_of(await http.get("/api/v1/sites/nope"), 404, "no_site")["detail"]
    problem_of(await http.get("/api/v1/no/such/path"), 404, "not_found")
    problem_of(await http.get("/api/v1/sessions/ps_nope"), 404, "no_session")


async def test_405_names_every_method_of_the_path(http: httpx.AsyncClient) -> None:
    r = await http.delete("/api/v1/sites")
    problem_of(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET"
    # GET and POST /api/v1/chargers come from two routers: Allow names both
    r = await http.put("/api/v1/chargers")
    problem_of(r, 405, "method_not_allowed")
    assert r.headers["allow"] == "GET, POST"
    # the literal path, not GET /api/v1/cases/{case_id} that its text also matches
    r = await http.put("/api/v1/cases/callback")
    assert problem_of(r, 405, "method_not_allowed") and r.headers["allow"] == "POST"


async def test_409_413_and_422(http: httpx.AsyncClient, tokens: dict[str, str]) -> None:
    auth = {"Authorization": f"Bearer {tokens['technician']}"}
    body = {"dev_eui": "70b3d59ba0ff0a01", "model": "nwave-nps405"}
    assert (await http.post("/api/v1/devices", json=body, headers=auth)).status_code == 201
    problem_of(await http.post("/api/v1/devices", json=body, headers=auth), 409, "conflict")
    big = {"dev_eui": "70b3d59ba0ff0a02", "model": "x", "notes": "x" * 5000}
    problem_of(await http.post("/api/v1/devices", json=big, headers=auth), 413, "too_large")
    bad = {"dev_eui": "zz", "model": "nwave-nps405", "heartbeat_s": -1}
    p = problem_of(await http.post("/api/v1/devices", json=bad, headers=auth), 422, "invalid")
    assert {tuple(e["loc"]) for e in p["errors"]} == {("body", "dev_eui"), ("body", "heartbeat_s")}
    # hostile input is echoed JSON-safe: a lone surrogate does not turn into a 500
    r = await http.post(
        "/api/v1/quotes",
        content=b'{"site_id": "\\ud800", "vehicle_class": "small", "entry": "x", "exit": "y"}',
        headers={"Content-Type": "application/json"},
    )
    problem_of(r, 422, "invalid")
    json.loads(r.text)


async def test_cross_field_rules_name_the_fields(
    http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    for params in ({}, {"plate": "甘G12345", "berth_id": "x"}):
        p = problem_of(await http.get("/api/v1/sessions", params=params), 422, "one_of")
        assert [e["loc"] for e in p["errors"]] == [["query", "plate"], ["query", "berth_id"]]
    auth = {"Authorization": f"Bearer {tokens['operator']}"}
    r = await http.get("/api/v1/cases", params={"before": "a", "after": "b"}, headers=auth)
    p = problem_of(r, 422, "one_of")
    assert [e["loc"] for e in p["errors"]] == [["query", "before"], ["query", "after"]]
    p = problem_of(await http.get("/api/v1/sessions", params={"plate": "x"}), 422, "bad_plate")
    assert p["errors"][0]["loc"] == ["query", "plate"]


async def test_500_is_a_problem_without_the_exception(gw: Any) -> None:
    app = create_app(AppState.of(gw.services))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("secret-ish internals /etc/passwd")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        r = await client.get("/boom")
    p = problem_of(r, 500, "internal")
    assert "secret" not in r.text and "RuntimeError" not in r.text and "Traceback" not in r.text
    assert p["detail"] == "internal error"


async def test_openapi_lists_problem_for_every_4xx_of_every_operation(
    http: httpx.AsyncClient,
) -> None:
    spec = (await http.get("/openapi.json")).json()
    assert "HTTPValidationError" not in json.dumps(spec)
    assert set(spec["components"]["schemas"]["Problem"]["required"]) >= {
        "status",
        "title",
        "code",
        "detail",
    }
    operations = 0
    for path, item in spec["paths"].items():
        for method, op in item.items():
            operations += 1
            where = f"{method.upper()} {path}"
            errors = {int(s): r for s, r in op["responses"].items() if s.startswith("4")}
            for status, r in errors.items():
                assert r["content"] == {MEDIA_TYPE: {"schema": PROBLEM_REF}}, (where, status)
                assert r["description"], (where, status)
            if op.get("parameters") or "requestBody" in op:
                assert 422 in errors, where
            if "requestBody" in op:
                assert {400, 413} <= errors.keys(), where
            security = op.get("security") or []
            if security:
                assert 401 in errors, where
            if security and {} not in security:  # a token is required: a role too
                assert 403 in errors, where
            elif path.startswith("/api/v1/"):  # public, or a token only widens the view
                assert 429 in errors and "Retry-After" in errors[429]["headers"], where
            if "{" in path:
                assert 404 in errors, where
    assert operations >= 35
    sessions = spec["paths"]["/api/v1/sessions"]["get"]
    assert "Neither or both" in sessions["description"]
    cases = spec["paths"]["/api/v1/cases"]["get"]
    assert "not both" in cases["description"]
    assert 409 in {int(s) for s in spec["paths"]["/api/v1/devices"]["post"]["responses"]}
    assert (
        "409"
        in spec["paths"]["/api/v1/chargers/{charger_id}/commands/{command}"]["post"]["responses"]
    )
