"""Body cams across two gateway instances on one PostgreSQL database (issue 16): a SIP cam
(``tests.sip_uac``) registers with A; B's field view and memory show it online with its power,
position, last keepalive and alarm within about a second, B never asks or subscribes it, the
alarm is filed once; when the cam registers with B instead, B holds it and A mirrors it, and
a lost notification (the listening connection killed) is made up by the re-read at reconnect."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select, text

from drivers.aio import wait_for as aio_wait_for
from drivers.gb28181.device import Fix, alarm_body, mobile_position_body
from events import BodycamPosition
from gateway.directory.bodycams import set_passwords
from gateway.infra.storage.schema import BodycamAlarmRow, BodycamStateRow
from gateway.services.bodycams.shared import LIVE_NS
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for
from tests.sip_uac import Uac

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

PLATFORM = "62072500082000000001"
REALM = "6207250008"
PASSWORD = "cluster-test-pw"
CAM = "62072500081380000001"
ZONE = ZoneInfo("Asia/Shanghai")


def settings(pg_url: str, broker: Broker) -> Any:
    # the default write-behind (every 1 s), routine changes (keepalive, position) included
    # instead of after 15 s, as docs/operations.md suggests for a cluster
    return gateway_settings(pg_url, broker, bodycams={"persist_routine_s": 0.0})


@pytest_asyncio.fixture
async def pair(mosquitto: Broker, pg_url: str) -> AsyncIterator[tuple[Any, Any]]:
    async with (
        running_gateway(settings(pg_url, mosquitto)) as a,
        running_gateway(settings(pg_url, mosquitto)) as b,
    ):
        for gw in (a, b):
            assert gw.services.shared_cams is not None
            await wait_for(gw.services.shared_cams.followed.is_set, 10, what="following")
        async with a.services.sessions.begin() as s:
            await set_passwords(s, {CAM: PASSWORD}, REALM, a.services.clock())
        for gw in (a, b):  # the change feed brings the password to both
            await wait_for(lambda gw=gw: gw.services.bodycams.credentials[CAM].ha1, 10)
        yield a, b


def instance(gw: Any) -> str:
    return str(gw.services.shared_cams.instance)


async def field(gw: Any, token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        r = await http.get(f"/api/v1/field/{CAM}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_a_cam_registered_on_a_is_shown_by_b_and_only_a_talks_to_it(
    pair: tuple[Any, Any],
) -> None:
    a, b = pair
    token = (await make_tokens(b))["operator"]
    assert (await field(b, token))["online"] is False
    uac = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(a.sip_port)
    try:
        assert (await uac.register()).status == 200
        t0 = time.monotonic()

        async def online_on_b() -> bool:
            return bool((await field(b, token))["online"])

        await wait_for(online_on_b, 5, interval=0.05, what="online on B")
        print(f"\nregistration visible on B after {time.monotonic() - t0:.2f} s")
        # B's memory (its live map, presence) follows by NOTIFY
        mirror = await wait_for(lambda: b.services.bodycams.cams.get(CAM), 3, what="mirror")
        assert mirror.elsewhere == instance(a) and mirror.presence.online(b.services.clock())
        # A asks the cam DeviceInfo; the answer (battery) reaches B's view
        while True:
            req = await uac.requests.get()
            if req.method == "MESSAGE" and b"<CmdType>DeviceInfo</CmdType>" in req.body:
                break
        sn = int(req.body.split(b"<SN>")[1].split(b"</SN>")[0])
        info = (
            f"<Response><CmdType>DeviceInfo</CmdType><SN>{sn}</SN><DeviceID>{CAM}</DeviceID>"
            "<Result>OK</Result><Manufacturer>Hik</Manufacturer><Battery>76</Battery></Response>"
        )
        assert (await uac.message(info)).status == 200
        t0 = time.monotonic()

        async def battery_on_b() -> bool:
            return (await field(b, token))["battery_percent"] == 76

        await wait_for(battery_on_b, 5, interval=0.05, what="battery on B")
        print(f"battery visible on B after {time.monotonic() - t0:.2f} s")
        # a position and a keepalive (routine changes) follow; B's live map gets the position
        # as a mirrored event (A writes the telemetry, B does not write it again)
        moves = b.services.bus.subscribe("test", lambda e: isinstance(e, BodycamPosition))
        fix = Fix(datetime.now(UTC).replace(microsecond=0), 103.8342, 36.0611, 4.0, 90.0)
        body = mobile_position_body(7, CAM, fix, ZONE)
        assert (await uac.message_bytes(body)).status == 200
        assert (await uac.keepalive(8)).status == 200
        seen_on_a = a.services.bodycams.cams[CAM].presence.last_keepalive
        t0 = time.monotonic()

        async def position_on_b() -> dict[str, Any] | None:
            view = await field(b, token)
            p = view["position"]
            fresh = view["last_seen"] == seen_on_a.isoformat()
            return view if p and p["lat"] == pytest.approx(36.0611) and fresh else None

        view = await wait_for(position_on_b, 5, interval=0.05, what="position on B")
        print(f"position and keepalive visible on B after {time.monotonic() - t0:.2f} s")
        assert view["position"]["lon"] == pytest.approx(103.8342)
        moved = await aio_wait_for(moves.get(), 3)  # the position on B's bus
        assert isinstance(moved, BodycamPosition) and moved.mirrored and moved.device_id == CAM
        b.services.bus.unsubscribe(moves)
        # an alarm: received by A, stored once, shown by B
        alarm = alarm_body(9, CAM, time=fix.time, tz=ZONE, description="SOS", fix=fix)
        assert (await uac.message_bytes(alarm)).status == 200

        async def alarm_on_b() -> bool:
            return len((await field(b, token))["alarms"]) == 1

        await wait_for(alarm_on_b, 5, interval=0.05, what="alarm on B")
        async with b.services.sessions() as db:
            assert await db.scalar(select(func.count()).select_from(BodycamAlarmRow)) == 1
            row = await db.get(BodycamStateRow, CAM)
        assert row is not None and row.instance_id == instance(a)
        # B never spoke to the cam: no query, no subscription, nothing pending
        mirror = b.services.bodycams.cams[CAM]
        assert mirror.elsewhere == instance(a) and mirror.subscription is None
        assert not mirror.queried and len(b.services.bodycams.queries) == 0
        assert len(b.services.bodycams.outgoing) == 0
        assert a.services.bodycams.cams[CAM].elsewhere is None
    finally:
        uac.close()


async def test_the_cam_moves_to_b_and_a_follows(pair: tuple[Any, Any]) -> None:
    a, b = pair
    on_a = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(a.sip_port)
    try:
        assert (await on_a.register()).status == 200
        await wait_for(lambda: b.services.bodycams.cams.get(CAM) is not None
                       and b.services.bodycams.cams[CAM].elsewhere == instance(a), 5)  # fmt: skip
        await wait_for(lambda: a.services.bodycams.cams[CAM].subscription is not None, 5)
    finally:
        on_a.close()
    # A is gone from the cam's point of view (a failover): it registers with B
    on_b = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(b.sip_port)
    try:
        assert (await on_b.register()).status == 200
        await wait_for(lambda: a.services.bodycams.cams[CAM].elsewhere == instance(b), 5)
        old = a.services.bodycams.cams[CAM]
        assert old.subscription is None  # A refreshes nothing toward the cam now
        await wait_for(lambda: b.services.bodycams.cams[CAM].subscription is not None, 5)
        assert (await on_b.keepalive(3)).status == 200
        # a NOTIFY in A's old dialog (or any request) still reaching A: answered, dropped;
        # A does not take the cam back from B, which is alive
        stale = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(a.sip_port)
        try:
            assert (await stale.keepalive(99)).status == 200
        finally:
            stale.close()
        assert a.services.bodycams.cams[CAM].elsewhere == instance(b)
        await b.services.bodycams.flush()
        await a.services.bodycams.flush()  # A writes nothing of a cam B holds
        async with a.services.sessions() as db:
            row = await db.get(BodycamStateRow, CAM)
        assert row is not None and row.instance_id == instance(b)
        # B's row carries the last keepalive; A shows it from there
        await wait_for(
            lambda: (
                a.services.bodycams.cams[CAM].presence.last_keepalive
                == b.services.bodycams.cams[CAM].presence.last_keepalive
            ),
            5,
        )
        # A's listening connection is lost while B writes: A's re-read at reconnect has it
        async with a.services.sessions() as db:
            killed = await db.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks "
                    "WHERE locktype = 'advisory' AND granted AND classid::bigint = :ns"
                ),
                {"ns": LIVE_NS},
            )
        assert killed == 2  # A's and B's
        before = a.services.shared_cams.connects
        assert (await on_b.keepalive(4)).status == 200
        await b.services.bodycams.flush()
        await wait_for(lambda: a.services.shared_cams.connects > before, 5, what="reconnected")
        await wait_for(
            lambda: (
                a.services.bodycams.cams[CAM].presence.last_keepalive
                == b.services.bodycams.cams[CAM].presence.last_keepalive
            ),
            5,
        )
        # B's liveness lock went with its connection, for a second: not long enough for A to
        # call B dead and take its cams
        assert a.services.bodycams.cams[CAM].elsewhere == instance(b)
    finally:
        on_b.close()


async def test_the_cams_of_an_instance_that_dies_are_taken_at_their_next_message(
    mosquitto: Broker, pg_url: str
) -> None:
    async with running_gateway(settings(pg_url, mosquitto)) as a:
        async with running_gateway(settings(pg_url, mosquitto)) as b:
            async with b.services.sessions.begin() as s:
                await set_passwords(s, {CAM: PASSWORD}, REALM, b.services.clock())
            for gw in (a, b):
                await wait_for(lambda gw=gw: gw.services.bodycams.credentials[CAM].ha1, 10)
            on_b = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(b.sip_port)
            try:
                assert (await on_b.register()).status == 200
                await wait_for(
                    lambda: (
                        getattr(a.services.bodycams.cams.get(CAM), "elsewhere", None) == instance(b)
                    ),
                    5,
                )
            finally:
                on_b.close()
        # B is gone; the cam, still registered, keeps its keepalives coming (to A now: a
        # virtual address moved). Once B's lock has been free GRACE_S, A takes the cam.
        uac = await Uac(CAM, PASSWORD, REALM, PLATFORM).open(a.sip_port)
        try:
            t0 = time.monotonic()

            async def taken() -> bool:
                assert (await uac.keepalive()).status == 200
                return a.services.bodycams.cams[CAM].elsewhere is None

            await wait_for(taken, 10, interval=0.5, what="A takes the dead instance's cam")
            print(f"\ncam taken {time.monotonic() - t0:.1f} s after its holder stopped")
            while True:  # A asks it afresh, as after a restart
                req = await aio_wait_for(uac.requests.get(), 5)
                if req.method == "MESSAGE" and b"<CmdType>DeviceInfo</CmdType>" in req.body:
                    break
            await a.services.bodycams.flush()
            async with a.services.sessions() as db:
                row = await db.get(BodycamStateRow, CAM)
            assert row is not None and row.instance_id == instance(a)
        finally:
            uac.close()
