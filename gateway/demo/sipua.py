"""One UDP socket speaking SIP for one simulated device: requests it sends are client
transactions (retransmitted on RFC 3261 Timer E until a final response or Timer F, via
:class:`drivers.sip.transactions.ClientTransaction`), requests it receives go through a
server transaction table (a retransmitted query is answered from the cached response, not
handled twice). Garbage and stray responses are counted and dropped, never raised.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from drivers.sip.errors import SipParseError
from drivers.sip.message import SipRequest, SipResponse, parse_message
from drivers.sip.transactions import T1, T2, ClientTransaction, Retransmission, ServerTransactions

__all__ = ["Counters", "Outcome", "SipEndpoint"]

log = logging.getLogger(__name__)
Address = tuple[str, int]
OnRequest = Callable[[SipRequest, Address], None]


@dataclass
class Counters:
    """Shared by every endpoint of a simulator (one object, plain increments)."""

    sent: int = 0
    retransmissions: int = 0
    timeouts: int = 0
    garbage: int = 0
    stray_responses: int = 0
    requests_received: int = 0
    requests_retransmitted: int = 0


@dataclass(frozen=True)
class Outcome:
    """How a request ended: its final response (None after Timer F) and how long it took
    from the first send, in milliseconds of the monotonic clock."""

    response: SipResponse | None
    elapsed_ms: float


class SipEndpoint(asyncio.DatagramProtocol):
    def __init__(
        self,
        on_request: OnRequest,
        counters: Counters,
        *,
        t1: float = T1,
        t2: float = T2,
    ) -> None:
        self.on_request = on_request
        self.counters = counters
        self.t1 = t1
        self.t2 = t2
        self.transport: asyncio.DatagramTransport | None = None
        self.local: Address = ("0.0.0.0", 0)
        self._pending: dict[str, tuple[ClientTransaction, asyncio.Future[SipResponse]]] = {}
        self._server = ServerTransactions(max_entries=256)
        self._expired_at = 0.0

    @classmethod
    async def open(
        cls, host: str, on_request: OnRequest, counters: Counters, **kw: float
    ) -> SipEndpoint:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_datagram_endpoint(
            lambda: cls(on_request, counters, **kw), local_addr=(host, 0)
        )
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.local = transport.get_extra_info("sockname")[:2]

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable while the platform is down: the timers handle it.
        log.debug("udp %s: %s", self.local, exc)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
        for _, fut in self._pending.values():
            if not fut.done():
                fut.cancel()

    def send_raw(self, data: bytes, dest: Address) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(data, dest)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        try:
            msg = parse_message(data)
        except SipParseError:
            self.counters.garbage += 1
            return
        now = asyncio.get_running_loop().time()
        if isinstance(msg, SipResponse):
            self._on_response(msg, now)
            return
        if now - self._expired_at > 1.0:
            self._server.expire(now)
            self._expired_at = now
        seen = self._server.receive(msg, now)
        if isinstance(seen, Retransmission):
            self.counters.requests_retransmitted += 1
            if seen.response is not None:
                self.send_raw(seen.response.to_bytes(), msg.top_via.response_target(addr))
            return
        self.counters.requests_received += 1
        try:
            self.on_request(msg, addr)
        except Exception:
            log.exception("simulated device failed on %s", msg.method)

    def respond(self, request: SipRequest, response: SipResponse, source: Address) -> None:
        """Send *response* where RFC 3261 §18.2.2 says and remember it for retransmissions."""
        self._server.respond(request, response, asyncio.get_running_loop().time())
        self.send_raw(response.to_bytes(), request.top_via.response_target(source))

    def _on_response(self, response: SipResponse, now: float) -> None:
        try:
            branch = response.top_via.branch or ""
        except SipParseError:
            self.counters.garbage += 1
            return
        entry = self._pending.get(branch)
        try:
            method = response.cseq.method
        except SipParseError:
            method = ""
        if entry is None or method != entry[0].method:  # §17.1.3: branch and CSeq method
            self.counters.stray_responses += 1
            return
        tx, fut = entry
        if tx.on_response(response, now) and response.status >= 200 and not fut.done():
            fut.set_result(response)

    async def request(self, request: SipRequest, dest: Address) -> Outcome:
        """Send *request* (its top Via gets a fresh branch) and wait for the final response,
        retransmitting on Timer E; ``Outcome(None, ...)`` after Timer F."""
        loop = asyncio.get_running_loop()
        began = time.perf_counter()
        tx = ClientTransaction.start(request, loop.time(), os.urandom, t1=self.t1, t2=self.t2)
        fut: asyncio.Future[SipResponse] = loop.create_future()
        branch = tx.branch  # a property that parses the Via: once
        self._pending[branch] = (tx, fut)
        wire = tx.request.to_bytes()
        try:
            self.counters.sent += 1
            self.send_raw(wire, dest)
            while True:
                now = loop.time()
                nxt = tx.next_send(now)
                until = tx.deadline() if nxt is None else min(nxt, tx.deadline())
                done, _ = await asyncio.wait({fut}, timeout=max(0.0, until - now))
                if done:
                    return Outcome(fut.result(), (time.perf_counter() - began) * 1000)
                now = loop.time()
                if tx.timed_out(now):
                    self.counters.timeouts += 1
                    return Outcome(None, (time.perf_counter() - began) * 1000)
                if nxt is not None and now >= nxt:
                    self.counters.retransmissions += 1
                    self.send_raw(wire, dest)
        finally:
            del self._pending[branch]
            if not fut.done():
                fut.cancel()
