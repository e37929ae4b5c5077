"""Drones under load: 200 simulated DJI docks with their aircraft (dock osd as 3 partial
messages every 2 s, aircraft osd at 0.5 Hz: about 400 messages a second) and the speaker
service's round trip next to a bare MQTT request/reply over the same broker, in the same run,
against two targets (``--targets link,gateway``, both by default), each with a private
Mosquitto of its own:

- ``link``: one bare ``DjiLink`` in this process (figures ``drones_link_*``): the link's own
  cost, no service behind it.
- ``gateway``: the real gateway (``Gateway.open``, SQLite, everything it runs) in this process
  (figures ``drones_gateway_*``), with the fleet's 200 docks provisioned as town drones of kind
  ``dji`` (``import_drones`` and the change feed, kind ``drone``, as a town import does: the
  running drone service follows them live), each with a patrol area around its loop and its
  dock as home.

For both:

- The docks are ``gateway.demo.dji_dock.DockFleet`` in a child process (one MQTT connection
  for the fleet), so the load generator does not share the target's core; the bare responder
  (subscribed to one topic, echoing every message on another) is a child of its own.
- Osd handling: from the dock's publish (its send time, carried in the osd's tid) to the
  target having applied it, broker included: for the link its ``on_report`` / ``on_dock``
  call; for the gateway the drone service's ``on_report`` / ``on_dock`` returned (the link's
  callbacks are wrapped: the link holds the service's bound methods).
- Service round trip (``*_speaker_round_trip``, the target): the speaker service's
  ``speaker_tts_play_start`` published on ``services`` and its ``services_reply`` matched on
  tid and bid: for the link ``DjiLink.speaker``; for the gateway the same call made by the
  running gateway's command runner, timed around the link's ``speaker``. Volume and loop are
  set by a warm-up call, so each is one request and its reply. Interleaved one for one with
  the bare responder's round trip (the order alternating), while the fleet's osd flows; the
  bare requester is a client in this process, so it shares the target's loop.
- Operator's command (``drones_gateway_command_round_trip``, no target): the whole
  ``DroneService.command(drone, SPEAKER, ...)`` the API's command call waits for: the command
  recorded ``pending`` (one commit, before anything is sent), the service round trip, and its
  outcome recorded (a second commit), with each store call's time beside it.
- CPU per osd message: this process's user+system time (``getrusage``, every thread) over the
  window divided by the osd messages handled in it, with the rate. It includes the bare
  requester and the speaker calls, and for the gateway everything else the gateway runs.

One JSON line per figure (``bench.bench_ingest.emit``). Targets: osd p99 < 20 ms, service
round trip within 2x the bare one. The gateway target also gives the wall time of each
call the speaker command makes (the drone store's and the link's), and of the write-behind
flush, over the window. ``--profile FILE`` writes the gateway's cProfile stats over
the window (it slows the gateway down: figures of a profiled run are not the gateway's).

The module is long because both targets share one fleet, one measuring window and one
report, and read best next to each other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing as mp
import os
import resource
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiomqtt

from bench.bench_ingest import emit
from drivers.mqtt.transport import MqttParams
from dronelink.dji.link import DjiLink
from dronelink.model import CommandKind, CommandStatus, DockReport, DroneReport
from gateway.demo.dji_dock import DockFleet, DockOptions, DockSpec
from tests.conftest import Broker, gateway_settings, start_mosquitto, wait_for

BASE = (38.7800, 101.0800)
WARM_S = 6.0  # after every dock is paired: the fleet's cadence settles
TARGETS = ("link", "gateway")


def pct(ms: list[float], q: float) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def thread_cpu() -> dict[str, float]:
    """User + system seconds of each of this process's threads, by name (``comm``)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            key = "main" if task.name == str(os.getpid()) else name
            fields = stat.rsplit(")", 1)[1].split()
            out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


async def loop_lag(out: list[float]) -> None:
    """How late a 10 ms sleep wakes, over and over: the lag of the loop it runs on."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append((time.perf_counter() - t - 0.01) * 1000)


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


def drone_id(i: int) -> str:
    return f"bench-drone-{i:04d}"


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


@contextlib.asynccontextmanager
async def private_broker(ctx: Any, name: str) -> AsyncIterator[Broker]:
    """A Mosquitto of its own with the bare responder (a child process) on it."""
    broker = start_mosquitto(Path(tempfile.mkdtemp(prefix=f"cg-bench-drones-{name}-")) / "mqtt")
    bare = None
    try:
        ready = ctx.Queue()
        bare = ctx.Process(target=_bare, args=(broker.port, ready), daemon=True)
        bare.start()
        await asyncio.get_running_loop().run_in_executor(None, ready.get, True, 30)
        yield broker
    finally:
        if bare is not None and bare.is_alive():
            bare.terminate()
        broker.stop()


class Timing:
    """Wraps the link's message handler to read each osd's send time before the link does;
    ``report`` (called once the target has applied the message) then takes the handling
    time."""

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

    def after(self, link: DjiLink) -> None:
        """Take the time once the link's callbacks (the drone service's) have returned."""
        on_report, on_dock = link._on_report, link._on_dock

        def report(r: DroneReport) -> None:
            on_report(r)
            self.report(r)

        def dock(d: DockReport) -> None:
            on_dock(d)
            self.report(d)

        link._on_report, link._on_dock = report, dock


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


@dataclass
class Window:
    osd_ms: list[float]
    service_ms: list[float] = field(default_factory=list)
    bare_ms: list[float] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cpu_s: float = 0.0
    window_s: float = 0.0
    threads: dict[str, float] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)


Speak = Callable[[int], Awaitable[str | None]]  # call i: None when it ended ok, else why not


async def measure(
    ctx: Any, broker: Broker, link: DjiLink, timing: Timing, speak: Speak,
    n: int, seconds: float, calls: int, profiler: cProfile.Profile | None = None,
) -> Window:  # fmt: skip
    """With *link* connected: start the fleet, wait for every dock, warm up, then measure
    the osd and *calls* speaker calls, each with a bare round trip, over *seconds*."""
    fleet = ctx.Process(target=_fleet, args=(broker.port, n, WARM_S + seconds + 20), daemon=True)
    fleet.start()
    try:
        await wait_for(lambda: len(link.topology.docks()) >= n, 60, 0.1, what="every dock paired")
        await asyncio.sleep(WARM_S - 2)
        rt, close = await bare_round_trips(broker.port)
        first = await speak(-1)
        assert first is None, f"the warm-up speaker call failed: {first}"
        w = Window(timing.osd_ms)
        gap = seconds / max(1, calls)
        timing.recording = True
        if profiler is not None:
            profiler.enable()
        prober = asyncio.create_task(loop_lag(w.lags))
        threads0, cpu0, t0 = thread_cpu(), own_cpu(), time.monotonic()
        for i in range(calls):
            t = time.perf_counter()
            for which in (0, 1) if i % 2 == 0 else (1, 0):  # the order alternates
                if which == 1:
                    w.bare_ms.append(await rt())
                    continue
                s = time.perf_counter()
                why = await speak(i)
                if why is None:
                    w.service_ms.append((time.perf_counter() - s) * 1000)
                else:
                    w.failed.append(why)
            await asyncio.sleep(max(0.0, gap - (time.perf_counter() - t)))
        timing.recording = False
        w.cpu_s, w.window_s, threads1 = own_cpu() - cpu0, time.monotonic() - t0, thread_cpu()
        prober.cancel()
        if profiler is not None:
            profiler.disable()
        w.threads = {
            k: round(v - threads0.get(k, 0.0), 2)
            for k, v in threads1.items()
            if v - threads0.get(k, 0.0) > 0
        }
        await close()
    finally:
        if fleet.is_alive():
            fleet.terminate()
    return w


def report(
    prefix: str, w: Window, n: int, trip: str = "speaker_round_trip", **osd_extra: Any
) -> None:
    osd = w.osd_ms
    rate = len(osd) / w.window_s
    emit(f"{prefix}_osd_handling_p50", pct(osd, 0.5), "ms", None, messages=len(osd), docks=n)
    emit(
        f"{prefix}_osd_handling_p99", pct(osd, 0.99), "ms", None, target_ms=20,
        rate_per_s=round(rate, 1), max_ms=round(max(osd, default=0), 1), **osd_extra,
    )  # fmt: skip
    emit(
        f"{prefix}_cpu_per_osd_message", w.cpu_s / max(1, len(osd)) * 1e6, "us", None,
        rate_per_s=round(rate, 1), cpu_share=round(w.cpu_s / w.window_s, 2),
        window_s=round(w.window_s, 1), threads=w.threads,
        note="this process: includes the bare requester and the speaker calls",
    )  # fmt: skip
    b50, b99 = pct(w.bare_ms, 0.5), pct(w.bare_ms, 0.99)
    emit(f"{prefix}_bare_mqtt_round_trip_p50", b50, "ms", None, calls=len(w.bare_ms))
    emit(f"{prefix}_bare_mqtt_round_trip_p99", b99, "ms", None)
    s50, s99 = pct(w.service_ms, 0.5), pct(w.service_ms, 0.99)
    target = {"target_ratio": 2} if trip == "speaker_round_trip" else {}
    emit(
        f"{prefix}_{trip}_p50", s50, "ms", b50, ratio=round(s50 / b50, 2),
        **target, calls=len(w.service_ms), failed=len(w.failed),
        first_failure=w.failed[0][:200] if w.failed else None,
    )  # fmt: skip
    emit(f"{prefix}_{trip}_p99", s99, "ms", b99, ratio=round(s99 / b99, 2))
    emit(
        f"{prefix}_loop_lag_p99", pct(w.lags, 0.99), "ms", None,
        p50_ms=round(pct(w.lags, 0.5), 2), max_ms=round(max(w.lags, default=0), 1),
    )  # fmt: skip


# -- the targets ----------------------------------------------------------------------------


async def link_run(ctx: Any, n: int, seconds: float, calls: int) -> None:
    """A bare DjiLink in this process."""
    async with private_broker(ctx, "link") as broker:
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
        try:
            await asyncio.wait_for(link.transport.connected.wait(), 10)

            async def speak(i: int) -> str | None:
                text, cid = ("预热", "bench-warm") if i < 0 else (f"请勿停车 {i}", f"bench-{i}")
                out = await link.speaker("AIR0000", text, 60, False, command_id=cid)
                return None if out.status is CommandStatus.OK else f"{out.status}: {out.detail}"

            w = await measure(ctx, broker, link, timing, speak, n, seconds, calls)
            report("drones_link", w, n, rejected=sum(link.counts.values()))
        finally:
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run


def counted(counter: Any) -> dict[str, float]:
    """A FastCounter's values by "label/label" (read as a scrape would)."""
    return {
        "/".join(sample.labels.values()): sample.value
        for family in counter.collect()
        for sample in family.samples
    }


STORE_CALLS = ("open_or_insert", "finish_command", "update_command", "flush")


def timed(obj: Any, names: Sequence[str], on: Callable[[], bool]) -> dict[str, list[float]]:
    """Wrap *obj*'s coroutine methods *names* (bench only): each call's wall time in ms while
    *on()*, by name."""
    out: dict[str, list[float]] = {name: [] for name in names}
    for name in names:
        inner, times = getattr(obj, name), out[name]

        async def call(*args: Any, _inner: Any = inner, _times: Any = times, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return await _inner(*args, **kw)
            finally:
                if on():
                    _times.append((time.perf_counter() - t) * 1000)

        setattr(obj, name, call)
    return out


def town_drone(i: int, s: DockSpec) -> Any:
    """Dock *s* as a town drone: a patrol area around its loop, its dock as home."""
    from gateway.directory.drones import Drone

    lat, lon = s.home
    m = 0.0015  # the loop is +-0.001 degrees around the dock
    ring = [(lon - m, lat - m), (lon + m, lat - m), (lon + m, lat + m), (lon - m, lat + m)]
    return Drone(
        id=drone_id(i), name=f"bench dock {i}", kind="dji", dock_sn=s.dock_sn,
        aircraft_sn=s.aircraft_sn, patrol_area=ring, home=(lon, lat),
    )  # fmt: skip


async def provision(gw: Any, n: int) -> None:
    """The fleet's docks as town drones of kind dji, written with their change-feed rows in
    one transaction (as a town import does); returns once the drone service knows them all."""
    from gateway.directory.drones import import_drones
    from gateway.infra.changes import record_changes

    drones = [town_drone(i, s) for i, s in enumerate(specs(n))]
    now = datetime.now(UTC)
    async with gw.services.sessions.begin() as db:
        outcomes = await import_drones(db, drones, now)
        await record_changes(db, [(kind, key, "import") for _, kind, key in outcomes], now)
    service = gw.services.drones
    await wait_for(
        lambda: all(service.knows_sn(s.aircraft_sn) and service.knows_sn(s.dock_sn)
                    for s in specs(n)),
        60, 0.2, what="the drone service knows every bench drone (change feed)",
    )  # fmt: skip


async def gateway_run(ctx: Any, n: int, seconds: float, calls: int, profile: str | None) -> None:
    """The real gateway in this process, its drone service following the fleet."""
    from gateway.supervisor import Gateway

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-drones-gw-"))
    async with private_broker(ctx, "gateway") as broker:
        settings = gateway_settings(
            f"sqlite+aiosqlite:///{tmp / 'cg.db'}", broker, log={"level": "WARNING"}
        )
        gw = await Gateway.open(settings)
        service = gw.services.drones
        link = service.links["dji"]
        assert isinstance(link, DjiLink)
        timing = Timing()  # before the link runs: its transport hands a new client the handler
        timing.wrap(link)
        timing.after(link)
        run = asyncio.create_task(gw.run())
        try:
            await wait_for(lambda: gw.started.is_set() or run.done(), 60, what="gateway start")
            if run.done():
                run.result()
            await wait_for(link.transport.connected.is_set, 10, what="the DJI link connected")
            await provision(gw, n)

            async def speak(i: int) -> str | None:
                text = "预热" if i < 0 else f"请勿停车 {i}"
                args = {"text": text, "volume": 60, "loop": False}
                rec = await service.command(drone_id(0), CommandKind.SPEAKER, args, "bench")
                return None if rec.status == CommandStatus.OK else f"{rec.status}: {rec.detail}"

            counts0 = counted(service.counts)

            def on() -> bool:
                return timing.recording

            calls_ms = timed(service.store, STORE_CALLS, on) | timed(link, ["speaker"], on)
            profiler = cProfile.Profile() if profile else None
            w = await measure(ctx, broker, link, timing, speak, n, seconds, calls, profiler)
            if profiler is not None and profile:
                profiler.dump_stats(profile)
            counts1 = counted(service.counts)
            outcomes = {k: int(v - counts0.get(k, 0)) for k, v in counts1.items()}
            report(
                "drones_gateway", w, n, "command_round_trip",
                link_rejected=sum(link.counts.values()),
                service_outcomes={k: v for k, v in outcomes.items() if v}, profiled=bool(profile),
            )  # fmt: skip
            # The speaker service's round trip in the running gateway: the link's call the
            # command makes (publish on services, services_reply matched on tid and bid),
            # next to the bare request/reply interleaved with it: the target.
            trip = calls_ms.pop("speaker")
            b50, b99 = pct(w.bare_ms, 0.5), pct(w.bare_ms, 0.99)
            t50, t99 = pct(trip, 0.5), pct(trip, 0.99)
            emit(
                "drones_gateway_speaker_round_trip_p50", t50, "ms", b50,
                ratio=round(t50 / b50, 2), target_ratio=2, calls=len(trip),
            )  # fmt: skip
            emit("drones_gateway_speaker_round_trip_p99", t99, "ms", b99, ratio=round(t99 / b99, 2))
            for name, ms in calls_ms.items():  # where the rest of the command's time goes
                emit(
                    f"drones_gateway_store_{name}_p50", pct(ms, 0.5), "ms", None,
                    p99_ms=round(pct(ms, 0.99), 2), calls=len(ms),
                )  # fmt: skip
        finally:
            gw.request_stop()
            await asyncio.wait_for(run, 30)


async def main(n: int, seconds: float, calls: int, targets: list[str], profile: str | None) -> None:
    ctx = mp.get_context("spawn")
    if "link" in targets:
        await link_run(ctx, n, seconds, calls)
    if "gateway" in targets:
        await gateway_run(ctx, n, seconds, calls, profile)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--docks", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--calls", type=int, default=200, help="speaker and bare round trips each")
    ap.add_argument("--targets", default="link,gateway", help="link, gateway or both")
    ap.add_argument("--profile", help="write the gateway's cProfile stats here (slows it)")
    a = ap.parse_args()
    chosen = [t for t in a.targets.split(",") if t]
    if not chosen or set(chosen) - set(TARGETS):
        ap.error(f"--targets: a comma-separated choice of {', '.join(TARGETS)}")
    asyncio.run(main(a.docks, a.seconds, a.calls, chosen, a.profile))
