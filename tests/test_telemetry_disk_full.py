"""A full disk under the telemetry spool: a real gateway (uplinks over a real Mosquitto, the
spool on a 2 MiB tmpfs) keeps serving ingest and the API, reports telemetry degraded in
/readyz and /metrics, and recovers by itself once space returns."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from drivers.sensors import nwave
from telemetry import SPOOL_FILE
from telemetry.pipeline import TelemetryPipeline, read_status
from telemetry.reopen import ReopeningSpool
from telemetry.spool import Spool, read_stats
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for
from tests.test_e2e_sensors import TOWN, chirpstack, publish


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 2 MiB tmpfs, unmounted afterwards. It needs root and mount(8), as `make test` and CI
    have: a machine without them fails here rather than skipping the full-disk behaviour."""
    if os.geteuid() != 0:
        pytest.fail("mounting a size-limited tmpfs needs root: run `make test` as root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.fail("mount/umount not installed (util-linux)")
    where = Path(tempfile.mkdtemp(prefix="cg-small-disk-"))
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(where)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        where.rmdir()
        pytest.fail(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
        where.rmdir()


def fill(disk: Path) -> Path:
    """Write a file until the filesystem says ENOSPC; the disk is full afterwards."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as f:
        for chunk in (64 * 1024, 4096, 512):
            with contextlib.suppress(OSError):
                while True:
                    f.write(b"\0" * chunk)
    with pytest.raises(OSError, match="No space left") as full:
        (disk / "probe").write_bytes(b"x" * 4096)
    assert full.value.errno == errno.ENOSPC
    (disk / "probe").unlink(missing_ok=True)
    return filler


def street_sensors(n: int) -> list[tuple[str, str]]:
    """(dev_eui, site_id) of *n* nwave sensors of one on-street site."""
    berths = {b.id: b for b in TOWN.berths}
    sites = {s.id: s for s in TOWN.sites}
    by_site: dict[str, list[str]] = {}
    for s in TOWN.sensors:
        site = sites[berths[s.berth].site]
        if s.model == "nwave-nps405" and site.kind.value == "on_street":
            by_site.setdefault(site.id, []).append(s.dev_eui.lower())
    site_id, devs = next((k, v) for k, v in by_site.items() if len(v) >= n)
    return [(d, site_id) for d in devs[:n]]


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


@pytest.mark.slow
async def test_full_disk_degrades_telemetry_and_recovers(
    mosquitto: Broker, small_disk: Path, tmp_path: Path
) -> None:
    spool_dir = small_disk / "spool"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        telemetry={"spool_dir": str(spool_dir), "flush_interval_s": 0.1, "health_interval_s": 0.2},
        api={"metrics_token_required": False},  # scraped without a token (tested in test_api)
    )
    sensors = street_sensors(2)
    site_id = sensors[0][1]

    async with running_gateway(settings) as gw:
        pipeline = gw.services.telemetry.pipeline
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:

            async def occupied() -> int:
                r = await http.get(f"/api/v1/sites/{site_id}")
                r.raise_for_status()
                n: int = r.json()["occupied"]
                return n

            async def uplink(i: int) -> None:
                dev = sensors[i][0]
                port, data = nwave.encode_status(True)
                topic = f"application/a/device/{dev}/event/up"
                await publish(mosquitto, topic, chirpstack(dev, port, data, 5))

            def spooled() -> int:
                return read_stats(spool_dir / SPOOL_FILE).pending_points

            await wait_for(lambda: spooled() > 0, 10, what="points in the spool")
            ready = await http.get("/readyz")
            assert ready.status_code == 200
            assert ready.json()["checks"]["telemetry"] is True and ready.json()["degraded"] == []
            base = await occupied()

            filler = fill(small_disk)
            await wait_for(lambda: pipeline.degraded and pipeline.held > 0, 10, what="degraded")
            await wait_for(lambda: pipeline.counters.status_failures > 0, 10, what="status fails")
            stuck_at = spooled()

            # Ingest and the API go on: an uplink over MQTT changes the site's count.
            in_before = gw.metrics_value("citygate_messages_in_total", source="chirpstack")
            await uplink(0)

            async def counted() -> bool:
                return await occupied() == base + 1

            await wait_for(counted, 10, what="uplink counted while the disk is full")
            assert gw.metrics_value("citygate_messages_in_total", source="chirpstack") > in_before
            ready = await http.get("/readyz")
            assert ready.status_code == 200, "degraded telemetry must not make the gateway unready"
            assert ready.json()["ready"] is True
            assert ready.json()["checks"]["telemetry"] is False
            assert ready.json()["degraded"] == ["telemetry"]
            text = (await http.get("/metrics")).text
            assert metric(text, "citygate_telemetry_degraded") == 1.0
            assert metric(text, "citygate_telemetry_held_points") > 0
            assert metric(text, "citygate_telemetry_points_spool_failures_total") > 0
            assert metric(text, "citygate_telemetry_points_status_failures_total") > 0
            assert spooled() == stuck_at  # nothing reached the disk meanwhile
            held = pipeline.held
            assert held > 0 and pipeline.counters.lost == 0

            # Space returns: held points reach the spool, the status file is written again.
            freed_at = time.time()
            filler.unlink()
            await wait_for(lambda: not pipeline.degraded, 10, what="recovery")
            await wait_for(lambda: spooled() >= stuck_at + held, 10, what="held points spooled")

            def status() -> dict[str, Any] | None:
                st = read_status(spool_dir)
                at = st.get("at")
                return st if isinstance(at, float) and at > freed_at else None

            st = await wait_for(status, 10, what="status file updated")
            assert st["degraded"] is False and st["held"] == 0
            assert pipeline.counters.lost == 0
            await uplink(1)

            async def counted_again() -> bool:
                return await occupied() == base + 2

            await wait_for(counted_again, 10, what="second uplink counted")
            ready = await http.get("/readyz")
            assert ready.json()["checks"]["telemetry"] is True and ready.json()["degraded"] == []
            text = (await http.get("/metrics")).text
            assert metric(text, "citygate_telemetry_degraded") == 0.0
        assert gw.services.transport.connected.is_set()


@pytest.mark.slow
async def test_gateway_starts_on_a_full_disk_and_opens_the_spool_later(
    mosquitto: Broker, small_disk: Path, tmp_path: Path
) -> None:
    """A gateway restarted while the disk is still full (SQLite cannot even map its WAL
    index) must start, not crash-loop; the spool opens once there is room again."""
    spool_dir = small_disk / "spool"
    spool_dir.mkdir()
    async with await Spool.open(spool_dir / SPOOL_FILE) as spool:
        await spool.append(["before value=1i 1700000000000000000"])
    filler = fill(small_disk)
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{tmp_path / 'cg.db'}",
        mosquitto,
        telemetry={"spool_dir": str(spool_dir), "flush_interval_s": 0.1, "health_interval_s": 0.2},
    )
    dev, site_id = street_sensors(1)[0]
    async with running_gateway(settings) as gw:
        pipeline = gw.services.telemetry.pipeline
        reopening = gw.services.telemetry.spool
        assert isinstance(reopening, ReopeningSpool) and not reopening.is_open
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.api_port}") as http:
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["degraded"] == ["telemetry"]
            port, data = nwave.encode_status(True)
            topic = f"application/a/device/{dev}/event/up"
            await publish(mosquitto, topic, chirpstack(dev, port, data, 5))

            async def counted() -> bool:
                r = await http.get(f"/api/v1/sites/{site_id}")
                return bool(r.json()["occupied"] == 1)

            await wait_for(counted, 10, what="uplink counted on a full disk")
            await wait_for(lambda: pipeline.held > 0, 10, what="points held in memory")

            filler.unlink()
            await wait_for(lambda: not pipeline.degraded, 10, what="spool opened")
            assert reopening.is_open
            stats = read_stats(spool_dir / SPOOL_FILE)
            assert stats.pending_points > 1  # the old point and the held ones
            assert pipeline.counters.lost == 0
            ready = await http.get("/readyz")
            assert ready.json()["degraded"] == []


async def test_held_points_are_bounded_and_counted(small_disk: Path) -> None:
    """While the spool cannot write, memory holds at most max_held_points (the newest); the
    overflow is counted as lost, and the rest reach the spool, in order, once there is room."""
    spool = await Spool.open(small_disk / SPOOL_FILE)
    pipeline = TelemetryPipeline(
        events=None,
        to_lines=lambda _e: [],
        sink=None,
        spool=spool,
        spool_dir=small_disk,
        clock=lambda: datetime.now(UTC),
        max_held_points=50,
        retry_interval_s=0.05,
    )
    run = asyncio.create_task(pipeline.run())
    try:
        filler = fill(small_disk)
        pipeline.add_lines([f"m v={i}i {i}" for i in range(80)])
        await pipeline.flush()
        assert pipeline.held == 50 and pipeline.counters.lost == 30 and pipeline.degraded
        assert (await spool.stats()).pending_points == 0
        filler.unlink()
        await wait_for(lambda: not pipeline.degraded, 5, what="held points spooled")
        batch = await spool.peek(100)
        assert batch is not None
        assert batch.lines == [f"m v={i}i {i}" for i in range(30, 80)]
        assert pipeline.counters.spooled == 50 and pipeline.counters.lost == 30
    finally:
        run.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await run
        await spool.close()
