"""Header and body read deadlines for the HTTP server (uvicorn's h11 protocol, two timers).

uvicorn only times out an idle keep-alive connection (``timeout_keep_alive``, armed after a
response): a client that connects and sends nothing, or trickles its request head a byte at a
time, or its body, holds a connection and its buffers for as long as it likes. This protocol
adds two deadlines to each connection:

- the **head** (request line and headers) must be whole within ``header_timeout_s`` of the
  connection or of the first byte of the next request on a kept-alive one; else the
  connection is closed (nothing has been asked, so nothing is answered);
- the **body** must be whole within ``body_timeout_s`` of the end of the head (a total, so a
  trickle of one byte a second does not reset it); else the client gets a 408 problem when no
  response has started, and the connection is closed either way. The app's pending
  ``receive()`` returns ``http.disconnect``, so the request's task ends and frees its buffers.

It is passed to uvicorn as ``Config(http=...)``: the pure-Python h11 parser is what the gateway
runs (httptools is not a dependency), so this is the only HTTP protocol to cover.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from gateway.api.problems import MEDIA_TYPE, problem_body


def _timeout_response() -> tuple[h11.Response, bytes]:
    body = json.dumps(
        problem_body(408, "the request body did not arrive in time", "request_timeout"),
        separators=(",", ":"),
    ).encode()
    head = h11.Response(
        status_code=408,
        reason=b"Request Timeout",
        headers=[
            (b"content-type", MEDIA_TYPE.encode()),
            (b"content-length", str(len(body)).encode()),
            (b"connection", b"close"),
        ],
    )
    return head, body


class DeadlineProtocol(H11Protocol):
    """H11Protocol with a deadline on the request head and one on the body."""

    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    on_timeout: Callable[[str], None] = staticmethod(lambda reason: None)
    on_connect: Callable[[], None] | None = None  # called once a connection is made (TLS: done)

    _head_timer: asyncio.TimerHandle | None = None
    _head_since: float | None = None  # loop time the head being read began; None: none is
    _head_timer_for: float = 0.0  # the _head_since the pending head timer is due for
    _body_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.on_connect is not None:
            self.on_connect()
        self._arm_head()

    def data_received(self, data: bytes) -> None:
        if self.conn.their_state is h11.IDLE:
            self._arm_head()  # the first byte of a request on a kept-alive connection
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()  # a pipelined request may have been parsed

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_since = None
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._cancel_body()
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Move the timers along with the client's side of the h11 state machine."""
        state = self.conn.their_state
        if state is not h11.IDLE:
            self._cancel_head()
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout_s, self._body_late)
        else:
            self._cancel_body()

    # The head's timer is not cancelled when the head is whole: a kept-alive connection
    # would make and cancel one per request. It stays until it is due, and then sees whether
    # a head is still being read (and since when): the head it was set for, or a later one
    # with its own deadline, for which it is set again.
    def _arm_head(self) -> None:
        if self._head_since is None:
            self._head_since = self.loop.time()
            if self._head_timer is None:
                self._set_head_timer(self._head_since)

    def _set_head_timer(self, since: float) -> None:
        self._head_timer_for = since
        self._head_timer = self.loop.call_at(since + self.header_timeout_s, self._head_due)

    def _cancel_head(self) -> None:
        self._head_since = None

    def _head_due(self) -> None:
        self._head_timer = None
        since = self._head_since
        if since is None:
            return  # no head is being read: the next one sets the timer
        if since != self._head_timer_for:
            self._set_head_timer(since)  # a later head than the one it was set for
            return
        self._head_late()

    def _cancel_body(self) -> None:
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _head_late(self) -> None:
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.on_timeout("header_timeout")
        self.transport.close()

    def _body_late(self) -> None:
        self._body_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.on_timeout("body_timeout")
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            head, body = _timeout_response()
            try:
                out = self.conn.send(head) or b""
                out += self.conn.send(h11.Data(data=body)) or b""
                out += self.conn.send(h11.EndOfMessage()) or b""
            except h11.LocalProtocolError:
                out = b""
            self.transport.write(out)
            cycle.response_started = cycle.response_complete = True
        if cycle is not None:
            cycle.disconnected = True  # the app's receive() answers http.disconnect
            cycle.message_event.set()
        self.transport.close()


def deadline_protocol(
    header_timeout_s: float,
    body_timeout_s: float,
    on_timeout: Callable[[str], None] = lambda reason: None,
    on_connect: Callable[[], None] | None = None,
) -> type[DeadlineProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these deadlines; *on_timeout*
    is called with ``header_timeout`` or ``body_timeout`` (a metric label)."""
    return type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {
            "header_timeout_s": header_timeout_s,
            "body_timeout_s": body_timeout_s,
            "on_timeout": staticmethod(on_timeout),
            "on_connect": None if on_connect is None else staticmethod(on_connect),
        },
    )
