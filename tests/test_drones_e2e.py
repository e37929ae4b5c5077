"""The sample town's two patrol drones end to end, each over its real link: drone-1 a simulated
DJI dock with its aircraft over the real Mosquitto (DJI Cloud API JSON), drone-2 a pymavlink
vehicle over real UDP. The operator sees both in ``/drones`` and ``/field`` with position,
battery and link; a loudspeaker message and a return-home go out and come back with their
outcome; the vehicle's RTL flies it home; a drone that goes silent is lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from gateway.demo.dji_dock import DockFleet, DockOptions, DockSpec
from gateway.demo.mav_vehicle import MavVehicle
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.slow]

DOCK, AIRCRAFT = "7CTDM1234567890", "1581F5FHD2345678"
MARKET = [(38.7745, 101.0710), (38.7745, 101.0800), (38.7780, 101.0800), (38.7780, 101.0710)]
STATION = [(38.7990, 101.0740), (38.7900, 101.0830), (38.7860, 101.0840)]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def gw(mosquitto: Broker, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Any]:
    db = tmp_path_factory.mktemp("drones-e2e") / "citygate.db"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{db}",
        mosquitto,
        drones={
            "persist_interval_s": 0.1,
            "presence_timeout_s": 3,
            "link_lost_after_s": 4,
            "mavlink_link_timeout_s": 2,
            "mavlink_ack_timeout_s": 0.5,
            "dji_reply_timeout_s": 2,
        },
    )
    async with running_gateway(settings) as gateway:
        yield gateway


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def fleet(gw: Any, mosquitto: Broker) -> AsyncIterator[DockFleet]:
    import asyncio

    spec = DockSpec(DOCK, AIRCRAFT, (38.777302, 101.076078), MARKET)
    options = DockOptions(
        dock_osd_interval_s=0.5, aircraft_osd_interval_s=0.5, progress_interval_s=0.05
    )
    docks = DockFleet(mosquitto.host, mosquitto.port, [spec], options)
    stop = asyncio.Event()
    task = asyncio.create_task(docks.run(stop))
    yield docks
    stop.set()
    await asyncio.wait_for(task, 10)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def vehicle(gw: Any) -> AsyncIterator[MavVehicle]:
    import asyncio

    v = MavVehicle(("127.0.0.1", gw.mavlink_port), STATION, system_id=1, speed_mps=40.0)
    await v.start()
    task = asyncio.create_task(v.run())
    yield v
    task.cancel()
    v.close()


@pytest_asyncio.fixture(loop_scope="module")
async def http(gw: Any) -> AsyncIterator[httpx.AsyncClient]:
    tokens = await make_tokens(gw)
    headers = {"Authorization": f"Bearer {tokens['operator']}"}
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{gw.api_port}", headers=headers, timeout=30
    ) as client:
        yield client


async def drone(http: httpx.AsyncClient, drone_id: str) -> dict[str, Any]:
    r = await http.get(f"/api/v1/drones/{drone_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def until(http: httpx.AsyncClient, drone_id: str, check: Any, what: str) -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def ok() -> bool:
        got.update(await drone(http, drone_id))
        return bool(check(got))

    await wait_for(ok, 20, 0.2, what=what)
    return got


async def test_both_drones_are_seen_with_position_battery_and_link(
    http: httpx.AsyncClient, fleet: DockFleet, vehicle: MavVehicle
) -> None:
    d1 = await until(
        http, "drone-1", lambda d: d["link"] == "online" and d["position"], "drone-1 online"
    )
    assert 38.77 < d1["position"]["lat"] < 38.78 and 101.07 < d1["position"]["lon"] < 101.081
    assert d1["battery_percent"] is not None and d1["dock"]["sn"] == DOCK
    await until(http, "drone-1", lambda d: d["dock"]["link"] == "online", "the dock online")
    d2 = await until(
        http, "drone-2", lambda d: d["link"] == "online" and d["position"], "drone-2 online"
    )
    assert 38.78 < d2["position"]["lat"] < 38.80 and d2["battery_percent"] is not None
    r = await http.get("/api/v1/field")
    assert r.status_code == 200
    assert {d["id"] for d in r.json()["drones"]} == {"drone-1", "drone-2"}


async def test_the_loudspeaker_and_return_home_go_out_and_come_back(
    http: httpx.AsyncClient, fleet: DockFleet, vehicle: MavVehicle
) -> None:
    await until(http, "drone-1", lambda d: d["link"] == "online", "drone-1 online")
    r = await http.post(
        "/api/v1/drones/drone-1/speaker", json={"text": "请勿占道经营", "volume": 70, "loop": False}
    )
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ok"
    assert any(m.startswith("speaker_tts_play_start") for _, m, _, _ in fleet.stats.services)
    r = await http.post("/api/v1/drones/drone-1/return-home")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    # a MAVLink vehicle has no loudspeaker: refused, recorded, nothing sent
    r = await http.post("/api/v1/drones/drone-2/speaker", json={"text": "请勿停车", "volume": 50})
    assert r.status_code == 200 and r.json()["status"] == "rejected", r.text
    await until(http, "drone-2", lambda d: d["link"] == "online", "drone-2 online")
    r = await http.post("/api/v1/drones/drone-2/return-home")
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text
    assert any(c.command == 20 for c in vehicle.commands)  # MAV_CMD_NAV_RETURN_TO_LAUNCH
    d2 = await until(http, "drone-2", lambda d: d["mode"] == "RTL", "drone-2 flying home")
    commands = d2["commands"]
    assert commands[0]["kind"] == "return_home" and commands[0]["status"] == "ok"


async def test_a_silent_vehicle_is_lost_and_comes_back(
    http: httpx.AsyncClient, vehicle: MavVehicle, gw: Any
) -> None:
    await until(http, "drone-2", lambda d: d["link"] == "online", "drone-2 online")
    vehicle.silent = True
    try:
        await until(http, "drone-2", lambda d: d["link"] == "lost", "drone-2 lost")
    finally:
        vehicle.silent = False
    await until(http, "drone-2", lambda d: d["link"] == "online", "drone-2 back")
