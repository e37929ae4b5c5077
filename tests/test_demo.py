"""`make demo` as a newcomer sees it: one command, a URL, vacancies that change."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import aiomqtt
import httpx
import pytest

from gateway.demo import broker as broker_mod
from gateway.demo.broker import embedded_broker


@pytest.mark.slow
def test_demo_serves_changing_vacancies(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gateway.cli",
            "demo",
            "--port",
            "0",
            "--workdir",
            str(tmp_path),
            "--speed",
            "120",
            "--rate",
            "300",
            "--duration",
            "60",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "CITYGATE_LOG__LEVEL": "WARNING"},
    )
    try:
        assert proc.stdout is not None
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            m = re.search(r"vacancies: (http://\S+/api/v1/sites)", line)
            url = m.group(1) if m else None
        assert url, "the demo printed no URL"
        seen: set[tuple[int, int]] = set()
        deadline = time.monotonic() + 40
        while len(seen) < 3 and time.monotonic() < deadline:
            sites = httpx.get(url, timeout=5).json()["sites"]
            seen.add((sum(s["occupied"] for s in sites), sum(s["free"] for s in sites)))
            time.sleep(0.5)
        assert len(seen) >= 3, f"counts did not change: {seen}"
        # The town's chargers are online over OCPP: their EVSEs report real statuses.
        locations = url.replace("/api/v1/sites", "/api/v1/charging/locations")
        known: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            evses = [e for loc in httpx.get(locations, timeout=5).json()["locations"]
                     for e in loc["evses"]]  # fmt: skip
            known = {}
            for e in evses:
                known[e["status"]] = known.get(e["status"], 0) + 1
            if known.get("AVAILABLE", 0) + known.get("CHARGING", 0) >= len(evses) - 2:
                break
            time.sleep(0.5)
        assert known.get("AVAILABLE", 0) + known.get("CHARGING", 0) >= 80, known
    finally:
        proc.terminate()
        proc.wait(20)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""


async def test_embedded_broker_falls_back_to_amqtt(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(broker_mod, "mosquitto_binary", lambda: None)
    async with embedded_broker() as (host, port, kind):
        assert kind == "amqtt"
        async with aiomqtt.Client(host, port, protocol=aiomqtt.ProtocolVersion.V311) as c:
            await c.subscribe("demo/#", qos=1)
            await c.publish("demo/x", json.dumps({"ok": 1}), qos=1)
            async for message in c.messages:
                assert message.payload == b'{"ok": 1}'
                break
