"""The real ``citygate run`` killed with SIGKILL the moment its API shows the last uplink of a
burst: after a restart every berth is in the state its last uplink said. An uplink is only
acknowledged (PUBACK) once the write-behind commit that holds its state is done, so whatever
the kill cut off is delivered again by the broker, never lost."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path

import aiomqtt
import httpx
import pytest

from drivers.sensors import bosch, nwave
from gateway.demo.broker import free_port
from gateway.directory.town import load_town
from tests.conftest import Broker, wait_for

CODECS = {"nwave-nps405": nwave, "bosch-tps110": bosch}


def uplink(dev: str, model: str, fcnt: int, occupied: bool) -> bytes:
    port, data = CODECS[model].encode_status(occupied)
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "deviceInfo": {"tenantId": "t", "applicationId": "kill9", "devEui": dev},
            "fCnt": fcnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
        }
    ).encode()


@pytest.mark.slow
async def test_kill_9_after_the_api_shows_the_last_uplink_loses_no_berth(
    own_mosquitto: Broker, tmp_path: Path
) -> None:
    town = load_town(None)
    sensors = [s for s in town.sensors if s.model in CODECS]
    site_of = {b.id: b.site for b in town.berths}
    # Every berth gets a state it never had (unknown before): occupied or free, mixed.
    want = {s.berth: ("occupied" if i % 3 else "free") for i, s in enumerate(sensors)}
    api_port = free_port()
    env = {
        **os.environ,
        "CITYGATE_DATABASE__URL": f'"sqlite+aiosqlite:///{tmp_path / "cg.db"}"',
        "CITYGATE_MQTT__PORT": str(own_mosquitto.port),
        "CITYGATE_MQTT__CLIENT_ID": '"kill9"',  # the same persistent session after restart
        "CITYGATE_API__PORT": str(api_port),
        "CITYGATE_BODYCAMS__SIP_PORT": "0",
        "CITYGATE_DRONES__MAVLINK_PORT": "0",
        "CITYGATE_OCPP__ENABLED": "false",
        "CITYGATE_TELEMETRY__SPOOL_DIR": f'"{tmp_path / "spool"}"',
        # The write-behind interval as shipped: acknowledgements, not the interval, decide.
        "CITYGATE_OCCUPANCY__PERSIST_INTERVAL_S": "1.0",
        "CITYGATE_LOG__LEVEL": '"WARNING"',
    }

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway.cli", "run"),
            env=env,
            cwd=tmp_path,  # no stray config file found by the search order
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    async def states(http: httpx.AsyncClient) -> dict[str, str]:
        out: dict[str, str] = {}
        for site in sorted(set(site_of[b] for b in want)):
            r = await http.get(f"/api/v1/sites/{site}/berths")
            out |= {b["id"]: b["state"] for b in r.json()["berths"] if b["id"] in want}
        return out

    async def subscribed(http: httpx.AsyncClient) -> bool:
        try:
            r = await http.get("/readyz")
        except httpx.HTTPError:
            return False
        return r.status_code == 200

    last = sensors[-1]
    proc = await start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            await wait_for(lambda: subscribed(http), 30, interval=0.1, what="gateway ready")
            async with aiomqtt.Client("127.0.0.1", own_mosquitto.port, identifier="pub") as pub:
                for s in sensors:
                    await pub.publish(
                        f"application/kill9/device/{s.dev_eui.lower()}/event/up",
                        uplink(s.dev_eui.lower(), s.model, 1, want[s.berth] == "occupied"),
                        qos=1,
                    )

            async def last_shown() -> bool:
                r = await http.get(f"/api/v1/sites/{site_of[last.berth]}/berths")
                return any(
                    b["id"] == last.berth and b["state"] == want[last.berth]
                    for b in r.json()["berths"]
                )

            await wait_for(last_shown, 15, interval=0.005, what="the last uplink in the API")
    finally:
        proc.kill()  # at once: well inside the one-second write-behind interval
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL

    proc = await start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}") as http:
            await wait_for(lambda: subscribed(http), 30, interval=0.1, what="gateway ready")

            async def all_right() -> bool:
                return await states(http) == want

            try:
                await wait_for(all_right, 20, interval=0.2, what="every berth as last reported")
            except AssertionError:
                got = await states(http)
                wrong = sorted(b for b in want if got.get(b) != want[b])
                raise AssertionError(
                    f"{len(wrong)} of {len(want)} berths wrong after kill -9: {wrong[:5]}"
                ) from None
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 15)
