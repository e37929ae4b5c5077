"""SIP over UDP and TCP on one port: bytes to parsed messages and back, and nothing else.

No SIP logic here (transactions, registration and dialogs are the application's): a message
is parsed (``parse_message`` per datagram, ``SipStreamParser`` per TCP connection) and handed
to ``on_message`` with the peer it came from; ``send`` writes bytes to a peer. Bounded on
every side: the message size, the TCP connections, and a token bucket per source address
(host and port: a flood from one address is dropped before parsing, counted, and costs no
other address, so not the other cams behind the same NAT). A datagram may first be offered
to ``on_quick`` (the application's quick lane for routine requests, ``drivers.sip.quick``):
True means it was handled, False that it takes the general way. Who pays past that, per device or
per host, is the application's (``drivers.sip.flood``): it needs the parsed message. Every
refusal goes to ``on_drop(reason)`` — never an exception into the event loop. A TCP stream
that goes out of step (a parse error) is closed; a double-CRLF ping is answered with CRLF
(RFC 5626 §4.4.1).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from drivers.aio import wait_for
from drivers.sip.errors import SipParseError
from drivers.sip.flood import TokenBuckets
from drivers.sip.message import SipRequest, SipResponse, SipStreamParser, parse_message

__all__ = ["Peer", "SipEndpoint", "TokenBuckets"]

log = logging.getLogger(__name__)

Transport = Literal["UDP", "TCP"]


@dataclass(frozen=True, slots=True)
class Peer:
    transport: Transport
    host: str
    port: int

    @property
    def addr(self) -> tuple[str, int]:
        return (self.host, self.port)

    def __str__(self) -> str:
        return f"{self.transport.lower()}:{self.host}:{self.port}"


OnMessage = Callable[[SipRequest | SipResponse, Peer], None]
OnDrop = Callable[[str, Peer], None]
OnQuick = Callable[[bytes, Peer], bool]


_WILDCARD = ("0.0.0.0", "::", "")


def _route_source(host: str, port: int) -> str | None:
    """Our source address toward *host*: a UDP socket connected to it (a route lookup in the
    kernel, no packet, never blocks) says which local address it would send from."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port or 5060))
            return str(probe.getsockname()[0])
    except OSError:
        return None


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, endpoint: SipEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.endpoint.received_datagram(data, Peer("UDP", str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable and kin: harmless
        log.debug("SIP UDP: %s", exc)


class SipEndpoint:
    """UDP and TCP listeners on one port. ``start`` binds both; ``close`` stops them."""

    def __init__(
        self,
        on_message: OnMessage,
        on_drop: OnDrop,
        *,
        max_size: int = 65536,
        rate_per_s: float = 50.0,
        burst: int = 200,
        max_connections: int = 4096,
        idle_timeout_s: float = 600.0,
        on_quick: OnQuick | None = None,
    ) -> None:
        self.on_message = on_message
        self.on_drop = on_drop
        self.on_quick = on_quick
        self.max_size = max_size
        self.buckets = TokenBuckets(rate_per_s, burst)
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None
        self._streams: dict[tuple[str, int], asyncio.StreamWriter] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._host = ""
        self._local_hosts: dict[str, str] = {}  # peer host -> our source address toward it
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Bind UDP and TCP on *port* (0: a free port both can have); returns the port."""
        loop = self._loop = asyncio.get_running_loop()
        self._host = host
        for _ in range(20):
            udp, _proto = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(host, port)
            )
            bound = int(udp.get_extra_info("sockname")[1])
            try:
                self._tcp = await asyncio.start_server(
                    self._serve_tcp, host, bound, reuse_address=True, limit=self.max_size + 4
                )
            except OSError:
                udp.close()
                if port:
                    raise
                continue  # the free UDP port is taken for TCP: try another
            self._udp = udp
            self.port = bound
            return bound
        raise OSError(f"no port free for both UDP and TCP on {host}")

    def close(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._tcp is not None:
            self._tcp.close()
        for writer in list(self._streams.values()):
            writer.close()
        self._streams.clear()

    async def wait_closed(self) -> None:
        if self._tcp is not None:
            with contextlib.suppress(Exception):
                await wait_for(self._tcp.wait_closed(), 2)

    # -- where we are, as a peer sees us ---------------------------------------------------------
    def local_host(self, peer: Peer) -> str | None:
        """The address *peer* reaches us at, for the Via and Contact of our own requests: the
        bound address; with a wildcard bind (0.0.0.0, ::) the local end of the peer's TCP
        connection, or for UDP the source address the kernel's route to the peer leaves from
        (a connected probe socket: no packet is sent). None when there is no route."""
        if self._host not in _WILDCARD:
            return self._host
        if peer.transport != "UDP":
            writer = self._streams.get(peer.addr)
            name = writer.get_extra_info("sockname") if writer is not None else None
            return str(name[0]) if name else None
        found = self._local_hosts.get(peer.host)
        if found is None:
            found = _route_source(peer.host, peer.port)
            if found is None:
                return None
            if len(self._local_hosts) >= 4096:  # bounded: forget them all, they are cheap
                self._local_hosts.clear()
            self._local_hosts[peer.host] = found
        return found

    # -- sending ---------------------------------------------------------------------------------
    def send(self, peer: Peer, data: bytes) -> bool:
        """Write *data* to *peer*: a datagram, or onto the peer's open TCP connection.
        False when there is no way to it (a closed connection)."""
        if peer.transport == "UDP":
            if self._udp is None or self._udp.is_closing():
                return False
            self._udp.sendto(data, peer.addr)
            return True
        writer = self._streams.get(peer.addr)
        if writer is None or writer.is_closing():
            return False
        writer.write(data)
        return True

    # -- receiving -------------------------------------------------------------------------------
    def _admit(self, peer: Peer) -> bool:
        assert self._loop is not None
        if self.buckets.allow(peer.addr, self._loop.time()):
            return True
        self.on_drop("rate_limited", peer)
        return False

    def _deliver(self, message: SipRequest | SipResponse, peer: Peer) -> None:
        try:
            self.on_message(message, peer)
        except Exception:  # the application's bug must not kill the listener
            log.exception("SIP handler failed on a message from %s", peer)
            self.on_drop("handler_error", peer)

    def received_datagram(self, data: bytes, peer: Peer) -> None:
        if not self._admit(peer):
            return
        if not data.strip(b"\r\n"):
            return  # a CRLF keepalive datagram
        if self.on_quick is not None:
            try:
                if self.on_quick(data, peer):
                    return
            except Exception:  # the application's bug must not kill the listener
                log.exception("SIP quick lane failed on a datagram from %s", peer)
                self.on_drop("handler_error", peer)
                return
        try:
            message = parse_message(data, max_size=self.max_size)
        except SipParseError as exc:
            self.on_drop(exc.reason.split(":")[0], peer)
            return
        except Exception:  # a parser bug: counted and logged, never the listener's end
            log.exception("SIP parser failed on a datagram from %s", peer)
            self.on_drop("parser_error", peer)
            return
        self._deliver(message, peer)

    async def _serve_tcp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        name = writer.get_extra_info("peername")
        peer = Peer("TCP", str(name[0]), int(name[1]))
        if len(self._streams) >= self.max_connections:
            self.on_drop("too_many_connections", peer)
            writer.close()
            return
        self._streams[peer.addr] = writer
        parser = SipStreamParser(max_size=self.max_size)
        try:
            while True:
                data = await wait_for(reader.read(65536), self.idle_timeout_s)
                if not data:
                    return
                before = parser.keepalives
                try:
                    messages = parser.feed(data)
                except SipParseError as exc:
                    self.on_drop(exc.reason.split(":")[0], peer)
                    return  # out of step: the stream cannot be read any further
                except Exception:
                    log.exception("SIP parser failed on a stream from %s", peer)
                    self.on_drop("parser_error", peer)
                    return
                if parser.keepalives != before and data.startswith(b"\r\n\r\n"):
                    writer.write(b"\r\n")
                for message in messages:
                    if self._admit(peer):
                        self._deliver(message, peer)
        except (TimeoutError, ConnectionError, OSError):
            return
        finally:
            if self._streams.get(peer.addr) is writer:
                del self._streams[peer.addr]
            writer.close()
