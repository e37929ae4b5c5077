"""Flood control at the body cams' SIP port, over real sockets: cams behind one address (here
127.0.0.1, a port each, as behind a NAT) each pay for their own messages, so a noisy cam or a
flood from an unregistered source on the same host costs a registered neighbour nothing."""

from __future__ import annotations

import asyncio
import os
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
NOISY = "62072500081380000021"
QUIET = "62072500081380000022"
STRANGER = "62072500081380099998"  # no password: never registered
PASSWORD = "flood-test-pw"
FLOOD = 300


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('bcam-f') / 'citygate.db'}"
    settings = gateway_settings(
        db,
        mosquitto,
        bodycams={
            "per_source_rate_per_s": 10_000,  # the per-address bucket out of the way here
            "per_source_burst": 10_000,
            "per_device_rate_per_s": 5,
            "per_device_burst": 20,
            "per_host_rate_per_s": 10,
            "per_host_burst": 50,
        },
    )
    async with running_gateway(settings) as gateway:
        async with gateway.services.sessions.begin() as s:
            await set_passwords(
                s, {NOISY: PASSWORD, QUIET: PASSWORD}, REALM, gateway.services.clock()
            )
        creds = gateway.services.bodycams.credentials
        await wait_for(lambda: all(creds.get(c) and creds[c].ha1 for c in (NOISY, QUIET)), 10)
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cams(gw: Any) -> AsyncIterator[tuple[Uac, Uac]]:
    noisy = await Uac(NOISY, PASSWORD, REALM, PLATFORM).open(gw.sip_port)
    quiet = await Uac(QUIET, PASSWORD, REALM, PLATFORM).open(gw.sip_port)
    assert (await noisy.register()).status == 200
    assert (await quiet.register()).status == 200
    yield noisy, quiet
    noisy.close()
    quiet.close()


def dropped(gw: Any, reason: str) -> float:
    value: float = gw.metrics_value("citygate_bodycam_sip_total", what="drop", outcome=reason)
    return value


async def flood(uac: Uac) -> None:
    """FLOOD keepalives as fast as the platform (in this loop, a datagram a turn) drains its
    socket: all of them reach it (none lost to a full receive buffer), within a second."""
    for _ in range(FLOOD):
        uac.send_raw(keepalive_bytes(uac))
        await asyncio.sleep(0)


def keepalive_bytes(uac: Uac) -> bytes:
    lines = uac._head("MESSAGE", f"sip:{PLATFORM}@{REALM}", PLATFORM)
    body = (
        f"<Notify><CmdType>Keepalive</CmdType><SN>{int.from_bytes(os.urandom(2), 'big')}</SN>"
        f"<DeviceID>{uac.device}</DeviceID><Status>OK</Status></Notify>"
    ).encode()
    lines += ["Content-Type: Application/MANSCDP+xml", f"Content-Length: {len(body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def position_taken(gw: Any, uac: Uac, second: int) -> bool:
    r = await uac.message(
        f"<Notify><CmdType>MobilePosition</CmdType><SN>7{second}</SN>"
        f"<DeviceID>{uac.device}</DeviceID><Time>2026-12-02T10:00:{second:02d}</Time>"
        "<Longitude>101.0712</Longitude><Latitude>38.7750</Latitude></Notify>"
    )
    cam = gw.services.bodycams.cams[uac.device]
    return r.status == 200 and cam.position is not None and cam.position.time.second == second


async def test_a_noisy_cam_behind_one_address_costs_its_neighbour_nothing(
    gw: Any, cams: tuple[Uac, Uac]
) -> None:
    noisy, quiet = cams
    before = dropped(gw, "rate_limited_device")
    await flood(noisy)
    await wait_for(lambda: dropped(gw, "rate_limited_device") >= before + FLOOD - 40, 5)
    # the same host, its own bucket: every message of the quiet cam is taken, data included
    for second in range(1, 6):
        assert await position_taken(gw, quiet, second)
    assert dropped(gw, "rate_limited_host") == 0


async def test_a_flood_from_an_unregistered_source_costs_registered_cams_nothing(
    gw: Any, cams: tuple[Uac, Uac]
) -> None:
    _, quiet = cams
    stranger = await Uac(STRANGER, "x" * 10, REALM, PLATFORM).open(gw.sip_port)
    before = dropped(gw, "rate_limited_host")
    try:
        await flood(stranger)
        await wait_for(lambda: dropped(gw, "rate_limited_host") >= before + FLOOD - 60, 5)
    finally:
        stranger.close()
    for second in range(11, 16):
        assert await position_taken(gw, quiet, second)


async def test_a_forged_from_on_another_host_is_not_charged_to_the_device(
    gw: Any, cams: tuple[Uac, Uac]
) -> None:
    _, quiet = cams
    spoof = await Uac(QUIET, PASSWORD, REALM, PLATFORM).open(gw.sip_port, host="127.0.0.2")
    before_device = dropped(gw, "rate_limited_device")
    try:
        await flood(spoof)
        await wait_for(lambda: dropped(gw, "rate_limited_host") > 0, 5)
    finally:
        spoof.close()
    assert dropped(gw, "rate_limited_device") == before_device
    assert await position_taken(gw, quiet, 21)
