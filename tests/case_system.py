"""A real HTTP server playing the town's case system, for tests.

It verifies ``X-Citygate-Signature`` on its own (plain ``hmac``, as docs/cases.md tells the
case system to; deliberately not via gateway.cases.signing), records every raw request, and
files each report once per ``Idempotency-Key``: a repeated key with the same bytes is answered
like the first time (or with 409 when ``duplicate_status`` says so), a repeated key with
other bytes is refused with 422. It can be told to fail (``fail_next``), to answer slowly
(``delay_s``) or to be down (``stop``; ``start`` again on the same port).

Use it as a fixture::

    from tests.case_system import CaseSystem, case_system_fixture  # noqa: F401

    async def test_x(case_system: CaseSystem) -> None: ...
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import secrets
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import web

from gateway.demo.broker import free_port

PATH = "/api/cases"


@dataclass
class Receipt:
    """One raw request as it arrived."""

    key: str | None
    body: bytes
    headers: dict[str, str]
    signature_ok: bool
    at: float  # time.monotonic()
    status: int | None = None  # what was answered (None while still answering)


@dataclass
class CaseSystem:
    secret: bytes = field(default_factory=lambda: secrets.token_hex(32).encode())
    port: int = field(default_factory=free_port)
    tolerance_s: int = 300
    ssl_context: ssl.SSLContext | None = None
    delay_s: float = 0.0
    duplicate_status: int = 200
    received: list[Receipt] = field(default_factory=list)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)  # by idempotency key
    remote_ids: dict[str, str] = field(default_factory=dict)
    _bodies: dict[str, bytes] = field(default_factory=dict)
    _fail: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    _runner: web.AppRunner | None = None
    _stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}{PATH}"

    @property
    def up(self) -> bool:
        return self._runner is not None

    def fail_next(
        self, status: int, times: int = 1, body: str = "", headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next *times* well-signed requests with *status* (and file nothing)."""
        self._fail.extend([(status, body, headers or {})] * times)

    def receipts(self, key: str) -> list[Receipt]:
        return [r for r in self.received if r.key == key]

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(PATH, self._handle)
        self._stopping = asyncio.Event()
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", self.port, ssl_context=self.ssl_context)
        await site.start()
        self._runner = runner

    async def stop(self) -> None:
        """Down: connections are refused until :meth:`start`."""
        runner, self._runner = self._runner, None
        self._stopping.set()  # slow answers end now
        if runner is not None:
            await runner.cleanup()

    # -- the receiving side of docs/cases.md ----------------------------------------------

    def signature_ok(self, header: str | None, body: bytes) -> bool:
        if not header:
            return False
        fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        try:
            timestamp = int(fields["t"])
        except (KeyError, ValueError):
            return False
        if abs(time.time() - timestamp) > self.tolerance_s:
            return False
        expected = hmac.new(
            self.secret, f"{timestamp}.".encode() + body, hashlib.sha256
        ).hexdigest()
        return hmac.compare_digest(expected, fields.get("v1", ""))

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = request.headers.get("Idempotency-Key")
        receipt = Receipt(
            key=key,
            body=body,
            headers=dict(request.headers),
            signature_ok=self.signature_ok(request.headers.get("X-Citygate-Signature"), body),
            at=time.monotonic(),
        )
        self.received.append(receipt)
        response = await self._answer(receipt)
        receipt.status = response.status
        return response

    async def _answer(self, receipt: Receipt) -> web.Response:
        if not receipt.signature_ok:
            return web.json_response({"error": "bad signature"}, status=401)
        if self._fail:
            status, text, headers = self._fail.pop(0)
            return web.Response(status=status, text=text, headers=headers)
        if receipt.headers.get("Content-Type") != "application/json; charset=utf-8":
            return web.json_response({"error": "content type"}, status=415)
        try:
            report = json.loads(receipt.body.decode("utf-8"))
        except ValueError:
            return web.json_response({"error": "not JSON"}, status=400)
        key = receipt.key
        if not key or report.get("id") != key:
            return web.json_response({"error": "Idempotency-Key must equal id"}, status=400)
        if key in self.cases:
            if self._bodies[key] != receipt.body:
                return web.json_response({"error": "key reused, other payload"}, status=422)
            return web.json_response(
                {"case_id": self.remote_ids[key]}, status=self.duplicate_status
            )
        self.cases[key] = report  # filed (committed) before the slow answer
        self._bodies[key] = receipt.body
        self.remote_ids[key] = f"SD-{len(self.cases):06d}"
        if self.delay_s:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.delay_s)
        return web.json_response({"case_id": self.remote_ids[key]}, status=201)


@pytest_asyncio.fixture(name="case_system")
async def case_system_fixture() -> AsyncIterator[CaseSystem]:
    """A running case system on a free loopback port (``stop()``/``start()`` it at will)."""
    system = CaseSystem()
    await system.start()
    try:
        yield system
    finally:
        await system.stop()
