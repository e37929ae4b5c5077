"""Commissioning a gate the running gateway drives (``[lanes] gates = "modbus"``): the API
probes and cycles it through the gateway's own controller (one connection per bus), against
the pymodbus simulator, confirmed by read-back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest_asyncio

from drivers.gates.models import shipped_model
from gateway.demo.gates import GateSimulator, SimGate
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

T0 = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    s = GateSimulator({1: SimGate(shipped_model("example-relay4"), travel_s=0.2)})
    await s.start_tcp()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture
async def gw(mosquitto: Broker, tmp_path: Any, sim: GateSimulator) -> AsyncIterator[Any]:
    db = f"sqlite+aiosqlite:///{tmp_path / 'citygate.db'}"
    settings = gateway_settings(db, mosquitto, lanes={"gates": "modbus"})
    async with running_gateway(settings) as gateway:
        town = load_town(None)
        (site,) = [s for s in town.sites if s.id == "cp-keyunzhan"]
        extra = parse_town(
            '[town]\nname = "x"\n'
            f'[[sites]]\nid = "{site.id}"\nname = "{site.name}"\nkind = "{site.kind.value}"\n'
            f"lat = {site.lat}\nlon = {site.lon}\ncapacity = {site.capacity}\n"
            f'counting = "entry_exit"\nsegment_class = "{site.segment_class}"\n'
            '[[lanes]]\nid = "ln-test-in"\nsite = "cp-keyunzhan"\nkind = "entry"\n'
            'camera = "cam-test-in"\n'
            f'gate = {{ bus = "{sim.url}", unit = 1, model = "example-relay4" }}\n'
        )
        town = town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})
        async with gateway.services.sessions.begin() as db_session:
            await import_town(db_session, town, T0)
        await wait_for(lambda: "ln-test-in" in gateway.services.lanes.lanes, 5, what="lane live")
        yield gateway


async def test_the_api_cycles_the_gate_through_the_gateways_own_controller(
    gw: Any, sim: GateSimulator
) -> None:
    gates = gw.services.lanes.gates
    live = await wait_for(lambda: gates.controller("ln-test-in"), 5, what="controller")
    await wait_for(lambda: live.online, 5, what="the gateway polls the gate")
    tokens = await make_tokens(gw)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
        r = await http.post(
            "/api/v1/commission/ln-test-in",
            json={"cycle": True},
            headers={"Authorization": f"Bearer {tokens['technician']}"},
        )
    assert r.status_code == 200, r.text
    doc = r.json()
    assert doc["kind"] == "gate" and doc["passed"] is True, doc
    assert {c["name"]: c["status"] for c in doc["checks"]} == {
        "register_map": "passed", "probe": "passed", "fault": "passed",
        "raise": "passed", "lower": "passed",
    }  # fmt: skip
    assert sim.action_writes(1, "raise") == 1 and sim.action_writes(1, "lower") == 1
    assert live.writes_sent == 2  # through the gateway's controller, not a second connection
    assert sim.gates[1].now(sim.clock()) == "down"
