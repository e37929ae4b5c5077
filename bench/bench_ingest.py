"""Sensor uplinks through MQTT -> decode -> occupancy -> API state, next to raw aiomqtt.

Prints one JSON line per figure: {"name", "value", "unit", "baseline", ...}.

1. raw:     a publisher process sends N ChirpStack uplinks (QoS 1, 100 in flight) to a private
            Mosquitto; a bare aiomqtt subscriber in this process counts them. -> msgs/s
2. gateway: the same publisher, the same N messages, into a running gateway (SQLite, the
            sample town); timed until the gateway has handled all N, and the API state
            checked afterwards. -> uplinks/s, and its ratio to (1). Each uplink's PUBACK
            waits for the commit of its state (the gateway's default).
2b. stays:  the parking sessions the burst made, in the database, compared with the stays
            its uplinks describe: each recorded exactly once. -> stays (baseline: expected)
3. latency: the publisher paces 1,000 uplinks/s for D seconds, each carrying its send time;
            every uplink flips a berth, and the moment the flip is visible to the API (the
            occupancy book the API reads) is recorded. -> p50/p99 ms
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import multiprocessing as mp
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt
import httpx

from drivers.sensors import bosch, nwave
from events import BerthStateChanged
from gateway.directory.town import load_town
from tests.conftest import gateway_settings, start_mosquitto, wait_tcp

CODECS: dict[str, Any] = {"nwave-nps405": nwave, "bosch-tps110": bosch}


def lorawan_sensors() -> list[tuple[str, str]]:
    town = load_town(None)
    return [(s.dev_eui.lower(), s.model) for s in town.sensors if s.model in CODECS]


def uplink(dev: str, model: str, fcnt: int, occupied: bool, sent: float) -> bytes:
    port, data = CODECS[model].encode_status(occupied)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sent)) + f".{int(sent % 1 * 1e6):06d}Z"
    return json.dumps(
        {
            "deduplicationId": str(uuid.uuid4()),
            "time": stamp,
            "deviceInfo": {"tenantId": "t", "applicationId": "bench", "devEui": dev},
            "fCnt": fcnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
            "rxInfo": [{"gatewayId": "0016c001ff10a235", "rssi": -97, "snr": 7.5}],
        }
    ).encode()


def messages(n: int, start_fcnt: int) -> list[tuple[str, bytes]]:
    sensors = lorawan_sensors()
    out = []
    for i in range(n):
        dev, model = sensors[i % len(sensors)]
        fcnt = start_fcnt + i // len(sensors)
        out.append(
            (
                f"application/bench/device/{dev}/event/up",
                uplink(dev, model, fcnt, fcnt % 2 == 1, time.time()),
            )
        )
    return out


async def _publish(port: int, n: int, start_fcnt: int, rate: float | None, inflight: int) -> None:
    msgs = messages(n, start_fcnt) if rate is None else None
    sensors = lorawan_sensors()
    sem = asyncio.Semaphore(inflight)
    quiet = logging.getLogger("bench.publisher")
    quiet.setLevel(logging.ERROR)  # aiomqtt warns on every publish above 10 in flight
    async with aiomqtt.Client(
        "127.0.0.1",
        port,
        identifier=f"pub-{os.getpid()}",
        max_inflight_messages=inflight,
        logger=quiet,
    ) as c:
        c.pending_calls_threshold = 10 * inflight
        tasks = set()
        t0 = time.perf_counter()
        for i in range(n):
            if msgs is not None:
                topic, payload = msgs[i]
            else:
                due = t0 + i / rate  # type: ignore[operator]
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                dev, model = sensors[i % len(sensors)]
                fcnt = start_fcnt + i // len(sensors)
                topic = f"application/bench/device/{dev}/event/up"
                payload = uplink(dev, model, fcnt, fcnt % 2 == 1, time.time())
            await sem.acquire()
            t = asyncio.create_task(c.publish(topic, payload, qos=1))
            t.add_done_callback(lambda _t: sem.release())
            tasks.add(t)
            t.add_done_callback(tasks.discard)
        await asyncio.gather(*list(tasks))


def publisher(port: int, n: int, start_fcnt: int, rate: float | None, ready: Any) -> None:
    ready.wait()
    asyncio.run(_publish(port, n, start_fcnt, rate, 100))


def spawn(port: int, n: int, start_fcnt: int, rate: float | None) -> tuple[Any, Any]:
    ctx = mp.get_context("spawn")
    ready = ctx.Event()
    proc = ctx.Process(target=publisher, args=(port, n, start_fcnt, rate, ready))
    proc.start()
    return proc, ready


async def raw_rate(port: int, n: int) -> float:
    got = 0
    async with aiomqtt.Client(
        "127.0.0.1", port, identifier="raw-sub", protocol=aiomqtt.ProtocolVersion.V5
    ) as c:
        await c.subscribe("application/+/device/+/event/+", qos=1)
        proc, ready = spawn(port, n, 1, None)
        ready.set()
        t0 = 0.0
        async for _ in c.messages:
            if got == 0:
                t0 = time.perf_counter()
            got += 1
            if got == n:
                break
        elapsed = time.perf_counter() - t0
    await asyncio.to_thread(proc.join)
    return (n - 1) / elapsed


def expected_stays(n: int) -> dict[str, int]:
    """Stays per berth the burst of ``messages(n, 1)`` makes: each sensor's uplinks alternate
    occupied (odd fCnt) and free, starting from a berth never heard of, so every odd fCnt
    opens a stay (and the next one closes it)."""
    town = load_town(None)
    berth_of = {s.dev_eui.lower(): s.berth for s in town.sensors}
    sensors = lorawan_sensors()
    stays: dict[str, int] = {}
    for i in range(n):
        dev, _ = sensors[i % len(sensors)]
        fcnt = 1 + i // len(sensors)
        if fcnt % 2 == 1:
            stays[berth_of[dev]] = stays.get(berth_of[dev], 0) + 1
    return stays


async def sessions_after_burst(gw: Any, n: int) -> dict[str, Any]:
    """Wait until the burst is committed (no acknowledgement held, nothing left in the
    book's journal), then compare the parking sessions in the database with the stays the
    burst made: each recorded exactly once."""
    from sqlalchemy import func, select

    from gateway.infra.storage.schema import ParkingSessionRow as S

    t0 = time.perf_counter()
    persister = gw.services.persister
    while persister.acks_held or gw.services.live.book.changes_pending:  # noqa: ASYNC110
        await asyncio.sleep(0.01)
    await persister.flush()
    settle = time.perf_counter() - t0
    async with gw.services.sessions() as db:
        rows = await db.execute(
            select(S.berth_id, func.count()).where(S.kind == "berth").group_by(S.berth_id)
        )
        got = {b: c for b, c in rows}
    want = expected_stays(n)
    wrong = sorted(b for b in set(got) | set(want) if got.get(b, 0) != want.get(b, 0))
    return {
        "recorded": sum(got.values()),
        "expected": sum(want.values()),
        "wrong_berths": len(wrong),
        "settle_s": round(settle, 3),
    }


def emit(name: str, value: float, unit: str, baseline: float | None, **extra: Any) -> None:
    print(
        json.dumps(
            {
                "name": name,
                "value": round(value, 2),
                "unit": unit,
                "baseline": None if baseline is None else round(baseline, 2),
                **extra,
            }
        ),
        flush=True,
    )


async def main(n: int, latency_s: float, rate: float) -> None:
    from gateway.supervisor import Gateway

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-"))
    broker = start_mosquitto(tmp / "mqtt")
    try:
        wait_tcp(broker.host, broker.port)
        raw = await raw_rate(broker.port, n)
        settings = gateway_settings(
            f"sqlite+aiosqlite:///{tmp / 'cg.db'}",
            broker,
            log={"level": "WARNING"},
            telemetry={"flush_interval_s": float(os.environ.get("BENCH_TEL_FLUSH", "1.0"))},
        )
        gw = await Gateway.open(settings)
        run = asyncio.create_task(gw.run())
        await gw.started.wait()
        await gw.services.transport.connected.wait()
        assert gw.services.ingest is not None
        base = gw.services.ingest.handled
        proc, ready = spawn(broker.port, n, 1, None)
        ready.set()
        # Poll the gateway's own counter (2 ms granularity is noise at these volumes).
        while gw.services.ingest.handled - base < 1:  # noqa: ASYNC110
            await asyncio.sleep(0.001)
        t0 = time.perf_counter()
        while gw.services.ingest.handled - base < n:  # noqa: ASYNC110
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - t0
        await asyncio.to_thread(proc.join)
        through = (n - 1) / elapsed
        applied = gw.metrics_value("citygate_uplinks_total", verdict="applied")
        rejected = sum(
            s.value
            for m in gw.services.metrics.registry.collect()
            if m.name == "citygate_messages_rejected"
            for s in m.samples
            if s.name.endswith("_total")
        )
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            sites = (await http.get("/api/v1/sites")).json()["sites"]
        api_occupied = sum(s["occupied"] for s in sites if s["counting"] == "berth_sensors")
        book_occupied = sum(
            v.occupied
            for v in gw.services.live.book.sites()
            if v.site_id in {s["id"] for s in sites if s["counting"] == "berth_sensors"}
        )
        sessions_ok = await sessions_after_burst(gw, n)
        emit("mqtt_raw_receive_rate", raw, "msg/s", None, messages=n)
        emit(
            "gateway_uplink_rate",
            through,
            "uplinks/s",
            raw,
            ratio=round(through / raw, 3),
            applied=applied,
            rejected=rejected,
            api_matches_book=api_occupied == book_occupied,
            acks_after_commit=True,
        )
        emit("burst_stays_recorded", sessions_ok["recorded"], "stays", sessions_ok["expected"],
             exactly_once=sessions_ok["recorded"] == sessions_ok["expected"]
             and not sessions_ok["wrong_berths"], wrong_berths=sessions_ok["wrong_berths"],
             seconds_to_settle=sessions_ok["settle_s"])  # fmt: skip

        # Let the gateway digest the burst (telemetry maps and spools ~3 points per uplink)
        # before measuring steady-state latency.
        while gw.services.bus.depths().get("telemetry", 0) or gw.services.persister is None:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        await asyncio.sleep(2.0)  # one more persist and telemetry flush cycle

        # Latency at a paced rate: publish time (in the uplink) -> berth flip visible.
        lat: list[float] = []

        def accept(e: Any) -> bool:
            return isinstance(e, BerthStateChanged)

        sub = gw.services.bus.subscribe("bench", accept, maxsize=1_000_000)
        count = int(rate * latency_s)
        proc, ready = spawn(broker.port, count, 1_000, rate)
        ready.set()

        published = asyncio.Event()

        async def collect() -> None:
            quiet_since = time.monotonic()
            while True:
                try:
                    ev = await asyncio.wait_for(sub.get(), 0.5)
                except TimeoutError:
                    if published.is_set() and time.monotonic() - quiet_since > 2:
                        return
                    continue
                quiet_since = time.monotonic()
                assert isinstance(ev, BerthStateChanged)
                lat.append((time.time() - ev.ts.timestamp()) * 1000)

        lags: list[float] = []

        async def lag_monitor() -> None:
            """How late the gateway's event loop wakes up: separates loop stalls from
            publisher or OS scheduling delays when reading the latency figures."""
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.005)
                lags.append((time.perf_counter() - t - 0.005) * 1000)

        monitor = asyncio.create_task(lag_monitor())
        collector = asyncio.create_task(collect())
        await asyncio.to_thread(proc.join)
        published.set()
        await collector
        monitor.cancel()
        lat.sort()
        p99 = lat[int(len(lat) * 0.99) - 1] if lat else float("nan")
        emit(
            "uplink_to_api_latency_p50",
            statistics.median(lat),
            "ms",
            None,
            rate=rate,
            samples=len(lat),
        )
        emit(
            "uplink_to_api_latency_p99", p99, "ms", None, rate=rate, samples=len(lat), target_ms=50
        )
        lags.sort()
        emit(
            "event_loop_lag_p99",
            lags[int(len(lags) * 0.99)] if lags else float("nan"),
            "ms",
            None,
            max_ms=round(lags[-1], 2) if lags else None,
        )
        gw.request_stop()
        await run
    finally:
        broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=30_000)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=1000.0)
    a = ap.parse_args()
    asyncio.run(main(a.messages, a.latency_seconds, a.rate))
