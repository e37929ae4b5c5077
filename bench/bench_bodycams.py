"""Body cams under load: 2,000 registered cams with 60 s keepalives and 5 s positions (about
430 MESSAGEs a second) against the running gateway's GB/T 28181 platform, next to a bare
asyncio UDP responder answering the same datagrams with a canned 200, in the same run.

- The cams are ``gateway.demo.bodycams.BodyCamSimulator`` (one UDP socket per cam, digest
  REGISTER, client transactions) in a child process of their own, so the load generator does
  not share the target's core (this machine has two).
- Targets, one after the other, each measured over the same window length once every cam is
  registered: the bare responder (a child process: finds Via/From/To/Call-ID/CSeq, answers
  200, nothing else; run before the others and again after them, pooled: its CPU per message
  drifts between runs minutes apart), the SIP core alone (``tests/sip_uas.py`` in a child:
  parse, digest, transactions, ``parse_manscdp``; no storage: where the gateway's extra cost
  is not), and
  the gateway (this process: registrar, MESSAGE handling, presence, telemetry, SQLite).
- Handling time: from a request's first send to its 2xx (keepalives and positions).
  CPU per message: the target process's user+system time over the window (``/proc/<pid>/stat``
  for children, ``getrusage`` for the gateway here) divided by the messages answered in it.

One JSON line per figure (name, value, unit, baseline), as the other benches. Target:
p99 < 20 ms, and the gateway's CPU per message within 5x the bare responder's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_ingest import emit
from drivers.sip.digest import ha1
from gateway.demo.bodycams import BodyCamOptions, BodyCamSimulator, CamSpec, cam_id
from tests.conftest import gateway_settings, start_mosquitto, wait_for

PLATFORM_ID = "62072500082000000001"
REALM = PLATFORM_ID[:10]
KINDS = ("keepalive", "position", "notify")  # positions go as NOTIFY once subscribed
PRODUCTION_TIMERS = {"sweep_interval_s": 5.0, "persist_interval_s": 1.0}  # [occupancy] defaults


def password(n: int) -> str:
    return f"bench-pw-{n:06d}"


def pct(ms: list[float], q: float) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


def cpu_of(pid: int) -> float:
    """User + system seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[str, float]:
    """User + system seconds of each of this process's threads, by thread name (``comm``)."""
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            key = "main" if task.name == str(os.getpid()) else name
            out[key] = out.get(key, 0.0) + cpu_of_stat(stat)
    return out


def system_of(pid: int) -> float:
    """System seconds of *pid* (all its threads): the kernel's share, ``sendto`` mostly."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def cpu_of_stat(stat: str) -> float:
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


# -- targets in children ------------------------------------------------------------------


def _bare(ready: Any) -> None:
    """The least a SIP answer costs: copy five header lines, say 200."""

    class Bare(asyncio.DatagramProtocol):
        def connection_made(self, transport: Any) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: Any) -> None:
            head = data.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
            keep = [
                line
                for line in head[1:]
                if line[:4].lower() in (b"via:", b"from", b"to: ", b"call", b"cseq")
            ]
            self.t.sendto(
                b"SIP/2.0 200 OK\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n", addr
            )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        t, _ = await loop.create_datagram_endpoint(Bare, local_addr=("127.0.0.1", 0))
        ready.put(t.get_extra_info("sockname")[1])
        await asyncio.Event().wait()

    asyncio.run(main())


def _sip_core(n: int, ready: Any) -> None:
    from tests.sip_uas import Uas

    async def main() -> None:
        uas = Uas({cam_id(i): password(i) for i in range(1, n + 1)}, keep=False)
        _, port = await uas.start()
        ready.put(port)
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the load generator -------------------------------------------------------------------


def _cams(port: int, n: int, seconds: float, spread: float, out: Any, go: Any) -> None:
    async def main() -> None:
        cams = [CamSpec(cam_id(i), password(i)) for i in range(1, n + 1)]
        options = BodyCamOptions(
            ("127.0.0.1", port), platform_id=PLATFORM_ID, keepalive_interval_s=60,
            position_interval_s=5, register_expires_s=3600, alarm_rate_per_h=0,
            start_spread_s=spread, backoff_cap_s=5, unregister_on_stop=False,
            own_loopback_address=True,
        )  # fmt: skip
        sites = [(38.7750, 101.0712), (38.7859, 101.0888), (38.7800, 101.0800)]
        sim = BodyCamSimulator(cams, options, sites)
        stop = asyncio.Event()
        run = asyncio.create_task(sim.run(stop))
        with contextlib.suppress(AssertionError):  # measured anyway; the count is reported
            await wait_for(lambda: sim.stats.registered >= n, spread + 120, 0.2)
        registered = sim.stats.registered
        await asyncio.sleep(6)  # every cam past its first position phase
        gc.collect()
        gc.freeze()  # the fleet's long-lived objects: out of the collector's way
        lags: list[float] = []

        async def probe() -> None:  # the generator's own loop lag, apart from the target's
            while True:
                t = time.perf_counter()
                await asyncio.sleep(0.01)
                lags.append((time.perf_counter() - t - 0.01) * 1000)

        prober = asyncio.create_task(probe())
        for k in KINDS:
            sim.stats.latencies_ms.pop(k, None)
        before = dict(sim.stats.ok), dict(sim.stats.failed), sim.stats.counters.retransmissions
        cpu0 = own_cpu()
        out.put(("measuring", registered))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        await asyncio.sleep(seconds)
        lat = [x for k in KINDS for x in sim.stats.latencies_ms.get(k, [])]
        ok = sum(sim.stats.ok.get(k, 0) - before[0].get(k, 0) for k in KINDS)
        failed = sum(sim.stats.failed.get(k, 0) - before[1].get(k, 0) for k in KINDS)
        retrans = sim.stats.counters.retransmissions - before[2]
        prober.cancel()
        done = {
            "lat": lat, "ok": ok, "failed": failed, "retrans": retrans, "lag": lags,
            "generator_cpu_s": own_cpu() - cpu0,
        }  # fmt: skip
        out.put(("done", done))
        stop.set()
        await asyncio.wait_for(run, 30)

    asyncio.run(main())


async def measure(
    ctx: Any, port: int, n: int, seconds: float, spread: float, cpu: Any, pid: int
) -> dict[str, Any]:
    """Run the fleet against *port*; *cpu* reads the target's CPU seconds (*pid*: its
    process, for the system share)."""
    out, go = ctx.Queue(), ctx.Event()
    child = ctx.Process(target=_cams, args=(port, n, seconds, spread, out, go))
    child.start()
    loop = asyncio.get_running_loop()
    try:
        what, registered = await loop.run_in_executor(None, out.get, True, spread + 180)
        assert what == "measuring"
        s0, c0, t0 = system_of(pid), cpu(), time.monotonic()
        go.set()
        what, result = await loop.run_in_executor(None, out.get, True, seconds + 60)
        c1, t1, s1 = cpu(), time.monotonic(), system_of(pid)
        assert what == "done"
        await loop.run_in_executor(None, child.join, 40)
    finally:
        if child.is_alive():
            child.terminate()
    handled = result["ok"] + result["failed"]
    result.update(
        registered=registered,
        cpu_s=c1 - c0,
        system_share=(s1 - s0) / max(1e-9, c1 - c0),
        window_s=t1 - t0,
        rate=handled / (t1 - t0),
        cpu_us_per_msg=(c1 - c0) / max(1, handled) * 1e6,
    )
    return result


def report(prefix: str, r: dict[str, Any], base: dict[str, Any] | None, **extra: Any) -> None:
    b50 = pct(base["lat"], 0.5) if base else None
    b99 = pct(base["lat"], 0.99) if base else None
    emit(f"{prefix}_handling_p50", pct(r["lat"], 0.5), "ms", b50, messages=len(r["lat"]))
    emit(
        f"{prefix}_handling_p99", pct(r["lat"], 0.99), "ms", b99, target_ms=20,
        registered=r["registered"], failed=r["failed"], retransmissions=r["retrans"],
    )  # fmt: skip
    emit(
        f"{prefix}_load_generator_loop_lag_p99", pct(r["lag"], 0.99), "ms", None,
        generator_cpu_share=round(r["generator_cpu_s"] / r["window_s"], 2),
    )  # fmt: skip
    ratio = r["cpu_us_per_msg"] / base["cpu_us_per_msg"] if base else None
    emit(
        f"{prefix}_cpu_per_message", r["cpu_us_per_msg"], "us",
        base["cpu_us_per_msg"] if base else None,
        ratio=None if ratio is None else round(ratio, 2), rate_per_s=round(r["rate"], 1),
        cpu_s=round(r["cpu_s"], 2), system_share=round(r["system_share"], 2), **extra,
    )  # fmt: skip


async def loop_lag(out: list[float]) -> None:
    """How late a 10 ms sleep wakes, over and over: the lag of the loop it runs on."""
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.01)
        out.append((time.perf_counter() - t - 0.01) * 1000)


def timed_flushes(store: Any) -> list[float]:
    """The platform's write-behind flushes, each one's duration in ms (wrapped, bench only)."""
    inner, out = store.flush, []

    async def flush(*args: Any, **kw: Any) -> Any:
        t = time.perf_counter()
        try:
            return await inner(*args, **kw)
        finally:
            out.append((time.perf_counter() - t) * 1000)

    store.flush = flush
    return out


async def gateway_run(
    ctx: Any, n: int, seconds: float, spread: float, profile: str | None = None
) -> dict[str, Any] | None:
    """The gateway in this process; None (said on stdout) when its platform is not there."""
    try:
        from gateway.directory.bodycams import add_bodycam, credentials, set_password
    except ImportError as exc:
        emit("bodycam_gateway_skipped", 0, "-", None, reason=f"no body cam platform: {exc}")
        return None
    from gateway.supervisor import Gateway

    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-bodycams-"))
    broker = start_mosquitto(tmp / "mqtt")
    try:
        settings = gateway_settings(
            f"sqlite+aiosqlite:///{tmp / 'cg.db'}", broker, log={"level": "WARNING"},
            bodycams={"sip_port": 0, "platform_id": PLATFORM_ID},
            occupancy=dict(PRODUCTION_TIMERS),  # as deployed, not the tests' fast sweeps
        )  # fmt: skip
        gw = await Gateway.open(settings)
        run = asyncio.create_task(gw.run())
        await gw.started.wait()
        now = datetime.now(UTC)
        async with gw.services.sessions.begin() as db:
            town_cams = set(await credentials(db))  # the sample town's 72 officers' cams
            for i in range(1, n + 1):
                if cam_id(i) in town_cams:
                    await set_password(db, cam_id(i), REALM, password(i), now)
                else:
                    await add_bodycam(db, cam_id(i), None, REALM, password(i), now)
        want = {cam_id(i): ha1(cam_id(i), REALM, password(i)) for i in range(1, n + 1)}
        creds = gw.services.bodycams.credentials

        def known() -> bool:
            return all(getattr(creds.get(k), "ha1", None) == h for k, h in want.items())

        await wait_for(known, 60, 0.2, what="the registrar knows the cams' passwords")
        flushes = timed_flushes(gw.services.bodycams.store)
        lags: list[float] = []
        prober = asyncio.create_task(loop_lag(lags))
        profiler = cProfile.Profile() if profile else None
        snapshots: list[dict[str, float]] = []

        def cpu() -> float:  # read at the window's start and end: the threads' split too
            if profiler is not None:  # the profile covers the window only, not registration
                (profiler.disable if snapshots else profiler.enable)()
            snapshots.append(thread_cpu())
            return own_cpu()

        result = await measure(ctx, gw.sip_port, n, seconds, spread, cpu, os.getpid())
        threads0, threads1 = snapshots[0], snapshots[-1]
        if profiler is not None:
            profiler.dump_stats(profile)
        prober.cancel()
        result.update(gateway_lag=lags, flushes=flushes)
        result["threads"] = {
            k: round(v - threads0.get(k, 0.0), 2)
            for k, v in threads1.items()
            if v - threads0.get(k, 0.0) > 0
        }
        gw.request_stop()
        await run
        return result
    finally:
        broker.stop()


async def child_run(
    ctx: Any, name: str, target: Any, args: tuple[Any, ...], n: int, seconds: float, spread: float
) -> dict[str, Any]:
    """Measure a responder running in a child process of its own."""
    ready = ctx.Queue()
    proc = ctx.Process(target=target, args=(*args, ready), daemon=True, name=name)
    proc.start()
    try:
        port = ready.get(timeout=30)
        pid = proc.pid
        assert pid is not None
        return await measure(ctx, port, n, seconds, spread, lambda p=pid: cpu_of(p), pid)
    finally:
        proc.terminate()


def pooled(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Several runs of one target as one: latencies together, CPU over all messages. The bare
    responder's CPU per message drifts by half between runs minutes apart on this machine
    (clock and cache states), so it runs before and after the gateway and counts as one."""
    out = dict(runs[0])
    handled = [r["ok"] + r["failed"] for r in runs]
    cpu_s = sum(r["cpu_s"] for r in runs)
    out.update(
        lat=[x for r in runs for x in r["lat"]],
        lag=[x for r in runs for x in r["lag"]],
        failed=sum(r["failed"] for r in runs),
        retrans=sum(r["retrans"] for r in runs),
        cpu_s=cpu_s,
        window_s=sum(r["window_s"] for r in runs),
        generator_cpu_s=sum(r["generator_cpu_s"] for r in runs),
        rate=sum(handled) / sum(r["window_s"] for r in runs),
        system_share=sum(r["system_share"] * r["cpu_s"] for r in runs) / max(1e-9, cpu_s),
        cpu_us_per_msg=cpu_s / max(1, sum(handled)) * 1e6,
        each_us=[round(r["cpu_us_per_msg"], 1) for r in runs],
    )
    return out


async def main(n: int, seconds: float, spread: float, only: set[str], profile: str | None) -> None:
    ctx = mp.get_context("spawn")
    bare_runs = [await child_run(ctx, "bare", _bare, (), n, seconds, spread)]
    sipcore = None
    if "sipcore" in only:
        sipcore = await child_run(ctx, "sipcore", _sip_core, (n,), n, seconds, spread)
    gw = await gateway_run(ctx, n, seconds, spread, profile) if "gateway" in only else None
    bare_runs.append(await child_run(ctx, "bare", _bare, (), n, seconds, spread))
    bare = pooled(bare_runs)
    report("bodycam_bare_responder", bare, None, cams=n, runs_us=bare["each_us"])
    if sipcore is not None:
        report("bodycam_sip_core_uas", sipcore, bare, cams=n)
    if gw is not None:
        report("bodycam_gateway", gw, bare, cams=n, target_ratio=5)
        lag = gw["gateway_lag"]
        emit("bodycam_gateway_loop_lag_p99", pct(lag, 0.99), "ms", None, max_ms=round(max(lag), 1))
        emit(
            "bodycam_gateway_cpu_by_thread", sum(gw["threads"].values()), "s", None, **gw["threads"]
        )
        fl = gw["flushes"]
        emit(
            "bodycam_gateway_state_flush_p50", pct(fl, 0.5), "ms", None,
            p99_ms=round(pct(fl, 0.99), 1), flushes=len(fl),
        )  # fmt: skip


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--cams", type=int, default=2000)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--spread", type=float, default=20.0, help="registrations spread (s)")
    ap.add_argument(
        "--targets", default="bare,sipcore,gateway", help="which (the bare one always runs)"
    )
    ap.add_argument("--profile", help="write the gateway's cProfile stats here (slows it)")
    a = ap.parse_args()
    asyncio.run(main(a.cams, a.seconds, a.spread, set(a.targets.split(",")), a.profile))
