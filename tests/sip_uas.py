"""A small GB/T 28181 platform (UAS) for tests and the bench, built only from ``drivers/sip``
and ``drivers/gb28181``: REGISTER challenged with a fresh nonce and verified with
``digest.verify`` (HA1 stored, nonces checked for freshness and replay), MESSAGE bodies
parsed with ``parse_manscdp`` and answered 200, retransmissions answered from the server
transaction table. It can drop the first N responses of a method (to see the client
retransmit), send queries and a SUBSCRIBE to a registered cam, and it records what arrived.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from drivers.gb28181.manscdp import (
    Manscdp,
    QueryCmd,
    parse_manscdp,
    query_body,
    subscribe_position_body,
)
from drivers.gb28181.xmlsafe import ManscdpError
from drivers.sip.digest import Fresh, NonceBook, challenge, ha1, parse_authorization, verify
from drivers.sip.errors import SipParseError
from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest, SipResponse, parse_message, stamp_received
from drivers.sip.responses import response_to
from drivers.sip.transactions import ClientTransaction, New, ServerTransactions

PLATFORM_ID = "62072500082000000001"
REALM = PLATFORM_ID[:10]


@dataclass
class Arrival:
    at: float  # loop time
    request: SipRequest
    source: tuple[str, int]
    body: Manscdp | None = None


@dataclass
class Registration:
    contact: tuple[str, int]
    expires_at: float


@dataclass
class Uas:
    passwords: dict[str, str]  # device id -> password (only HA1 is kept below)
    qop: bool = True
    drop: dict[str, int] = field(default_factory=dict)  # method -> responses still to drop
    on_arrival: Callable[[Arrival], None] | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    registrations: dict[str, Registration] = field(default_factory=dict)
    auth_ok: int = 0
    auth_failed: int = 0
    dropped: int = 0
    transport: asyncio.DatagramTransport | None = None
    keep: bool = True  # keep arrivals (the bench turns it off)

    def __post_init__(self) -> None:
        self.ha1 = {d: ha1(d, REALM, p) for d, p in self.passwords.items()}
        self.passwords = {}
        self.nonces = NonceBook(os.urandom(32), lifetime=300)
        self.server = ServerTransactions()
        self.pending: dict[str, asyncio.Future[SipResponse]] = {}
        self.got: dict[str, list[Arrival]] = {}

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        proto = _Proto(self)
        transport, _ = await loop.create_datagram_endpoint(lambda: proto, local_addr=(host, port))
        self.transport = transport
        sock: tuple[str, int] = transport.get_extra_info("sockname")[:2]
        self.address = sock
        return sock

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def of(self, kind: str) -> list[Arrival]:
        """Arrivals by kind: REGISTER, or a MANSCDP type name (Keepalive, MobilePositions, ...)."""
        return self.got.get(kind, [])

    # -- receiving ---------------------------------------------------------------------------

    def received(self, data: bytes, source: tuple[str, int]) -> None:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        now = loop.time()
        try:
            msg = parse_message(data)
        except SipParseError:
            return
        if isinstance(msg, SipResponse):
            fut = self.pending.get(msg.top_via.branch or "")
            if fut is not None and not fut.done() and msg.status >= 200:
                fut.set_result(msg)
            return
        msg = stamp_received(msg, source)
        seen = self.server.receive(msg, now)
        if not isinstance(seen, New):
            if seen.response is not None:
                self._send(msg, seen.response, source, record=False)
            return
        response = self._handle(msg, source, now)
        self.server.respond(msg, response, now)
        self._send(msg, response, source)

    def _send(
        self, req: SipRequest, rsp: SipResponse, source: tuple[str, int], record: bool = True
    ) -> None:
        assert self.transport is not None
        left = self.drop.get(req.method, 0)
        if left > 0:
            self.drop[req.method] = left - 1
            self.dropped += 1
            return
        self.transport.sendto(rsp.to_bytes(), req.top_via.response_target(source))

    def _arrive(self, kind: str, arrival: Arrival) -> None:
        if self.keep:
            self.arrivals.append(arrival)
            self.got.setdefault(kind, []).append(arrival)
        if self.on_arrival is not None:
            self.on_arrival(arrival)

    def _handle(self, req: SipRequest, source: tuple[str, int], now: float) -> SipResponse:
        if req.method == "REGISTER":
            return self._register(req, source, now)
        if req.method in ("MESSAGE", "NOTIFY"):
            try:
                body = parse_manscdp(req.body, req.content_type)
            except ManscdpError:
                return response_to(req, 400)
            if body.device_id not in self.registrations and req.method == "MESSAGE":
                return response_to(req, 403)
            self._arrive(type(body).__name__, Arrival(now, req, source, body))
            return response_to(req, 200)
        return response_to(req, 405)

    def _register(self, req: SipRequest, source: tuple[str, int], now: float) -> SipResponse:
        user = req.from_.uri.removeprefix("sip:").partition("@")[0]
        auth = req.headers.get("Authorization")
        wall = datetime.now(UTC).timestamp()
        if auth is None:
            nonce = self.nonces.issue(wall, os.urandom(8))
            return response_to(
                req, 401, headers=[("WWW-Authenticate", challenge(REALM, nonce, qop=self.qop))]
            )
        creds = parse_authorization(auth)
        state = self.nonces.check(creds.nonce, creds.nc_value, wall)
        h = self.ha1.get(user)
        if not isinstance(state, Fresh) or h is None or creds.username != user:
            nonce = self.nonces.issue(wall, os.urandom(8))
            hdr = challenge(REALM, nonce, qop=self.qop, stale=not isinstance(state, Fresh))
            return response_to(req, 401, headers=[("WWW-Authenticate", hdr)])
        if not verify(creds, "REGISTER", h):
            self.auth_failed += 1
            return response_to(req, 403)
        self.nonces.commit(creds.nonce, creds.nc_value, wall)
        self.auth_ok += 1
        expires = int(req.headers.get("Expires") or "0")
        if expires == 0:
            self.registrations.pop(user, None)
        else:
            self.registrations[user] = Registration(source, now + expires)
        self._arrive("REGISTER", Arrival(now, req, source))
        date = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        return response_to(
            req,
            200,
            headers=[
                ("Expires", str(expires)),
                ("Date", date),
                ("Contact", req.headers.get("Contact") or ""),
            ],
        )

    # -- asking ------------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        device_id: str,
        body: bytes,
        extra: list[tuple[str, str]],
        call_id: str,
        from_tag: str,
        to_tag: str | None,
        cseq: int,
    ) -> SipRequest:
        host, port = self.address
        to = f"<sip:{device_id}@{REALM}>" + (f";tag={to_tag}" if to_tag else "")
        items = [
            ("Via", f"SIP/2.0/UDP {host}:{port};rport;branch=z9hG4bKx"),
            ("From", f"<sip:{PLATFORM_ID}@{REALM}>;tag={from_tag}"),
            ("To", to),
            ("Call-ID", call_id),
            ("CSeq", f"{cseq} {method}"),
            ("Contact", f"<sip:{PLATFORM_ID}@{host}:{port}>"),
            ("Max-Forwards", "70"),
            *extra,
            ("Content-Type", "Application/MANSCDP+xml"),
        ]
        reg = self.registrations[device_id]
        return SipRequest(
            method,
            f"sip:{device_id}@{reg.contact[0]}:{reg.contact[1]}",
            headers=Headers(items),
            body=body,
        )

    async def send(self, req: SipRequest, device_id: str, timeout: float = 5.0) -> SipResponse:
        assert self.transport is not None
        loop = asyncio.get_running_loop()
        tx = ClientTransaction.start(req, loop.time(), os.urandom)
        fut: asyncio.Future[SipResponse] = loop.create_future()
        self.pending[tx.branch] = fut
        try:
            self.transport.sendto(tx.request.to_bytes(), self.registrations[device_id].contact)
            return await asyncio.wait_for(fut, timeout)
        finally:
            del self.pending[tx.branch]

    async def query(self, cmd: QueryCmd, device_id: str, sn: int) -> SipResponse:
        req = self._request(
            "MESSAGE",
            device_id,
            query_body(cmd, sn, device_id),
            [],
            os.urandom(6).hex(),
            os.urandom(4).hex(),
            None,
            1,
        )
        return await self.send(req, device_id)

    async def subscribe(
        self,
        device_id: str,
        sn: int,
        interval: int,
        expires: int,
        *,
        dialog: tuple[str, str, str] | None = None,
        cseq: int = 1,
    ) -> SipResponse:
        """A MobilePosition SUBSCRIBE; *dialog* (call-id, our tag, the cam's tag) refreshes."""
        call_id, tag, to_tag = (
            dialog if dialog else (os.urandom(6).hex(), os.urandom(4).hex(), None)
        )
        extra = [("Event", "presence"), ("Expires", str(expires))]
        body = subscribe_position_body(sn, device_id, interval)
        return await self.send(
            self._request("SUBSCRIBE", device_id, body, extra, call_id, tag, to_tag, cseq),
            device_id,
        )


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, uas: Uas) -> None:
        self.uas = uas

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.uas.received(data, addr)
