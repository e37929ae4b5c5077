"""The running gateway as an operator sees it: restarts, broker outages, silence, SIGTERM."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiomqtt
import httpx
import pytest

from drivers.sensors import nwave
from events import BerthStateChanged, CommsLost, CommsRestored
from gateway.directory.town import load_town
from tests.conftest import Broker, free_port, gateway_settings, running_gateway, wait_for, wait_tcp

TOWN = load_town(None)
NWAVE = next(s for s in TOWN.sensors if s.model == "nwave-nps405")
SITE = next(b.site for b in TOWN.berths if b.id == NWAVE.berth)


def uplink(dev_eui: str, f_cnt: int, occupied: bool) -> bytes:
    port, data = nwave.encode_status(occupied)
    return json.dumps(
        {
            "deviceInfo": {"devEui": dev_eui},
            "fCnt": f_cnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
        }
    ).encode()


async def send(broker: Broker, dev_eui: str, f_cnt: int, occupied: bool) -> None:
    async with aiomqtt.Client(broker.host, broker.port) as c:
        await c.publish(
            f"application/a/device/{dev_eui}/event/up", uplink(dev_eui, f_cnt, occupied), qos=1
        )


@pytest.mark.slow
async def test_state_survives_restart_on_postgresql(mosquitto: Broker, pg_url: str) -> None:
    dev = NWAVE.dev_eui.lower()
    settings = gateway_settings(pg_url, mosquitto)
    async with running_gateway(settings) as gw:
        await send(mosquitto, dev, 41, True)
        await wait_for(
            lambda: gw.services.live.book.berth(NWAVE.berth).state.value == "occupied", 10
        )
        await wait_for(
            lambda: gw.services.persister.flushes > 0 and not gw.services.live.book._dirty_berths,
            10,
        )
    async with running_gateway(settings) as gw2:
        view = gw2.services.live.book.berth(NWAVE.berth)
        assert view.state.value == "occupied"
        assert view.last_fcnt == 41
        # The same uplink again after the restart is recognised as a duplicate.
        await send(mosquitto, dev, 41, True)
        await wait_for(
            lambda: gw2.metrics_value("citygate_uplinks_total", verdict="duplicate") == 1, 10
        )


@pytest.mark.slow
async def test_reconnects_and_receives_what_was_sent_while_away(
    own_mosquitto: Broker, tmp_path: Path
) -> None:
    dev = NWAVE.dev_eui.lower()
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", own_mosquitto)
    async with running_gateway(settings) as gw:
        await send(own_mosquitto, dev, 1, True)
        await wait_for(
            lambda: gw.services.live.book.berth(NWAVE.berth).state.value == "occupied", 10
        )
        own_mosquitto.stop()
        await wait_for(
            lambda: not gw.services.transport.connected.is_set(), 10, what="disconnect seen"
        )
        own_mosquitto.start()  # persistent broker: the gateway's session survives
        await wait_for(gw.services.transport.connected.is_set, 20, what="reconnected")
        await send(own_mosquitto, dev, 2, False)
        await wait_for(lambda: gw.services.live.book.berth(NWAVE.berth).state.value == "free", 10)
        # While the gateway is down, the broker keeps its QoS 1 uplinks (persistent session).
    async with aiomqtt.Client(own_mosquitto.host, own_mosquitto.port) as c:
        await c.publish(f"application/a/device/{dev}/event/up", uplink(dev, 3, True), qos=1)
    async with running_gateway(settings) as gw:
        await wait_for(
            lambda: gw.services.live.book.berth(NWAVE.berth).state.value == "occupied", 10
        )


@pytest.mark.slow
async def test_silent_sensor_goes_unknown_and_comes_back(mosquitto: Broker, tmp_path: Path) -> None:
    # One sensor with a 1 s heartbeat: silent for 2.5 s it is lost, its berth unknown.
    text = f"""
[town]
name = "t"
[[sites]]
id = "st-a"
name = "A"
kind = "on_street"
lat = 38.78
lon = 101.08
capacity = 1
counting = "berth_sensors"
segment_class = "A"
[[berths]]
id = "st-a-1"
site = "st-a"
number = "1"
lat = 38.78
lon = 101.08
[[sensors]]
dev_eui = "{NWAVE.dev_eui}"
model = "nwave-nps405"
berth = "st-a-1"
heartbeat_s = 1
"""
    town_file = tmp_path / "town.toml"
    town_file.write_text(text)
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", mosquitto, town={"file": str(town_file)}
    )
    dev = NWAVE.dev_eui.lower()
    async with running_gateway(settings) as gw:
        seen: list[Any] = []
        sub = gw.services.bus.subscribe(
            "test", lambda e: isinstance(e, CommsLost | CommsRestored | BerthStateChanged)
        )
        await send(mosquitto, dev, 1, True)
        await wait_for(lambda: gw.services.live.book.site("st-a").occupied == 1, 10)
        started = time.monotonic()
        await wait_for(
            lambda: gw.services.live.book.site("st-a").unknown == 1, 10, what="comms lost"
        )
        assert time.monotonic() - started >= 1.5  # not before 2.5 heartbeats (minus slack)
        await send(mosquitto, dev, 2, False)
        await wait_for(lambda: gw.services.live.book.site("st-a").free == 1, 10)
        while not sub.queue.empty():
            seen.append(sub.queue.get_nowait())
        kinds = [type(e).__name__ for e in seen]
        assert "CommsLost" in kinds and "CommsRestored" in kinds
        assert kinds.index("CommsLost") < kinds.index("CommsRestored")


@pytest.mark.slow
def test_sigterm_drains_and_exits_cleanly(mosquitto: Broker, tmp_path: Path) -> None:
    port = free_port()
    env = {
        **os.environ,
        "CITYGATE_DATABASE__URL": f'"sqlite+aiosqlite:///{tmp_path / "cg.db"}"',
        "CITYGATE_MQTT__PORT": str(mosquitto.port),
        "CITYGATE_MQTT__CLIENT_ID": '"sigterm-test"',
        "CITYGATE_API__PORT": str(port),
        "CITYGATE_BODYCAMS__SIP_PORT": "0",
        "CITYGATE_OCPP__PORT": "0",
        "CITYGATE_DRONES__MAVLINK_PORT": "0",
        "CITYGATE_LOG__JSON": "true",
        "CITYGATE_MQTT__PASSWORD": "s3cret-not-in-logs",
        "CITYGATE_TELEMETRY__SPOOL_DIR": f'"{tmp_path / "spool"}"',
    }
    # Logs go to a file: a pipe nobody reads fills up and blocks the gateway's logging.
    log_file = (tmp_path / "stderr.log").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "run"],
        env=env,
        cwd=tmp_path,  # no stray config file found by the search order
        stdout=subprocess.DEVNULL,
        stderr=log_file,
        text=True,
    )
    try:
        wait_tcp("127.0.0.1", port, 30)
        r = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites/{SITE}", timeout=5)
        assert r.status_code == 200
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    proc.wait()
    log_file.seek(0)
    err = log_file.read()
    log_file.close()
    assert proc.returncode == 0, err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    messages = [entry["msg"] for entry in lines]
    assert any("shutting down" in m for m in messages)
    assert any(m == "stopped" for m in messages)
    assert "s3cret-not-in-logs" not in err


def test_logs_redact_secrets() -> None:
    from gateway.logs import redact

    assert "hunter2" not in redact("connect mqtt://gw:hunter2@broker:1883")
    assert "abc.def" not in redact("Authorization: Bearer abc.def")
    assert "xyz" not in redact('{"password": "xyz"}')
    # A plate camera's push URL carries its secret (httpx logs the URLs it posts to).
    line = redact('HTTP Request: POST http://gw/cameras/cam-7/Zq9-s3cr3t_x/vzenith "200 OK"')
    assert "Zq9-s3cr3t_x" not in line and "/cameras/cam-7/***/vzenith" in line


async def test_dead_port_means_not_ready(tmp_path: Path) -> None:
    # A broker that is not there: the API still starts, /readyz says why it is not ready.
    broker = Broker("127.0.0.1", free_port(), None, tmp_path / "none.conf")  # type: ignore[arg-type]
    settings = gateway_settings(f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}", broker)
    from gateway.supervisor import Gateway

    gw = await Gateway.open(settings)
    task = asyncio.create_task(gw.run())
    try:
        await wait_for(gw.started.is_set, 30)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            r = await http.get("/readyz")
            assert r.status_code == 503
            assert r.json()["checks"]["mqtt"] is False
            assert (await http.get("/healthz")).status_code == 200
    finally:
        gw.request_stop()
        await asyncio.wait_for(task, 15)
