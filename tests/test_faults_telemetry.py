"""Fault suite: the time-series server down mid-stream (issue 16).

The gateway writes to a private VictoriaMetrics (InfluxDB's ``/api/v2/write``) started
*without* VictoriaMetrics' de-duplication (tests/telemetry_servers.py turns it on for the other
tests), so a point written twice shows as two samples. 20 sensors publish; the server is
stopped (SIGTERM) after a third of the uplinks and started again after another third (its
points go to the durable spool meanwhile). Counted: ``berth_state`` points the gateway made
(one per uplink: every frame changes its berth) against the samples in VictoriaMetrics, read
back through its export API: each exactly once, with its own timestamp and value; the
pipeline's own counters (written, spooled, replayed, lost, dead-lettered); the spool drained."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from telemetry import SPOOL_FILE
from telemetry.spool import read_stats
from tests.conftest import (
    Broker,
    copy_sqlite,
    free_port,
    gateway_settings,
    running_gateway,
    wait_for,
)
from tests.faults import Fleet, Publisher, street_sensors, uplink_verdicts
from tests.telemetry_servers import Victoria, vm_export_async


class RawVictoria(Victoria):
    """VictoriaMetrics keeping every sample written, duplicates included."""

    def _command(self) -> list[str]:
        return [a for a in super()._command() if not a.startswith("-dedup.")]


@pytest.fixture(name="raw_victoria")
def raw_victoria_fixture(tmp_path: Path) -> Iterator[RawVictoria]:
    where = tmp_path / "victoria"
    where.mkdir()
    server = RawVictoria("victoria-metrics", free_port(), where / "data", where / "vm.log")
    server.start()
    yield server
    server.stop()


async def berth_states(vm: Victoria, fleet: Fleet) -> list[tuple[str, int, int]]:
    """Every ``berth_state`` sample of the fleet in *vm*: (device, ms, occupied)."""
    devices = {s.dev for s in fleet.sensors}
    series = await vm_export_async(vm.url, "berth_state_occupied")
    return [
        (x["metric"]["device"], ts, int(v))
        for x in series
        if x["metric"].get("device") in devices
        for ts, v in zip(x["timestamps"], x["values"], strict=True)
    ]


@pytest.mark.slow
async def test_influx_outage_every_point_written_exactly_once(
    mosquitto: Broker,
    raw_victoria: RawVictoria,
    tmp_path: Path,
    sqlite_template: dict[str, Path],
) -> None:
    fleet = Fleet(street_sensors(20), frames=40)
    spool_dir = tmp_path / "spool"
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
            "health_interval_s": 0.5,
        },
    )
    want = {(s.dev, int(fleet.ts(f).timestamp() * 1000), f % 2) for s in fleet.sensors for f in
            range(1, fleet.frames + 1)}  # fmt: skip

    def pending() -> int:
        try:
            return read_stats(spool_dir / SPOOL_FILE).pending_points
        except Exception:  # not created yet
            return 0

    fig: dict[str, Any] = {"fault": "influx outage", "uplinks": fleet.total}
    async with running_gateway(settings) as gw:
        pipeline = gw.services.telemetry.pipeline
        pub = Publisher(mosquitto.host, mosquitto.port, fleet, rate=40)
        sending = asyncio.create_task(pub.run())
        try:
            await wait_for(lambda: len(pub.acked) >= fleet.total // 3, 20, what="a third sent")
            await asyncio.to_thread(raw_victoria.stop)
            t_down = time.monotonic()
            await wait_for(lambda: pipeline.counters.write_failures > 0, 10, what="write fails")
            await wait_for(lambda: len(pub.acked) >= 2 * fleet.total // 3, 20, what="2/3 sent")
            await wait_for(lambda: pending() > 0, 10, what="points in the spool")
            fig["spooled_in_outage"] = pending()
            fig["outage_s"] = round(time.monotonic() - t_down, 2)
            await asyncio.to_thread(raw_victoria.start)
            t_up = time.monotonic()
            await wait_for(sending.done, 30, what="every uplink PUBACKed")
            sending.result()
        finally:
            sending.cancel()
            await asyncio.gather(sending, return_exceptions=True)

        async def all_points() -> list[tuple[str, int, int]] | None:
            got = await berth_states(raw_victoria, fleet)
            return got if len(got) >= len(want) else None

        try:
            await wait_for(all_points, 30, interval=0.3, what="every berth_state point in VM")
            await wait_for(lambda: pending() == 0, 20, what="the spool drained")
            fig["delivered_after_s"] = round(time.monotonic() - t_up, 2)
        finally:
            got = await berth_states(raw_victoria, fleet)
            counted = Counter(got)
            c = pipeline.counters
            fig |= {
                "applied": uplink_verdicts(gw)["applied"],
                "points_sent_berth_state": len(want),
                "samples_in_vm": len(got),
                "distinct_in_vm": len(counted),
                "missing": len(want - set(counted)),
                "duplicates": sum(n - 1 for n in counted.values()),
                "pipeline_accepted": c.accepted,
                "pipeline_written": c.written,
                "pipeline_spooled": c.spooled,
                "pipeline_replayed": c.replayed,
                "write_failures": c.write_failures,
                "lost": c.lost,
                "dead_lettered": c.dead_lettered,
            }
            print("FAULT " + json.dumps(fig))
        assert set(counted) == want, "every point, with its own timestamp and value"
        assert len(got) == len(want), f"{len(got) - len(want)} points written twice"
        assert c.lost == 0 and c.dead_lettered == 0
        assert fig["spooled_in_outage"] > 0 and c.replayed > 0
