"""Barrier gate commands over Modbus TCP: a confirmed command through ``GateController`` next to
the bare pymodbus round trips it is made of, measured in the same run against the same server.

The simulator (``gateway.demo.gates``: 20 example logic boards, ``example-logic-hr``, on one
Modbus TCP port, travel time 0 so the figure is the gateway's and the protocol's, not a boom's)
runs in a child process, so server and client each have a core of this 2-core machine.

1. bare read: pymodbus ``read_input_registers(0, count=3)`` awaited one at a time;
2. bare write + read: ``write_register`` then that read (the least a confirmed command costs);
3. read through the hub and the controller (``GateController.read``: lock, gap, decode);
4. confirmed command (``GateController.command``: the write once, read back until it shows);
5. 20 controllers on the one bus commanded at once, round after round (the hub lock queues
   them): p50/p99 of each command's confirmation.

One JSON line per figure (``name``, ``value``, ``unit``, ``baseline``), as the other benches.
``BENCH_GATES_N`` changes the number of round trips per figure (default 2000).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pymodbus.client import AsyncModbusTcpClient

from bench.bench_ingest import emit
from drivers.gates.controller import GateController
from drivers.gates.hub import ModbusHub
from drivers.gates.models import shipped_model
from events import now_utc

UNITS = 20
N = int(os.environ.get("BENCH_GATES_N", "2000"))


def _serve(ready: mp.Queue) -> None:  # type: ignore[type-arg]
    from gateway.demo.gates import GateSimulator, SimGate

    async def main() -> None:
        m = shipped_model("example-logic-hr")
        sim = GateSimulator({u: SimGate(m, travel_s=0.0) for u in range(1, UNITS + 1)})
        url = await sim.start_tcp()
        ready.put(url)
        await asyncio.Event().wait()

    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    asyncio.run(main())


def pct(ms: list[float], q: float) -> float:
    s = sorted(ms)
    return s[min(len(s) - 1, int(q * len(s)))]


async def timed(n: int, work: object) -> list[float]:
    out = []
    for i in range(n):
        t = time.perf_counter()
        await work(i)  # type: ignore[operator]
        out.append((time.perf_counter() - t) * 1000)
    return out


async def main(url: str) -> None:
    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    bare = AsyncModbusTcpClient(host, port=int(port), retries=0, reconnect_delay=0)
    assert await bare.connect()

    async def bare_read(_: int) -> None:
        rsp = await bare.read_input_registers(0, count=3, device_id=1)
        assert not rsp.isError()

    async def bare_pair(i: int) -> None:
        w = await bare.write_register(0, 1 + i % 2, device_id=2)
        r = await bare.read_input_registers(0, count=3, device_id=2)
        assert not w.isError() and not r.isError()

    await timed(200, bare_read)  # warm up
    read_ms = await timed(N, bare_read)
    pair_ms = await timed(N, bare_pair)
    bare.close()

    m = shipped_model("example-logic-hr")
    common = {"n": N, "model": m.model, "units": UNITS}
    async with ModbusHub(url, timeout=1.0) as hub:
        assert await hub.wait_online(5)
        gates = [GateController(hub, u, m, clock=now_utc) for u in range(1, UNITS + 1)]
        g = gates[0]

        async def hub_read(_: int) -> None:
            await g.read()

        async def command(i: int) -> None:
            out = await g.command("raise" if i % 2 else "lower", f"bench-{i}")
            assert out.outcome == "confirmed", out

        await timed(200, hub_read)
        ctl_read_ms = await timed(N, hub_read)
        cmd_ms = await timed(N, command)

        together: list[float] = []

        async def one(gc: GateController, r: int) -> None:
            t = time.perf_counter()
            out = await gc.command("raise" if r % 2 else "lower", f"round-{r}-{gc.unit}")
            together.append((time.perf_counter() - t) * 1000)
            assert out.outcome == "confirmed", out

        for r in range(max(10, N // 100)):
            await asyncio.gather(*(one(gc, r) for gc in gates))
        assert hub.max_in_flight == 1

    emit("gates_bare_read_p50", pct(read_ms, 0.5), "ms", None, **common)
    emit("gates_bare_read_p99", pct(read_ms, 0.99), "ms", None, **common)
    emit("gates_controller_read_p50", pct(ctl_read_ms, 0.5), "ms", pct(read_ms, 0.5), **common)
    emit("gates_controller_read_p99", pct(ctl_read_ms, 0.99), "ms", pct(read_ms, 0.99), **common)
    emit("gates_command_confirmed_p50", pct(cmd_ms, 0.5), "ms", pct(pair_ms, 0.5),
         baseline_is="bare write + read", **common)  # fmt: skip
    emit("gates_command_confirmed_p99", pct(cmd_ms, 0.99), "ms", pct(pair_ms, 0.99),
         baseline_is="bare write + read", **common)  # fmt: skip
    emit("gates_command_20_at_once_p50", pct(together, 0.5), "ms", pct(pair_ms, 0.5) * UNITS,
         baseline_is="20 bare write + read pairs in a row", commands=len(together),
         **common)  # fmt: skip
    emit("gates_command_20_at_once_p99", pct(together, 0.99), "ms", pct(pair_ms, 0.99) * UNITS,
         baseline_is="20 bare write + read pairs in a row", commands=len(together),
         **common)  # fmt: skip
    emit("gates_command_mean", statistics.fmean(cmd_ms), "ms", statistics.fmean(pair_ms), **common)


if __name__ == "__main__":
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    ctx = mp.get_context("spawn")
    ready: mp.Queue = ctx.Queue()  # type: ignore[type-arg]
    server = ctx.Process(target=_serve, args=(ready,), daemon=True)
    server.start()
    try:
        asyncio.run(main(ready.get(timeout=30)))
    finally:
        server.terminate()
        server.join(5)
