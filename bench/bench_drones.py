"""Drones under load: 200 simulated DJI docks with their aircraft (dock osd as 3 partial
messages every 2 s, aircraft osd at 0.5 Hz: about 400 messages a second) against one
``DjiLink`` over a private Mosquitto, and the speaker service's round trip next to a bare MQTT
request/reply over the same broker, in the same run.

- The docks are ``gateway.demo.dji_dock.DockFleet`` in a child process (one MQTT connection
  for the fleet), so the load generator does not share the link's core; the bare responder
  (subscribed to one topic, echoing every message on another) is a child of its own.
- Handling time: from the dock's publish (its send time, carried in the osd's tid) to the
  link's ``on_report`` / ``on_dock`` call, broker included.
- Service round trip: ``DjiLink.speaker`` (volume and loop already set, so one
  ``speaker_tts_play_start`` and its ``services_reply``) against the bare responder's round
  trip, interleaved one for one while the fleet's osd flows.

One JSON line per figure (``bench.bench_ingest.emit``). Targets: osd p99 < 20 ms, service
round trip within 2x the bare one.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing as mp
import resource
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from bench.bench_ingest import emit
from drivers.mqtt.transport import MqttParams
from dronelink.dji.link import DjiLink
from dronelink.model import CommandStatus, DockReport, DroneReport
from gateway.demo.dji_dock import DockFleet, DockOptions, DockSpec
from tests.conftest import start_mosquitto, wait_for

BASE = (38.7800, 101.0800)


def pct(ms: list[float], q: float) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def nodelay(client: aiomqtt.Client) -> None:
    """TCP_NODELAY on a client's socket (paho leaves Nagle on)."""
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def specs(n: int) -> list[DockSpec]:
    out = []
    for i in range(n):
        lat, lon = BASE[0] + (i // 20) * 0.002, BASE[1] + (i % 20) * 0.002
        loop = [(lat + 0.001, lon), (lat, lon + 0.001), (lat - 0.001, lon), (lat, lon - 0.001)]
        out.append(DockSpec(f"DOCK{i:04d}", f"AIR{i:04d}", (lat, lon), loop))
    return out


def _fleet(port: int, n: int, seconds: float) -> None:
    async def main() -> None:
        options = DockOptions(stamp_send_time=True, spread_s=2.0, progress_steps=1)
        fleet = DockFleet("127.0.0.1", port, specs(n), options, client_id="bench-fleet")
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(seconds, stop.set)
        await fleet.run(stop)

    asyncio.run(main())


def _bare(port: int, ready: Any) -> None:
    async def main() -> None:
        async with aiomqtt.Client("127.0.0.1", port, identifier="bench-bare") as c:
            nodelay(c)
            await c.subscribe("bench/req", qos=1)
            ready.put(True)
            async for m in c.messages:
                payload = m.payload if isinstance(m.payload, bytes) else b""
                await c.publish("bench/rep", payload, qos=1)

    asyncio.run(main())


class Timing:
    """Wraps the link's message handler to read each osd's send time before the link does;
    its callbacks then take the handling time."""

    def __init__(self) -> None:
        self.sent: float | None = None
        self.osd_ms: list[float] = []
        self.recording = False

    def wrap(self, link: DjiLink) -> None:
        inner = link.transport._on_message

        def handler(name: str, payload: bytes) -> None:
            self.sent = None
            i = payload.find(b'"tid": "')
            if i >= 0:
                with contextlib.suppress(ValueError):
                    self.sent = float(payload[i + 8 : payload.index(b'"', i + 8)])
            inner(name, payload)

        link.transport._on_message = handler

    def report(self, _r: DroneReport | DockReport) -> None:
        if self.recording and self.sent is not None:
            self.osd_ms.append((time.time() - self.sent) * 1000)
            self.sent = None


async def bare_round_trips(port: int) -> Any:
    """A requester for the bare responder: ``await rt()`` is one round trip, in ms."""
    client = aiomqtt.Client("127.0.0.1", port, identifier=f"bench-req-{uuid.uuid4().hex[:6]}")
    await client.__aenter__()
    nodelay(client)
    await client.subscribe("bench/rep", qos=1)
    waiting: dict[bytes, asyncio.Future[None]] = {}

    async def reader() -> None:
        async for m in client.messages:
            fut = waiting.pop(m.payload if isinstance(m.payload, bytes) else b"", None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    task = asyncio.create_task(reader())

    async def rt() -> float:
        key = uuid.uuid4().hex.encode()
        fut = asyncio.get_running_loop().create_future()
        waiting[key] = fut
        t = time.perf_counter()
        await client.publish("bench/req", key, qos=1)
        await asyncio.wait_for(fut, 5)
        return (time.perf_counter() - t) * 1000

    async def close() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.__aexit__(None, None, None)

    return rt, close


async def main(n: int, seconds: float, calls: int) -> None:
    ctx = mp.get_context("spawn")
    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-drones-"))
    broker = start_mosquitto(tmp / "mqtt")
    procs: list[Any] = []
    try:
        ready = ctx.Queue()
        bare = ctx.Process(target=_bare, args=(broker.port, ready), daemon=True)
        bare.start()
        procs.append(bare)
        ready.get(timeout=30)
        timing = Timing()
        link = DjiLink(
            MqttParams(broker.host, broker.port, "bench-gw", clean=True),
            None,
            timing.report,
            timing.report,
            lambda _p: None,
            lambda: datetime.now(UTC),
            reply_timeout_s=5.0,
            presence_timeout_s=30.0,
        )
        timing.wrap(link)
        run = asyncio.create_task(link.run())
        await asyncio.wait_for(link.transport.connected.wait(), 10)
        warm = 6.0
        fleet = ctx.Process(target=_fleet, args=(broker.port, n, warm + seconds + 5), daemon=True)
        fleet.start()
        procs.append(fleet)
        await wait_for(lambda: len(link.topology.docks()) >= n, 30, 0.1, what="every dock paired")
        await asyncio.sleep(warm - 2)
        rt, close = await bare_round_trips(broker.port)
        air = "AIR0000"
        first = await link.speaker(air, "预热", 60, False, command_id="bench-warm")
        assert first.status is CommandStatus.OK, first
        timing.recording = True
        cpu0, t0, handled0 = own_cpu(), time.monotonic(), sum(link.stats.values())
        service_ms: list[float] = []
        bare_ms: list[float] = []
        gap = seconds / max(1, calls)
        for i in range(calls):
            t = time.perf_counter()
            out = await link.speaker(air, f"请勿停车 {i}", 60, False, command_id=f"bench-{i}")
            if out.status is CommandStatus.OK:
                service_ms.append((time.perf_counter() - t) * 1000)
            bare_ms.append(await rt())
            await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t)))
        timing.recording = False
        cpu1, t1 = own_cpu(), time.monotonic()
        await close()
        window = t1 - t0
        osd = timing.osd_ms
        emit("dji_osd_handling_p50", pct(osd, 0.5), "ms", None, messages=len(osd), docks=n)
        emit(
            "dji_osd_handling_p99", pct(osd, 0.99), "ms", None, target_ms=20,
            rate_per_s=round(len(osd) / window, 1), max_ms=round(max(osd, default=0), 1),
            rejected=sum(link.counts.values()),
        )  # fmt: skip
        emit(
            "dji_link_cpu_per_message", (cpu1 - cpu0) / max(1, len(osd)) * 1e6, "us", None,
            cpu_share=round((cpu1 - cpu0) / window, 2), note="includes the bare requester",
            stats_delta=sum(link.stats.values()) - handled0,
        )  # fmt: skip
        b50, b99 = pct(bare_ms, 0.5), pct(bare_ms, 0.99)
        emit("dji_bare_mqtt_round_trip_p50", b50, "ms", None, calls=len(bare_ms))
        emit("dji_bare_mqtt_round_trip_p99", b99, "ms", None)
        s50, s99 = pct(service_ms, 0.5), pct(service_ms, 0.99)
        emit(
            "dji_speaker_round_trip_p50", s50, "ms", b50, ratio=round(s50 / b50, 2),
            target_ratio=2, calls=len(service_ms), failed=calls - len(service_ms),
        )  # fmt: skip
        emit("dji_speaker_round_trip_p99", s99, "ms", b99, ratio=round(s99 / b99, 2))
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
        broker.stop()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--docks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=200, help="speaker and bare round trips each")
    a = ap.parse_args()
    asyncio.run(main(a.docks, a.seconds, a.calls))
