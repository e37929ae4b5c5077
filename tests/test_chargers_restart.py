"""A gateway restart, as the charger inspector sees it (issue 9): simulated chargers (the ocpp
library's ChargePoint over real websockets) charge and fault on one gateway, the gateway stops
and a new one starts on the same database. Energy today, the fault history and the last meter
reading survive; within the reconnect grace the chargers read "reconnecting (gateway restarted
N s ago)", never a probe that was never sent; a 2.0.1 ``TransactionEvent Ended`` without
``evse`` is credited to the connector that carried the transaction. And `citygate chargers
health --json` shows what ``GET /api/v1/chargers`` shows."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gateway.demo.ocpp import Charger16, Charger201
from gateway.directory.chargers import set_password
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

pytestmark = [pytest.mark.slow, pytest.mark.asyncio(loop_scope="module")]

TOWN = ZoneInfo("Asia/Shanghai")


def readings_today(now: datetime) -> tuple[datetime, datetime]:
    """Two instants before ``now`` on the town's current day (so energy today is exact)."""
    midnight = now.astimezone(TOWN).replace(hour=0, minute=0, second=0, microsecond=0)
    a = max(now - timedelta(minutes=2), midnight.astimezone(UTC))
    return a, a + (now - a) / 2


async def get(http: httpx.AsyncClient, path: str, token: str) -> Any:
    r = await http.get(path, headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def cli_health(db_url: str) -> Any:
    env = {**os.environ, "CITYGATE_DATABASE__URL": f'"{db_url}"'}
    res = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "chargers", "health", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


async def test_inspector_state_survives_a_restart(mosquitto: Broker, module_db_url: str) -> None:
    settings = gateway_settings(module_db_url, mosquitto, ocpp={"heartbeat_s": 60})
    ev = Charger201("ws://unused", "SDEV005")  # two EVSEs: the session runs on EVSE 2
    ac = Charger16("ws://unused", "SDEV001")  # faults, then recovers
    async with running_gateway(settings) as gw:
        tokens = await make_tokens(gw)
        async with gw.services.persister._sessions.begin() as s:
            ev.password = await set_password(s, "SDEV005", gw.services.clock())
            ac.password = await set_password(s, "SDEV001", gw.services.clock())
        base = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp/"
        ev.url, ac.url = base + "SDEV005", base + "SDEV001"
        await ev.connect()
        await ac.connect()
        await ev.boot()
        await ev.status(1, "Available")
        await ev.status(2, "Occupied")
        t1, t2 = readings_today(datetime.now(UTC))
        tx = await ev.start_transaction(2, "APP-1", meter_start=10_000, timestamp=t1)
        await ev.meter_values(2, tx=tx, energy_wh=13_000, timestamp=t2)
        await ac.boot()
        await ac.fault(1, "GroundFailure", vendor_error_code="E-0x1F")
        await ac.status(1, "Available")
        await ac.status(2, "Available")
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:

            async def recorded() -> bool:
                e = await get(http, "/api/v1/chargers/SDEV005", tokens["inspector"])
                a = await get(http, "/api/v1/chargers/SDEV001", tokens["inspector"])
                return e["energy_today_wh"] == 3_000 and a["state"] == "available"

            await wait_for(recorded, 10, what="energy and the fault recorded")
    # The gateway stopped: it closed the chargers' sockets.
    await asyncio.wait_for(asyncio.gather(ev.wait_closed(), ac.wait_closed()), 10)

    async with running_gateway(settings) as gw:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            inspector = tokens["inspector"]
            e = await get(http, "/api/v1/chargers/SDEV005", inspector)
            a = await get(http, "/api/v1/chargers/SDEV001", inspector)
            for body in (e, a):
                assert body["liveness"] == "reconnecting", body
                assert body["state"] == "warning" and body["since"] is not None
                assert body["reason"].startswith("reconnecting (gateway restarted ")
                assert "probe" not in " ".join(body["reasons"])
            assert e["energy_today_wh"] == 3_000
            conn2 = next(c for c in e["connectors"] if c["id"] == 2)
            assert (conn2["last_meter_wh"], conn2["transaction_id"]) == (13_000, tx.id)
            assert [(f["connector_id"], f["error_code"]) for f in a["faults"]] == [
                (1, "GroundFailure")
            ]

            # They reconnect; the session ends without an evse (this process never saw it start).
            base = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp/"
            ev.url, ac.url = base + "SDEV005", base + "SDEV001"
            await ev.connect()
            await ac.connect()
            await ac.heartbeat()
            await ev.stop_transaction(tx, meter_stop=15_000, timestamp=datetime.now(UTC))

            async def credited() -> dict[str, Any] | None:
                body = await get(http, "/api/v1/chargers/SDEV005", inspector)
                conn2 = next(c for c in body["connectors"] if c["id"] == 2)
                return body if conn2["transaction_id"] is None else None

            e = await wait_for(credited, 10, what="the end credited to EVSE 2")
            conn2 = next(c for c in e["connectors"] if c["id"] == 2)
            assert (e["energy_today_wh"], conn2["last_meter_wh"]) == (5_000, 15_000)
            assert e["online"] and e["liveness"] == "online"
            await gw.services.charging.flushed()  # the book credits before the session is written
            sessions = await get(http, "/api/v1/chargers/SDEV005/sessions", inspector)
            (session,) = sessions["sessions"]
            assert (session["state"], session["connector_id"]) == ("closed", 2)

            # The CLI computes the fleet from the database with the API's own function.
            async def steady() -> Any:
                body = await get(http, "/api/v1/chargers", inspector)
                lines = {x["id"]: x for x in body["chargers"]}
                ok = lines["SDEV001"]["liveness"] == lines["SDEV005"]["liveness"] == "online"
                return body if ok else None

            await wait_for(steady, 10, what="both chargers online")
            await gw.services.charging.flushed()
            api = await get(http, "/api/v1/chargers", inspector)
            cli = cli_health(module_db_url)

            def view(body: Any) -> list[tuple[str, str, str, str]]:
                return [(x["id"], x["state"], x["reason"], x["liveness"]) for x in body["chargers"]]

            assert view(cli) == view(api)
            assert cli["counts"] == api["counts"]
            assert api["counts"]["offline"] == len(gw.services.charging.chargers) - 2
        await ev.disconnect()
        await ac.disconnect()
