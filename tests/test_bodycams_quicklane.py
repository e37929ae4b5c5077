"""The platform's quick lane does what its general way does, end to end in the service: the
same datagrams into two platforms, one with the lane and one without, leave the same answers
on the wire, the same counters, the same positions on the bus and the same cam state
(keepalives, positions taken or not, another id's position dropped, a commissioned cam
activated, the follow-up queries scheduled)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.gb28181.device import Fix, keepalive_body, mobile_position_body
from drivers.gb28181.device import mobile_position_list_body as list_body
from drivers.gb28181.manscdp import CHINA
from drivers.gb28181.presence import PresenceState
from drivers.sip.digest import ha1
from drivers.sip.transport import Peer
from gateway.config import BodycamsConfig
from gateway.demo.bodycam_requests import CamAddress, Dialog, message, notify
from gateway.directory.bodycams import Credential
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.bodycams.cams import CamLive
from gateway.services.bodycams.service import BodycamService
from gateway.services.bodycams.store import BodycamStore

REALM = "6207250008"
PLATFORM = "62072500082000000001"
CAMS = ["62072500081380000001", "62072500081380000002", "62072500081380000003"]
T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def _platform(quick: bool) -> tuple[BodycamService, list[Any], list[bytes]]:
    metrics = Metrics()
    svc = BodycamService(
        BodycamsConfig(sip_port=0),
        BodycamStore(None),  # type: ignore[arg-type]  # nothing is written here
        EventBus(metrics),
        metrics,
        lambda: T0 + timedelta(seconds=30),
        CHINA,
    )
    for i, cam_id in enumerate(CAMS):
        lifecycle = "commissioned" if i == 2 else "active"
        cred = Credential(cam_id, None, ha1(cam_id, REALM, "pw"), REALM, True, lifecycle)
        svc.credentials[cam_id] = cred
        cam = CamLive(
            cam_id, PresenceState(T0, T0 + timedelta(hours=1)), Peer("UDP", "10.1.2.3", 5060 + i)
        )
        cam.queried = i != 1  # the second cam still to be asked: a follow-up is scheduled
        cam.subscribing = True
        svc.cams[cam_id] = cam
    if not quick:
        svc.endpoint.on_quick = None
    sent: list[bytes] = []
    svc.endpoint.send = lambda peer, data: sent.append(data) or True  # type: ignore[method-assign]
    followed: list[Any] = []
    svc.follow_up = lambda cam: followed.append(cam.device_id)  # type: ignore[method-assign]
    events = svc.bus.subscribe("test")
    return svc, [events, followed], sent


def _fix(s: int, lon: float = 101.07, lat: float = 38.77) -> Fix:
    return Fix(T0 + timedelta(seconds=s), lon, lat, 12.5, 90.0, 1500.0)


def _datagrams() -> list[tuple[bytes, Peer]]:
    out: list[tuple[bytes, Peer]] = []
    for i, cam_id in enumerate(CAMS):
        addr = CamAddress(cam_id, PLATFORM, REALM, ("10.1.2.3", 5060 + i), ("10.0.0.1", 5060))
        peer = Peer("UDP", "10.1.2.3", 5060 + i)
        d = Dialog(f"d{i}", "l1", "r1", f"sip:{PLATFORM}@{REALM}", ("10.0.0.1", 5060), 1e9, 1)
        bodies = [
            keepalive_body(1, cam_id),
            keepalive_body(2, CAMS[(i + 1) % 3]),  # another cam's id: device_mismatch
            mobile_position_body(3, cam_id, _fix(10), CHINA),
            mobile_position_body(4, cam_id, _fix(5), CHINA),  # older: not taken
            mobile_position_body(5, cam_id, _fix(20, 0.0, 0.0), CHINA),  # no fix
            list_body(6, cam_id, [(cam_id, _fix(25)), (CAMS[(i + 1) % 3], _fix(26))], CHINA),
            mobile_position_body(7, cam_id, _fix(30), CHINA),
        ]
        for k, body in enumerate(bodies):
            if k % 2:
                req = notify(addr, d, body, 40.0)
            else:
                req = message(addr, body, call_id=f"c{i}-{k}", from_tag=f"t{k}", cseq=k + 1)
            data = req.to_bytes().replace(b"z9hG4bKpending", b"z9hG4bK%d-%d" % (i, k))
            out.append((data, peer))
            if k == 2:
                out.append((data, peer))  # a retransmission: answered again, taken once
    return out


def _state(svc: BodycamService) -> dict[str, Any]:
    return {
        cam_id: (cam.presence, cam.position, cam.routine_since, cam.dirty, cam.peer)
        for cam_id, cam in svc.cams.items()
    }


@pytest.mark.parametrize("routine_only", [True, False])
def test_the_quick_lane_does_what_the_general_way_does(routine_only: bool) -> None:
    data = _datagrams()
    if routine_only:  # the bench's traffic: keepalives and flat positions only
        data = [d for d in data if b"DeviceList" not in d[0]]

    async def run(quick: bool) -> tuple[Any, ...]:
        svc, (events, followed), sent = _platform(quick)
        svc.endpoint._loop = asyncio.get_running_loop()
        took: list[bool] = []
        if quick:
            lane = svc.endpoint.on_quick
            assert lane is not None
            svc.endpoint.on_quick = lambda d, p: took.append(lane(d, p)) or took[-1]
        for datagram, peer in data:
            svc.endpoint.received_datagram(datagram, peer)
        await asyncio.sleep(0)  # the follow-ups scheduled with call_soon
        published = [events.queue.get_nowait() for _ in range(events.queue.qsize())]
        counts = {k: c.value for k, c in svc.counts._children.items() if c.value}
        lifecycle = {k: c.lifecycle for k, c in svc.credentials.items()}
        return took, sent, counts, published, _state(svc), followed, lifecycle

    quick = asyncio.run(run(True))
    general = asyncio.run(run(False))
    assert quick[0] == [True] * len(data)  # all took the lane (else this tests nothing)
    assert quick[1:] == general[1:]
    assert general[2][("message", "device_mismatch")] == 3
    assert len(general[3]) == (6 if routine_only else 9)  # newer ones, with a fix, own id
    assert general[2][("retransmission", "message")] == 3
    assert general[5] == [CAMS[1]] * (len(data) // 3 - 1)  # the cam not yet asked: each body
    if not routine_only:
        assert general[2][("message", "position_other_id")] == 3
