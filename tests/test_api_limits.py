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
from datetime import datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio

from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.asyncio(loop_scope="module")

HEAD_S = 0.5
BODY_S = 1.5
MARGIN_S = 2.0
UNAUTH_BODIES = 4
AUTH_BODIES = 6
RATE = 0.5  # a token every 2 s: the burst below is done long before one refills, even loaded
BURST = 8
QUOTE = {
    "site_id": "cp-shiminting",
    "vehicle_class": "small",
    "entry": "2026-11-24T09:00:00+08:00",
    "exit": "2026-11-24T10:30:00+08:00",
}
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
    try:
        data = await asyncio.wait_for(reader.read(-1), within)
    except ConnectionResetError:  # closed with our bytes unread (a trickling client): a reset
        data = b""
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


# -- bodies in flight --------------------------------------------------------------------------
async def hold_body(gw: Any, token: str | None = None) -> tuple[Any, Any]:
    """A POST whose head is in and whose body never ends: it holds a body slot."""
    reader, writer = await connect(gw)
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    writer.write(
        b"POST /api/v1/quotes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"{auth}X-Forwarded-For: {client_ip()}\r\nContent-Length: 5000\r\n\r\n{{".encode()
    )
    await writer.drain()
    return reader, writer


async def test_bodies_past_the_cap_get_503_while_others_answer(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """Held unauthenticated bodies fill their pool: one more gets 503 + Retry-After at once,
    while a body with a real token, a made-up token's, reads and /healthz still answer; when
    the held bodies time out, the pool is free again."""
    before = rejected(gw, "busy_bodies")
    held = [await hold_body(gw) for _ in range(UNAUTH_BODIES)]
    xff = {"X-Forwarded-For": client_ip()}

    async def refused() -> bool:
        r = await http.post("/api/v1/quotes", json=QUOTE, headers=xff)
        return r.status_code == 503

    await wait_for(refused, BODY_S, what="503 past the cap")
    r = await http.post("/api/v1/quotes", json=QUOTE, headers=xff)
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "unavailable"
    big = {**QUOTE, "pad": "x" * 500_000}  # still on its way when the 503 is sent
    r = await http.post("/api/v1/quotes", json=big, headers=xff)
    assert r.status_code == 503, "the client reads its answer, not a connection reset"
    for headers in (
        {"Authorization": f"Bearer {tokens['device']}"},
        {"Authorization": "Bearer cg_madeup_notasecret"},  # the other pool: still a body
    ):
        r = await http.post("/api/v1/quotes", json=QUOTE, headers={**xff, **headers})
        assert r.status_code == 200, r.text
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.get("/api/v1/sites", headers=xff)).status_code == 200
    assert rejected(gw, "busy_bodies") >= before + 2

    for reader, writer in held:  # the deadline frees their slots
        data, _ = await until_closed(reader, BODY_S + MARGIN_S)
        assert data.startswith(b"HTTP/1.1 408")
        writer.close()
    r = await http.post("/api/v1/quotes", json=QUOTE, headers=xff)
    assert r.status_code == 200


async def test_made_up_tokens_cannot_starve_the_public_pool(
    gw: Any, http: httpx.AsyncClient
) -> None:
    held = [await hold_body(gw, "cg_fake_fake") for _ in range(AUTH_BODIES)]
    xff = {"X-Forwarded-For": client_ip()}
    fake = {**xff, "Authorization": "Bearer cg_fake_again"}

    async def refused() -> bool:
        r = await http.post("/api/v1/quotes", json=QUOTE, headers=fake)
        return r.status_code == 503

    await wait_for(refused, BODY_S, what="the bearer pool full")
    r = await http.post("/api/v1/quotes", json=QUOTE, headers=xff)  # no token: its own pool
    assert r.status_code == 200
    for _, writer in held:
        writer.close()


# -- rate limit --------------------------------------------------------------------------------
async def test_rate_limit_429_after_the_burst_then_refill(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    before = rejected(gw, "rate_limited")
    me = {"X-Forwarded-For": client_ip()}
    for _ in range(BURST):
        assert (await http.get("/api/v1/sites", headers=me)).status_code == 200
    r = await http.get("/api/v1/sessions", params={"plate": "甘G12345"}, headers=me)
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "rate_limited" and r.json()["status"] == 429
    assert int(r.headers["retry-after"]) >= 1
    assert rejected(gw, "rate_limited") == before + 1

    # others, probes and token routes are not this client's bucket
    other = {"X-Forwarded-For": client_ip()}
    assert (await http.get("/api/v1/sites", headers=other)).status_code == 200
    assert (await http.get("/healthz", headers=me)).status_code == 200
    tech = {**me, "Authorization": f"Bearer {tokens['technician']}"}
    assert (await http.get("/api/v1/devices", headers=tech)).status_code == 200
    # a token that verifies passes the empty bucket (the app's backend); a made-up one not
    assert (await http.get("/api/v1/sites", headers=tech)).status_code == 200
    fake = {**me, "Authorization": "Bearer cg_madeup_secret"}
    assert (await http.get("/api/v1/sites", headers=fake)).status_code == 429

    start = time.monotonic()

    async def admitted() -> bool:
        return (await http.get("/api/v1/sites", headers=me)).status_code == 200

    await wait_for(admitted, 1 / RATE + MARGIN_S, interval=0.01, what="a token refilled")
    took = time.monotonic() - start
    assert took <= 1 / RATE + MARGIN_S
    assert (await http.get("/api/v1/sites", headers=me)).status_code == 429  # one, not a burst


async def test_openapi_names_the_new_refusals(http: httpx.AsyncClient) -> None:
    paths = (await http.get("/openapi.json", headers={"X-Forwarded-For": client_ip()})).json()
    paths = paths["paths"]
    assert "429" in paths["/api/v1/sites"]["get"]["responses"]
    assert "429" in paths["/api/v1/sessions"]["get"]["responses"]
    assert "429" not in paths["/api/v1/devices"]["get"]["responses"]  # a token route
    assert "429" not in paths["/healthz"]["get"]["responses"]
    assert "503" in paths["/api/v1/quotes"]["post"]["responses"]
    assert "public view" in paths["/api/v1/sessions"]["get"]["description"]
    assert "public view" in paths["/api/v1/sessions/{session_id}"]["get"]["description"]


# -- what a bare plate reveals -----------------------------------------------------------------
PRIVATE = {"site_id", "berth_id", "berth_number", "note"}


async def test_a_bare_plate_shows_what_is_owed_not_where(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    read = {
        "camera_id": "cam-in",
        "site_id": "cp-shiminting",
        "direction": "in",
        "plate": "甘G77777",
        "ts": gw.services.clock().isoformat(),
    }
    device = {"Authorization": f"Bearer {tokens['device']}"}
    r = await http.post("/api/v1/plate-reads", json=read, headers=device)
    assert r.status_code == 200 and r.json()["outcome"] == "opened", r.text
    sid = r.json()["session_id"]

    async def get(path: str, token: str | None = None) -> httpx.Response:
        h = {"X-Forwarded-For": client_ip()}
        if token:
            h["Authorization"] = f"Bearer {token}"
        return await http.get(path, params={"plate": "甘G77777"}, headers=h)

    for token in (None, tokens["device"], tokens["technician"]):  # no token, or no right
        (s,) = (await get("/api/v1/sessions", token)).json()["sessions"]
        assert s["view"] == "public" and s["id"] == sid
        assert not PRIVATE & s.keys(), s
        assert s["state"] == "open" and s["plate"] == "甘G77777" and "due_fen" in s
        assert datetime.fromisoformat(s["entry"]) == datetime.fromisoformat(read["ts"])
        assert all("rule" not in line for line in s["lines"])
        one = (await get(f"/api/v1/sessions/{sid}", token)).json()
        assert one["view"] == "public" and not PRIVATE & one.keys()
        assert "cp-shiminting" not in json.dumps([s, one], ensure_ascii=False)

    for role in ("payments", "operator", "inspector", "admin"):
        (s,) = (await get("/api/v1/sessions", tokens[role])).json()["sessions"]
        assert s["view"] == "full" and s["site_id"] == "cp-shiminting"
        one = (await get(f"/api/v1/sessions/{sid}", tokens[role])).json()
        assert one["view"] == "full" and one["site_id"] == "cp-shiminting"

    r = await get("/api/v1/sessions", "cg_madeup_notasecret")
    assert r.status_code == 401  # a broken credential is said, not quietly downgraded


async def test_logged_in_web_pages_are_not_the_addresses_bucket(
    gw: Any, http: httpx.AsyncClient, tokens: dict[str, str]
) -> None:
    """Staff behind one NAT address: with a login cookie that verifies, /web pages and their
    assets take nothing from the address's bucket and pass when it is empty; without a login,
    with a made-up cookie, and the login form's POST, they count by address."""
    from gateway.web import assets

    nat = {"X-Forwarded-For": client_ip()}
    staff = {**nat, "Cookie": f"cg_web={tokens['inspector']}"}
    css = next(iter(assets.ASSETS.values())).url
    for _ in range(3 * BURST):  # a person's day of pages, more than a burst
        assert (await http.get("/web/map", headers=staff)).status_code == 200
        assert (await http.get(css, headers=staff)).status_code == 200
    # ... and the address's bucket is still full for the anonymous clients behind it
    for _ in range(BURST):
        assert (await http.get("/api/v1/sites", headers=nat)).status_code == 200
    assert (await http.get("/api/v1/sites", headers=nat)).status_code == 429
    # the bucket is empty: the logged-in person still gets pages, nobody else does
    assert (await http.get("/web/map", headers=staff)).status_code == 200
    assert (await http.get("/web/login", headers=nat)).status_code == 429
    assert (await http.get(css, headers=nat)).status_code == 429
    fake = {**nat, "Cookie": "cg_web=cg_madeupid_" + "s" * 43}
    assert (await http.get("/web/map", headers=fake)).status_code == 429
    login = await http.post(
        "/web/login",
        headers={**staff, "Content-Type": "application/x-www-form-urlencoded"},
        content=b"token=cg_guess_secret&csrf=x",
    )
    assert login.status_code == 429  # guessing tokens is limited by address, cookie or not


async def test_web_pages_before_login_count_by_address(http: httpx.AsyncClient) -> None:
    me = {"X-Forwarded-For": client_ip()}
    for _ in range(BURST):
        assert (await http.get("/web/login", headers=me)).status_code == 200
    assert (await http.get("/web/login", headers=me)).status_code == 429
