"""End to end: a sensor uplink through Mosquitto into a running gateway comes out as points in
InfluxDB's v2 write API (VictoriaMetrics here), read back from the server."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from drivers.sensors import nwave
from gateway.town import load_town
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for
from tests.telemetry_servers import Victoria, victoria_fixture, vm_export_async  # noqa: F401

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
        health = await wait_for(
            lambda: vm_export_async(victoria.url, "gateway_messages_in"),
            20,
            interval=0.5,
            what="gateway health points",
        )
        assert max(health[0]["values"]) >= 1
        assert gw.telemetry.pipeline.counters.written > 0
        assert gw.metrics_value("citygate_telemetry_points_written_total") > 0
