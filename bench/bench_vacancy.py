"""The public vacancy API under load: ``GET /api/v1/sites`` and ``GET /api/v1/map`` requests/s
and latency under 64 concurrent keep-alive clients, next to a bare FastAPI route returning the
same bytes with the same media type, in the same run.

- The gateway is the real one (``Gateway.open``: SQLite, the sample town, every service it
  runs, its whole middleware stack) in a child process of its own, with a private Mosquitto.
  Its per-client rate limit is off (``[api] rate_limit_per_s = 0``): 64 clients from one
  loopback address would otherwise be one client held to 10/s. A berth sensor changes state
  every 100 ms meanwhile (ChirpStack uplinks over the broker), so the counts the API serves are
  live, not a cache that never changes.
- The bare app is FastAPI with one route per path returning the bytes the gateway served just
  before (``Response(body, media_type=...)``), in a child process, on the same uvicorn and the
  same HTTP parser (h11: httptools is not installed here, so uvicorn's ``auto`` is h11 too).
- The load is ``wrk`` (Debian's, installed by ``make test-deps``) with one thread and 64
  connections, so one core is left to the server on this 2-core machine. The gateway and the
  bare app take turns, twice each per path (``--rounds``), each for ``--seconds``; figures are
  the medians of the rounds.

One JSON line per figure (name, value, unit, baseline), as the other benches. Target: the
gateway at least 70 % of the bare app's requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import multiprocessing as mp
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import emit
from tests.conftest import gateway_settings, start_mosquitto

PATHS = ("/api/v1/sites", "/api/v1/map")
CONNECTIONS = 64


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, bytes, str]:
    """One GET on loopback: status, body, media type."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        r = conn.getresponse()
        return r.status, r.read(), r.headers.get_content_type()
    finally:
        conn.close()


def wait_http(port: int, path: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if get(port, path)[0] == 200:
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


def _gateway(port: int, mqtt_port: int, db: str) -> None:
    """The gateway in this child, serving the API on *port*, until terminated."""
    from gateway.supervisor import Gateway
    from tests.conftest import Broker

    class _Known(Broker):
        def __init__(self) -> None:  # the broker the parent started
            self.host, self.port = "127.0.0.1", mqtt_port

    async def main() -> None:
        settings = gateway_settings(
            db, _Known(), log={"level": "WARNING"},
            api={"port": port, "rate_limit_per_s": 0},
            occupancy={"sweep_interval_s": 5.0, "persist_interval_s": 1.0},  # as deployed
        )  # fmt: skip
        gw = await Gateway.open(settings)
        await gw.run()

    asyncio.run(main())


def _bare(port: int, bodies: dict[str, tuple[bytes, str]]) -> None:
    """FastAPI with one route per path returning *bodies* as they are, on uvicorn."""
    import uvicorn
    from fastapi import FastAPI, Response

    app = FastAPI()
    for path, (body, media_type) in bodies.items():

        async def route(_body: bytes = body, _type: str = media_type) -> Response:
            return Response(_body, media_type=_type)

        app.add_api_route(path, route, methods=["GET"])
    uvicorn.run(app, host="127.0.0.1", port=port, log_config=None, access_log=False,
                lifespan="off")  # fmt: skip


def _uplinks(mqtt_port: int, stop: Any) -> None:
    """A berth sensor of the sample town flipping every 100 ms (ChirpStack JSON uplinks)."""
    from bench.bench_ingest import lorawan_sensors, uplink

    dev, model = lorawan_sensors()[0]
    topic = f"application/bench/device/{dev}/event/up"

    async def main() -> None:
        import aiomqtt

        async with aiomqtt.Client("127.0.0.1", mqtt_port, identifier="bench-vacancy-sensor") as c:
            fcnt = 1_000_000  # past whatever the sample town's state starts from
            while not stop.is_set():
                await c.publish(topic, uplink(dev, model, fcnt, fcnt % 2 == 1, time.time()), qos=1)
                fcnt += 1
                await asyncio.sleep(0.1)

    asyncio.run(main())


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if m is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def wrk(url: str, seconds: float) -> dict[str, float]:
    """One wrk run: requests/s, latency p50/p99 (ms), non-2xx and socket errors."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", url],
        capture_output=True, text=True, check=True, timeout=seconds + 60,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([0-9.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\n\s+50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\n\s+99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": rps, "p50": p50, "p99": p99,
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "socket_errors": float(sum(int(x) for x in errors.groups())) if errors else 0.0,
    }  # fmt: skip


def main(seconds: float, rounds: int) -> None:
    if shutil.which("wrk") is None:
        sys.exit("bench_vacancy: wrk is not installed (make test-deps installs it)")
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-vacancy-"))
    broker = start_mosquitto(tmp / "mqtt")
    gw_port, bare_port = free_port(), free_port()
    stop = ctx.Event()
    gw = ctx.Process(
        target=_gateway, args=(gw_port, broker.port, f"sqlite+aiosqlite:///{tmp}/cg.db")
    )
    procs = [gw]
    try:
        gw.start()
        wait_http(gw_port, PATHS[0])
        bodies: dict[str, tuple[bytes, str]] = {}
        for path in PATHS:
            _, body, media_type = get(gw_port, path)
            bodies[path] = (body, media_type)
        bare = ctx.Process(target=_bare, args=(bare_port, bodies))
        sensor = ctx.Process(target=_uplinks, args=(broker.port, stop))
        procs += [bare, sensor]
        bare.start()
        sensor.start()
        wait_http(bare_port, PATHS[0])
        for path in PATHS:
            runs: dict[str, list[dict[str, float]]] = {"gateway": [], "bare": []}
            for i in range(rounds):  # alternating, the order swapped each round
                order = ("gateway", "bare") if i % 2 == 0 else ("bare", "gateway")
                for who in order:
                    port = gw_port if who == "gateway" else bare_port
                    runs[who].append(wrk(f"http://127.0.0.1:{port}{path}", seconds))
            name = path.rsplit("/", 1)[1]
            g = {k: statistics.median(r[k] for r in runs["gateway"]) for k in runs["gateway"][0]}
            b = {k: statistics.median(r[k] for r in runs["bare"]) for k in runs["bare"][0]}
            emit(
                f"vacancy_{name}_requests_per_s", g["rps"], "req/s", b["rps"],
                ratio=round(g["rps"] / b["rps"], 3), target_ratio=0.7,
                connections=CONNECTIONS, body_bytes=len(bodies[path][0]),
                rounds=[round(r["rps"]) for r in runs["gateway"]],
                bare_rounds=[round(r["rps"]) for r in runs["bare"]],
                non_2xx=g["non_2xx"], socket_errors=g["socket_errors"],
            )  # fmt: skip
            emit(f"vacancy_{name}_latency_p50", g["p50"], "ms", b["p50"])
            emit(f"vacancy_{name}_latency_p99", g["p99"], "ms", b["p99"])
    finally:
        stop.set()
        for p in reversed(procs):
            if p.is_alive():
                p.terminate()
            p.join(10)
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="each wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="runs of each target per path")
    a = ap.parse_args()
    main(a.seconds, a.rounds)
