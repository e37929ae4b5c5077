"""The SIP core against a real, independent peer: SIPp (Debian ``sip-tester``) as a GB/T 28181
cam registering with digest, then sending a GB2312-declared Keepalive.

The UDP responder here is a thin stand-in built only from the sans-I/O core (the gateway's
transport lives elsewhere): it proves that what SIPp really sends parses, that the challenge
and nonces this core issues are ones SIPp answers, and that a wrong password is told apart.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from drivers.sip.digest import Fresh, NonceBook, challenge, ha1, parse_authorization, verify
from drivers.sip.message import SipParseError, SipRequest, parse_message, stamp_received
from drivers.sip.responses import response_to
from drivers.sip.transactions import New, ServerTransactions
from gateway.demo.broker import free_port

pytestmark = pytest.mark.skipif(shutil.which("sipp") is None, reason="sipp not installed")

CAM = "34020000001320000001"
REALM = "3402000000"
PASSWORD = "12345678"

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="gb28181 cam">
  <send retrans="500"><![CDATA[
REGISTER sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
From: <sip:{cam}@3402000000>;tag=[pid]SIPpTag[call_number]
To: <sip:{cam}@3402000000>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:{cam}@[local_ip]:[local_port]>
Max-Forwards: 70
User-Agent: SIPp cam
Expires: 3600
Content-Length: [len]

]]></send>
  <recv response="401" auth="true"/>
  <send retrans="500"><![CDATA[
REGISTER sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
From: <sip:{cam}@3402000000>;tag=[pid]SIPpTag[call_number]
To: <sip:{cam}@3402000000>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:{cam}@[local_ip]:[local_port]>
[authentication username={cam} password={password}]
Max-Forwards: 70
User-Agent: SIPp cam
Expires: 3600
Content-Length: [len]

]]></send>
  <recv response="{expect}"/>
{keepalive}
</scenario>
"""
KEEPALIVE = """  <send retrans="500"><![CDATA[
MESSAGE sip:34020000002000000001@3402000000 SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];rport;branch=[branch]
From: <sip:{cam}@3402000000>;tag=[pid]SIPpTag[call_number]
To: <sip:34020000002000000001@3402000000>
Call-ID: [call_id]
CSeq: 3 MESSAGE
Content-Type: Application/MANSCDP+xml
Max-Forwards: 70
Content-Length: [len]

<?xml version="1.0" encoding="GB2312"?>
<Notify>
<CmdType>Keepalive</CmdType>
<SN>1</SN>
<DeviceID>{cam}</DeviceID>
<Status>OK</Status>
</Notify>
]]></send>
  <recv response="200"/>
"""


@dataclass
class Responder(asyncio.DatagramProtocol):
    """Register with digest; answer MESSAGE 200; everything through the transaction table."""

    book: NonceBook = field(default_factory=lambda: NonceBook(os.urandom(32)))
    table: ServerTransactions = field(default_factory=ServerTransactions)
    stored_ha1: str = field(default_factory=lambda: ha1(CAM, REALM, PASSWORD))
    seen: list[SipRequest] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)
    qop: bool = False
    transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        now = asyncio.get_running_loop().time()
        try:
            msg = parse_message(data)
        except SipParseError as err:
            self.outcomes.append(f"rejected:{err.reason}")
            return
        if not isinstance(msg, SipRequest):
            return
        req = stamp_received(msg, addr)
        got = self.table.receive(req, now)
        if not isinstance(got, New):
            if got.response is not None and self.transport is not None:
                self.transport.sendto(got.response.to_bytes(), addr)
            return
        self.seen.append(req)
        resp = response_to(req, 200)
        if req.method == "REGISTER":
            auth = req.headers.get("Authorization")
            if auth is None:
                nonce = self.book.issue(now, os.urandom(8))
                resp = response_to(
                    req, 401, headers=[("WWW-Authenticate", challenge(REALM, nonce, qop=self.qop))]
                )
                self.outcomes.append("challenged")
            else:
                creds = parse_authorization(auth)
                fresh = self.book.check(creds.nonce, creds.nc_value, now) == Fresh()
                if fresh and verify(creds, "REGISTER", self.stored_ha1):
                    self.book.commit(creds.nonce, creds.nc_value, now)
                    resp = response_to(req, 200, headers=[("Expires", "3600")])
                    self.outcomes.append(f"registered uri={creds.uri} qop={creds.qop}")
                else:
                    resp = response_to(req, 403)
                    self.outcomes.append("forbidden")
        elif req.method == "MESSAGE":
            self.outcomes.append("message")
        self.table.respond(req, resp, now)
        assert self.transport is not None
        self.transport.sendto(resp.to_bytes(), req.top_via.response_target(addr))


async def run_sipp(
    tmp_path: Path, *, password: str, expect: int, keepalive: bool, qop: bool = False
) -> Responder:
    loop = asyncio.get_running_loop()
    transport, responder = await loop.create_datagram_endpoint(
        lambda: Responder(qop=qop), local_addr=("127.0.0.1", 0)
    )  # port 0: the kernel's free UDP port (a port found free earlier may be taken by then)
    port = int(transport.get_extra_info("sockname")[1])
    scenario = tmp_path / "cam.xml"
    scenario.write_text(
        SCENARIO.format(
            cam=CAM,
            password=password,
            expect=expect,
            keepalive=KEEPALIVE.format(cam=CAM) if keepalive else "",
        )
    )
    proc = await asyncio.create_subprocess_exec(
        "sipp", f"127.0.0.1:{port}", "-sf", str(scenario), "-m", "1", "-i", "127.0.0.1",
        "-p", str(free_port()), "-nostdin", "-timeout", "15s", "-recv_timeout", "5000",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        transport.close()
    assert proc.returncode == 0, out.decode(errors="replace")[-2000:]
    return responder


@pytest.mark.parametrize("qop", [False, True])
async def test_sipp_registers_with_digest_and_keeps_alive(tmp_path: Path, qop: bool) -> None:
    responder = await run_sipp(tmp_path, password=PASSWORD, expect=200, keepalive=True, qop=qop)
    assert responder.outcomes[0] == "challenged"
    registered = responder.outcomes[1]
    assert registered.startswith("registered uri=sip:127.0.0.1:")  # SIPp's digest uri
    assert registered.endswith("qop=auth" if qop else "qop=None")
    assert responder.outcomes[2:] == ["message"]
    keepalive = responder.seen[-1]
    assert "<CmdType>Keepalive</CmdType>" in keepalive.body.decode("gb18030")
    assert len({req.call_id for req in responder.seen}) == 1


async def test_sipp_wrong_password_is_forbidden(tmp_path: Path) -> None:
    responder = await run_sipp(tmp_path, password="wrong", expect=403, keepalive=False)
    assert responder.outcomes == ["challenged", "forbidden"]
