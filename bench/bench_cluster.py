"""Sensor uplinks/s through one, two and three gateway instances on one Mosquitto and one
PostgreSQL database (issue 16), next to the broker alone in the same run.

Prints one JSON line per figure: {"name", "value", "unit", "baseline", ...}.

1. raw:      the publisher (a process: QoS 1, 100 in flight) into a private Mosquitto, a bare
             aiomqtt subscriber counting. -> msgs/s: the ceiling of this machine's broker.
2. one:      one ``citygate run`` on a throwaway PostgreSQL database, uplinks applied at
             once (``[occupancy] shared = off``, no shared group): the single-instance path.
3. shared N: N = 1, 2, 3 ``citygate run`` processes in one MQTT 5 shared subscription group,
             each uplink decided under its berth row's lock (``shared = on``). Timed from the
             first publish until the database shows every berth as its last uplink said;
             the instances' CPU (user + system, /proc) over that time per uplink.

The machine has 2 cores: the publisher, the broker, PostgreSQL and the instances share them,
so this reports the scaling, it does not promise it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg
import httpx

from bench.bench_ingest import lorawan_sensors, raw_rate, spawn
from gateway.demo.broker import free_port
from gateway.directory.town import load_town
from tests.conftest import start_mosquitto, wait_tcp

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def emit(name: str, value: float, unit: str, baseline: float | None, **extra: Any) -> None:
    print(
        json.dumps(
            {"name": name, "value": round(value, 1), "unit": unit, "baseline": baseline, **extra}
        ),
        flush=True,
    )


def _log(path: Path) -> Any:
    return path.open("ab")  # the child's warnings, kept with the run


class Instance:
    def __init__(self, n: int, db: str, mqtt_port: int, tmp: Path, shared: bool) -> None:
        self.api = free_port()
        cwd = tmp / f"gw{n}-{uuid.uuid4().hex[:4]}"
        cwd.mkdir()
        self.cwd = cwd
        self.env = {
            **os.environ,
            "CITYGATE_DATABASE__URL": json.dumps(db),
            "CITYGATE_MQTT__PORT": str(mqtt_port),
            # Instance n of each shared run takes up instance n's session of the run before:
            # Mosquitto goes on queueing a shared group's share for a stopped member's
            # persistent session (docs/operations.md), so a fresh id per run would leave
            # uplinks waiting for an instance that never comes back. The single-instance run
            # has ids of its own (its plain subscriptions must not come back in a shared run).
            "CITYGATE_MQTT__CLIENT_ID": f'"bench-{"shared" if shared else "local"}-{n}"',
            "CITYGATE_API__PORT": str(self.api),
            "CITYGATE_API__METRICS_TOKEN_REQUIRED": "false",
            "CITYGATE_OCPP__PORT": str(free_port()),
            "CITYGATE_BODYCAMS__SIP_PORT": "0",
            "CITYGATE_DRONES__MAVLINK_PORT": "0",
            "CITYGATE_LANES__GATES": '"none"',
            "CITYGATE_TELEMETRY__SPOOL_DIR": json.dumps(str(cwd / "spool")),
            "CITYGATE_CAMERAS__EVIDENCE_DIR": json.dumps(str(cwd / "evidence")),
            "CITYGATE_OCCUPANCY__SHARED": '"on"' if shared else '"off"',
            "CITYGATE_LOG__LEVEL": '"WARNING"',
        }
        if shared:
            self.env["CITYGATE_MQTT__SHARED_GROUP"] = '"bench"'
        self.proc: asyncio.subprocess.Process | None = None
        self.http = httpx.AsyncClient(base_url=f"http://127.0.0.1:{self.api}", timeout=10)

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "gateway.cli", "run"),
            env=self.env,
            cwd=self.cwd,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=_log(self.cwd / "stderr.log"),
        )
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if (await self.http.get("/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("a gateway did not get ready in 90 s")

    def cpu_s(self) -> float:
        """The process's user + system CPU seconds so far (all its threads)."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    async def handled(self) -> int:
        text = (await self.http.get("/metrics")).text
        return sum(
            int(float(v)) for v in re.findall(r"citygate_uplinks_total\{[^}]*\} (\S+)", text)
        )

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.terminate()
            await asyncio.wait_for(self.proc.wait(), 30)
        await self.http.aclose()


async def run(
    db: str, dsn: str, mqtt_port: int, tmp: Path, count: int, shared: bool, n: int, fcnt: int
) -> dict[str, Any]:
    gws = [Instance(i, db, mqtt_port, tmp, shared) for i in range(n)]
    try:
        await gws[0].start()
        await asyncio.gather(*(g.start() for g in gws[1:]))
        before = sum([await g.handled() for g in gws])
        cpu0 = sum(g.cpu_s() for g in gws)
        proc, ready = spawn(mqtt_port, count, fcnt, None)
        await asyncio.sleep(1.0)  # the publisher process has started and connected
        ready.set()
        t0 = time.perf_counter()
        # Done when the database shows every berth as its last uplink said: committed, not
        # only handled.
        while await wrong_berths(dsn, fcnt, count):
            if time.perf_counter() - t0 > 300:
                raise RuntimeError("the uplinks were not all committed in 300 s")
            await asyncio.sleep(0.05)
        elapsed = time.perf_counter() - t0
        cpu = sum(g.cpu_s() for g in gws) - cpu0
        await asyncio.to_thread(proc.join)
        spread = [await g.handled() - (before if i == 0 else 0) for i, g in enumerate(gws)]
    finally:
        for g in gws:
            await g.stop()
    return {
        "rate": count / elapsed,
        "elapsed": elapsed,
        "spread": spread,
        "cpu_us": cpu / count * 1e6,
    }


async def wrong_berths(dsn: str, first_fcnt: int, count: int) -> int:
    """Berths whose row is not what their last uplink said (0 is right)."""
    town = load_town(None)
    berth_of = {s.dev_eui.lower(): s.berth for s in town.sensors}
    sensors = lorawan_sensors()
    want: dict[str, tuple[str, int]] = {}
    for i in range(count):
        dev, _ = sensors[i % len(sensors)]
        f = first_fcnt + i // len(sensors)
        want[berth_of[dev]] = ("occupied" if f % 2 == 1 else "free", f)
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT id, state, last_fcnt FROM berths")
    finally:
        await conn.close()
    got = {r["id"]: (r["state"], r["last_fcnt"]) for r in rows}
    return sum(1 for b, w in want.items() if got.get(b) != w)


async def main(count: int, instances: list[int], keep: Path | None) -> None:
    name = f"cg_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    dsn = f"postgresql://postgres@127.0.0.1:5432/{name}"
    db = f"{PG}/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp_s:
            tmp = keep or Path(tmp_s)
            broker = start_mosquitto(tmp / "mqtt")
            try:
                wait_tcp("127.0.0.1", broker.port)
                raw = await raw_rate(broker.port, count)
                emit("cluster_broker_raw", raw, "msgs/s", None)
                fcnt = 1
                one = await run(db, dsn, broker.port, tmp, count, False, 1, fcnt)
                emit("cluster_uplinks_one_local", one["rate"], "uplinks/s", round(raw, 1),
                     ratio=round(one["rate"] / raw, 3),
                     gateway_cpu_us_per_uplink=round(one["cpu_us"], 1))  # fmt: skip
                for n in instances:
                    fcnt += 1 + count // len(lorawan_sensors())
                    got = await run(db, dsn, broker.port, tmp, count, True, n, fcnt)
                    emit(
                        f"cluster_uplinks_shared_{n}",
                        got["rate"],
                        "uplinks/s",
                        round(one["rate"], 1),
                        instances=n,
                        ratio=round(got["rate"] / one["rate"], 3),
                        handled_per_instance=got["spread"],
                        gateway_cpu_us_per_uplink=round(got["cpu_us"], 1),
                    )
            finally:
                broker.stop()
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--uplinks", type=int, default=20_000)
    ap.add_argument("--instances", default="1,2,3", help="shared runs, e.g. 1,2,3")
    ap.add_argument("--keep", type=Path, help="keep the instances' logs in this directory")
    args = ap.parse_args()
    asyncio.run(main(args.uplinks, [int(x) for x in args.instances.split(",")], args.keep))
