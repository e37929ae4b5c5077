"""Hostile input against a running gateway: no body gets a 5xx, no quote stalls the loop.

Every POST/PATCH route is taken from the app's own OpenAPI, so a route added later is covered.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.api.rejections import RejectionLog, error_details
from gateway.cases.signing import HEADER, sign
from gateway.metrics import Metrics
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

SECRET = "hostile-test-secret"
QUOTE = {"site_id": "cp-shiminting", "vehicle_class": "small"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("hostile") / "cg.db"
    settings = gateway_settings(f"sqlite+aiosqlite:///{db}", mosquitto, cases={"secret": SECRET})
    async with running_gateway(settings) as g:
        yield g


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}", timeout=30) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def routes(gw: Any, http: httpx.AsyncClient) -> list[tuple[str, str, list[str], str]]:
    """(method, path, body field names, a token whose role reaches the body) per route."""
    tokens = list((await make_tokens(gw)).values())
    spec = (await http.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    out = []
    for path, ops in spec["paths"].items():
        for method in ("post", "patch"):
            if method not in ops:
                continue
            concrete = path.replace("{", "").replace("}", "")  # /x/{id} -> /x/id
            ref = (
                ops[method]
                .get("requestBody", {})
                .get("content", {})
                .get("application/json", {})
                .get("schema", {})
                .get("$ref", "")
            )
            fields = list(schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {}))
            chosen = tokens[0]
            for tok in tokens:  # the role that gets past auth: anything but 401/403
                r = await http.request(
                    method, concrete, json={}, headers={"Authorization": f"Bearer {tok}"}
                )
                if r.status_code not in (401, 403):
                    chosen = tok
                    break
            out.append((method.upper(), concrete, fields, chosen))
    assert any(p == "/api/v1/quotes" for _, p, _, _ in out)
    assert len(out) >= 8
    return out


def _headers(path: str, token: str, body: bytes) -> dict[str, str]:
    """Bearer token, and the case system's signature on its callback (so the body is read)."""
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if path.endswith("/cases/callback"):
        h[HEADER] = sign(SECRET.encode(), body, int(time.time()))
    return h


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


HOSTILE_TEXT = st.sampled_from(
    [
        '"\\ud800"',
        '"a\\udfffb"',
        "NaN",
        "Infinity",
        "-Infinity",
        "1e400",
        "9" * 4000,
        "-" + "9" * 300,
        '"' + "x" * 900_000 + '"',
        _nested(100_000),
        '{"\\ud800": NaN}',
        '[NaN, Infinity, "\\udc00"]',
        '"2000-01-01T00:00:00\\ud800"',
        '"9999-12-31T23:59:59+14:00"',
        '"0001-01-01T00:00:00+00:00"',
        "true",
        "null",
    ]
)


@st.composite
def hostile_body(draw: st.DrawFn, fields: list[str]) -> str:
    """JSON text (not Python objects: NaN and lone surrogates must go over the wire)."""
    shape = draw(st.sampled_from(["fields", "whole", "extra"]))
    if shape == "whole":
        return draw(HOSTILE_TEXT)
    keys = draw(st.lists(st.sampled_from(fields or ["x"]), min_size=1, max_size=4, unique=True))
    if shape == "extra":
        keys.append("\\ud800extra")
    parts = [f'"{k}": {draw(HOSTILE_TEXT)}' for k in keys]
    body = "{" + ", ".join(parts) + "}"
    return body if len(body) < 1_000_000 else "{" + parts[0] + "}"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_bodies_never_5xx(
    http: httpx.AsyncClient, routes: list[tuple[str, str, list[str], str]], data: st.DataObject
) -> None:
    method, path, fields, token = data.draw(st.sampled_from(routes))
    body = data.draw(hostile_body(fields))
    raw = body.encode("utf-8")
    r = await http.request(method, path, content=raw, headers=_headers(path, token, raw))
    assert r.status_code < 500, (method, path, body[:200], r.text[:500])
    json.loads(r.text)  # an error body is always valid JSON


async def test_every_route_with_each_hostile_value(
    http: httpx.AsyncClient, routes: list[tuple[str, str, list[str], str]]
) -> None:
    """The exhaustive pass next to the random one: every field of every route, every value."""
    values = ['"\\ud800"', "NaN", "Infinity", "-Infinity", "1e400", "9" * 400]
    for method, path, fields, token in routes:
        for field in fields or ["x"]:
            for v in values:
                r = await http.request(
                    method,
                    path,
                    content=f'{{"{field}": {v}}}'.encode(),
                    headers={
                        "Authorization": f"Bearer {token}",
                        "Content-Type": "application/json",
                    },
                )
                assert r.status_code < 500, (method, path, field, v, r.text[:300])
                json.loads(r.text)


async def test_2000_year_quote_is_422_naming_the_bound_quickly(http: httpx.AsyncClient) -> None:
    body = {**QUOTE, "entry": "2026-01-01T00:00:00+08:00", "exit": "4026-01-01T00:00:00+08:00"}
    t0 = time.perf_counter()
    r = await http.post("/api/v1/quotes", json=body)
    assert r.status_code == 422 and "2200" in r.text, r.text  # outside the dates window
    in_window = {**body, "exit": "2199-01-01T00:00:00+08:00"}
    r = await http.post("/api/v1/quotes", json=in_window)
    p = r.json()
    assert r.status_code == 422 and "366 days" in p["detail"] and p["code"] == "unquotable", p
    assert [e["loc"] for e in p["errors"]] == [["body", "entry"], ["body", "exit"]], p
    assert time.perf_counter() - t0 < 1.0
    year = {**body, "exit": "2027-01-01T00:00:00+08:00"}  # 365 days: priced
    r = await http.post("/api/v1/quotes", json=year)
    assert r.status_code == 200 and r.json()["total_fen"] > 0


async def test_healthz_stays_responsive_under_hostile_quotes(http: httpx.AsyncClient) -> None:
    hostile = [
        {**QUOTE, "entry": "2026-01-01T00:00:00+08:00", "exit": "2199-12-31T00:00:00+08:00"},
        {**QUOTE, "entry": "2026-01-01T00:00:00+08:00", "exit": "2026-12-31T23:00:00+08:00"},
    ]
    stop = asyncio.Event()

    async def attacker(body: dict[str, Any]) -> None:
        while not stop.is_set():
            r = await http.post("/api/v1/quotes", json=body)
            assert r.status_code < 500

    attackers = [asyncio.create_task(attacker(hostile[i % 2])) for i in range(4)]
    try:
        worst = 0.0
        for _ in range(10):
            t0 = time.perf_counter()
            r = await http.get("/healthz")
            worst = max(worst, time.perf_counter() - t0)
            assert r.status_code == 200
    finally:
        stop.set()
        await asyncio.gather(*attackers)
    assert worst < 0.5, f"/healthz took {worst:.3f} s under hostile quotes"


async def test_rejections_are_counted_and_logged_once_a_minute() -> None:
    now = [0.0]
    metrics = Metrics()
    rej = RejectionLog(metrics.api_rejected, 60.0, clock=lambda: now[0])
    logged = [rej.rejected("float_parsing", "x") for _ in range(50)]
    assert logged.count(True) == 1
    now[0] = 61.0
    assert rej.rejected("float_parsing", "x") and rej.rejected("missing", "y")
    assert metrics.api_rejected.total() == 52


async def test_error_details_are_json_safe() -> None:
    errs = [
        {"loc": ("body", "\ud800"), "msg": "bad \udfff", "type": "t", "input": math.nan},
        {"loc": ("body",), "msg": "m", "type": "t", "input": {"k": [math.inf, "y" * 5000]}},
        {"loc": ("body",), "msg": "m", "type": "t", "ctx": {"error": ValueError("\ud800")}},
    ]
    out = error_details(errs)
    text = json.dumps(out, allow_nan=False)
    text.encode("utf-8")
    assert len(text) < 2000 and [set(e) >= {"loc", "msg", "type"} for e in out] == [True] * 3


async def test_cli_quote_refuses_spans_over_the_bound(gw: Any) -> None:
    env = {**os.environ, "CITYGATE_DATABASE__URL": json.dumps(gw.settings.database.url)}

    async def cli(exit_at: str) -> tuple[int | None, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "gateway.cli", "tariff", "quote", "--site", "cp-shiminting"),
            *("--vehicle", "small", "--entry", "2026-01-01T00:00:00+08:00", "--exit", exit_at),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=env,
        )
        _, err = await proc.communicate()
        return proc.returncode, err.decode()

    (code_far, err_far), (code_long, err_long) = await asyncio.gather(
        cli("4026-01-01T00:00:00+08:00"), cli("2030-01-01T00:00:00+08:00")
    )
    assert code_far == 2 and "2200-01-01" in err_far, err_far
    assert code_long == 2 and "at most 366 days" in err_long, err_long


async def test_list_and_path_bounds_are_422(gw: Any, http: httpx.AsyncClient) -> None:
    many = [("site", f"s{i}") for i in range(501)]
    r = await http.get("/api/v1/vacancies/stream", params=many)
    assert r.status_code == 422 and "at most 500 site ids" in r.text
    r = await http.get("/api/v1/vacancies/stream", params=[("site", "x" * 3000)] * 10)
    assert r.status_code == 404 and len(r.text) < 200  # the error does not echo it all
    operator = (await make_tokens(gw))["operator"]
    r = await http.post(
        "/api/v1/payments/" + "p" * 200 + "/refunds",
        json={"amount_fen": 1, "reason": "x"},
        headers={"Authorization": f"Bearer {operator}", "Idempotency-Key": "k" * 20},
    )
    assert r.status_code == 422 and "payment_id" in r.text, r.text
