"""``citygate modbus probe`` against the simulated controllers, as a technician runs it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from drivers.gates.models import shipped_model
from gateway.cli import build_parser
from gateway.demo.gates import GateSimulator, SimGate


async def cli(cwd: Path, *args: str) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITYGATE_")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gateway.cli", "modbus", *args,
        cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_probe_prints_the_map_as_read(tmp_path: Path) -> None:
    logic = shipped_model("example-logic-hr")
    sim = GateSimulator({
        1: SimGate(shipped_model("example-relay4"), vehicle_present=True),
        2: SimGate(logic, position="up", fault_code=5),
    })  # fmt: skip
    url = await sim.start_tcp()
    try:
        rc, out, err = await cli(tmp_path, "probe", url, "--unit", "2", "--model",
                                 "example-logic-hr", "--json")  # fmt: skip
        assert rc == 0, err
        assert json.loads(out) == {
            "bus": url, "unit": 2, "model": "example-logic-hr", "example": True,
            "reads": [{"table": "input", "address": 0, "values": [1, 0, 5]}],
            "state": {"position": "up", "raw_position": 1, "vehicle_present": False,
                      "fault_code": 5, "fault": "boom broken away"},
            "error": None,
        }  # fmt: skip
        assert "citygate: config" not in err  # needs no config file, says nothing of one
        rc, out, _ = await cli(tmp_path, "probe", url, "--unit", "1")
        assert rc == 0 and "discrete 0: 0 1 0 1" in out and "vehicle_present: true" in out
        rc, out, err = await cli(tmp_path, "probe", url, "--unit", "9", "--timeout", "0.2")
        assert rc == 5 and "probe failed: unit 9: no answer" in err  # nothing answered
        assert not [w for w in sim.writes]  # a probe writes nothing
    finally:
        await sim.stop()


def run(*argv: str) -> int:
    """The command itself, in this process (``main`` would set up the process's logging)."""
    args = build_parser().parse_args(["modbus", *argv])
    result: int = args.func(args)
    return result


def test_probe_refuses_bad_urls_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert run("probe", "http://x", "--unit", "1") == 2
    assert "the scheme must be tcp:// or serial://" in capsys.readouterr().err
    assert run("probe", "tcp://x", "--unit", "1", "--model", "nope") == 2
    assert "unknown model 'nope'" in capsys.readouterr().err
    assert run("models", "--json") == 0
    models = json.loads(capsys.readouterr().out)
    assert [m["model"] for m in models["models"]] == ["example-logic-hr", "example-relay4"]
