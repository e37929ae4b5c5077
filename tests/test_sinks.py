"""HTTP line-protocol sinks (telemetry.sinks) against real servers and tiny aiohttp fakes.

Real: v2 into VictoriaMetrics (``/api/v2/write``), v1 into InfluxDB 1.6 (``/write``), read back
and compared field by field. Fakes (aiohttp, optionally TLS via trustme) for what the real ones
cannot show here: 429/503 with Retry-After, 401, 413, timeouts, redirects, an InfluxDB-2-like
server that refuses a whole batch for one bad line.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiohttp import web

from telemetry.sinks import (
    SinkConfig,
    WriteOk,
    WriteRejected,
    WriteRetry,
    make_sink,
    parse_retry_after,
)
from tests.conftest import free_port, wait_for
from tests.telemetry_servers import (  # noqa: F401 - *_fixture register the fixtures
    Influx1,
    Victoria,
    influx1_fixture,
    influx1_query,
    influx1_query_async,
    own_influx1_fixture,
    own_victoria_fixture,
    victoria_fixture,
    vm_points_async,
)

SECRET = "s3cr3t-t0ken-do-not-log"
HOUR_NS = 3600 * 10**9


def base_ns() -> int:
    """An hour ago, on a whole second: recent enough for any retention, ms-exact for VM."""
    return (time.time_ns() - HOUR_NS) // 10**9 * 10**9


def point(measurement: str, i: int, ts: int, site: str = "s1") -> tuple[str, dict[str, Any]]:
    """One line of line protocol and the fields it carries."""
    fields: dict[str, Any] = {
        "count": i * 7 - 300,  # ints, negative too
        "temp": 21.5 + i * 0.25,
        "occupied": i % 3 == 0,
        "note": f'gate "{i}", ok',
    }
    note = fields["note"].replace("\\", "\\\\").replace('"', '\\"')
    line = (
        f"{measurement},site={site},kind=berth "
        f"count={fields['count']}i,temp={fields['temp']!r},"
        f'occupied={"true" if fields["occupied"] else "false"},note="{note}" {ts}'
    )
    return line, fields


def config(url: str, mode: str = "v2", **kw: Any) -> SinkConfig:
    defaults: dict[str, Any] = {"org": "town", "bucket": "telemetry", "database": "telemetry"}
    defaults.update(kw)
    return SinkConfig(url=url, mode=mode, **defaults)  # type: ignore[arg-type]


# -- a tiny InfluxDB look-alike ------------------------------------------------------------------
def valid(line: str) -> bool:
    """Good enough for a fake: ``measurement[,tags] fields timestamp``."""
    head, _, ts = line.rpartition(" ")
    return ts.isdigit() and " " in head and "=" in head.partition(" ")[2]


@dataclass
class Seen:
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    lines: list[str]


Responder = Callable[[Seen], Awaitable[web.StreamResponse | None] | web.StreamResponse | None]


@dataclass
class FakeInflux:
    """Answers ``/api/v2/write`` and ``/write``. ``respond`` may return a response; else the
    batch is checked like InfluxDB 2 checks it, all or nothing: one bad line refuses the batch
    (400, nothing stored)."""

    url: str = ""
    respond: Responder | None = None
    requests: list[Seen] = field(default_factory=list)
    stored: list[str] = field(default_factory=list)
    bad_status: int = 400

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()  # aiohttp undoes Content-Encoding: gzip
        seen = Seen(
            request.path,
            dict(request.query),
            dict(request.headers),
            [line for line in body.decode().split("\n") if line],
        )
        self.requests.append(seen)
        if self.respond is not None:
            answer = self.respond(seen)
            if asyncio.iscoroutine(answer):
                answer = await answer
            if answer is not None:
                return answer  # type: ignore[return-value]
        bad = [line for line in seen.lines if not valid(line)]
        if bad:
            message = f"unable to parse '{bad[0]}': bad timestamp"
            return web.json_response({"code": "invalid", "message": message}, status=400)
        self.stored.extend(seen.lines)
        return web.Response(status=204)


FakeFactory = Callable[..., Awaitable[FakeInflux]]


@pytest.fixture
async def fake_influx() -> AsyncIterator[FakeFactory]:
    runners: list[web.AppRunner] = []

    async def start(
        respond: Responder | None = None, ssl_context: ssl.SSLContext | None = None
    ) -> FakeInflux:
        fake = FakeInflux(respond=respond)
        app = web.Application(client_max_size=64 * 2**20)
        app.router.add_post("/api/v2/write", fake.handle)
        app.router.add_post("/write", fake.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        fake.url = f"{'https' if ssl_context else 'http'}://127.0.0.1:{port}"
        return fake

    yield start
    for runner in runners:
        await runner.cleanup()


# -- real servers: write, read back, compare ---------------------------------------------------
@pytest.mark.slow
async def test_v2_into_victoriametrics_gzip_on_and_off(victoria: Victoria) -> None:
    base = base_ns()
    expected: dict[str, dict[int, dict[str, Any]]] = {}
    for gzip in (True, False):
        measurement = f"sinkv2_{'gz' if gzip else 'plain'}"
        points = [point(measurement, i, base + i * 10**9) for i in range(300)]
        expected[measurement] = {(base + i * 10**9) // 10**6: f for i, (_, f) in enumerate(points)}
        sink = make_sink(config(victoria.url, "v2", gzip=gzip, token=SECRET))
        try:
            lines = [line for line, _ in points]
            assert await sink.write(lines[:150]) == WriteOk(150)
            assert await sink.write(tuple(lines[150:])) == WriteOk(150)
        finally:
            await sink.close()

    total = 300 * 4 * 2  # points x fields x measurements

    async def all_visible() -> dict[Any, float] | None:
        got = await vm_points_async(victoria.url, "sinkv2_.*")
        return got if len(got) >= total else None

    got = await wait_for(all_visible, timeout=20, interval=0.2, what="points in VictoriaMetrics")
    assert len(got) == total
    tags = frozenset({("site", "s1"), ("kind", "berth")})
    for measurement, by_ts in expected.items():
        for ts_ms, fields in by_ts.items():
            assert got[(f"{measurement}_count", tags, ts_ms)] == fields["count"]
            assert got[(f"{measurement}_temp", tags, ts_ms)] == pytest.approx(fields["temp"])
            assert got[(f"{measurement}_occupied", tags, ts_ms)] == int(fields["occupied"])
            assert got[(f"{measurement}_note", tags, ts_ms)] == 0  # VM stores strings as 0


@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
async def test_v1_into_influxdb1(influx1: Influx1, gzip: bool) -> None:
    db = f"sinkv1_{'gz' if gzip else 'plain'}"
    influx1.create_database(db)
    base = base_ns() + 123_456_789  # nanosecond timestamps survive as such
    points = [point("berth", i, base + i * 1_000_001) for i in range(500)]
    sink = make_sink(config(influx1.url, "v1", database=db, gzip=gzip))
    try:
        assert await sink.write([line for line, _ in points]) == WriteOk(500)
    finally:
        await sink.close()

    rows = await influx1_query_async(influx1.url, db, "SELECT * FROM berth")
    assert len(rows) == 500
    for row, (i, (_, fields)) in zip(rows, enumerate(points), strict=True):
        assert row["time"] == base + i * 1_000_001
        assert (row["site"], row["kind"]) == ("s1", "berth")
        assert {k: row[k] for k in fields} == fields
        assert type(row["count"]) is int and type(row["occupied"]) is bool


@pytest.mark.slow
async def test_server_stopped_then_back(own_victoria: Victoria, own_influx1: Influx1) -> None:
    own_influx1.create_database("outage")
    base = base_ns()
    sinks = {
        "v2": make_sink(config(own_victoria.url, "v2")),
        "v1": make_sink(config(own_influx1.url, "v1", database="outage")),
    }
    servers: dict[str, Victoria | Influx1] = {"v2": own_victoria, "v1": own_influx1}
    try:
        for mode, sink in sinks.items():
            lines = [point(f"outage_{mode}", i, base + i * 10**9)[0] for i in range(10)]
            assert await sink.write(lines[:5]) == WriteOk(5)  # a kept-alive connection exists
            servers[mode].stop()
            result = await sink.write(lines[5:])
            assert isinstance(result, WriteRetry), result
            assert servers[mode].url.removeprefix("http://") in result.reason
            assert result.retry_after_s is None
            servers[mode].start()
            assert await sink.write(lines[5:]) == WriteOk(5)
    finally:
        for sink in sinks.values():
            await sink.close()

    rows = await influx1_query_async(own_influx1.url, "outage", "SELECT count FROM outage_v1")
    assert [row["count"] for row in rows] == [i * 7 - 300 for i in range(10)]

    async def ten_in_vm() -> bool:
        return len(await vm_points_async(own_victoria.url, "outage_v2_count")) == 10

    await wait_for(ten_in_vm, timeout=20, interval=0.2, what="points after restart")


async def test_connection_refused_is_retry() -> None:
    for mode in ("v1", "v2"):
        sink = make_sink(config(f"http://127.0.0.1:{free_port()}", mode))
        try:
            result = await sink.write(["m v=1i 1"])
        finally:
            await sink.close()
        assert isinstance(result, WriteRetry)
        assert "cannot connect" in result.reason


# -- bad points: exactly those, every other one written ----------------------------------------
MALFORMED = ["berth,site=s1 count=1i,temp=oops-not-a-number", "berth,site=s1 count=2i 17x"]


def batch_with_two_malformed(base: int) -> tuple[list[str], list[str], list[int]]:
    lines, good_ts = [], []
    for i in range(98):
        ts = base + i * 10**9
        lines.append(point("berth", i, ts)[0])
        good_ts.append(ts)
    lines.insert(17, MALFORMED[0])
    lines.insert(63, MALFORMED[1])
    return lines, MALFORMED, good_ts


async def test_v1_malformed_lines_rejected_exactly(influx1: Influx1) -> None:
    influx1.create_database("sinkv1_bad")
    lines, bad, good_ts = batch_with_two_malformed(base_ns())
    sink = make_sink(config(influx1.url, "v1", database="sinkv1_bad"))
    try:
        result = await sink.write(lines)
    finally:
        await sink.close()
    assert isinstance(result, WriteRejected), result
    assert result.bad_lines == bad
    assert result.good_lines_written == 98
    assert len(result.reasons) == 2
    assert all("HTTP 400" in r and "unable to parse" in r for r in result.reasons)
    assert result.reason.startswith("2 lines refused")

    rows = await influx1_query_async(influx1.url, "sinkv1_bad", "SELECT * FROM berth")
    assert [row["time"] for row in rows] == good_ts
    assert [row["count"] for row in rows] == [i * 7 - 300 for i in range(98)]


@pytest.mark.parametrize("status", [400, 422])
async def test_v2_malformed_lines_rejected_exactly(fake_influx: FakeFactory, status: int) -> None:
    def refuse_with(seen: Seen) -> web.Response | None:
        bad = [line for line in seen.lines if not valid(line)]
        if bad:
            message = f"unable to parse '{bad[0]}'"
            return web.json_response({"code": "invalid", "message": message}, status=status)
        return None

    fake = await fake_influx(refuse_with)
    lines, bad, _ = batch_with_two_malformed(base_ns())
    sink = make_sink(config(fake.url, "v2"))
    try:
        result = await sink.write(lines)
    finally:
        await sink.close()
    assert isinstance(result, WriteRejected), result
    assert result.bad_lines == bad
    assert result.good_lines_written == 98
    assert result.reasons == [f"HTTP {status}: unable to parse '{line}'" for line in bad]
    # this server stores nothing of a refused batch: the good lines were re-sent in halves,
    # each exactly once, in order
    assert fake.stored == [line for line in lines if line not in bad]
    assert len(fake.requests) <= 2 * 2 * 7 + 1  # O(bad x log2(n)) requests, not O(n)


async def test_all_good_after_bisect_is_ok(fake_influx: FakeFactory) -> None:
    """A 400 for the batch as a whole whose lines all pass one by one: nothing is dead-lettered."""
    calls = 0

    def first_refused(seen: Seen) -> web.Response | None:
        nonlocal calls
        calls += 1
        return web.json_response({"message": "transient"}, status=400) if calls == 1 else None

    fake = await fake_influx(first_refused)
    sink = make_sink(config(fake.url, "v1"))
    try:
        assert await sink.write([f"m v={i}i {i + 1}" for i in range(10)]) == WriteOk(10)
    finally:
        await sink.close()
    assert len(fake.stored) == 10


async def test_server_lost_mid_bisect_is_retry(fake_influx: FakeFactory) -> None:
    calls = 0

    def then_unavailable(seen: Seen) -> web.Response:
        nonlocal calls
        calls += 1
        status = 400 if calls == 1 else 503
        return web.json_response({"message": "no"}, status=status)

    fake = await fake_influx(then_unavailable)
    sink = make_sink(config(fake.url, "v2"))
    try:
        result = await sink.write(["m v=1i 1", "m v=2i 2", "m v=3i 3"])
    finally:
        await sink.close()
    assert isinstance(result, WriteRetry)
    assert "503" in result.reason


@pytest.mark.parametrize("mode", ["v1", "v2"])
async def test_413_splits_the_batch(fake_influx: FakeFactory, mode: str) -> None:
    def at_most_16_lines(seen: Seen) -> web.Response | None:
        if len(seen.lines) > 16:
            return web.Response(status=413, text="Request Entity Too Large")
        return None

    fake = await fake_influx(at_most_16_lines)
    lines = [f"m v={i}i {i + 1}" for i in range(100)]
    sink = make_sink(config(fake.url, mode))
    try:
        assert await sink.write(lines) == WriteOk(100)
    finally:
        await sink.close()
    assert fake.stored == lines

    fake.respond = lambda seen: web.Response(status=413, text="too big")
    sink = make_sink(config(fake.url, mode))
    try:
        result = await sink.write(["m v=1i 1"])
    finally:
        await sink.close()
    assert isinstance(result, WriteRejected)
    assert "413" in result.reason and "single line" in result.reason


# -- back-pressure: 429 / 503 with Retry-After, timeouts --------------------------------------
@pytest.mark.parametrize("mode", ["v1", "v2"])
@pytest.mark.parametrize("status", [429, 503])
@pytest.mark.parametrize("form", ["seconds", "http-date", "absent"])
async def test_retry_after(fake_influx: FakeFactory, mode: str, status: int, form: str) -> None:
    headers = {}
    if form == "seconds":
        headers["Retry-After"] = "7"
    elif form == "http-date":
        headers["Retry-After"] = email.utils.formatdate(time.time() + 30, usegmt=True)
    fake = await fake_influx(
        lambda seen: web.json_response({"message": "slow down"}, status=status, headers=headers)
    )
    sink = make_sink(config(fake.url, mode))
    try:
        result = await sink.write(["m v=1i 1"] * 3)
    finally:
        await sink.close()
    assert isinstance(result, WriteRetry), result
    assert f"HTTP {status}" in result.reason and "slow down" in result.reason
    if form == "seconds":
        assert result.retry_after_s == 7
    elif form == "http-date":
        assert result.retry_after_s == pytest.approx(30, abs=2)
    else:
        assert result.retry_after_s is None
    assert len(fake.requests) == 1  # no bisecting, no retrying inside the sink


@pytest.mark.parametrize("mode", ["v1", "v2"])
async def test_timeout_is_retry(fake_influx: FakeFactory, mode: str) -> None:
    release = asyncio.Event()

    async def stuck(seen: Seen) -> None:
        await release.wait()

    fake = await fake_influx(stuck)
    sink = make_sink(config(fake.url, mode, timeout_s=0.2))
    try:
        started = time.monotonic()
        result = await sink.write(["m v=1i 1"])
    finally:
        release.set()
        await sink.close()
    assert isinstance(result, WriteRetry)
    assert "timeout" in result.reason
    assert time.monotonic() - started < 1.5


def test_parse_retry_after() -> None:
    now = 1_700_000_000.0
    assert parse_retry_after("120", now) == 120
    assert parse_retry_after(" 1.5 ", now) == 1.5
    assert parse_retry_after("-3", now) == 0
    assert parse_retry_after(email.utils.formatdate(now + 90, usegmt=True), now) == 90
    assert parse_retry_after(email.utils.formatdate(now - 90, usegmt=True), now) == 0
    for unreadable in (None, "", "soon", "nan", "Mon, 99 Foo 2024"):
        assert parse_retry_after(unreadable, now) is None


# -- credentials: sent, and never shown --------------------------------------------------------
AUTH_CASES = {
    "v1-basic": ({"mode": "v1", "username": "gw", "password": SECRET}, "Basic "),
    "v1-token": ({"mode": "v1", "token": SECRET}, f"Token {SECRET}"),
    "v2-token": ({"mode": "v2", "token": SECRET}, f"Token {SECRET}"),
    "v2-1.8-user": ({"mode": "v2", "username": "gw", "password": SECRET}, f"Token gw:{SECRET}"),
}


@pytest.mark.parametrize("case", list(AUTH_CASES))
@pytest.mark.parametrize("status", [401, 403])
async def test_wrong_credentials_are_retry_without_secret(
    fake_influx: FakeFactory, caplog: pytest.LogCaptureFixture, case: str, status: int
) -> None:
    caplog.set_level(logging.DEBUG)
    kwargs, auth_prefix = AUTH_CASES[case]
    fake = await fake_influx(
        # a careless server that echoes what it got must not leak it either
        lambda seen: web.json_response(
            {"message": f"authorization failed for {seen.headers.get('Authorization')}"},
            status=status,
        )
    )
    cfg = config(fake.url, **kwargs)
    sink = make_sink(cfg)
    try:
        result = await sink.write(["m v=1i 1", "m v=2i 2"])
    finally:
        await sink.close()
    assert fake.requests[0].headers["Authorization"].startswith(auth_prefix)
    assert len(fake.requests) == 1
    assert isinstance(result, WriteRetry), result
    assert f"HTTP {status}" in result.reason and "not authorized" in result.reason
    assert ("username/password" if "username" in kwargs else "token") in result.reason
    for text in (result.reason, repr(result), repr(sink), repr(cfg), str(cfg), caplog.text):
        assert SECRET not in text


@pytest.mark.parametrize("message", ["Please provide either orgID or org", "database is required"])
async def test_400_about_the_request_is_retry(fake_influx: FakeFactory, message: str) -> None:
    """A 400 about org/bucket/database would refuse every line: retry, never dead-letter."""
    fake = await fake_influx(
        lambda seen: web.json_response({"code": "invalid", "message": message}, status=400)
    )
    sink = make_sink(config(fake.url, "v2", org=""))
    try:
        result = await sink.write([f"m v={i}i {i + 1}" for i in range(8)])
    finally:
        await sink.close()
    assert isinstance(result, WriteRetry), result
    assert message in result.reason and "not its points" in result.reason
    assert len(fake.requests) == 1


async def test_404_names_what_to_check(fake_influx: FakeFactory) -> None:
    fake = await fake_influx(
        lambda seen: web.json_response({"error": 'database not found: "nope"'}, status=404)
    )
    sink = make_sink(config(fake.url, "v1", database="nope"))
    try:
        result = await sink.write(["m v=1i 1"])
    finally:
        await sink.close()
    assert isinstance(result, WriteRetry)
    assert "HTTP 404" in result.reason and "'nope'" in result.reason


@pytest.mark.parametrize("mode", ["v1", "v2"])
@pytest.mark.parametrize("gzip", [True, False], ids=["gzip", "plain"])
async def test_wire_format(fake_influx: FakeFactory, mode: str, gzip: bool) -> None:
    fake = await fake_influx()
    cfg = config(
        fake.url + "/",
        mode,
        database="db1",
        retention_policy="rp1",
        bucket="b1",
        org="o1",
        gzip=gzip,
        token="tok",
    )
    sink = make_sink(cfg)
    lines = [f"m,site=s1 v={i}i {i + 1}" for i in range(1000)]
    try:
        assert await sink.write(lines) == WriteOk(1000)
        assert await sink.write([]) == WriteOk(0)
    finally:
        await sink.close()
    [seen] = fake.requests
    assert seen.lines == lines
    assert seen.headers.get("Content-Encoding") == ("gzip" if gzip else None)
    assert seen.headers["Authorization"] == "Token tok"
    if mode == "v1":
        assert seen.path == "/write"
        assert seen.query == {"db": "db1", "rp": "rp1", "precision": "ns"}
    else:
        assert seen.path == "/api/v2/write"
        assert seen.query == {"org": "o1", "bucket": "b1", "precision": "ns"}


async def test_v2_bucket_defaults_to_database_and_rp(fake_influx: FakeFactory) -> None:
    fake = await fake_influx()
    sink = make_sink(
        SinkConfig(url=fake.url, mode="v2", database="telegraf", retention_policy="autogen")
    )
    try:
        assert await sink.write(["m v=1i 1"]) == WriteOk(1)
    finally:
        await sink.close()
    assert fake.requests[0].query["bucket"] == "telegraf/autogen"


# -- TLS ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[ssl.SSLContext, Path, Path]:
    """(server context, file of the CA that signed it, file of an unrelated CA)."""
    ca, other = trustme.CA(), trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    tmp = tmp_path_factory.mktemp("tls")
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    other.cert_pem.write_to_path(str(tmp / "other-ca.pem"))
    return server, tmp / "ca.pem", tmp / "other-ca.pem"


@pytest.mark.parametrize("mode", ["v1", "v2"])
async def test_https_with_private_ca(
    fake_influx: FakeFactory, tls: tuple[ssl.SSLContext, Path, Path], mode: str
) -> None:
    server_ctx, ca_file, _ = tls
    fake = await fake_influx(ssl_context=server_ctx)
    sink = make_sink(config(fake.url, mode, ca_file=ca_file, token=SECRET))
    try:
        assert await sink.write(["m v=1i 1", "m v=2i 2"]) == WriteOk(2)
    finally:
        await sink.close()
    assert fake.stored == ["m v=1i 1", "m v=2i 2"]


@pytest.mark.parametrize("mode", ["v1", "v2"])
@pytest.mark.parametrize("trust", ["system-store", "other-ca"])
async def test_https_untrusted_fails_without_fallback(
    fake_influx: FakeFactory, tls: tuple[ssl.SSLContext, Path, Path], mode: str, trust: str
) -> None:
    server_ctx, _, other_ca = tls
    fake = await fake_influx(ssl_context=server_ctx)
    ca_file = other_ca if trust == "other-ca" else None
    sink = make_sink(config(fake.url, mode, ca_file=ca_file, token=SECRET))
    try:
        result = await sink.write(["m v=1i 1"])
    finally:
        await sink.close()
    assert isinstance(result, WriteRetry), result
    assert "certificate" in result.reason and fake.url in result.reason
    assert SECRET not in result.reason
    assert fake.requests == []  # nothing was sent, over TLS or in clear


@pytest.mark.parametrize("mode", ["v1", "v2"])
async def test_redirect_to_plain_http_not_followed(
    fake_influx: FakeFactory, tls: tuple[ssl.SSLContext, Path, Path], mode: str
) -> None:
    server_ctx, ca_file, _ = tls
    plain = await fake_influx()
    fake = await fake_influx(
        lambda seen: web.Response(status=307, headers={"Location": plain.url + seen.path})
    )
    fake_tls = await fake_influx(
        lambda seen: web.Response(status=307, headers={"Location": plain.url + seen.path}),
        ssl_context=server_ctx,
    )
    for target, ca in ((fake, None), (fake_tls, ca_file)):
        sink = make_sink(config(target.url, mode, ca_file=ca, token=SECRET))
        try:
            result = await sink.write(["m v=1i 1"])
        finally:
            await sink.close()
        assert isinstance(result, WriteRetry), result
        assert "HTTP 307" in result.reason and "not followed" in result.reason
    assert plain.requests == []


# -- configuration -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"url": "ftp://h:1"}, "http"),
        ({"url": "localhost:8086"}, "http"),
        ({"url": f"http://gw:{SECRET}@h:8086"}, "credentials"),
        ({"url": "http://h:8086/?db=x"}, "query"),
        ({"url": "http://h:8086", "ca_file": Path("/ca.pem")}, "https"),
        ({"mode": "v3"}, "mode"),
        ({"mode": "v1", "database": ""}, "database"),
        ({"mode": "v2", "bucket": "", "database": ""}, "bucket"),
        ({"username": "gw"}, "together"),
        ({"timeout_s": 0}, "timeout"),
    ],
)
def test_config_validation(kwargs: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"url": "https://h:8086", "mode": "v2", "bucket": "b", "database": "d"}
    values.update(kwargs)
    with pytest.raises(ValueError, match=message) as info:
        SinkConfig(**values)
    assert SECRET not in str(info.value)


def test_secrets_not_in_repr() -> None:
    cfg = SinkConfig(url="https://h:8086", mode="v1", database="d", username="gw", password=SECRET)
    assert SECRET not in repr(cfg)
    assert SECRET not in repr(make_sink(cfg))
    cfg2 = SinkConfig(url="https://h:8086", mode="v2", bucket="b", token=SECRET)
    assert SECRET not in repr(cfg2) + repr(make_sink(cfg2))
    assert json.dumps(repr(make_sink(cfg2)))  # plain text


def test_sync_readback_helpers(influx1: Influx1) -> None:
    """The sync twins work outside an event loop (and report InfluxQL errors)."""
    influx1.create_database("sync_helpers")
    assert {"name": "sync_helpers"} in influx1_query(influx1.url, "", "SHOW DATABASES")
    with pytest.raises(RuntimeError, match="InfluxQL"):
        influx1_query(influx1.url, "nope", "SELECT * FROM")
