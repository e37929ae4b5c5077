"""A minimal GB/T 28181 cam for the tests that need raw control over bytes (hostile input, a
restart): UDP, digest REGISTER, MESSAGE with a MANSCDP body, and a queue of the platform's
requests (answered 200 when ``answer`` is set). SIPp is the independent peer elsewhere."""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import os
import re
from typing import Any

from drivers.sip.digest import ha1
from drivers.sip.message import SipRequest, SipResponse, parse_message
from drivers.sip.responses import response_to


def _md5(s: str) -> str:
    return hashlib.md5(s.encode(), usedforsecurity=False).hexdigest()


class _Proto(asyncio.DatagramProtocol):
    def __init__(self, uac: Uac) -> None:
        self.uac = uac

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.uac.received(data)


class Uac:
    def __init__(self, device: str, password: str, realm: str, platform: str) -> None:
        self.device, self.password, self.realm, self.platform = device, password, realm, platform
        self.responses: asyncio.Queue[SipResponse] = asyncio.Queue()
        self.requests: asyncio.Queue[SipRequest] = asyncio.Queue()
        self.answer = True
        self.transport: asyncio.DatagramTransport | None = None
        self.call_id = os.urandom(6).hex()
        self._cseq = itertools.count(1)
        self.port = 0

    async def open(self, sip_port: int, host: str = "127.0.0.1", platform: str = "") -> Uac:
        """Bind *host* and talk to the platform at *platform* (default: *host*'s loopback
        peer 127.0.0.1)."""
        loop = asyncio.get_running_loop()
        self.transport, _ = await loop.create_datagram_endpoint(
            lambda: _Proto(self),
            local_addr=(host, 0),
            remote_addr=(platform or "127.0.0.1", sip_port),
        )
        self.host = host
        self.port = int(self.transport.get_extra_info("sockname")[1])
        return self

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def received(self, data: bytes) -> None:
        msg = parse_message(data)
        if isinstance(msg, SipResponse):
            self.responses.put_nowait(msg)
            return
        self.requests.put_nowait(msg)
        if self.answer and self.transport is not None:
            self.transport.sendto(response_to(msg, 200).to_bytes())

    def send_raw(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    def _head(self, method: str, uri: str, to: str) -> list[str]:
        return [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};rport;branch=z9hG4bK{os.urandom(6).hex()}",
            f"From: <sip:{self.device}@{self.realm}>;tag=t{self.device[-4:]}",
            f"To: <sip:{to}@{self.realm}>",
            f"Call-ID: {self.call_id}",
            f"CSeq: {next(self._cseq)} {method}",
            "Max-Forwards: 70",
        ]

    async def request(self, lines: list[str], body: bytes = b"", timeout: float = 5) -> SipResponse:
        head = "\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n"
        self.send_raw(head.encode() + body)
        return await asyncio.wait_for(self.responses.get(), timeout)

    def _register_lines(self, expires: int, auth: str | None) -> list[str]:
        lines = self._head("REGISTER", f"sip:{self.platform}@{self.realm}", self.device)
        lines += [f"Contact: <sip:{self.device}@{self.host}:{self.port}>", f"Expires: {expires}"]
        if auth:
            lines.append(f"Authorization: {auth}")
        return lines

    async def register(self, expires: int = 3600, password: str | None = None) -> SipResponse:
        first = await self.request(self._register_lines(expires, None))
        if first.status != 401:
            return first
        www = first.headers.get("WWW-Authenticate") or ""
        m = re.search(r'nonce="([^"]+)"', www)
        assert m, www
        uri = "sip:127.0.0.1"
        h1 = ha1(self.device, self.realm, password or self.password)
        resp = _md5(f"{h1}:{m.group(1)}:{_md5(f'REGISTER:{uri}')}")
        auth = (
            f'Digest username="{self.device}", realm="{self.realm}", nonce="{m.group(1)}", '
            f'uri="{uri}", response="{resp}", algorithm=MD5'
        )
        return await self.request(self._register_lines(expires, auth))

    async def message(self, xml: str, timeout: float = 5) -> SipResponse:
        body = ('<?xml version="1.0" encoding="GB2312"?>\r\n' + xml).encode("gb18030")
        return await self.message_bytes(body, timeout)

    async def message_bytes(self, body: bytes, timeout: float = 5) -> SipResponse:
        lines = self._head("MESSAGE", f"sip:{self.platform}@{self.realm}", self.platform)
        lines.append("Content-Type: Application/MANSCDP+xml")
        return await self.request(lines, body, timeout)

    async def keepalive(self, sn: int = 1) -> SipResponse:
        return await self.message(
            f"<Notify><CmdType>Keepalive</CmdType><SN>{sn}</SN>"
            f"<DeviceID>{self.device}</DeviceID><Status>OK</Status></Notify>"
        )
