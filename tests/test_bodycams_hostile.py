"""Hostile input at the body cams' SIP port, over real sockets: malformed SIP, an absurd
Content-Length, an XML bomb, an unknown device, a flood from one address. Each is a counted
rejection; the platform keeps answering everyone else at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from gateway.directory.bodycams import set_passwords
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for
from tests.sip_uac import Uac

pytestmark = pytest.mark.asyncio(loop_scope="module")

PLATFORM = "62072500082000000001"
REALM = "6207250008"
CAM = "62072500081380000011"
PASSWORD = "hostile-test-pw"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bcam-h') / 'citygate.db'}"
    settings = gateway_settings(
        db,
        mosquitto,
        bodycams={"max_message_bytes": 4096, "per_source_rate_per_s": 50, "per_source_burst": 100},
    )
    async with running_gateway(settings) as gateway:
        async with gateway.services.sessions.begin() as s:
            await set_passwords(s, {CAM: PASSWORD}, REALM, gateway.services.clock())
        await wait_for(lambda: gateway.services.bodycams.credentials[CAM].ha1, 10)
        yield gateway


@pytest_asyncio.fixture(loop_scope="module")
async def uac(gw: Any) -> AsyncIterator[Uac]:
    u = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(gw.sip_port)
    yield u
    u.close()


def dropped(gw: Any, reason: str) -> float:
    value: float = gw.metrics_value("citygate_bodycam_sip_total", what="drop", outcome=reason)
    return value


def counted(gw: Any, what: str, outcome: str) -> float:
    value: float = gw.metrics_value("citygate_bodycam_sip_total", what=what, outcome=outcome)
    return value


async def options_answered(gw: Any, uac: Uac) -> None:
    lines = uac._head("OPTIONS", f"sip:{PLATFORM}@{REALM}", PLATFORM)
    started = time.monotonic()
    r = await uac.request(lines, timeout=2)
    assert r.status == 200
    assert time.monotonic() - started < 0.5


async def test_malformed_sip_is_counted_and_harmless(gw: Any, uac: Uac) -> None:
    before = dropped(gw, "bad_start_line")
    for junk in (
        b"\x00\xff garbage\r\n\r\n",
        b"HELLO\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        uac.send_raw(junk)
    await wait_for(lambda: dropped(gw, "bad_start_line") >= before + 3, 5)
    headerless = b"MESSAGE sip:x SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n"
    uac.send_raw(headerless)
    await wait_for(lambda: dropped(gw, "missing_header") >= 1, 5)
    await options_answered(gw, uac)


async def test_absurd_content_length_is_refused_on_udp_and_tcp(gw: Any, uac: Uac) -> None:
    msg = (
        f"MESSAGE sip:{PLATFORM}@{REALM} SIP/2.0\r\n"
        "Via: SIP/2.0/TCP 127.0.0.1:5999;branch=z9hG4bKabc\r\n"
        f"From: <sip:{CAM}@{REALM}>;tag=1\r\nTo: <sip:{PLATFORM}@{REALM}>\r\n"
        "Call-ID: cl@x\r\nCSeq: 1 MESSAGE\r\n"
        "Content-Length: 999999999\r\n\r\n<Notify/>"
    )
    before = dropped(gw, "bad_content_length")
    uac.send_raw(msg.encode())
    await wait_for(lambda: dropped(gw, "bad_content_length") >= before + 1, 5)
    reader, writer = await asyncio.open_connection("127.0.0.1", gw.sip_port)
    writer.write(msg.encode())
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # the stream is out of step: closed
    writer.close()
    assert dropped(gw, "bad_content_length") >= before + 2
    # an oversized datagram (over [bodycams] max_message_bytes) is refused whole
    uac.send_raw(b"MESSAGE sip:x SIP/2.0\r\n" + b"X: " + b"a" * 6000 + b"\r\n\r\n")
    await wait_for(lambda: dropped(gw, "too_large") >= 1, 5)
    await options_answered(gw, uac)


async def test_an_xml_bomb_from_a_registered_cam_is_refused(gw: Any, uac: Uac) -> None:
    assert (await uac.register()).status == 200
    bomb = (
        '<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">'
        '<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
        f"<Notify><CmdType>Keepalive</CmdType><SN>1</SN><DeviceID>{CAM}</DeviceID>"
        "<Status>&lol3;</Status></Notify>"
    )
    r = await uac.message(bomb)
    assert r.status == 400
    assert counted(gw, "message", "dtd_refused") == 1
    assert (await uac.keepalive()).status == 200  # the cam itself is fine


async def test_unknown_devices_are_refused_and_counted(gw: Any) -> None:
    stranger = await Uac("62072500081380099999", "x" * 10, REALM, PLATFORM).open(gw.sip_port)
    try:
        assert (await stranger.register()).status == 404
        assert (await stranger.keepalive()).status == 403
    finally:
        stranger.close()
    assert counted(gw, "register", "unknown_device") >= 1
    assert counted(gw, "message", "unknown_device") >= 1


FLOOD = """
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.2", 0))
payload = b"OPTIONS sip:x SIP/2.0\\r\\nVia: SIP/2.0/UDP 127.0.0.2:1;branch=z9hG4bK1\\r\\n\\r\\n"
for i in range(int(sys.argv[2])):
    s.sendto(payload, ("127.0.0.1", int(sys.argv[1])))
"""


async def answered_with_retransmission(uac: Uac) -> float:
    """An OPTIONS sent as a UA sends it (again after T1 = 0.5 s): the time to its answer."""
    lines = uac._head("OPTIONS", f"sip:{PLATFORM}@{REALM}", PLATFORM)
    data = ("\r\n".join([*lines, "Content-Length: 0"]) + "\r\n\r\n").encode()
    started = time.monotonic()
    for _ in range(3):
        uac.send_raw(data)
        try:
            r = await asyncio.wait_for(uac.responses.get(), 0.5)
        except TimeoutError:
            continue
        assert r.status == 200
        return time.monotonic() - started
    raise AssertionError("OPTIONS not answered within three sends")


async def test_a_flood_from_one_address_is_dropped_and_counted_not_a_stall(
    gw: Any, uac: Uac
) -> None:
    """20,000 datagrams from 127.0.0.2 (another process, as fast as it can): past the bucket
    they are dropped before parsing; a cam at 127.0.0.1 is answered throughout."""
    import sys

    before = dropped(gw, "rate_limited")
    flood = await asyncio.create_subprocess_exec(
        sys.executable, "-c", FLOOD, str(gw.sip_port), "20000"
    )
    waits = []
    while flood.returncode is None:
        waits.append(await answered_with_retransmission(uac))
        await asyncio.sleep(0.05)
    await flood.wait()
    waits.append(await answered_with_retransmission(uac))
    await wait_for(lambda: dropped(gw, "rate_limited") >= before + 1000, 5, what="drops")
    assert max(waits) < 1.2, waits  # at worst one retransmission (a datagram lost in the flood)
    await options_answered(gw, uac)


async def test_a_retransmitted_request_is_answered_from_its_transaction(gw: Any, uac: Uac) -> None:
    assert (await uac.register()).status == 200
    lines = uac._head("MESSAGE", f"sip:{PLATFORM}@{REALM}", PLATFORM)
    lines.append("Content-Type: Application/MANSCDP+xml")
    body = (
        f"<Notify><CmdType>Keepalive</CmdType><SN>99</SN><DeviceID>{CAM}</DeviceID>"
        "<Status>OK</Status></Notify>"
    ).encode()
    data = ("\r\n".join([*lines, f"Content-Length: {len(body)}"]) + "\r\n\r\n").encode() + body
    handled = counted(gw, "message", "Keepalive")
    again = counted(gw, "retransmission", "message")
    uac.send_raw(data)
    first = await asyncio.wait_for(uac.responses.get(), 5)
    uac.send_raw(data)  # the cam did not hear the 200: the same request again
    second = await asyncio.wait_for(uac.responses.get(), 5)
    assert first.status == second.status == 200
    assert first.to.tag == second.to.tag
    assert counted(gw, "message", "Keepalive") == handled + 1  # processed once
    assert counted(gw, "retransmission", "message") == again + 1
