"""What a command costs when the charger is connected to another gateway instance (issue 16),
and how long a charger's move between instances takes.

Two gateways on one fresh PostgreSQL database in this process, one simulated OCPP 1.6
charger (the ``ocpp`` library's ChargePoint over a real websocket) connected to A. Figures,
one JSON line each (``bench.bench_ingest.emit``):

* ``charger_command_relayed_p50_ms`` / ``_p99_ms``: ``POST .../commands/reset`` through B's
  API (relayed to A through the database), baseline: the same through A's API (local);
* ``charger_status_on_other_instance_ms``: from a StatusNotification sent to A until B's
  book shows it, baseline: until A's does;
* ``charger_takeover_ms``: a second connection to B while the first to A is open, from its
  opening to B serving it (A closed its connection and let go), baseline: a first connection
  to a free charger.

    .venv/bin/python -m bench.bench_charger_relay --commands 200
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx

from bench.bench_ingest import emit

PG = "postgresql+asyncpg://postgres@127.0.0.1:5432"


def _settings(db_url: str, tmp: Path, name: str) -> Any:
    from gateway.config import Settings
    from gateway.demo.broker import free_port

    return Settings.model_validate(
        {
            "database": {"url": db_url},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # nothing listens there
            "api": {"host": "127.0.0.1", "port": 0, "rate_limit_per_s": 0},
            "ocpp": {"host": "127.0.0.1", "port": 0},
            "bodycams": {"sip_port": 0},
            "drones": {"mavlink_port": 0},
            "lanes": {"gates": "none"},
            "telemetry": {"spool_dir": str(tmp / f"spool-{name}")},
            "cameras": {"evidence_dir": str(tmp / f"evidence-{name}")},
            "log": {"level": "WARNING"},
        }
    )


async def _start(settings: Any) -> tuple[Any, asyncio.Task[None]]:
    from gateway.supervisor import Gateway

    gw = await Gateway.open(settings)
    run = asyncio.create_task(gw.run())
    await asyncio.wait_for(gw.started.wait(), 30)
    return gw, run


async def _until(predicate: Any, within_s: float = 10) -> None:
    deadline = time.perf_counter() + within_s
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("condition not met")
        await asyncio.sleep(0.002)


async def _timed(http: httpx.AsyncClient, path: str, token: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await http.post(
            path, json={"type": "soft"}, headers={"Authorization": f"Bearer {token}"}
        )
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return out


def _p(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100)[q - 1] if len(values) > 1 else values[0]


async def main(commands: int) -> None:
    from gateway.demo.ocpp import Charger16
    from gateway.directory.chargers import set_password
    from gateway.directory.tokens import Role, create_token

    name = f"cg_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        with tempfile.TemporaryDirectory() as tmp:
            a, run_a = await _start(_settings(f"{PG}/{name}", Path(tmp), "a"))
            b, run_b = await _start(_settings(f"{PG}/{name}", Path(tmp), "b"))
            try:
                async with a.services.sessions.begin() as db:
                    now = a.services.clock()
                    passwords = {c: await set_password(db, c, now) for c in ("SDEV001", "SDEV002")}
                    _, token = await create_token(db, Role.OPERATOR, now, "bench relay")
                await _until(lambda: "SDEV002" in b.services.charging.chargers)
                cp = Charger16(
                    f"ws://127.0.0.1:{a.ocpp_port}/ocpp", "SDEV001", passwords["SDEV001"]
                )
                await cp.connect()
                await cp.boot()
                path = "/api/v1/chargers/SDEV001/commands/reset"
                async with (
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{a.api_port}") as ha,
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{b.api_port}") as hb,
                ):
                    await _timed(ha, path, token, 10)
                    await _timed(hb, path, token, 10)  # warm both paths
                    local = await _timed(ha, path, token, commands)
                    relayed = await _timed(hb, path, token, commands)
                for q in (50, 99):
                    emit(f"charger_command_relayed_p{q}_ms", _p(relayed, q), "ms",
                         _p(local, q), commands=commands)  # fmt: skip

                # A status on A: how soon each instance's book shows it.
                seen: dict[str, float] = {}

                def status_of(gw: Any) -> str | None:
                    c = gw.services.charging.book.state("SDEV001").connectors.get(1)
                    return None if c is None else c.status

                async def watch(label: str, gw: Any, t0: float) -> None:
                    await _until(lambda: status_of(gw) == "Faulted")
                    seen[label] = (time.perf_counter() - t0) * 1000

                t0 = time.perf_counter()
                await asyncio.gather(
                    cp.fault(1, "GroundFailure"), watch("a", a, t0), watch("b", b, t0)
                )
                emit("charger_status_on_other_instance_ms", seen["b"], "ms", seen["a"])

                # A first connection to a free charger, then a takeover of a held one.
                t0 = time.perf_counter()
                free = Charger16(f"ws://127.0.0.1:{b.ocpp_port}/ocpp", "SDEV002",
                                 passwords["SDEV002"])  # fmt: skip
                await free.connect()
                await _until(lambda: "SDEV002" in b.services.charging.live)
                first_ms = (time.perf_counter() - t0) * 1000
                t0 = time.perf_counter()
                second = Charger16(f"ws://127.0.0.1:{b.ocpp_port}/ocpp", "SDEV001",
                                   passwords["SDEV001"])  # fmt: skip
                await second.connect()
                await _until(lambda: "SDEV001" in b.services.charging.live)
                emit("charger_takeover_ms", (time.perf_counter() - t0) * 1000, "ms", first_ms)
                for c in (cp, free, second):
                    await c.disconnect()
            finally:
                for gw, run in ((b, run_b), (a, run_a)):
                    gw.request_stop()
                    await run
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=200)
    asyncio.run(main(parser.parse_args().commands))
