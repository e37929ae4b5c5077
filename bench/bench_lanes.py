"""Car-park lanes under load: a camera's push to the gate confirmed by read-back, next to the
bare pymodbus round trip to the same simulator, measured in the same run.

- 20 entry lanes at 10 car parks, one controller per lane, two lanes per Modbus TCP bus (a
  serial server per car park), simulated by ``gateway.demo.gates`` (``example-relay4``,
  travel time 0: the figure is the gateway's and the protocol's, not a boom's) in a child
  process, so server and gateway each have a core of this 2-core machine.
- A real gateway (SQLite, the sample town plus the 20 lanes, ``[lanes] gates = "modbus"``);
  each lane's camera (Hikvision ISAPI, multipart with a JPEG) posts one vehicle a second,
  from a third process (cameras are devices of their own: their HTTP client is not the
  gateway's work).
- Measured per vehicle: from the moment its push is sent to the moment the lane's gate
  command comes back confirmed (the controller read the boom up). Baseline: a bare pymodbus
  client's raise write + state read to the same simulator, one at a time.

Also: how long the camera waited for its answer (the read stored and the lane decided; the
gate command runs after it). One JSON line per figure (name, value, unit, baseline), as the
other benches. Target:
p99 < 50 ms, and the lane path adding < 10 ms over the bare round trip at p50.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx
from pymodbus.client import AsyncModbusTcpClient

from bench.bench_ingest import emit
from drivers.gates.models import shipped_model
from drivers.gates.registers import action_plan
from tests.conftest import gateway_settings, start_mosquitto, wait_for, wait_tcp

LANES = 20
PER_BUS = 2
MODEL = "example-relay4"


def _serve(ready: Any) -> None:
    from gateway.demo.gates import GateSimulator, SimGate

    async def main() -> None:
        m = shipped_model(MODEL)
        urls = []
        for _ in range(LANES // PER_BUS):
            sim = GateSimulator({u: SimGate(m, travel_s=0.0) for u in range(1, PER_BUS + 1)})
            urls.append(await sim.start_tcp())
        ready.put(urls)
        await asyncio.Event().wait()

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(main())


def _cameras(base: str, secrets: list[str], seconds: float, out: Any) -> None:
    """The 20 cameras, in a process of their own as cameras are devices of their own (their
    HTTP client's work is not the gateway's): each pushes one vehicle a second and notes when
    it sent each push (``perf_counter`` is the system's monotonic clock, the same in every
    process) and how long the gateway took to answer."""
    from gateway.demo.cameras import HikvisionCamera

    async def main() -> None:
        cams = [HikvisionCamera(base, f"cam-bench-{i}", sec) for i, sec in enumerate(secrets)]
        sent: dict[str, list[float]] = {f"ln-bench-{i}": [] for i in range(len(cams))}
        answered: list[float] = []
        refused = 0

        async def lane_traffic(i: int) -> None:
            nonlocal refused
            start = time.perf_counter() + i / len(cams)  # spread the lanes over the second
            for k in range(int(seconds)):
                delay = start + k - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                plate = f"甘G{i:02d}{k:03d}"
                t = time.perf_counter()
                r = await cams[i].push(plate, datetime.now(UTC))
                answered.append((time.perf_counter() - t) * 1000)
                if r.status_code != 200:
                    refused += 1
                    continue
                sent[f"ln-bench-{i}"].append(t)

        try:
            await asyncio.gather(*(lane_traffic(i) for i in range(len(cams))))
        finally:
            for c in cams:
                await c.aclose()
        out.put((sent, answered, refused))

    asyncio.run(main())


def pct(ms: list[float], q: float) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, int(q * len(s)))] if s else float("nan")


async def bare_round_trips(url: str, n: int) -> list[float]:
    """The least a confirmed raise costs: its write, then one read of the state."""
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    plan = action_plan(shipped_model(MODEL), "raise")
    c = AsyncModbusTcpClient(host, port=int(port), retries=0, reconnect_delay=0)
    assert await c.connect()
    out = []
    try:
        for _ in range(n):
            t = time.perf_counter()
            assert plan.write.table == "coil"
            await c.write_coil(plan.write.address, bool(plan.write.value), device_id=1)
            rsp = await c.read_discrete_inputs(0, count=4, device_id=1)
            assert not rsp.isError()
            out.append((time.perf_counter() - t) * 1000)
    finally:
        c.close()
    return out


class Timed:
    """The lanes' gate factory with each command's confirmation time noted, per lane."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.done: dict[str, list[tuple[float, str]]] = {}

    def gate_for(self, lane: Any) -> Any:
        gate, done = self.inner.gate_for(lane), self.done.setdefault(lane.id, [])

        class _Gate:
            async def command(self, action: str, decision_id: str) -> Any:
                outcome = await gate.command(action, decision_id)
                done.append((time.perf_counter(), outcome.status))
                return outcome

        return _Gate()

    def status(self, lane_id: str) -> Any:
        return self.inner.status(lane_id)

    def forget(self, lane_id: str) -> None:
        self.inner.forget(lane_id)


def town_with_lanes(urls: list[str]) -> Any:
    from gateway.directory.town import load_town, parse_town

    town = load_town(None)
    parks = [
        s for s in town.sites if s.kind.value == "car_park" and s.counting.value == "entry_exit"
    ]
    parks = parks[: LANES // PER_BUS]
    text = '[town]\nname = "bench"\n'
    for park in parks:
        text += (
            f'[[sites]]\nid = "{park.id}"\nname = "{park.name}"\nkind = "car_park"\n'
            f"lat = {park.lat}\nlon = {park.lon}\ncapacity = {park.capacity}\n"
            f'counting = "{park.counting.value}"\nsegment_class = "{park.segment_class}"\n'
        )
    for i in range(LANES):
        park, url, unit = parks[i // PER_BUS], urls[i // PER_BUS], i % PER_BUS + 1
        text += (
            f'[[lanes]]\nid = "ln-bench-{i}"\nsite = "{park.id}"\nkind = "entry"\n'
            f'camera = "cam-bench-{i}"\n'
            f'gate = {{ bus = "{url}", unit = {unit}, model = "{MODEL}" }}\n'
        )
    extra = parse_town(text)
    return town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]}), parks


async def main(seconds: float, bare_n: int) -> None:
    from gateway.directory.town_import import import_town
    from gateway.supervisor import Gateway
    from tests.conftest import make_tokens

    ctx = mp.get_context("spawn")
    ready = ctx.Queue()
    server = ctx.Process(target=_serve, args=(ready,), daemon=True)
    server.start()
    urls: list[str] = ready.get(timeout=30)
    tmp = Path(tempfile.mkdtemp(prefix="cg-bench-lanes-"))
    broker = start_mosquitto(tmp / "mqtt")
    try:
        wait_tcp(broker.host, broker.port)
        bare = await bare_round_trips(urls[0], bare_n)
        settings = gateway_settings(
            f"sqlite+aiosqlite:///{tmp / 'cg.db'}",
            broker,
            log={"level": "WARNING"},
            lanes={"gates": "modbus"},
            cameras={"evidence_dir": str(tmp / "evidence")},
        )
        gw = await Gateway.open(settings)
        run = asyncio.create_task(gw.run())
        await gw.started.wait()
        town, parks = town_with_lanes(urls)
        async with gw.services.sessions.begin() as db:
            await import_town(db, town, datetime.now(UTC))
        lanes = gw.services.lanes
        await wait_for(lambda: f"ln-bench-{LANES - 1}" in lanes.lanes, 10, what="lanes")
        timed = Timed(lanes.gates)
        lanes.gates = timed
        tokens = await make_tokens(gw)
        base = f"http://127.0.0.1:{gw.api_port}"
        secrets = []
        async with httpx.AsyncClient(base_url=base) as http:
            for i in range(LANES):
                r = await http.post(
                    "/api/v1/devices/cameras",
                    json={
                        "id": f"cam-bench-{i}",
                        "vendor": "hikvision",
                        "site_id": parks[i // PER_BUS].id,
                        "lane_id": f"ln-bench-{i}",
                    },
                    headers={"Authorization": f"Bearer {tokens['technician']}"},
                )
                assert r.status_code == 201, r.text
                secrets.append(r.json()["secret"])
        await wait_for(
            lambda: gw.services.live.directory.get(f"cam-bench-{LANES - 1}") is not None, 10
        )
        results = ctx.Queue()
        cameras = ctx.Process(target=_cameras, args=(base, secrets, seconds, results))
        cameras.start()
        loop = asyncio.get_running_loop()
        sent, answered, refused = await loop.run_in_executor(None, results.get, True, seconds + 60)
        await loop.run_in_executor(None, cameras.join, 10)

        def all_settled() -> bool:
            return all(len(timed.done.get(k, [])) >= len(v) for k, v in sent.items())

        await wait_for(all_settled, 30, what="every gate command settled")
        lat, not_confirmed = [], 0
        for lane_id, starts in sent.items():
            for t0, (t1, status) in zip(starts, timed.done[lane_id], strict=False):
                if status != "confirmed":
                    not_confirmed += 1
                lat.append((t1 - t0) * 1000)
        bare_p50, bare_p99 = pct(bare, 0.5), pct(bare, 0.99)
        emit("modbus_bare_round_trip_p50", bare_p50, "ms", None, samples=len(bare))
        emit("modbus_bare_round_trip_p99", bare_p99, "ms", None, samples=len(bare))
        emit(
            "lane_push_to_gate_confirmed_p50",
            pct(lat, 0.5),
            "ms",
            bare_p50,
            lanes=LANES,
            vehicles=len(lat),
            added_ms=round(pct(lat, 0.5) - bare_p50, 2),
            target_added_ms=10,
        )
        emit(
            "lane_push_to_gate_confirmed_p99",
            pct(lat, 0.99),
            "ms",
            bare_p99,
            target_ms=50,
            not_confirmed=not_confirmed,
            refused_pushes=refused,
        )
        emit("camera_push_answered_p50", pct(answered, 0.5), "ms", None, pushes=len(answered))
        emit("camera_push_answered_p99", pct(answered, 0.99), "ms", None, pushes=len(answered))
        gw.request_stop()
        await run
    finally:
        broker.stop()
        server.terminate()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=20.0)
    ap.add_argument("--bare", type=int, default=1000)
    a = ap.parse_args()
    asyncio.run(main(a.seconds, a.bare))
