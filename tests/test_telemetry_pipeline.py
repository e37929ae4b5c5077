"""The telemetry pipeline against real servers: nothing lost in an outage or a crash, nothing
twice, bad points dead-lettered, order kept, and the spool when there is no server at all."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from drivers.backoff import Backoff
from telemetry import SPOOL_FILE
from telemetry.pipeline import TelemetryPipeline
from telemetry.sinks import SinkConfig, make_sink
from telemetry.spool import Spool
from tests.conftest import wait_for
from tests.telemetry_servers import (  # noqa: F401
    Influx1,
    Victoria,
    influx1_fixture,
    influx1_query_async,
    own_victoria_fixture,
    victoria_fixture,
    vm_points_async,
)

BASE_MS = 1_790_000_000_000  # 2026-09, well inside any retention


def lines(measurement: str, start: int, count: int) -> list[str]:
    """Deterministic points 1 ms apart (VictoriaMetrics keeps milliseconds)."""
    return [
        f"{measurement},device=d{i % 7},site=s1 value={i}i,temp={i / 4} {(BASE_MS + i) * 10**6}"
        for i in range(start, start + count)
    ]


async def make_pipeline(
    tmp: Path, sink_url: str | None, mode: str = "v2", **kw: Any
) -> tuple[TelemetryPipeline, Spool]:
    spool = await Spool.open(tmp / SPOOL_FILE)
    sink = None
    if sink_url:
        sink = make_sink(
            SinkConfig(
                url=sink_url,
                mode=mode,
                org="town",
                bucket="citygate",  # type: ignore[arg-type]
                database="citygate",
                timeout_s=2.0,
            )
        )
    pipe = TelemetryPipeline(
        events=None,
        to_lines=lambda e: [],
        sink=sink,
        spool=spool,
        spool_dir=tmp,
        clock=lambda: datetime.now(UTC),
        batch_size=500,
        flush_interval_s=0.05,
        replay_rate=200_000,
        backoff=Backoff(base=0.05, cap=0.3, rng=random.Random(1)),
        **kw,
    )
    return pipe, spool


async def delivered(url: str, measurement: str, n: int) -> dict[Any, float]:
    points = await vm_points_async(url, f"{measurement}_value")
    return points if len(points) >= n else {}


def check_values(points: dict[Any, float], start: int, count: int) -> None:
    by_ts = {key[2]: value for key, value in points.items()}
    assert len(points) == count  # every point, none twice
    for i in range(start, start + count):
        assert by_ts[BASE_MS + i] == i


@pytest.mark.slow
async def test_outage_loses_nothing_and_keeps_order(own_victoria: Victoria, tmp_path: Path) -> None:
    m = "outage_test"
    pipe, spool = await make_pipeline(tmp_path, own_victoria.url)
    task = asyncio.create_task(pipe.run())
    try:
        pipe.add_lines(lines(m, 0, 1500))
        await wait_for(lambda: pipe.counters.written >= 1500, 20, what="written while up")
        await asyncio.to_thread(own_victoria.stop)
        pipe.add_lines(lines(m, 1500, 3000))  # the server is down: these go to the spool
        await wait_for(lambda: pipe.counters.spooled >= 3000, 20, what="spooled while down")
        assert (await spool.stats()).pending_points == 3000
        await asyncio.to_thread(own_victoria.start)
        pipe.add_lines(lines(m, 4500, 500))  # behind the backlog, in order
        await wait_for(lambda: pipe.counters.replayed >= 3000, 30, what="backlog replayed")
        points = await wait_for(
            lambda: delivered(own_victoria.url, m, 5000),
            30,
            interval=0.5,
            what="all points readable",
        )
        check_values(points, 0, 5000)
        assert (await spool.stats()).pending_points == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipe.close()
        await spool.close()


CRASHER = textwrap.dedent("""
    import asyncio, random, sys
    from datetime import UTC, datetime
    from pathlib import Path
    from drivers.backoff import Backoff
    from telemetry import SPOOL_FILE
    from telemetry.pipeline import TelemetryPipeline
    from telemetry.sinks import SinkConfig, make_sink
    from telemetry.spool import Spool
    from tests.test_telemetry_pipeline import lines

    async def main(tmp, url):
        spool = await Spool.open(Path(tmp) / SPOOL_FILE)
        sink = make_sink(SinkConfig(url=url, mode="v2", org="o", bucket="b", timeout_s=1.0))
        pipe = TelemetryPipeline(events=None, to_lines=lambda e: [], sink=sink, spool=spool,
            spool_dir=Path(tmp), clock=lambda: datetime.now(UTC), batch_size=500,
            flush_interval_s=0.05, backoff=Backoff(base=0.05, cap=0.2, rng=random.Random(1)))
        task = asyncio.create_task(pipe.run())
        for k in range(100):
            pipe.add_lines(lines("crash_test", k * 100, 100))
            await pipe.flush()
            print("spooled", pipe.counters.spooled, flush=True)
        await asyncio.Event().wait()  # wait to be killed

    asyncio.run(main(sys.argv[1], sys.argv[2]))
""")


@pytest.mark.slow
async def test_kill_9_during_outage_then_everything_arrives(
    own_victoria: Victoria, tmp_path: Path
) -> None:
    url = own_victoria.url
    await asyncio.to_thread(own_victoria.stop)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHER,
        str(tmp_path),
        url,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).parent.parent,
    )
    assert proc.stdout is not None
    confirmed = 0
    while confirmed < 4000:  # kill it mid-stream, once 4,000 points are known to be spooled
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
        assert line, "the writer died before it was killed"
        confirmed = int(line.split()[1])
    os.kill(proc.pid, signal.SIGKILL)
    await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    await asyncio.to_thread(own_victoria.start)
    # A new gateway process on the same spool delivers what the killed one had spooled.
    pipe, spool = await make_pipeline(tmp_path, url)
    task = asyncio.create_task(pipe.run())
    try:
        await wait_for(lambda: pipe.counters.replayed >= confirmed, 30, what="replay")
        points = await wait_for(
            lambda: delivered(url, "crash_test", confirmed),
            30,
            interval=0.5,
            what="points readable",
        )
        assert len(points) >= confirmed
        by_ts = {key[2]: value for key, value in points.items()}
        for i in range(confirmed):  # each confirmed point, exactly once, with its value
            assert by_ts[BASE_MS + i] == i
        assert len(by_ts) == len(points)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipe.close()
        await spool.close()


@pytest.mark.slow
async def test_v1_into_influxdb_1(influx1: Influx1, tmp_path: Path) -> None:
    influx1.create_database("citygate")
    pipe, spool = await make_pipeline(tmp_path, influx1.url, mode="v1")
    task = asyncio.create_task(pipe.run())
    try:
        pipe.add_lines(lines("v1_test", 0, 1200))
        await wait_for(lambda: pipe.counters.written >= 1200, 20)
        rows = await influx1_query_async(
            influx1.url, "citygate", "SELECT value, temp, device FROM v1_test"
        )
        assert len(rows) == 1200
        for row in rows:
            i = row["value"]
            assert row["temp"] == i / 4 and row["device"] == f"d{i % 7}"
            assert row["time"] == (BASE_MS + i) * 10**6
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipe.close()
        await spool.close()


@pytest.mark.slow
async def test_bad_points_are_dead_lettered_not_retried(influx1: Influx1, tmp_path: Path) -> None:
    # InfluxDB refuses malformed lines with 400 (VictoriaMetrics silently skips them).
    influx1.create_database("citygate")
    good = lines("dl_test", 0, 300)
    bad = ["dl_test,device=x value= 1", "dl_test value=1i,value2 1790000000000000000"]
    pipe, spool = await make_pipeline(tmp_path, influx1.url, mode="v1")
    task = asyncio.create_task(pipe.run())
    try:
        pipe.add_lines([*good[:100], bad[0], *good[100:200], bad[1], *good[200:]])
        await wait_for(lambda: pipe.counters.dead_lettered == 2, 20, what="dead letters")
        await wait_for(lambda: pipe.counters.written >= 300, 20)
        letters = await spool.dead_letters()
        assert sorted(d.line for d in letters) == sorted(bad)
        assert all(d.reason for d in letters)
        assert (await spool.stats()).pending_points == 0  # nothing left to retry forever
        rows = await influx1_query_async(influx1.url, "citygate", "SELECT value FROM dl_test")
        assert sorted(r["value"] for r in rows) == list(range(300))
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await pipe.close()
        await spool.close()


async def test_without_a_server_points_wait_in_the_spool(tmp_path: Path) -> None:
    pipe, spool = await make_pipeline(tmp_path, None)
    task = asyncio.create_task(pipe.run())
    try:
        pipe.add_lines(lines("nowhere", 0, 250))
        await wait_for(lambda: pipe.counters.spooled == 250, 10)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await spool.close()
    env = {**os.environ, "CITYGATE_TELEMETRY__SPOOL_DIR": f'"{tmp_path}"'}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway.cli",
        "telemetry",
        "status",
        "--json",
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    assert proc.returncode == 0
    status = json.loads(out)
    assert status["spooled_pending"] == 250
    assert status["server"] is None and status["dead_lettered"] == 0
