"""`make demo` as a newcomer sees it: one command, a URL, vacancies that change."""

from __future__ import annotations

import json
import os
import re
import signal
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


def _children(pid: int) -> dict[int, str]:
    """Live child processes of *pid*: {pid: command name}."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            name = stat.with_name("comm").read_text().strip()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out[int(stat.parent.name)] = name
    return out


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _start_demo(cwd: Path, **env: str) -> tuple[subprocess.Popen[str], str]:
    """`citygate demo` as `make demo` runs it, in a process group of its own (so a Ctrl-C
    can be sent to the group, as a terminal does); returns it and its API URL."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "demo", "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean, "CITYGATE_LOG__LEVEL": "WARNING", **env},
        start_new_session=True,
    )
    assert proc.stdout is not None
    url = None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        m = re.search(r"API docs:  (http://\S+)/docs", line)
        url = m.group(1) if m else url
        if "Press Ctrl-C" in line:
            break
    if url is None:
        proc.kill()
        _, err = proc.communicate(10)
        pytest.fail(f"the demo printed no URL: {err[-2000:]}")
    return proc, url


def _ctrl_c(proc: subprocess.Popen[str]) -> str:
    """SIGINT to the demo's whole process group, as the terminal sends it; its stderr."""
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    return err


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", *args],
        cwd=cwd,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.slow
def test_cli_beside_the_demo_then_ctrl_c(tmp_path: Path) -> None:
    """The README's path: `make demo`, then CLI commands with no flags from the same directory
    reach the running demo; a second demo is refused in one line; Ctrl-C ends it cleanly."""
    proc, url = _start_demo(tmp_path)
    try:
        brokers = [p for p, name in _children(proc.pid).items() if name == "mosquitto"]
        assert len(brokers) == 1, _children(proc.pid)

        made = _cli(tmp_path, "token", "create", "--role", "inspector")
        assert made.returncode == 0, made.stderr
        token = made.stdout.strip()
        assert token.startswith("cg_") and "\n" not in token
        assert ".demo/citygate.toml" in made.stderr
        r = httpx.get(f"{url}/api/v1/cases", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text  # at once: no restart, no reload

        status = _cli(tmp_path, "telemetry", "status", "--json")
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["spool_limit_bytes"] > 0
        assert _cli(tmp_path, "cases", "list").returncode == 0

        second = _cli(tmp_path, "demo", "--port", "0")
        assert second.returncode != 0
        lines = second.stderr.strip().splitlines()
        assert len(lines) == 1 and "already running in .demo" in lines[0], second.stderr
        assert str(proc.pid) in lines[0]
    finally:
        err = _ctrl_c(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
    assert not _alive(brokers[0]), "the embedded broker outlived the demo"


@pytest.mark.slow
def test_ctrl_c_with_the_in_process_broker(tmp_path: Path) -> None:
    proc, _ = _start_demo(tmp_path, CITYGATE_DEMO__BROKER="amqtt")
    assert "mosquitto" not in _children(proc.pid).values()
    err = _ctrl_c(proc)
    assert proc.returncode == 0, err
    assert "Traceback" not in err, err
