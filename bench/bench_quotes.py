"""Quotes under load: ``POST /api/v1/quotes`` on a real gateway, next to ``GET /healthz``.

A real gateway (SQLite in a temp dir, the sample town and tariffs; its MQTT broker address is a
closed port, so the transport keeps retrying in the background while the API serves) runs in a
child process, so server and clients each have a core of this 2-core machine. The clients
(aiohttp, ``--clients`` concurrent requests over keep-alive connections) then drive:

1. baseline: ``GET /healthz`` (routing, HTTP and JSON, no work) for ``--seconds``;
2. quotes:   ``POST /api/v1/quotes`` with random realistic stays (the sample town's sites and
             vehicle classes, November 2026, log-normal length) for ``--seconds``.

Prints one JSON line per figure (requests/s, p50 and p99 latency, each with the baseline),
plus whether the API's totals match ``parking.tariffs.quote`` for a sample of the stays.
``*_cpu`` extras are CPU seconds per wall second of the server and client processes: 1.0 is a
saturated core (here the server's, for both endpoints: the figures are the server's).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.bench_ingest import emit
from bench.bench_tariffs import sessions
from gateway.demo.broker import free_port
from parking.tariff_file import load_sample_tariffs
from parking.tariffs import quote

STAYS = 5_000  # distinct request bodies, cycled through
CHECKED = 200  # of which this many are compared with the engine
JSON = {"Content-Type": "application/json"}


# ----- the server (child process) --------------------------------------------------------------


def serve(tmp: str, ports: Any, stop: Any) -> None:
    asyncio.run(_serve(Path(tmp), ports, stop))


async def _serve(tmp: Path, ports: Any, stop: Any) -> None:
    from gateway.config import Settings
    from gateway.supervisor import Gateway

    settings = Settings.model_validate(
        {
            "database": {"url": f"sqlite+aiosqlite:///{tmp / 'cg.db'}"},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # nothing listens there
            "api": {"host": "127.0.0.1", "port": 0, "rate_limit_per_s": 0},  # one client
            "ocpp": {"port": 0},
            "telemetry": {"spool_dir": str(tmp / "spool")},
            "log": {"level": "ERROR"},
        }
    )
    gw = await Gateway.open(settings)
    run = asyncio.create_task(gw.run())
    started = asyncio.create_task(gw.started.wait())
    await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
    if not gw.started.is_set():
        ports.put(f"gateway did not start: {run.exception()!r}")
        return
    ports.put(gw.api_port)
    await asyncio.to_thread(stop.wait)
    gw.request_stop()
    await run


# ----- the clients -----------------------------------------------------------------------------


@dataclass
class Load:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    server_cpu: float
    client_cpu: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(
    http: aiohttp.ClientSession,
    base: str,
    requests: list[tuple[str, str, bytes | None]],
    clients: int,
    seconds: float,
    server: int,
) -> Load:
    """``clients`` concurrent request loops over ``requests`` (cycled) for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    cpu0, me0 = cpu_seconds(server), time.process_time()
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal errors
        n = i
        while time.perf_counter() < deadline:
            method, path, body = requests[n % len(requests)]
            n += clients
            t = time.perf_counter()
            async with http.request(method, base + path, data=body, headers=JSON) as resp:
                await resp.read()
                if resp.status != 200:
                    errors += 1
            latencies.append((time.perf_counter() - t) * 1000)

    t0 = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - t0
    return Load(
        requests=len(latencies),
        errors=errors,
        seconds=elapsed,
        latencies_ms=latencies,
        server_cpu=(cpu_seconds(server) - cpu0) / elapsed,
        client_cpu=(time.process_time() - me0) / elapsed,
    )


def quote_requests(n: int) -> tuple[list[tuple[str, str, bytes | None]], list[int]]:
    """Request bodies for ``n`` sample stays, and each stay's total from the engine."""
    book = load_sample_tariffs(ZoneInfo("Asia/Shanghai"))
    out: list[tuple[str, str, bytes | None]] = []
    totals: list[int] = []
    for site_id, site_class, vehicle, entry, exit_ in sessions(n, seed=11):
        body = {
            "site_id": site_id,
            "vehicle_class": vehicle,
            "entry": entry.isoformat(),
            "exit": exit_.isoformat(),
        }
        out.append(("POST", "/api/v1/quotes", json.dumps(body).encode()))
        totals.append(quote(book, site_id, site_class, vehicle, entry, exit_).total_fen)
    return out, totals


async def bench(port: int, pid: int, clients: int, seconds: float) -> None:
    base = f"http://127.0.0.1:{port}"
    server = pid
    quotes, totals = quote_requests(STAYS)
    health: list[tuple[str, str, bytes | None]] = [("GET", "/healthz", None)]
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:
        # The API prices exactly as the engine does (and every sample stay is priceable).
        matches = True
        for (_, path, body), want in zip(quotes[:CHECKED], totals, strict=False):
            async with http.post(base + path, data=body, headers=JSON) as r:
                got = (await r.json())["total_fen"] if r.status == 200 else None
            matches = matches and got == want
        await drive(http, base, quotes, clients, 1.0, server)  # warm-up (caches, connections)
        hz = await drive(http, base, health, clients, seconds, server)
        q = await drive(http, base, quotes, clients, seconds, server)
    common = {"clients": clients, "seconds": seconds}
    emit(
        "quotes_requests_per_s",
        q.rate,
        "req/s",
        hz.rate,
        **common,
        requests=q.requests,
        errors=q.errors,
        baseline_errors=hz.errors,
        server_cpu=round(q.server_cpu, 2),
        client_cpu=round(q.client_cpu, 2),
        baseline_server_cpu=round(hz.server_cpu, 2),
        baseline_client_cpu=round(hz.client_cpu, 2),
        api_matches_engine=matches,
        baseline_endpoint="GET /healthz",
    )
    emit(
        "quotes_latency_p50",
        statistics.median(q.latencies_ms),
        "ms",
        statistics.median(hz.latencies_ms),
        **common,
    )
    emit("quotes_latency_p99", q.percentile(0.99), "ms", hz.percentile(0.99), **common)


def main(clients: int, seconds: float) -> None:
    ctx = mp.get_context("spawn")
    ports = ctx.Queue()
    stop = ctx.Event()
    with tempfile.TemporaryDirectory(prefix="cg-bench-quotes-") as tmp:
        proc = ctx.Process(target=serve, args=(tmp, ports, stop), name="gateway")
        proc.start()
        try:
            port = ports.get(timeout=60)
            if not isinstance(port, int):
                raise SystemExit(str(port))
            assert proc.pid is not None
            asyncio.run(bench(port, proc.pid, clients, seconds))
        finally:
            stop.set()
            proc.join(15)
            if proc.is_alive():
                proc.terminate()
                proc.join()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=10.0)
    a = ap.parse_args()
    main(a.clients, a.seconds)
