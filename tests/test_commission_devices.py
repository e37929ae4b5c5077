"""Commissioning from the database (SQLite and PostgreSQL) and against a real gate controller
(the pymodbus simulator over TCP): the one function the CLI and the API share, and the CLI's
table, JSON and exit codes."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import logging
import socket
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import async_sessionmaker

from drivers.gates.models import shipped_model
from events import now_utc
from gateway.config import CommissioningConfig
from gateway.demo.gates import GateSimulator, SimGate
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import BerthRow, DeviceRow, LaneRow, SiteRow
from gateway.services.commissioning.gather import CannotCommission, FreshGates, NoSuchDevice
from gateway.services.commissioning.service import Commissioner

GOOD, WEAK, NEVER = "70b3d5ae00000001", "70b3d5ae00000002", "70b3d5ae00000003"
CONFIG = CommissioningConfig(gate_timeout_s=0.5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def seed(sessions: async_sessionmaker[Any], now: datetime, gate_bus: str) -> None:
    recent = now - timedelta(seconds=30)
    async with sessions.begin() as db:
        db.add(SiteRow(id="cp-t", name="测试停车场", kind="car_park", lat=38.78, lon=101.08,
                       capacity=3, counting="berth_sensors", segment_class="A"))  # fmt: skip
        await db.flush()
        for n, state, seen in ((1, "free", recent), (2, "occupied", recent), (3, "unknown", None)):
            db.add(BerthRow(id=f"b-{n}", site_id="cp-t", number=str(n), lat=38.78, lon=101.08,
                            state=state, last_seen=seen))  # fmt: skip
        await db.flush()

        def sensor(dev: str, berth: str, **kw: Any) -> DeviceRow:
            return DeviceRow(id=dev, kind="berth_sensor", protocol="lorawan",
                             model="nwave-nps405", address=dev, berth_id=berth,
                             lifecycle="active", created_at=now, updated_at=now, **kw)  # fmt: skip

        db.add(sensor(GOOD, "b-1", last_seen=recent, rssi=-88.0, snr=8.25, battery_pct=91.0))
        db.add(sensor(WEAK, "b-2", last_seen=recent, rssi=-126.0, snr=-3.0, battery_pct=9.0))
        db.add(sensor(NEVER, "b-3"))
        db.add(DeviceRow(id="ctl-t", kind="carpark_controller", protocol="mqtt-json",
                         model="entry-exit-counter", address="ctl-t", site_id="cp-t",
                         lifecycle="active", created_at=now, updated_at=now))  # fmt: skip
        for lane, bus in (("ln-up", gate_bus), ("ln-dead", f"tcp://127.0.0.1:{free_port()}")):
            db.add(LaneRow(id=lane, site_id="cp-t", kind="entry", camera_id=f"cam-{lane}",
                           gate_bus=bus, gate_unit=1, gate_model="example-relay4",
                           created_at=now, updated_at=now))  # fmt: skip


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    s = GateSimulator({1: SimGate(shipped_model("example-relay4"), travel_s=0.2)})
    await s.start_tcp()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture
async def commissioner(db_url: str, sim: GateSimulator) -> AsyncIterator[Commissioner]:
    engine = create_engine(db_url)
    await migrate(engine)
    sessions = sessionmaker_for(engine)
    await seed(sessions, now_utc(), sim.url)
    try:
        yield Commissioner(sessions, CONFIG, 180.0, now_utc, FreshGates(now_utc, 0.5, {}))
    finally:
        await engine.dispose()


def checks(doc: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in doc["checks"]}


async def test_a_good_sensor_passes(commissioner: Commissioner) -> None:
    doc = await commissioner.commission(GOOD.upper())  # a DevEUI in any case
    assert doc["device_id"] == GOOD and doc["kind"] == "sensor" and doc["passed"] is True
    assert checks(doc)["rssi"] == "passed" and checks(doc)["first_status"] == "passed"
    assert checks(doc)["calibration"] == "skipped"


async def test_weak_and_never_seen_sensors_fail(commissioner: Commissioner) -> None:
    weak = await commissioner.commission(WEAK)
    assert weak["passed"] is False
    failed = {c["name"]: c for c in weak["checks"] if c["status"] == "failed"}  # type: ignore[attr-defined]
    assert set(failed) == {"rssi", "battery"}
    assert failed["rssi"]["observed"] == "-126 dBm" and failed["battery"]["observed"] == "9 %"
    never = await commissioner.commission(NEVER)
    assert {n for n, s in checks(never).items() if s == "failed"} == {
        "heard", "rssi", "snr", "battery", "first_status",
    }  # fmt: skip


async def test_unknown_and_uncheckable_devices(commissioner: Commissioner) -> None:
    with pytest.raises(NoSuchDevice):
        await commissioner.commission("no-such-thing")
    with pytest.raises(NoSuchDevice):
        await commissioner.commission(GOOD, kind="charger")
    with pytest.raises(CannotCommission, match="carpark_controller"):
        await commissioner.commission("ctl-t")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_gate_probe_reads_the_map_and_moves_nothing(
    commissioner: Commissioner, sim: GateSimulator
) -> None:
    doc = await commissioner.commission("ln-up")
    assert doc["kind"] == "gate" and doc["passed"] is True
    assert checks(doc) == {"register_map": "passed", "probe": "passed", "fault": "passed",
                           "raise": "skipped", "lower": "skipped"}  # fmt: skip
    assert sim.action_writes(1, "raise") == sim.action_writes(1, "lower") == 0


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_gate_cycle_raises_and_lowers_confirmed_by_read_back(
    commissioner: Commissioner, sim: GateSimulator
) -> None:
    doc = await commissioner.commission("ln-up", cycle=True)
    assert doc["passed"] is True, doc
    assert checks(doc)["raise"] == checks(doc)["lower"] == "passed"
    assert sim.action_writes(1, "raise") == 1 and sim.action_writes(1, "lower") == 1
    assert sim.gates[1].now(sim.clock()) == "down"
    assert sim.gates[1].coils == {0: 0, 1: 0}  # both pulses ended before the bus was closed


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_a_controller_that_is_down_fails_fast_with_a_hint(
    commissioner: Commissioner,
) -> None:
    loop = asyncio.get_running_loop()
    start = loop.time()
    doc = await asyncio.wait_for(commissioner.commission("ln-dead", cycle=True), 5)
    assert loop.time() - start < 3  # the probe's timeouts, no hang
    probe = next(c for c in doc["checks"] if c["name"] == "probe")  # type: ignore[attr-defined]
    assert probe["status"] == "failed" and "does not answer" in probe["hint"]
    assert checks(doc)["raise"] == "skipped" and doc["passed"] is False


# -- the CLI -------------------------------------------------------------------------------


def cli(cfg: Path, *args: str) -> tuple[int, str, str]:
    """``citygate commission ARGS -c CFG`` in this process (the subprocess way, with its
    imports, is in tests/test_commission_e2e.py): exit code, stdout, stderr."""
    from gateway.cli import main

    out, err = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level  # main() sets up logging: put it back
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(["commission", *args, "-c", str(cfg)])
        except SystemExit as exc:  # argparse's usage errors
            rc = int(exc.code or 0)
        finally:
            root.handlers[:], root.level = handlers, level
    return rc, out.getvalue(), err.getvalue()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_cli_table_json_and_exit_codes(
    commissioner: Commissioner, db_url: str, tmp_path: Path
) -> None:
    cfg = tmp_path / "citygate.toml"
    cfg.write_text(f'[database]\nurl = "{db_url}"\n[commissioning]\ngate_timeout_s = 0.5\n')
    run = functools.partial(asyncio.to_thread, cli, cfg)  # main() runs its own event loop
    rc_good, table, _ = await run(GOOD)
    rc_weak, js, _ = await run(WEAK, "--json")
    rc_unknown, _, err_unknown = await run("nope")
    rc_ctl, _, err_ctl = await run("ctl-t")
    rc_kind, _, err_kind = await run(GOOD, "--kind", "toaster")
    rc_gate, gate_js, _ = await run("ln-up", "--json", "--kind", "gate")
    assert rc_good == 0 and "PASSED: 7 passed, 0 failed, 2 skipped" in table
    assert table.splitlines()[1].split()[:5] == ["check", "result", "observed", "expected", "hint"]
    assert rc_weak == 1
    weak = json.loads(js)
    expected = await commissioner.commission(WEAK)
    assert {**weak, "at": None} == {**expected, "at": None}  # the shared function's output
    assert rc_unknown == 3 and "no device 'nope'" in err_unknown
    assert rc_ctl == 2 and "no commissioning checks" in err_ctl
    assert rc_kind == 2 and "invalid choice" in err_kind
    assert rc_gate == 0 and json.loads(gate_js)["passed"] is True
