"""Lanes across gateway instances on one PostgreSQL database (issue 16), with a real Modbus
TCP gate (``gateway.demo.gates``): A drives the gate's bus; B (``[lanes] gates = "none"``)
shows the gate's polled state and relays a camera's raise (its HTTP push to B) and an
operator's open to A, which runs them and returns the read-back; with A gone, B's command
fails within seconds, never run late, and B shows the gate offline. Two instances that can
both reach the bus: exactly one drives it; the other takes over when the driver loses its
database connection (which stops its polling) and when it stops."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text

from drivers.gates.models import shipped_model
from gateway.demo.cameras import HikvisionCamera
from gateway.demo.gates import GateSimulator, SimGate
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.services.lanes.cluster_gates import LOCK_NS, ClusterGates, bus_key, lock_key
from gateway.services.lanes.contract import LaneRead
from gateway.services.lanes.runtime import LaneRuntime
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]

LANE = "ln-test-in"
FINAL = {"confirmed", "unconfirmed", "failed", "interrupted"}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    s = GateSimulator({1: SimGate(shipped_model("example-relay4"), travel_s=0.2)})
    await s.start_tcp()
    try:
        yield s
    finally:
        await s.stop()


async def add_lane(gw: Any, sim: GateSimulator) -> None:
    town = load_town(None)
    (site,) = [s for s in town.sites if s.id == "cp-keyunzhan"]
    extra = parse_town(
        '[town]\nname = "x"\n'
        f'[[sites]]\nid = "{site.id}"\nname = "{site.name}"\nkind = "{site.kind.value}"\n'
        f"lat = {site.lat}\nlon = {site.lon}\ncapacity = {site.capacity}\n"
        f'counting = "entry_exit"\nsegment_class = "{site.segment_class}"\n'
        f'[[lanes]]\nid = "{LANE}"\nsite = "cp-keyunzhan"\nkind = "entry"\n'
        'camera = "cam-test-in"\n'
        f'gate = {{ bus = "{sim.url}", unit = 1, model = "example-relay4" }}\n'
    )
    town = town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})
    async with gw.services.sessions.begin() as db:
        await import_town(db, town, datetime.now(UTC))


def gates(gw: Any) -> ClusterGates:
    g = gw.services.lanes.gates
    assert isinstance(g, ClusterGates)
    return g


def lane(gw: Any) -> LaneRuntime:
    rt: LaneRuntime = gw.services.lanes.lanes[LANE]
    return rt


async def settled(rt: LaneRuntime, n: int) -> Any:
    await wait_for(
        lambda: len(rt.recent) >= n and rt.recent[-1].state in FINAL, 20, what="gate outcome"
    )
    return rt.recent[-1]


async def api(gw: Any, method: str, path: str, token: str, **kw: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        return await http.request(method, path, headers={"Authorization": f"Bearer {token}"}, **kw)


async def gate_now(gw: Any, token: str) -> dict[str, Any]:
    r = await api(gw, "GET", "/api/v1/lanes", token)
    assert r.status_code == 200, r.text
    (body,) = [x for x in r.json()["lanes"] if x["id"] == LANE]
    now: dict[str, Any] = body["gate"]["now"] or {}
    return now


async def test_b_shows_and_commands_the_gate_a_drives(
    mosquitto: Broker, pg_url: str, sim: GateSimulator
) -> None:
    async with running_gateway(gateway_settings(pg_url, mosquitto, lanes={"gates": "none"})) as b:
        token = (await make_tokens(b))["operator"]
        bus = bus_key(sim.url)
        async with contextlib.AsyncExitStack() as holding_a:
            a = await holding_a.enter_async_context(
                running_gateway(gateway_settings(pg_url, mosquitto, lanes={"gates": "modbus"}))
            )
            await add_lane(a, sim)
            for gw in (a, b):
                await wait_for(lambda gw=gw: LANE in gw.services.lanes.lanes, 10, what="lane")
            await wait_for(lambda: bus in gates(a).held, 5, what="A drives the bus")
            assert gates(b).held == set()
            t0 = time.monotonic()

            async def polled_on_b() -> dict[str, Any] | None:
                now = await gate_now(b, token)
                return now if now.get("online") and now.get("position") == "down" else None

            now = await wait_for(polled_on_b, 5, interval=0.1, what="A's polling shown on B")
            print(f"\ngate state on B {time.monotonic() - t0:.2f} s after A took the bus")
            assert now["driver"] == gates(a).instance
            # the lane's camera pushes a plate to B over HTTP (a load balancer chose B): B
            # decides, A raises the gate, B gets the read-back
            tech = (await make_tokens(b))["technician"]
            r = await api(b, "POST", "/api/v1/devices/cameras", tech,
                          json={"id": "cam-test-in", "vendor": "hikvision",
                                "site_id": "cp-keyunzhan", "lane_id": LANE})  # fmt: skip
            assert r.status_code == 201, r.text
            await wait_for(lambda: b.services.live.directory.get("cam-test-in"), 5)
            cam = HikvisionCamera(f"http://127.0.0.1:{b.api_port}", "cam-test-in",
                                  r.json()["secret"])  # fmt: skip
            t0 = time.monotonic()
            try:
                pushed = await cam.push("甘G24680", datetime.now(UTC))
            finally:
                await cam.aclose()
            assert pushed.status_code == 200, pushed.text
            d = await settled(lane(b), 1)
            print(f"relayed raise confirmed on B after {time.monotonic() - t0:.2f} s")
            assert d.state == "confirmed", d.detail
            assert sim.action_writes(1, "raise") == 1
            assert lane(b).state.phase != "fault"

            async def up_on_b() -> bool:
                return (await gate_now(b, token)).get("position") == "up"

            await wait_for(up_on_b, 5, interval=0.1, what="the gate up, on B")
            # an operator's open through B's API
            r = await api(b, "POST", f"/api/v1/lanes/{LANE}/open", token,
                          json={"reason": "relay test"})  # fmt: skip
            assert r.status_code == 202, r.text
            d2 = await settled(lane(b), 2)
            assert d2.state == "confirmed" and sim.action_writes(1, "raise") == 2
        # A is gone: nobody drives the bus; B's command fails within seconds, never runs late
        t0 = time.monotonic()
        r = await api(
            b,
            "POST",
            f"/api/v1/lanes/{LANE}/open",
            token,
            json={"reason": "car waiting at the barrier"},
        )
        assert r.status_code == 202, r.text
        d3 = await settled(lane(b), 3)
        assert d3.state == "failed" and "no instance drives" in d3.detail
        assert time.monotonic() - t0 < 6
        assert sim.action_writes(1, "raise") == 2

        async def offline_on_b() -> bool:
            return (await gate_now(b, token)).get("online") is False

        await wait_for(offline_on_b, 8, interval=0.2, what="the gate shown offline")


async def test_one_driver_per_bus_and_a_takeover(
    mosquitto: Broker, pg_url: str, sim: GateSimulator
) -> None:
    bus = bus_key(sim.url)
    async with contextlib.AsyncExitStack() as sa, contextlib.AsyncExitStack() as sb:
        stacks = {}
        for stack in (sa, sb):
            gw = await stack.enter_async_context(
                running_gateway(gateway_settings(pg_url, mosquitto, lanes={"gates": "modbus"}))
            )
            stacks[id(gw)] = stack
            if stack is sa:
                a = gw
            else:
                b = gw
        await add_lane(a, sim)
        for gw in (a, b):
            await wait_for(lambda gw=gw: LANE in gw.services.lanes.lanes, 10, what="lane")
        await wait_for(lambda: bus in gates(a).held or bus in gates(b).held, 5, what="a driver")
        assert not (bus in gates(a).held and bus in gates(b).held)
        driver, other = (a, b) if bus in gates(a).held else (b, a)
        # the one that does not drive relays; the read-back comes back confirmed
        await other.services.lanes.on_read(
            LaneRead("cam-test-in", "甘G11111", datetime.now(UTC), "r1")
        )
        d = await settled(lane(other), 1)
        assert d.state == "confirmed", d.detail
        assert sim.action_writes(1, "raise") == 1
        # the driver loses its database connection (a partition): its lock goes with it, the
        # other takes the bus, and the old driver stops polling and cannot take it back
        async with other.services.sessions() as db:
            killed = await db.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_locks WHERE "
                    "locktype = 'advisory' AND granted AND classid = :ns AND objid = :key"
                ),
                {"ns": LOCK_NS, "key": lock_key(bus)},
            )
        assert killed == 1
        await wait_for(lambda: bus in gates(other).held, 5, what="the bus taken on a partition")
        await wait_for(lambda: bus not in gates(driver).held, 5)
        local = gates(driver).local
        assert local is not None
        await wait_for(lambda: not local._tasks, 5, what="the old driver stops polling")
        await wait_for(lambda: gates(driver)._lost.is_set() is False, 5)  # reconnected
        assert bus not in gates(driver).held and bus in gates(other).held
        driver, other = other, driver
        # the driver stops: the other takes the bus over and drives the gate itself
        await stacks[id(driver)].aclose()
        t0 = time.monotonic()
        await wait_for(lambda: bus in gates(other).held, 5, what="the bus taken over")
        print(f"\nbus taken over {time.monotonic() - t0:.2f} s after its driver stopped")
        token = (await make_tokens(other))["operator"]

        async def polled() -> bool:
            now = await gate_now(other, token)
            return bool(now.get("online")) and now.get("driver") == gates(other).instance

        await wait_for(polled, 5, interval=0.1, what="the new driver polls the gate")
        n = len(lane(other).recent) + 1
        r = await api(
            other,
            "POST",
            f"/api/v1/lanes/{LANE}/open",
            token,
            json={"reason": "car waiting at the barrier"},
        )
        assert r.status_code == 202, r.text
        d = await settled(lane(other), n)
        assert d.state == "confirmed", d.detail
        assert sim.action_writes(1, "raise") == 2
