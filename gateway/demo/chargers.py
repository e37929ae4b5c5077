"""The town's chargers for the demo: each one a simulated OCPP 1.6J charger
(:class:`gateway.demo.ocpp.Charger16`, the same one the tests and benches use) over real
websockets: it boots, reports its connectors, answers probes, and now and then charges a car
with meter values.

Demo only: the gateway under demonstration provisions their passwords itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping

from drivers.aio import wait_for
from gateway.demo.ocpp import Charger16

log = logging.getLogger(__name__)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await wait_for(stop.wait(), seconds)


async def _charger(
    base_url: str,
    charger_id: str,
    password: str,
    connectors: int,
    stop: asyncio.Event,
    rng: random.Random,
    speed: float,
) -> None:
    await _pause(stop, rng.uniform(0, 3))  # staggered boots; none once the demo stops
    if stop.is_set():
        return
    cp = Charger16(
        base_url,
        charger_id,
        password,
        vendor="citygate-demo",
        model="demo-charger",
        serial=None,
        open_timeout=10,
    )
    async with cp:
        boot = await cp.boot()
        interval = max(10, int(boot.interval or 300))
        for n in range(1, connectors + 1):
            await cp.status(n, "Available")
        register = rng.randint(100_000, 5_000_000)
        while not stop.is_set():
            # A car arrives on a random connector, charges for a while, leaves.
            await _pause(stop, rng.uniform(20, 120) / speed)
            if stop.is_set():
                break
            n = rng.randint(1, connectors)
            await cp.status(n, "Charging")
            tx = await cp.start_transaction(n, "DEMO-APP", meter_start=register)
            for _ in range(rng.randint(2, 6)):
                await _pause(stop, min(interval, 30) / speed)
                if stop.is_set():
                    break  # the demo stopping ends the charge
                register += rng.randint(500, 3_000)
                await cp.meter_values(n, tx=tx, energy_wh=register)
            await cp.stop_transaction(tx, meter_stop=register, reason="EVDisconnected")
            await cp.status(n, "Available")


async def run_chargers(
    base_url: str,
    chargers: Mapping[str, tuple[str, int]],
    stop: asyncio.Event,
    *,
    speed: float = 1.0,
    seed: int = 56,
) -> None:
    """Run every charger (id -> (password, connectors)) until *stop*; one that loses its
    connection tries again after a pause, as a real one would."""
    rng = random.Random(seed)

    async def keep(charger_id: str, password: str, connectors: int) -> None:
        own = random.Random(rng.random())
        while not stop.is_set():
            try:
                await _charger(base_url, charger_id, password, connectors, stop, own, speed)
            except Exception as exc:
                log.debug("demo charger %s: %s: %s", charger_id, type(exc).__name__, exc)
                await _pause(stop, 5)

    async with asyncio.TaskGroup() as tg:
        for charger_id, (password, connectors) in sorted(chargers.items()):
            tg.create_task(keep(charger_id, password, connectors))
