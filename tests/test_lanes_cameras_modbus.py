"""A car park's two lanes end to end, every part real: plate cameras posting their vendors'
pushes over HTTP (a Hikvision at the entry, a Vzenith at the exit), the gateway deciding, and
the barrier gates commanded over Modbus TCP to a pymodbus server simulating both
controllers on one bus. Entry raises once; the exit within 市民大厅's first free hour
raises; a later exit waits for the payment made through the payments API, then raises."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio

from drivers.gates.models import shipped_model
from gateway.demo.cameras import HikvisionCamera, VzenithCamera
from gateway.demo.gates import GateSimulator, SimGate
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.services.lanes.runtime import LaneRuntime
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = pytest.mark.slow
T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai
MIN = timedelta(minutes=1)
FINAL = {"confirmed", "unconfirmed", "failed", "interrupted"}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    relay = shipped_model("example-relay4")
    s = GateSimulator({1: SimGate(relay, travel_s=0.1), 2: SimGate(relay, travel_s=0.1)})
    await s.start_tcp()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture
async def gw(mosquitto: Broker, db_url: str, sim: GateSimulator) -> AsyncIterator[Any]:
    clock = Clock()
    settings = gateway_settings(
        db_url, mosquitto, lanes={"gates": "modbus"}, payments={"provider": "fake"}
    )
    async with running_gateway(settings, clock) as gateway:
        gateway.clock = clock
        town = load_town(None)
        (site,) = [s for s in town.sites if s.id == "cp-shiminting"]
        lanes = "".join(
            f'[[lanes]]\nid = "ln-e2e-{kind}"\nsite = "{site.id}"\nkind = "{kind}"\n'
            f'camera = "cam-e2e-{kind}"\n'
            f'gate = {{ bus = "{sim.url}", unit = {unit}, model = "example-relay4" }}\n'
            for kind, unit in (("entry", 1), ("exit", 2))
        )
        extra = parse_town(
            '[town]\nname = "x"\n'
            f'[[sites]]\nid = "{site.id}"\nname = "{site.name}"\nkind = "{site.kind.value}"\n'
            f"lat = {site.lat}\nlon = {site.lon}\ncapacity = {site.capacity}\n"
            f'counting = "{site.counting.value}"\nsegment_class = "{site.segment_class}"\n' + lanes
        )
        town = town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})
        async with gateway.services.sessions.begin() as db:
            await import_town(db, town, T0)
        await wait_for(
            lambda: {"ln-e2e-entry", "ln-e2e-exit"} <= set(gateway.services.lanes.lanes),
            5,
            what="lanes live",
        )
        yield gateway


async def camera(
    http: httpx.AsyncClient, tokens: dict[str, str], cam: str, vendor: str, lane: str
) -> str:
    r = await http.post(
        "/api/v1/devices/cameras",
        json={"id": cam, "vendor": vendor, "site_id": "cp-shiminting", "lane_id": lane},
        headers={"Authorization": f"Bearer {tokens['technician']}"},
    )
    assert r.status_code == 201, r.text
    secret: str = r.json()["secret"]
    return secret


def lane(gw: Any, lane_id: str) -> LaneRuntime:
    rt: LaneRuntime = gw.services.lanes.lanes[lane_id]
    return rt


async def settled(rt: LaneRuntime, n: int) -> Any:
    await wait_for(
        lambda: len(rt.recent) >= n and rt.recent[-1].state in FINAL, 10, what="gate outcome"
    )
    return rt.recent[-1]


async def test_entry_free_hour_exit_and_paid_exit(gw: Any, sim: GateSimulator) -> None:
    clock: Clock = gw.clock
    tokens = await make_tokens(gw)
    base = f"http://127.0.0.1:{gw.api_port}"
    async with httpx.AsyncClient(base_url=base) as http:
        entry_secret = await camera(http, tokens, "cam-e2e-entry", "hikvision", "ln-e2e-entry")
        exit_secret = await camera(http, tokens, "cam-e2e-exit", "vzenith", "ln-e2e-exit")
        await wait_for(
            lambda: gw.services.live.directory.get("cam-e2e-exit") is not None, 5, what="cameras"
        )
        entry = HikvisionCamera(base, "cam-e2e-entry", entry_secret)
        out = VzenithCamera(base, "cam-e2e-exit", exit_secret)
        try:
            # A car enters: one raise, confirmed by the controller's read-back.
            clock.now = T0
            r = await entry.push("甘G10001", T0)
            assert r.status_code == 200, r.text
            d = await settled(lane(gw, "ln-e2e-entry"), 1)
            assert (d.state, d.verdict) == ("confirmed", "entry_opened")
            assert sim.action_writes(1, "raise") == 1
            # It leaves within the first free hour: the exit opens at once.
            clock.now = T0 + 40 * MIN
            r = await out.push("甘G10001", clock.now)
            assert r.status_code == 200, r.text
            assert r.json()["Response_AlarmInfoPlate"]["info"] == "ok"
            d = await settled(lane(gw, "ln-e2e-exit"), 1)
            assert (d.state, d.verdict) == ("confirmed", "exit_free")
            assert sim.action_writes(2, "raise") == 1

            # A second car stays three hours: the exit shows what is owed and waits.
            clock.now = T0 + 60 * MIN
            assert (await entry.push("甘G10002", clock.now)).status_code == 200
            await settled(lane(gw, "ln-e2e-entry"), 2)
            clock.now = T0 + 240 * MIN
            r = await out.push("甘G10002", clock.now)
            reply = r.json()["Response_AlarmInfoPlate"]
            assert reply["info"] == "no" and reply["serialData"]  # the amount on the display
            rt = lane(gw, "ln-e2e-exit")
            assert rt.state.phase == "waiting_payment" and rt.state.due_fen > 0
            assert sim.action_writes(2, "raise") == 1
            r = await http.post(
                "/api/v1/payments",
                json={"session_id": rt.state.session_id, "amount_fen": rt.state.due_fen},
                headers={
                    "Authorization": f"Bearer {tokens['payments']}",
                    "Idempotency-Key": "e2e-pay-10002",
                },
            )
            assert r.status_code == 201, r.text
            d = await settled(rt, 2)
            assert (d.state, d.verdict) == ("confirmed", "exit_paid")
            assert sim.action_writes(2, "raise") == 2 and sim.action_writes(1, "raise") == 2
            # The operators' view says the same, with the gate as its controller reports it.
            r = await http.get(
                "/api/v1/lanes/ln-e2e-exit",
                headers={"Authorization": f"Bearer {tokens['operator']}"},
            )
            body = r.json()
            assert body["phase"] == "idle" and body["gate"]["now"]["online"] is True
            assert [x["verdict"] for x in body["decisions"]][:2] == ["exit_paid", "exit_free"]
        finally:
            await asyncio.gather(entry.aclose(), out.aclose())


async def test_a_read_whose_stay_cannot_be_booked_is_kept_and_the_lane_asks_an_operator(
    gw: Any, sim: GateSimulator
) -> None:
    """The read, its session step and the gate decision are one commit; when the books
    cannot take the step (here: the sessions table is away), the read is still stored (the
    camera does not send it again), nothing is raised, and an operator can open."""
    from sqlalchemy import func, select, text

    from gateway.infra.storage.schema import CameraReadRow

    gw.clock.now = T0
    tokens = await make_tokens(gw)
    base = f"http://127.0.0.1:{gw.api_port}"
    engine = gw.services.engine
    async with httpx.AsyncClient(base_url=base) as http:
        secret = await camera(http, tokens, "cam-e2e-entry", "hikvision", "ln-e2e-entry")
        await wait_for(lambda: gw.services.live.directory.get("cam-e2e-entry") is not None, 5)
        entry = HikvisionCamera(base, "cam-e2e-entry", secret)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("ALTER TABLE parking_sessions RENAME TO ps_away"))
            try:
                r = await entry.push("甘G10009", T0)
            finally:
                async with engine.begin() as conn:
                    await conn.execute(text("ALTER TABLE ps_away RENAME TO parking_sessions"))
            assert r.status_code == 200, r.text
            async with gw.services.sessions() as s:
                n = await s.scalar(
                    select(func.count())
                    .select_from(CameraReadRow)
                    .where(CameraReadRow.plate == "甘G10009")
                )
            assert n == 1
            rt = lane(gw, "ln-e2e-entry")
            assert rt.state.phase == "waiting_operator", rt.state
            assert not rt.recent and sim.action_writes(1, "raise") == 0
            r = await http.post(
                "/api/v1/lanes/ln-e2e-entry/open",
                json={"reason": "books away: let the car in"},
                headers={"Authorization": f"Bearer {tokens['operator']}"},
            )
            assert r.status_code == 202, r.text  # accepted: the gate's outcome follows
            d = await settled(rt, 1)
            assert (d.state, d.verdict) == ("confirmed", "operator_open")
            assert sim.action_writes(1, "raise") == 1
        finally:
            await entry.aclose()
