"""Fault suite: the disk under the telemetry spool full while the time-series server is down
(issue 16).

tests/test_telemetry_disk_full.py proves the gateway keeps serving, reports itself degraded
and recovers on a full disk, and (pipeline alone) that held points are bounded, counted and
spooled in order. This adds the end-to-end count: a real gateway with its spool on a 2 MiB
tmpfs and its VictoriaMetrics (without de-duplication, tests/test_faults_telemetry.py) down,
so every point must go through the spool; 20 sensors publish; the disk is filled after a
third of the uplinks (points are held in memory), freed after another third, the server
started. Counted: ``berth_state`` points made (one per uplink) against the samples in
VictoriaMetrics, each exactly once, and the pipeline's held / spooled / lost counters."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from telemetry import SPOOL_FILE
from telemetry.spool import read_stats
from tests.conftest import Broker, copy_sqlite, gateway_settings, running_gateway, wait_for
from tests.faults import Fleet, Publisher, street_sensors, uplink_verdicts
from tests.test_faults_telemetry import RawVictoria, berth_states, raw_victoria_fixture  # noqa: F401
from tests.test_telemetry_disk_full import fill, small_disk  # noqa: F401


@pytest.mark.slow
async def test_full_spool_disk_with_the_server_down_loses_no_point(
    mosquitto: Broker,
    small_disk: Path,  # noqa: F811 - the fixture imported above
    raw_victoria: RawVictoria,
    tmp_path: Path,
    sqlite_template: dict[str, Path],
) -> None:
    fleet = Fleet(street_sensors(20), frames=40)
    spool_dir = small_disk / "spool"
    settings = gateway_settings(
        f"sqlite+aiosqlite:///{copy_sqlite(sqlite_template['town'], tmp_path / 'cg.db')}",
        mosquitto,
        telemetry={
            "url": raw_victoria.url,
            "org": "town",
            "bucket": "citygate",
            "spool_dir": str(spool_dir),
            "flush_interval_s": 0.1,
            "timeout_s": 1.0,
            "health_interval_s": 0.2,
        },
    )
    want = {(s.dev, int(fleet.ts(f).timestamp() * 1000), f % 2) for s in fleet.sensors for f in
            range(1, fleet.frames + 1)}  # fmt: skip

    def pending() -> int:
        try:
            return read_stats(spool_dir / SPOOL_FILE).pending_points
        except Exception:  # not created yet, or being written
            return -1

    await asyncio.to_thread(raw_victoria.stop)  # down from the start: all through the spool
    fig: dict[str, Any] = {"fault": "full spool disk, server down", "uplinks": fleet.total}
    async with running_gateway(settings) as gw:
        pipeline = gw.services.telemetry.pipeline
        pub = Publisher(mosquitto.host, mosquitto.port, fleet, rate=40)
        sending = asyncio.create_task(pub.run())
        try:
            await wait_for(lambda: len(pub.acked) >= fleet.total // 3, 20, what="a third sent")
            await wait_for(lambda: pending() > 0, 10, what="points in the spool")
            filler = await asyncio.to_thread(fill, small_disk)
            t_full = time.monotonic()
            await wait_for(lambda: pipeline.degraded and pipeline.held > 0, 10, what="held")
            await wait_for(lambda: len(pub.acked) >= 2 * fleet.total // 3, 20, what="2/3 sent")
            fig["held_in_memory"] = pipeline.held
            fig["spooled_before_full"] = pending()
            fig["full_s"] = round(time.monotonic() - t_full, 2)
            filler.unlink()
            t_free = time.monotonic()
            await wait_for(lambda: not pipeline.degraded, 10, what="held points spooled")
            fig["spooled_again_s"] = round(time.monotonic() - t_free, 2)
            await asyncio.to_thread(raw_victoria.start)
            await wait_for(sending.done, 30, what="every uplink PUBACKed")
            sending.result()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

        async def all_points() -> bool:
            return len(await berth_states(raw_victoria, fleet)) >= len(want)

        try:
            await wait_for(all_points, 30, interval=0.3, what="every berth_state point in VM")
            await wait_for(lambda: pending() == 0, 20, what="the spool drained")
            fig["delivered_after_s"] = round(time.monotonic() - t_free, 2)
        finally:
            got = await berth_states(raw_victoria, fleet)
            counted = Counter(got)
            c = pipeline.counters
            fig |= {
                "applied": uplink_verdicts(gw)["applied"],
                "points_sent_berth_state": len(want),
                "samples_in_vm": len(got),
                "missing": len(want - set(counted)),
                "duplicates": sum(n - 1 for n in counted.values()),
                "pipeline_accepted": c.accepted,
                "pipeline_spooled": c.spooled,
                "pipeline_replayed": c.replayed,
                "spool_failures": c.spool_failures,
                "lost": c.lost,
            }
            print("FAULT " + json.dumps(fig))
    assert set(counted) == want, "every point, with its own timestamp and value"
    assert len(got) == len(want), f"{len(got) - len(want)} points written twice"
    assert c.lost == 0 and c.dead_lettered == 0 and c.spool_failures > 0
    assert fig["held_in_memory"] > 0
