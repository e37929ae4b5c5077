"""A NUL character (U+0000) anywhere a client can put text: every route's string query and
path parameters and every JSON body field, on SQLite and PostgreSQL (which cannot store a NUL
in text and raises): a 4xx, never a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

NUL = "a\x00b"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, module_db_url: str) -> AsyncIterator[Any]:
    async with running_gateway(gateway_settings(module_db_url, mosquitto)) as g:
        yield g


async def _calls(gw: Any) -> AsyncIterator[tuple[str, str, dict[str, Any], Any, str]]:
    """(method, path, query, json body, token) with a NUL in one place each."""
    tokens = await make_tokens(gw)
    admin = tokens.get("admin") or next(iter(tokens.values()))
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}", timeout=30) as c:
        spec = (await c.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in ("get", "post", "patch", "put", "delete"):
                continue
            params = [p for p in op.get("parameters", []) if p.get("in") in ("query", "path")]
            strings = [p for p in params if p.get("schema", {}).get("type", "string") == "string"]
            base = path
            for p in params:
                if p["in"] == "path":
                    base = base.replace("{" + p["name"] + "}", "x")
            for p in strings:
                if p["in"] == "path":
                    yield method, path.replace("{" + p["name"] + "}", "a%00b"), {}, None, admin
                else:
                    yield method, base, {p["name"]: NUL}, None, admin
            ref = (
                op.get("requestBody", {}).get("content", {}).get("application/json", {})
                .get("schema", {}).get("$ref", "")
            )  # fmt: skip
            fields = schemas.get(ref.rsplit("/", 1)[-1], {}).get("properties", {})
            for name in fields:
                yield method, base, {}, {name: NUL}, admin


async def test_a_nul_anywhere_is_a_4xx_never_a_5xx(gw: Any) -> None:
    tokens = await make_tokens(gw)
    failures = []
    n = 0
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}", timeout=30) as c:
        async for method, path, query, body, admin in _calls(gw):
            for token in {admin, *tokens.values()}:
                try:
                    r = await c.request(
                        method, path, params=query, json=body,
                        headers={"Authorization": f"Bearer {token}"}, timeout=5,
                    )  # fmt: skip
                except httpx.TimeoutException:
                    failures.append((method, path, query, body, "timeout", ""))
                    continue
                n += 1
                if r.status_code >= 500:
                    failures.append((method, path, query, body, r.status_code, r.text[:200]))
    assert n > 100
    assert failures == [], "\n".join(map(repr, failures))


async def test_a_nul_inside_a_json_body_is_a_422_before_any_route(gw: Any) -> None:
    """A lane's manual open records its reason: with a NUL inside (PostgreSQL would refuse
    the row, and the lane took that for a database failure: a 503), the answer is a 422,
    the same on either backend, and the gate is not opened."""
    tokens = await make_tokens(gw)
    lane = next(iter(gw.services.lanes.lanes))  # the sample town has lanes
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}", timeout=30) as c:
        r = await c.post(
            f"/api/v1/lanes/{lane}/open",
            json={"reason": "ambulance\x00 at the gate"},
            headers={"Authorization": f"Bearer {tokens['operator']}"},
        )
    assert r.status_code == 422 and r.json()["code"] == "nul_character", r.text
    assert gw.metrics_value("citygate_api_rejected_total", reason="nul_character") >= 1
