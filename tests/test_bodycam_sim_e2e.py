"""The town's 72 simulated body cams against the real gateway's GB/T 28181 platform, through
the demo hook: passwords set through the platform's registry (HA1 only), every cam registered
over UDP with digest, online in ``GET /api/v1/field`` with a position inside the town and the
battery its DeviceStatus answer reported, the platform's subscription carried in its dialog;
then a clean stop."""

from __future__ import annotations

import asyncio

import httpx

from gateway.demo.bodycam_town import simulate_town_bodycams
from gateway.demo.patrol import bounds_of
from gateway.directory.town import load_town
from tests.conftest import gateway_settings, make_tokens, running_gateway, wait_for


async def test_town_cams_online_in_the_field_view(mosquitto, tmp_path) -> None:  # type: ignore[no-untyped-def]
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        bodycams={"sip_port": 0, "keepalive_interval_s": 2, "position_interval_s": 1},
    )
    town = load_town(settings.town.file)
    box = bounds_of([(s.lat, s.lon) for s in town.sites])
    async with running_gateway(settings) as gw:
        tokens = await make_tokens(gw)
        stop = asyncio.Event()
        sim_task = asyncio.create_task(
            simulate_town_bodycams(gw, town, stop, overrides={"start_spread_s": 1.0})
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            auth = {"Authorization": f"Bearer {tokens['operator']}"}

            async def field() -> dict:  # type: ignore[type-arg]
                r = await http.get("/api/v1/field", headers=auth)
                assert r.status_code == 200, r.text
                return r.json()  # type: ignore[no-any-return]

            async def all_placed() -> bool:
                view = await field()
                cams = view["cams"]
                return view["online"] == 72 and all(
                    c["position"] and c["battery_percent"] is not None for c in cams
                )

            await wait_for(all_placed, 30, interval=0.5, what="72 cams online with positions")
            view = await field()
            for c in view["cams"]:
                p = c["position"]
                assert box.contains(p["lat"], p["lon"]), c
                assert 0 <= c["battery_percent"] <= 100
                assert c["officer"] and c["squad"]
        stop.set()
        stats = await asyncio.wait_for(sim_task, 15)
        assert stats is not None
        assert stats.registrations >= 72 and stats.refused == 0
        assert stats.subscriptions >= 72 and stats.ok.get("notify", 0) > 0
        assert stats.queries_answered >= 72
        assert stats.registered == 0  # every cam unregistered on the way out
