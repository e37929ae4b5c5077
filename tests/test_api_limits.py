"""Resource limits of the HTTP API against a running gateway, over raw sockets: read deadlines
on the request head and body, the cap on bodies buffered at once, the per-client rate limit of
public routes, and what a bare plate reveals.

The gateway trusts X-Forwarded-For from 127.0.0.1, so each test is a client of its own
(``10.0.<n>.<m>``) and the rate limit of one does not spill into another.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEAD_S = 0.5
BODY_S = 0.5
MARGIN_S = 2.0
UNAUTH_BODIES = 4
AUTH_BODIES = 6
RATE = 5.0
BURST = 8
QUOTE = {"site_id": "cp-shiminting", "vehicle_class": "small"}
_clients = itertools.count(1)


def client_ip() -> str:
    """A fresh client address (the gateway believes X-Forwarded-For from 127.0.0.1)."""
    n = next(_clients)
    return f"10.0.{n // 250}.{n % 250 + 1}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("limits") / "cg.db"
    api = {
        "header_timeout_s": HEAD_S,
        "body_timeout_s": BODY_S,
        "max_unauthenticated_bodies": UNAUTH_BODIES,
        "max_authenticated_bodies": AUTH_BODIES,
        "rate_limit_per_s": RATE,
        "rate_limit_burst": BURST,
        "trusted_proxies": ["127.0.0.1"],
    }
    settings = gateway_settings(f"sqlite+aiosqlite:///{db}", mosquitto, api=api)
    async with running_gateway(settings) as g:
        yield g


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}", timeout=10) as c:
        yield c


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def tokens(gw: Any) -> dict[str, str]:
    return await make_tokens(gw)


async def connect(gw: Any) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", gw.api_port)


async def until_closed(reader: asyncio.StreamReader, within: float) -> tuple[bytes, float]:
    """Everything the server sends until it closes, and how long that took (fails after
    *within* seconds: the server kept the connection)."""
    start = time.monotonic()
    data = await asyncio.wait_for(reader.read(-1), within)
    return data, time.monotonic() - start


def rejected(gw: Any, reason: str) -> float:
    return float(gw.metrics_value("citygate_api_rejected_total", reason=reason))


# -- read deadlines ----------------------------------------------------------------------------
async def test_silent_and_slow_heads_are_cut_off(gw: Any) -> None:
    """20 clients that never finish their request head (one sends nothing, one trickles a
    byte every 50 ms) are all closed after header_timeout_s, not held."""
    before = rejected(gw, "header_timeout")
    conns = [await connect(gw) for _ in range(20)]
    for i, (_, w) in enumerate(conns[1:]):
        w.write(b"GET /api/v1/sites HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * i)
    await asyncio.gather(*(w.drain() for _, w in conns))

    async def trickle(w: asyncio.StreamWriter) -> None:
        while not w.is_closing():
            w.write(b"b")
            await asyncio.sleep(0.05)

    trickler = asyncio.create_task(trickle(conns[-1][1]))
    try:
        results = await asyncio.gather(*(until_closed(r, HEAD_S + MARGIN_S) for r, _ in conns))
    finally:
        trickler.cancel()
    for data, took in results:
        assert data == b"", "a head that never ended is answered with nothing"
        assert took >= HEAD_S * 0.8, f"closed after {took:.2f} s, before the deadline"
    for _, w in conns:
        w.close()
    assert rejected(gw, "header_timeout") >= before + 20


async def test_next_request_on_a_kept_alive_connection_has_its_own_head_deadline(
    gw: Any,
) -> None:
    reader, writer = await connect(gw)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status = await asyncio.wait_for(reader.readline(), 5)
    assert status.startswith(b"HTTP/1.1 200")
    await asyncio.wait_for(reader.readuntil(b'"ok"}'), 5)
    writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # the next request stalls in its head
    data, took = await until_closed(reader, HEAD_S + MARGIN_S)
    assert data == b"" and took >= HEAD_S * 0.8
    writer.close()


async def test_prompt_requests_are_untouched(http: httpx.AsyncClient) -> None:
    """A client that keeps its connection and pauses between requests (shorter than the
    keep-alive) is not cut off: the head deadline runs only while a head is being sent."""
    assert (await http.get("/healthz")).status_code == 200
    await asyncio.sleep(HEAD_S * 1.5)  # idle between requests (the condition under test)
    assert (await http.get("/healthz")).status_code == 200


async def test_slow_body_gets_408_problem_then_close(gw: Any) -> None:
    before = rejected(gw, "body_timeout")
    reader, writer = await connect(gw)
    body = json.dumps(QUOTE).encode()
    writer.write(
        b"POST /api/v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Forwarded-For: {client_ip()}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body[:5]
    )
    await writer.drain()
    data, took = await until_closed(reader, BODY_S + MARGIN_S)
    assert took >= BODY_S * 0.8
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408"), data
    assert b"application/problem+json" in head
    problem = json.loads(payload)
    assert problem["status"] == 408 and problem["code"] == "request_timeout"
    assert rejected(gw, "body_timeout") == before + 1
    writer.close()


async def test_trickled_body_is_cut_off_at_the_total_deadline(gw: Any) -> None:
    """A byte every 50 ms keeps the connection busy but does not move the deadline."""
    reader, writer = await connect(gw)
    writer.write(
        b"POST /api/v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"X-Forwarded-For: {client_ip()}\r\nContent-Length: 100000\r\n\r\n".encode()
    )

    async def trickle() -> None:
        while not writer.is_closing():
            writer.write(b" ")
            await asyncio.sleep(0.05)

    task = asyncio.create_task(trickle())
    try:
        data, took = await until_closed(reader, BODY_S + MARGIN_S)
    finally:
        task.cancel()
    assert data.startswith(b"HTTP/1.1 408"), data
    assert took >= BODY_S * 0.8
    writer.close()
