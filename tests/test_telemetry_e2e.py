"""End to end: a sensor uplink through Mosquitto into a running gateway comes out as points in
InfluxDB's v2 write API (VictoriaMetrics here), read back from the server."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from drivers.sensors import nwave
from gateway.directory.town import load_town
from tests.conftest import Broker, free_port, gateway_settings, running_gateway, wait_for
from tests.telemetry_servers import (  # noqa: F401
    Victoria,
    own_victoria_fixture,
    victoria_fixture,
    vm_export_async,
)

TOWN = load_town(None)


@pytest.mark.slow
async def test_uplink_becomes_points(mosquitto: Broker, victoria: Victoria, tmp_path: Path) -> None:
    sensor = next(s for s in TOWN.sensors if s.model == "nwave-nps405")
    berth = next(b for b in TOWN.berths if b.id == sensor.berth)
    dev = sensor.dev_eui.lower()
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        telemetry={
            "url": victoria.url,
            "org": "town",
            "bucket": "citygate",
            "spool_dir": str(tmp_path / "spool"),
            "flush_interval_s": 0.1,
            "health_interval_s": 0.5,
        },
    )
    sent = datetime.now(UTC).replace(microsecond=123000) - timedelta(seconds=5)
    async with running_gateway(settings) as gw:
        port, data = nwave.encode_status(True)
        up = {
            "deviceInfo": {"devEui": dev},
            "fCnt": 3,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
            "time": sent.isoformat(),
            "rxInfo": [{"rssi": -97, "snr": 7.5}],
        }
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.publish(f"application/a/device/{dev}/event/up", json.dumps(up), qos=1)

        async def series(name: str) -> list[dict[str, Any]]:
            return [
                s
                for s in await vm_export_async(victoria.url, name)
                if s["metric"].get("device") == dev or s["metric"].get("site") == berth.site
            ]

        state = await wait_for(
            lambda: series("berth_state_occupied"), 20, interval=0.5, what="berth_state point"
        )
        assert state[0]["values"] == [1]
        assert state[0]["metric"]["site"] == berth.site and state[0]["metric"]["berth"] == berth.id
        # The uplink's own time (VictoriaMetrics keeps milliseconds).
        assert state[0]["timestamps"] == [int(sent.timestamp() * 1000)]
        rssi = await wait_for(lambda: series("berth_sensor_rssi"), 20, interval=0.5)
        assert rssi[0]["values"] == [-97]
        counts = await wait_for(lambda: series("site_counts_occupied"), 20, interval=0.5)
        assert counts[0]["values"][-1] >= 1

        async def health() -> list[float]:
            got = await vm_export_async(victoria.url, "gateway_messages_in")
            values = [v for x in got for v in x["values"]]
            return values if values and max(values) >= 1 else []

        await wait_for(health, 20, interval=0.5, what="gateway health points counting the uplink")
        assert gw.services.telemetry.pipeline.counters.written > 0
        assert gw.metrics_value("citygate_telemetry_points_written_total") > 0


@pytest.mark.slow
async def test_gateway_killed_during_outage_delivers_after_restart(
    mosquitto: Broker, own_victoria: Victoria, tmp_path: Path
) -> None:
    """Uplinks arrive while InfluxDB is down; the gateway spools their points and is killed
    with SIGKILL; restarted with the server back, it delivers every spooled point."""
    from telemetry import SPOOL_FILE
    from telemetry.spool import read_stats

    spool_dir = tmp_path / "spool"
    api_port = free_port()
    env = {
        **os.environ,
        "CITYGATE_DATABASE__URL": f'"sqlite+aiosqlite:///{tmp_path / "cg.db"}"',
        "CITYGATE_MQTT__PORT": str(mosquitto.port),
        "CITYGATE_MQTT__CLIENT_ID": '"crash-test"',
        "CITYGATE_API__PORT": str(api_port),
        "CITYGATE_BODYCAMS__SIP_PORT": "0",
        "CITYGATE_OCPP__PORT": "0",
        "CITYGATE_DRONES__MAVLINK_PORT": "0",
        "CITYGATE_TELEMETRY__URL": f'"{own_victoria.url}"',
        "CITYGATE_TELEMETRY__SPOOL_DIR": f'"{spool_dir}"',
        "CITYGATE_TELEMETRY__FLUSH_INTERVAL_S": "0.1",
        "CITYGATE_TELEMETRY__TIMEOUT_S": "1",
        "CITYGATE_LOG__LEVEL": '"WARNING"',
    }
    await asyncio.to_thread(own_victoria.stop)  # the outage
    sensors = [s for s in TOWN.sensors if s.model == "nwave-nps405"][:20]
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)

    async def start() -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "gateway.cli",
            "run",
            env=env,
            cwd=tmp_path,  # no stray config file found by the search order
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )

    proc = await start()
    try:
        # Ready means subscribed (its MQTT session is persistent from then on).
        async def ready() -> bool:
            async with httpx.AsyncClient() as http:
                try:
                    r = await http.get(f"http://127.0.0.1:{api_port}/readyz")
                except httpx.HTTPError:
                    return False
                return r.status_code == 200

        await wait_for(ready, 30, interval=0.1, what="gateway ready")
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            for i, s in enumerate(sensors):
                port, data = nwave.encode_status(True)
                up = {
                    "deviceInfo": {"devEui": s.dev_eui.lower()},
                    "fCnt": 100 + i,
                    "fPort": port,
                    "data": base64.b64encode(data).decode(),
                    "time": (base + timedelta(seconds=i)).isoformat(),
                }
                await c.publish(
                    f"application/a/device/{s.dev_eui.lower()}/event/up", json.dumps(up), qos=1
                )

        def spooled() -> int:
            try:
                return read_stats(spool_dir / SPOOL_FILE).pending_points
            except Exception:  # the file is being created
                return 0

        # Each uplink yields a berth_sensor, a berth_state and a site_counts point at least.
        await wait_for(lambda: spooled() >= 3 * len(sensors), 30, what="points spooled")
        held = spooled()
    finally:
        proc.kill()  # SIGKILL: no shutdown, no flush
        await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    await asyncio.to_thread(own_victoria.start)
    proc = await start()
    try:

        async def states() -> list[dict[str, Any]]:
            got = await vm_export_async(own_victoria.url, "berth_state_occupied")
            devices = {s.dev_eui.lower() for s in sensors}
            return [x for x in got if x["metric"].get("device") in devices]

        found = await wait_for(
            lambda: _all(states(), len(sensors)), 40, interval=0.5, what="points delivered"
        )
        stamps = sorted(t for x in found for t in x["timestamps"])
        assert stamps == [
            int((base + timedelta(seconds=i)).timestamp() * 1000) for i in range(len(sensors))
        ]
        await wait_for(
            lambda: read_stats(spool_dir / SPOOL_FILE).pending_points == 0, 30, what="spool drained"
        )
        assert held >= 3 * len(sensors)
    finally:
        proc.terminate()
        await proc.wait()


async def _all(coro: Any, n: int) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = await coro
    return got if len(got) >= n else []
