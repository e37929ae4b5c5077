"""Fuzzed bytes into the platform's receive path (the transport's datagram entry, then the
service): any input is answered, refused or dropped with a counted reason, never an
exception. Valid REGISTER and MESSAGE texts are mutated as well as random bytes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.gb28181.manscdp import CHINA
from drivers.sip.digest import ha1
from drivers.sip.transport import Peer
from gateway.config import BodycamsConfig
from gateway.directory.bodycams import Credential
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.bodycams.service import BodycamService
from gateway.services.bodycams.store import BodycamStore

CAM = "62072500081380000001"
REALM = "6207250008"
NOW = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)
PEER = Peer("UDP", "127.0.0.1", 5555)

REGISTER = (
    f"REGISTER sip:62072500082000000001@{REALM} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5555;rport;branch=z9hG4bKfuzz\r\n"
    f"From: <sip:{CAM}@{REALM}>;tag=1\r\nTo: <sip:{CAM}@{REALM}>\r\n"
    "Call-ID: fuzz@1\r\nCSeq: 1 REGISTER\r\nExpires: 3600\r\n"
    f"Contact: <sip:{CAM}@127.0.0.1:5555>\r\nContent-Length: 0\r\n\r\n"
).encode()
BODY = (
    '<?xml version="1.0" encoding="GB2312"?><Notify><CmdType>MobilePosition</CmdType>'
    f"<SN>1</SN><DeviceID>{CAM}</DeviceID><Time>2026-12-02T14:00:00</Time>"
    "<Longitude>101.08</Longitude><Latitude>38.78</Latitude></Notify>"
).encode()
MESSAGE = (
    f"MESSAGE sip:62072500082000000001@{REALM} SIP/2.0\r\n"
    "Via: SIP/2.0/UDP 127.0.0.1:5555;rport;branch=z9hG4bKmsg\r\n"
    f"From: <sip:{CAM}@{REALM}>;tag=1\r\nTo: <sip:62072500082000000001@{REALM}>\r\n"
    "Call-ID: fuzz@2\r\nCSeq: 2 MESSAGE\r\nContent-Type: Application/MANSCDP+xml\r\n"
    f"Content-Length: {len(BODY)}\r\n\r\n"
).encode() + BODY


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


@pytest.fixture(scope="module")
def service(loop: asyncio.AbstractEventLoop) -> BodycamService:
    metrics = Metrics()
    svc = BodycamService(
        BodycamsConfig(sip_port=0),
        BodycamStore(None),  # type: ignore[arg-type]  # nothing is written here
        EventBus(metrics),
        metrics,
        lambda: NOW,
        CHINA,
    )
    svc.credentials[CAM] = Credential(CAM, None, ha1(CAM, REALM, "pw-fuzzing"), REALM, True)
    svc.endpoint._loop = loop  # received_datagram without a socket (its answers go nowhere)
    return svc


def mutate(data: bytes, cuts: list[tuple[int, bytes]]) -> bytes:
    out = bytearray(data)
    for at, junk in cuts:
        i = at % (len(out) + 1)
        out[i : i + len(junk)] = junk
    return bytes(out)


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    base=st.sampled_from([REGISTER, MESSAGE, b""]),
    cuts=st.lists(st.tuples(st.integers(0, 2000), st.binary(max_size=12)), max_size=6),
    tail=st.binary(max_size=64),
)
def test_any_datagram_is_answered_or_counted_never_raised(
    loop: asyncio.AbstractEventLoop,
    service: BodycamService,
    base: bytes,
    cuts: list[tuple[int, bytes]],
    tail: bytes,
) -> None:
    data = mutate(base, cuts) + tail
    before = service.counts.total()

    async def feed() -> None:
        service.endpoint.received_datagram(data, PEER)
        await asyncio.sleep(0)  # the follow-ups scheduled with call_soon run too

    loop.run_until_complete(feed())
    assert service.counts.total() >= before  # never an exception out of the receive path
    assert service.counts.labels("drop", "handler_error").value == 0
