"""Telemetry writer throughput into a private VictoriaMetrics, next to a bare HTTP POST of the
same line protocol in the same run; spool rate during an outage and replay rate after it.

Prints one JSON line per figure: {"name", "value", "unit", "baseline", ...}.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp

from bench.bench_ingest import emit
from drivers.backoff import Backoff
from telemetry import SPOOL_FILE
from telemetry.pipeline import TelemetryPipeline
from telemetry.sinks import SinkConfig, make_sink
from telemetry.spool import Spool
from tests.conftest import free_port
from tests.telemetry_servers import start_victoria

N = 200_000
BATCH = 5_000


def make_lines(measurement: str, n: int) -> list[str]:
    base = 1_790_000_000_000
    return [
        f"{measurement},device=d{i % 600},kind=berth_sensor,model=nwave-nps405,site=st-{i % 30} "
        f"battery_mv={3000 + i % 600}i,rssi={-90 - i % 20}.5,occupied={i % 2}i "
        f"{(base + i) * 10**6}"
        for i in range(n)
    ]


async def bare_post(url: str, lines: list[str]) -> float:
    """The floor: join a batch of lines and POST it, nothing else (no error handling)."""
    async with aiohttp.ClientSession() as http:
        t0 = time.perf_counter()
        for i in range(0, len(lines), BATCH):
            body = "\n".join(lines[i : i + BATCH]).encode()
            async with http.post(f"{url}/api/v2/write?org=o&bucket=b&precision=ns", data=body) as r:
                assert r.status == 204, r.status
        return len(lines) / (time.perf_counter() - t0)


async def sink_rate(url: str, lines: list[str]) -> float:
    sink = make_sink(SinkConfig(url=url, mode="v2", org="o", bucket="b", gzip=False))
    try:
        t0 = time.perf_counter()
        for i in range(0, len(lines), BATCH):
            result = await sink.write(lines[i : i + BATCH])
            assert type(result).__name__ == "WriteOk", result
        return len(lines) / (time.perf_counter() - t0)
    finally:
        await sink.close()


async def pipeline_rates(url: str, tmp: Path, lines: list[str]) -> tuple[float, float, float]:
    """(end-to-end pipeline points/s with the server up, spool points/s with it down, replay)."""

    async def run(sink_url: str, spool_dir: Path, measure: str) -> float:
        spool = await Spool.open(spool_dir / SPOOL_FILE)
        sink = make_sink(
            SinkConfig(url=sink_url, mode="v2", org="o", bucket="b", gzip=False, timeout_s=2.0)
        )
        pipe = TelemetryPipeline(
            events=None,
            to_lines=lambda e: [],
            sink=sink,
            spool=spool,
            spool_dir=spool_dir,
            clock=lambda: datetime.now(UTC),
            batch_size=BATCH,
            flush_interval_s=0.05,
            replay_rate=10**9,
            backoff=Backoff(base=0.01, cap=0.05, rng=random.Random(1)),
        )
        task = asyncio.create_task(pipe.run())
        t0 = time.perf_counter()
        if measure == "replay":
            while pipe.counters.replayed < len(lines):  # noqa: ASYNC110 - polling a counter
                await asyncio.sleep(0.005)
        else:
            pipe.add_lines(lines)
            await pipe.flush()
            attr = "written" if measure == "written" else "spooled"
            while getattr(pipe.counters, attr) < len(lines):  # noqa: ASYNC110
                await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - t0
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipe.close()
        await spool.close()
        return len(lines) / elapsed

    up = await run(url, tmp / "a", "written")
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens: an outage
    spooled = await run(dead, tmp / "b", "spooled")
    replay = await run(url, tmp / "b", "replay")
    return up, spooled, replay


async def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-tel-"))
    for d in ("a", "b"):
        (tmp / d).mkdir()
    vm = start_victoria(tmp / "vm")
    try:
        await bare_post(vm.url, make_lines("bench_warmup", N // 4))  # server warm-up, not counted
        # The same series for every contender (identical points overwrite themselves), so the
        # server does the same work for each; the bare POST is measured before and after.
        lines = make_lines("bench", N)
        bares, writers = [], []
        for _ in range(3):  # interleaved rounds, medians: the server's own noise is large
            bares.append(await bare_post(vm.url, lines))
            writers.append(await sink_rate(vm.url, lines))
        bare, writer = statistics.median(bares), statistics.median(writers)
        emit(
            "telemetry_writer_rate",
            writer,
            "points/s",
            bare,
            ratio=round(writer / bare, 3),
            baseline_name="bare_aiohttp_post",
            target_ratio=0.8,
            target_min=100_000,
        )
        up, spooled, replay = await pipeline_rates(vm.url, tmp, lines)
        emit(
            "telemetry_pipeline_rate",
            up,
            "points/s",
            bare,
            ratio=round(up / bare, 3),
            baseline_name="bare_aiohttp_post",
        )
        emit("telemetry_spool_rate_during_outage", spooled, "points/s", None)
        emit("telemetry_replay_rate", replay, "points/s", None, replay_limit="unbounded")
    finally:
        vm.stop()


if __name__ == "__main__":
    asyncio.run(main())
