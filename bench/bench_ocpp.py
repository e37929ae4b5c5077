"""OCPP chargers on one gateway process: connected chargers, MeterValues/s and response times,
next to a bare server made only of the ``ocpp`` library, measured in the same run.

Issue 5: how many OCPP 1.6 chargers, each sending MeterValues every 10 s, one gateway process
sustains, and at what p99 response time (target: 5,000 chargers, p99 under 100 ms).

Processes (this machine has 2 cores): the server under test runs in a child process pinned to
core 0; the chargers run in ``--client-procs`` child processes (asyncio, thousands of websocket
connections each) pinned with this orchestrating process to the other core(s). Every process
raises its open-files soft limit to the hard limit. The chargers are the ``ocpp`` library's
own 1.6 ChargePoint (``gateway.demo.ocpp.Charger16``), without websocket pings of their own
(the server pings every 20 s, as websockets does by default).

Two servers, the same load, one after the other:

1. baseline: a bare server of the ``ocpp`` library (websockets' asyncio server, a 1.6
   ChargePoint answering BootNotification and MeterValues), no authentication; schema
   validation inline (``ocpp.messages.ASYNC_VALIDATION = False``, as the gateway sets it);
2. gateway: a real citygate gateway (SQLite in a temp dir, the sample town, MQTT pointed at a
   closed port, log level WARNING), its chargers provisioned beforehand as ``citygate chargers
   add`` does (in one transaction, the passwords kept in memory) and authenticated by basic
   auth on every connection; an inspector token reads ``/api/v1/chargers``.

For each: connect ``--chargers`` chargers at ``--ramp`` per second (each sends BootNotification
once connected, then MeterValues every ``--period`` seconds from a random offset: a
transaction-less Energy.Active.Import.Register reading, a 1.6 decimal string), wait one
period, measure ``--seconds`` of steady state (the baseline: ``--baseline-seconds``), with
the round-trip time of every MeterValues taken on the client side; then ``--saturate-seconds``
of every charger sending MeterValues back to back: the server's ceiling at this concurrency.

Prints one JSON line per figure. ``*_cpu`` extras are CPU seconds per wall second of a
process (1.0: a saturated core); ``*_loop_lag_*`` how late the server's event loop woke up.
``BENCH_OCPP_SECONDS``, ``BENCH_OCPP_CHARGERS`` change the defaults. Diagnosis:
``BENCH_OCPP_PYSPY=FILE`` records the gateway's steady state with py-spy (if on PATH) into FILE
(collapsed stacks); ``BENCH_OCPP_ELIMINATE=recorder`` runs the gateway with a recorder that
drains its queue without writing (what the database writes cost, by elimination);
``BENCH_OCPP_DETAILS=PREFIX`` writes every steady-state round trip and every event-loop stall
over 20 ms (server, chargers) to ``PREFIX.{bare,gateway}[.server_stalls].json``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import multiprocessing as mp
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import emit

TARGET_CHARGERS = 5_000
TARGET_P99_MS = 100.0
TARGET_CPU_RATIO = 1.5  # issue 9: gateway CPU per message at most 1.5x the bare library's
RESPONSE_TIMEOUT_S = 10.0  # the chargers' wait for an answer


# ----- every process ---------------------------------------------------------------------------


def raise_nofile() -> int:
    """Raise this process's open-files soft limit to the hard limit; returns the limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = max(soft, 1_048_576)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def cpu_layout() -> tuple[set[int] | None, set[int] | None]:
    """(server cores, client cores): core 0 for the server, the rest for the clients."""
    if not hasattr(os, "sched_getaffinity"):
        return None, None
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        return None, None
    return {cores[0]}, set(cores[1:])


def prepare_process(cores: set[int] | None) -> None:
    raise_nofile()
    if cores is not None:
        os.sched_setaffinity(0, cores)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process *pid* so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


class LagMonitor:
    """How late this process's event loop wakes up from a 10 ms sleep: (wall time, ms); and
    how long each full (generation 2) garbage collection took: (wall time, ms)."""

    def __init__(self) -> None:
        self.samples: list[tuple[float, float]] = []
        self.full_gcs: list[tuple[float, float]] = []
        self._gc_start = 0.0
        gc.callbacks.append(self._gc)
        self._task = asyncio.get_running_loop().create_task(self._run())

    def _gc(self, phase: str, info: dict[str, int]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.full_gcs.append((time.time(), (time.perf_counter() - self._gc_start) * 1000))

    async def _run(self) -> None:
        while True:
            t = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append((time.time(), (time.perf_counter() - t - 0.01) * 1000))

    def stop(self) -> None:
        self._task.cancel()
        gc.callbacks.remove(self._gc)

    def window(self, t0: float, t1: float) -> list[float]:
        return [ms for t, ms in self.samples if t0 <= t <= t1]


# ----- the bare server (child process) ---------------------------------------------------------


def bare_server(report: Any, stop: Any, cores: set[int] | None) -> None:
    prepare_process(cores)
    asyncio.run(_bare_server(report, stop))


async def _bare_server(report: Any, stop: Any) -> None:
    import ocpp.messages
    from ocpp import routing
    from ocpp.v16 import ChargePoint, call_result
    from ocpp.v16.enums import Action
    from websockets.asyncio.server import ServerConnection, serve
    from websockets.exceptions import ConnectionClosed
    from websockets.typing import Subprotocol

    ocpp.messages.ASYNC_VALIDATION = False  # as the gateway runs the library
    F = TypeVar("F", bound=Callable[..., Any])

    def on(action: str) -> Callable[[F], F]:  # the library's @on, typed
        return cast("Callable[[F], F]", routing.on(action))

    class Central(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
        @on(Action.boot_notification)
        def on_boot_notification(self, **_: Any) -> Any:
            now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            return call_result.BootNotification(current_time=now, interval=300, status="Accepted")

        @on(Action.meter_values)
        def on_meter_values(self, connector_id: int, meter_value: list[Any], **_: Any) -> Any:
            return call_result.MeterValues()

    async def handle(ws: ServerConnection) -> None:
        assert ws.request is not None
        cp = Central(ws.request.path.rsplit("/", 1)[-1], ws)
        with contextlib.suppress(ConnectionClosed):
            await cp.start()

    lag = LagMonitor()
    async with serve(handle, "127.0.0.1", 0, subprotocols=[Subprotocol("ocpp1.6")]) as server:
        port = next(iter(server.sockets)).getsockname()[1]
        report.put({"ocpp_port": port})
        await asyncio.to_thread(stop.wait)
        lag.stop()
        report.put({"lag": lag.samples, "gcs": lag.full_gcs})
        server.close()


# ----- the gateway (child process) -------------------------------------------------------------


def gateway_server(tmp: str, db_url: str, report: Any, stop: Any, cores: set[int] | None) -> None:
    prepare_process(cores)
    asyncio.run(_gateway_server(Path(tmp), db_url, report, stop))


async def _gateway_server(tmp: Path, db_url: str, report: Any, stop: Any) -> None:
    from gateway.config import Settings
    from gateway.demo.broker import free_port
    from gateway.supervisor import Gateway

    settings = Settings.model_validate(
        {
            "database": {"url": db_url},
            "mqtt": {"host": "127.0.0.1", "port": free_port()},  # nothing listens there
            # scraped on loopback by the bench itself, without a token
            "api": {"host": "127.0.0.1", "port": 0, "metrics_token_required": False},
            "ocpp": {"host": "127.0.0.1", "port": free_port(), "heartbeat_s": 300},
            "telemetry": {"spool_dir": str(tmp / "spool")},
            "log": {"level": "WARNING"},
        }
    )
    try:
        gw = await Gateway.open(settings)
    except Exception as exc:
        report.put({"error": f"gateway did not start: {exc!r}"})
        return
    assert gw.services.charging is not None
    charging = gw.services.charging
    if os.environ.get("BENCH_OCPP_ELIMINATE") == "recorder":
        # Diagnosis by elimination: the recorder drains its queue without writing anything.
        async def drain(batch: int = 1000) -> None:
            while True:
                await charging._queue.get()

        charging.record = drain  # type: ignore[method-assign]
    run = asyncio.create_task(gw.run())
    started = asyncio.create_task(gw.started.wait())
    await asyncio.wait({run, started}, return_when=asyncio.FIRST_COMPLETED)
    if not gw.started.is_set():
        report.put({"error": f"gateway did not start: {run.exception()!r}"})
        return
    depths: list[tuple[float, int]] = []

    async def recorder_depth() -> None:
        # The recorder's queue (private: a bench's look inside) -- did it keep up?
        while True:
            depths.append((time.time(), charging._queue.qsize()))
            await asyncio.sleep(0.5)

    lag = LagMonitor()
    sampler = asyncio.create_task(recorder_depth())
    report.put({"ocpp_port": gw.ocpp_port, "api_port": gw.api_port})
    await asyncio.to_thread(stop.wait)
    lag.stop()
    sampler.cancel()
    report.put({"lag": lag.samples, "gcs": lag.full_gcs, "recorder_depth": depths})
    gw.request_stop()
    await run


async def provision(db_url: str, n: int) -> tuple[list[tuple[str, str]], str]:
    """*n* chargers and an inspector token in a migrated database, as ``citygate chargers
    add`` and ``citygate token create`` do (one transaction): (id, password) and the token."""
    from events import now_utc
    from gateway.directory.chargers import NewCharger, add_charger
    from gateway.directory.tokens import Role, create_token
    from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
    from gateway.wiring import ensure_town

    engine = create_engine(db_url)
    try:
        await migrate(engine)
        sessions = sessionmaker_for(engine)
        await ensure_town(sessions, None, now_utc())
        now = now_utc()
        creds = []
        async with sessions.begin() as db:
            for i in range(n):
                cid = f"bench-{i:05d}"
                new = NewCharger(
                    id=cid,
                    site_id=None,
                    place=f"bench lot {i // 100}",
                    lat=38.78 + (i % 100) * 1e-4,
                    lon=101.08 + (i // 100) * 1e-4,
                    vendor="BenchVendor",
                    model="Bench-22",
                )
                creds.append((cid, await add_charger(db, new, now)))
            _, token = await create_token(db, Role.INSPECTOR, now, "bench_ocpp")
    finally:
        await engine.dispose()
    return creds, token


# ----- the chargers (child processes) ----------------------------------------------------------


@dataclass
class Record:
    """What one client process saw: round trips as (started wall time, ms), failures."""

    trips: list[tuple[float, float]] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)
    connect_failures: Counter[str] = field(default_factory=Counter)
    boot_failures: Counter[str] = field(default_factory=Counter)
    late: int = 0  # ticks skipped because the previous answer came after the next tick


def _failure(exc: BaseException) -> str:
    from websockets.exceptions import InvalidStatus

    if isinstance(exc, InvalidStatus):
        return f"http_{exc.response.status_code}"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno is not None:
        import errno

        return errno.errorcode.get(exc.errno, str(exc.errno))
    return type(exc).__name__


class Sim:
    """One charger: connect (with retries), boot, MeterValues on a period or back to back."""

    def __init__(self, url: str, cid: str, password: str, rng: random.Random) -> None:
        from gateway.demo.ocpp import Charger16

        self.charger = Charger16(
            url,
            cid,
            password,
            serial=f"SN-{cid}",
            response_timeout=RESPONSE_TIMEOUT_S,
            open_timeout=RESPONSE_TIMEOUT_S,
            ping_interval=None,
        )
        self.energy_wh = rng.uniform(1e5, 5e6)
        self.rng = rng
        self.up = False
        self.busy = False  # a MeterValues is on the wire
        self.stopping = False
        self.task: asyncio.Task[None] | None = None  # the periodic loop

    async def start(self, rec: Record, attempts: int = 3) -> bool:
        for attempt in range(attempts):
            try:
                await self.charger.connect()
                break
            except Exception as exc:
                rec.connect_failures[_failure(exc)] += 1
                await asyncio.sleep(1.0 + attempt + self.rng.random())
        else:
            return False
        self.up = True
        try:
            await self.charger.boot()
        except Exception as exc:
            rec.boot_failures[_failure(exc)] += 1
        return True

    async def meter(self) -> float:
        """One MeterValues round trip; returns its time in ms."""
        from ocpp.v16 import call as call16

        from gateway.demo.ocpp import iso

        self.energy_wh += self.rng.uniform(0, 20)
        payload = call16.MeterValues(
            connector_id=1,
            meter_value=[
                {
                    "timestamp": iso(),
                    "sampled_value": [
                        {
                            "value": f"{self.energy_wh / 1000:.3f}",
                            "context": "Sample.Periodic",
                            "measurand": "Energy.Active.Import.Register",
                            "unit": "kWh",
                        }
                    ],
                }
            ],
        )
        self.busy = True
        try:
            t = time.perf_counter()
            # The request is built right here (no need to validate it on the client side).
            await self.charger.cp.call(payload, suppress=False, skip_schema_validation=True)
            return (time.perf_counter() - t) * 1000
        finally:
            self.busy = False

    async def _trip(self, rec: Record) -> bool:
        """One round trip recorded; False when the connection is gone."""
        from ocpp.exceptions import OCPPError
        from websockets.exceptions import ConnectionClosed

        t = time.time()
        try:
            rec.trips.append((t, await self.meter()))
        except TimeoutError:
            rec.errors.append((t, "timeout"))
        except OCPPError as exc:
            rec.errors.append((t, f"call_error:{exc.code}"))
        except ConnectionClosed:
            rec.errors.append((t, "closed"))
            self.up = False
            return False
        except Exception as exc:
            rec.errors.append((t, type(exc).__name__))
        return True

    async def periodic(self, rec: Record, period: float) -> None:
        next_t = time.time() + self.rng.uniform(0, period)
        while self.up and not self.stopping:
            delay = next_t - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if not await self._trip(rec):
                return
            next_t += period
            if next_t < time.time():
                rec.late += 1
                next_t = time.time()

    async def flat_out(self, rec: Record, until: float) -> None:
        while self.up and time.time() < until:
            if not await self._trip(rec):
                return


def clients(conn: Any, cores: set[int] | None) -> None:
    prepare_process(cores)
    asyncio.run(_clients(conn))


async def _clients(conn: Any) -> None:
    import ocpp.messages

    from gateway.demo.ocpp import Fleet

    ocpp.messages.ASYNC_VALIDATION = False
    # The library logs late answers (after a timeout) at ERROR: counted here instead.
    logging.getLogger("ocpp").setLevel(logging.CRITICAL)

    async def command() -> Any:
        return await asyncio.to_thread(conn.recv)

    _, cfg = await command()
    rng = random.Random(cfg["seed"])
    sims = [Sim(cfg["url"], cid, pw, rng) for cid, pw in cfg["creds"]]
    fleet = Fleet([s.charger for s in sims])
    lag = LagMonitor()
    rec = Record()
    periodic: list[asyncio.Task[None]] = []

    async def start(sim: Sim) -> None:
        if await sim.start(rec):
            sim.task = asyncio.create_task(sim.periodic(rec, cfg["period"]))
            periodic.append(sim.task)

    t0 = time.perf_counter()
    starting = []
    for i, sim in enumerate(sims):
        delay = t0 + i / cfg["ramp"] - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        starting.append(asyncio.create_task(start(sim)))
    await asyncio.gather(*starting)
    # Thousands of connections are a big heap: keep full collections from stalling the
    # chargers' loop (a stall would show as the server's response time).
    gc.collect()
    gc.freeze()
    conn.send(
        {
            "connected": sum(s.up for s in sims),
            "connect_failures": dict(rec.connect_failures),
            "boot_failures": dict(rec.boot_failures),
            "ramp_s": time.perf_counter() - t0,
        }
    )

    while True:
        cmd = await command()
        if cmd[0] == "report":  # the steady window [t0, t1]
            _, w0, w1 = cmd
            conn.send(
                {
                    "trips": [(t, ms) for t, ms in rec.trips if w0 <= t < w1],
                    "errors": dict(Counter(k for t, k in rec.errors if w0 <= t < w1)),
                    "late": rec.late,
                    "up": sum(s.up for s in sims),
                    "lag": lag.window(w0, w1),
                    "lag_at": [(t, ms) for t, ms in lag.samples if w0 <= t < w1 and ms > 20],
                }
            )
        elif cmd[0] == "saturate":  # back to back from s0 to s1
            _, s0, s1 = cmd
            for sim in sims:
                sim.stopping = True
                if sim.task is not None and not sim.busy:
                    sim.task.cancel()  # asleep between ticks; a busy one ends after its answer
            await asyncio.gather(*periodic, return_exceptions=True)
            rec.trips.clear()
            rec.errors.clear()
            await asyncio.sleep(max(0.0, s0 - time.time()))
            await asyncio.gather(*(s.flat_out(rec, s1) for s in sims if s.up))
            # A round trip counts if it ended inside the window.
            done = [(t, ms) for t, ms in rec.trips if t + ms / 1000 <= s1]
            conn.send(
                {
                    "trips": len(done),
                    "ms": [ms for _, ms in done],
                    "errors": dict(Counter(k for _, k in rec.errors)),
                    "lag": lag.window(s0, s1),
                }
            )
        elif cmd[0] == "stop":
            lag.stop()
            await fleet.disconnect()
            conn.send({"stopped": True})
            return


# ----- orchestration ---------------------------------------------------------------------------


@dataclass
class Phase:
    seconds: float
    ms: list[float]
    errors: Counter[str]
    server_cpu: float
    client_cpu: float
    client_lag: list[float]
    trips: int = 0

    @property
    def rate(self) -> float:
        return self.trips / self.seconds

    @property
    def cpu_ms_per_1000(self) -> float:
        """The server's CPU milliseconds per 1,000 messages answered in this phase."""
        return self.server_cpu * self.seconds / self.trips * 1e6 if self.trips else float("nan")


@dataclass
class Result:
    connected: int
    connect_failures: Counter[str]
    boot_failures: Counter[str]
    ramp_s: float
    steady: Phase
    saturated: Phase
    late: int
    up_end: int  # connections the chargers still had at the end of the steady window
    server_lag: list[tuple[float, float]]
    server_gcs: list[tuple[float, float]]
    windows: tuple[float, float, float, float]  # steady t0, t1; saturated s0, s1
    gateway: dict[str, Any] = field(default_factory=dict)


def _recv(conn: Any, timeout: float, what: str) -> Any:
    if not conn.poll(timeout):
        raise RuntimeError(f"no answer from a client process: {what}")
    return conn.recv()


def _metrics(api: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{api}/metrics", timeout=30).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for fam in text_string_to_metric_families(text)
        for s in fam.samples
    }


def _sum(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **want: str) -> float:
    return sum(
        v for (n, labels), v in m.items() if n == name and want.items() <= dict(labels).items()
    )


def _rejected(
    m: dict[tuple[str, tuple[tuple[str, str], ...]], float], what: str
) -> dict[str, float]:
    return {
        dict(labels)["reason"]: v
        for (n, labels), v in m.items()
        if n == "citygate_ocpp_rejected_total" and dict(labels).get("what") == what
    }


def gateway_view(api: str, token: str) -> dict[str, Any]:
    """Chargers connected as the gateway sees them (metric, and the inspectors' API)."""
    import httpx

    m = _metrics(api)
    r = httpx.get(
        f"{api}/api/v1/chargers", headers={"Authorization": f"Bearer {token}"}, timeout=60
    )
    r.raise_for_status()
    fleet = r.json()
    bench = [c for c in fleet["chargers"] if c["id"].startswith("bench-")]
    return {
        "connected_metric": int(_sum(m, "citygate_chargers_connected")),
        "api_online": sum(1 for c in bench if c["online"]),
        "api_total": len(bench),
        "rejected_connection": _rejected(m, "connection"),
        "rejected_message": _rejected(m, "message"),
        "rejected_recorder": _rejected(m, "recorder"),
        "bus_dropped": _sum(m, "citygate_bus_dropped_total"),
    }


def pyspy(pid: int, seconds: float) -> subprocess.Popen[bytes] | None:
    out = os.environ.get("BENCH_OCPP_PYSPY")
    exe = shutil.which("py-spy")
    if not out or exe is None:
        return None
    return subprocess.Popen(
        [exe, "record", "--pid", str(pid), "--duration", str(int(seconds)), "--rate", "200",
         "--format", "raw", "--output", out, "--nonblocking"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def run_fleet(
    kind: str,
    creds: list[tuple[str, str]],
    token: str,
    tmp: Path,
    args: argparse.Namespace,
    seconds: float,
) -> Result:
    """One server (``bare`` or ``gateway``) under the fleet's load; everything stopped after."""
    ctx = mp.get_context("spawn")
    server_cores, client_cores = args.cores
    report = ctx.Queue()
    stop = ctx.Event()
    if kind == "bare":
        server = ctx.Process(
            target=bare_server, args=(report, stop, server_cores), name="bare", daemon=True
        )
    else:
        db_url = f"sqlite+aiosqlite:///{tmp / 'cg.db'}"
        server = ctx.Process(
            target=gateway_server,
            args=(str(tmp), db_url, report, stop, server_cores),
            name="gateway",
            daemon=True,
        )
    procs: list[Any] = [server]
    pipes: list[Any] = []
    try:
        server.start()
        started = report.get(timeout=120)
        if "error" in started:
            raise SystemExit(started["error"])
        url = f"ws://127.0.0.1:{started['ocpp_port']}/ocpp"
        api = f"http://127.0.0.1:{started.get('api_port')}"
        n = args.client_procs
        for k in range(n):
            mine, theirs = ctx.Pipe()
            p = ctx.Process(
                target=clients, args=(theirs, client_cores), name=f"chargers-{k}", daemon=True
            )
            p.start()
            procs.append(p)
            pipes.append(mine)
            mine.send(
                (
                    "start",
                    {
                        "url": url,
                        "creds": creds[k::n],
                        "ramp": args.ramp / n,
                        "period": args.period,
                        "seed": k,
                    },
                )
            )
        client_pids = [p.pid for p in procs[1:]]
        ramp_timeout = len(creds) / args.ramp + 4 * RESPONSE_TIMEOUT_S + 60
        ramped = [_recv(c, ramp_timeout, "ramp") for c in pipes]
        connected = sum(r["connected"] for r in ramped)
        print(
            f"# {kind}: {connected}/{len(creds)} chargers connected in "
            f"{max(r['ramp_s'] for r in ramped):.1f} s",
            file=sys.stderr,
            flush=True,
        )
        time.sleep(args.period)  # every charger is in its cycle; the boot backlog is gone

        def cpu(pids: list[int]) -> float:
            return sum(cpu_seconds(p) for p in pids)

        assert server.pid is not None
        spy = pyspy(server.pid, seconds) if kind == "gateway" else None
        t0 = time.time()
        s_cpu0, c_cpu0 = cpu([server.pid]), cpu(client_pids)
        time.sleep(seconds)
        t1 = time.time()
        s_cpu1, c_cpu1 = cpu([server.pid]), cpu(client_pids)
        view = gateway_view(api, token) if kind == "gateway" else {}
        for c in pipes:
            c.send(("report", t0, t1))
        reports = [_recv(c, 120, "report") for c in pipes]
        ms = [ms for r in reports for _, ms in r["trips"]]
        details = os.environ.get("BENCH_OCPP_DETAILS")
        if details:  # for diagnosis: every round trip and every client stall over 20 ms
            Path(f"{details}.{kind}.json").write_text(
                json.dumps(
                    {
                        "trips": [tr for r in reports for tr in r["trips"]],
                        "client_stalls": [x for r in reports for x in r["lag_at"]],
                    }
                )
            )
        steady = Phase(
            seconds=t1 - t0,
            ms=ms,
            errors=sum((Counter(r["errors"]) for r in reports), Counter()),
            server_cpu=(s_cpu1 - s_cpu0) / (t1 - t0),
            client_cpu=(c_cpu1 - c_cpu0) / (t1 - t0),
            client_lag=[x for r in reports for x in r["lag"]],
            trips=len(ms),
        )
        if spy is not None:
            spy.wait()

        s0 = time.time() + 2.0
        s1 = s0 + args.saturate_seconds
        for c in pipes:
            c.send(("saturate", s0, s1))
        time.sleep(max(0.0, s0 - time.time()))
        s_cpu0, c_cpu0 = cpu([server.pid]), cpu(client_pids)
        time.sleep(max(0.0, s1 - time.time()))
        s_cpu1, c_cpu1 = cpu([server.pid]), cpu(client_pids)
        sat = [_recv(c, 3 * RESPONSE_TIMEOUT_S + 60, "saturate") for c in pipes]
        saturated = Phase(
            seconds=s1 - s0,
            ms=[x for r in sat for x in r["ms"]],
            errors=sum((Counter(r["errors"]) for r in sat), Counter()),
            server_cpu=(s_cpu1 - s_cpu0) / (s1 - s0),
            client_cpu=(c_cpu1 - c_cpu0) / (s1 - s0),
            client_lag=[x for r in sat for x in r["lag"]],
            trips=sum(r["trips"] for r in sat),
        )
        after = gateway_view(api, token) if kind == "gateway" else {}
        for c in pipes:
            c.send(("stop",))
        for c in pipes:
            _recv(c, 120, "stop")
        stop.set()
        final = report.get(timeout=120)
        if details:
            stalls = [(t, ms) for t, ms in final["lag"] if ms > 20]
            Path(f"{details}.{kind}.server_stalls.json").write_text(
                json.dumps({"window": [t0, t1], "stalls": stalls, "full_gcs": final["gcs"]})
            )
        gateway = {"steady": view, "after": after, "recorder_depth": final.get("recorder_depth")}
        return Result(
            connected=connected,
            connect_failures=sum((Counter(r["connect_failures"]) for r in ramped), Counter()),
            boot_failures=sum((Counter(r["boot_failures"]) for r in ramped), Counter()),
            ramp_s=max(r["ramp_s"] for r in ramped),
            steady=steady,
            saturated=saturated,
            late=sum(r["late"] for r in reports),
            up_end=sum(r["up"] for r in reports),
            server_lag=final["lag"],
            server_gcs=final["gcs"],
            windows=(t0, t1, s0, s1),
            gateway=gateway,
        )
    finally:
        stop.set()
        for p in reversed(procs):
            p.join(30)
            if p.is_alive():
                p.terminate()
                p.join(5)
            if p.is_alive():
                p.kill()
                p.join()


def lag_in(r: Result, t0: float, t1: float) -> list[float]:
    return [ms for t, ms in r.server_lag if t0 <= t <= t1]


def main(args: argparse.Namespace) -> None:
    nofile = raise_nofile()
    args.cores = cpu_layout()  # before this process leaves the server's core
    _, client_cores = args.cores
    if client_cores is not None:
        os.sched_setaffinity(0, client_cores)  # leave the server's core to the server
    with tempfile.TemporaryDirectory(prefix="cg-bench-ocpp-") as tmp_:
        tmp = Path(tmp_)
        t = time.perf_counter()
        creds, token = asyncio.run(provision(f"sqlite+aiosqlite:///{tmp / 'cg.db'}", args.chargers))
        provision_s = time.perf_counter() - t
        bare = run_fleet("bare", creds, token, tmp, args, args.baseline_seconds)
        gw = run_fleet("gateway", creds, token, tmp, args, args.seconds)

    offered = args.chargers / args.period
    steady, sat, base, base_sat = gw.steady, gw.saturated, bare.steady, bare.saturated
    view, after = gw.gateway["steady"], gw.gateway["after"]
    t0, t1, s0, _ = gw.windows
    depth = [d for t, d in gw.gateway["recorder_depth"] or [] if t0 <= t <= t1]
    depth_sat = [d for t, d in gw.gateway["recorder_depth"] or [] if t >= s0]
    lag = lag_in(gw, t0, t1)
    # Kept up: nothing refused, and its backlog did not grow over the steady window.
    kept_up = not view["rejected_recorder"] and (not depth or depth[-1] <= depth[0] + offered)
    common = {"chargers": args.chargers, "period_s": args.period, "client_procs": args.client_procs}
    emit(
        "ocpp_connected_chargers",
        view["connected_metric"],
        "chargers",
        None,
        target=TARGET_CHARGERS,
        attempted=args.chargers,
        client_connected=gw.connected,
        client_still_up=gw.up_end,
        api_online=view["api_online"],
        connect_failures=dict(gw.connect_failures),
        boot_failures=dict(gw.boot_failures),
        refused=view["rejected_connection"],
        ramp_per_s=args.ramp,
        ramp_s=round(gw.ramp_s, 1),
        provision_s=round(provision_s, 1),
        baseline_connected=bare.connected,
        nofile=nofile,
    )
    emit(
        "ocpp_meter_values_per_s",
        steady.rate,
        "msg/s",
        base_sat.rate,
        **common,
        offered_per_s=offered,
        seconds=round(steady.seconds, 1),
        round_trips=steady.trips,
        errors=dict(steady.errors),
        timeouts=steady.errors.get("timeout", 0),
        late_ticks=gw.late,
        gateway_cpu=round(steady.server_cpu, 2),
        client_cpu=round(steady.client_cpu, 2),
        recorder_rejected=view["rejected_recorder"],
        recorder_rejected_after_saturation=after["rejected_recorder"],
        recorder_kept_up=kept_up,
        recorder_depth_every_10s=depth[::20] + depth[-1:],
        recorder_backlog_s=round(depth[-1] / offered, 1) if depth else None,
        message_rejected=view["rejected_message"],
        bus_dropped=view["bus_dropped"],
        baseline_what="bare ocpp library server, back-to-back round trips, same concurrency",
        baseline_steady_per_s=round(base.rate, 2),
    )
    emit(
        "ocpp_max_meter_values_per_s",
        sat.rate,
        "msg/s",
        base_sat.rate,
        **common,
        seconds=round(sat.seconds, 1),
        errors=dict(sat.errors),
        p50_ms=round(statistics.median(sat.ms), 2) if sat.ms else None,
        p99_ms=round(pct(sat.ms, 0.99), 2),
        gateway_cpu=round(sat.server_cpu, 2),
        client_cpu=round(sat.client_cpu, 2),
        baseline_errors=dict(base_sat.errors),
        baseline_p50_ms=round(statistics.median(base_sat.ms), 2) if base_sat.ms else None,
        baseline_p99_ms=round(pct(base_sat.ms, 0.99), 2),
        baseline_server_cpu=round(base_sat.server_cpu, 2),
        baseline_client_cpu=round(base_sat.client_cpu, 2),
        recorder_depth_max=max(depth_sat, default=None),
        recorder_rejected=after["rejected_recorder"],
    )
    emit(
        "ocpp_response_p50_ms",
        statistics.median(steady.ms) if steady.ms else float("nan"),
        "ms",
        statistics.median(base.ms) if base.ms else None,
        **common,
        samples=len(steady.ms),
        baseline_samples=len(base.ms),
    )
    emit(
        "ocpp_response_p99_ms",
        pct(steady.ms, 0.99),
        "ms",
        pct(base.ms, 0.99),
        **common,
        target_ms=TARGET_P99_MS,
        max_ms=round(max(steady.ms), 2) if steady.ms else None,
        samples=len(steady.ms),
        gateway_loop_lag_p99_ms=round(pct(lag, 0.99), 2),
        gateway_loop_lag_max_ms=round(max(lag), 2) if lag else None,
        gateway_full_gcs=[round(ms) for t, ms in gw.server_gcs if t0 <= t <= t1],
        client_loop_lag_p99_ms=round(pct(steady.client_lag, 0.99), 2),
        client_loop_lag_max_ms=round(max(steady.client_lag), 2) if steady.client_lag else None,
        baseline_server_cpu=round(base.server_cpu, 2),
        baseline_loop_lag_p99_ms=round(pct(lag_in(bare, *bare.windows[:2]), 0.99), 2),
        baseline_full_gcs=[
            round(ms) for t, ms in bare.server_gcs if bare.windows[0] <= t <= bare.windows[1]
        ],
    )

    # Issue 9 item 7: the gateway's CPU per message next to the bare library's, same run.
    ratio = steady.cpu_ms_per_1000 / base.cpu_ms_per_1000 if base.trips else float("nan")
    emit(
        "ocpp_cpu_ms_per_1000_messages",
        steady.cpu_ms_per_1000,
        "ms",
        base.cpu_ms_per_1000,
        **common,
        phase="steady",
        ratio_to_baseline=round(ratio, 2),
        target_ratio=TARGET_CPU_RATIO,
        gateway_cpu=round(steady.server_cpu, 2),
        baseline_server_cpu=round(base.server_cpu, 2),
        messages=steady.trips,
        baseline_messages=base.trips,
        p99_ms=round(pct(steady.ms, 0.99), 2),
        baseline_p99_ms=round(pct(base.ms, 0.99), 2),
    )
    sat_ratio = sat.cpu_ms_per_1000 / base_sat.cpu_ms_per_1000 if base_sat.trips else float("nan")
    emit(
        "ocpp_cpu_ms_per_1000_messages_saturated",
        sat.cpu_ms_per_1000,
        "ms",
        base_sat.cpu_ms_per_1000,
        **common,
        phase="saturated",
        ratio_to_baseline=round(sat_ratio, 2),
        messages=sat.trips,
        baseline_messages=base_sat.trips,
    )


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    ap.add_argument(
        "--chargers", type=int, default=int(os.environ.get("BENCH_OCPP_CHARGERS", TARGET_CHARGERS))
    )
    ap.add_argument(
        "--seconds", type=float, default=float(os.environ.get("BENCH_OCPP_SECONDS", 30))
    )
    ap.add_argument("--baseline-seconds", type=float, default=20.0)
    ap.add_argument("--saturate-seconds", type=float, default=5.0)
    ap.add_argument("--period", type=float, default=10.0, help="seconds between MeterValues")
    ap.add_argument("--ramp", type=float, default=500.0, help="new connections per second")
    ap.add_argument("--client-procs", type=int, default=1)
    main(ap.parse_args())
