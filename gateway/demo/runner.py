"""The I/O loop: maps sim time to real time, rate-limits, publishes with QoS 1 and reconnects
with backoff."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import deque
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

import aiomqtt

from drivers.aio import wait_for
from drivers.backoff import Backoff
from drivers.mqtt.transport import MqttParams, make_client
from gateway.demo.options import Outgoing, SimStats, SimulatorOptions
from gateway.demo.pacing import SimClock, TokenBucket
from gateway.demo.payloads import _utc
from gateway.demo.town_sim import TownSimulation
from gateway.directory.town import Town

# The package's logger, as before the split into modules: log lines show this name.
log = logging.getLogger("gateway.demo")

IN_FLIGHT: Final = 50  # concurrent QoS 1 publishes (each awaits its PUBACK)
PUBLISH_TIMEOUT_S: Final = 5.0  # a PUBACK later than this means the connection is dead
DRAIN_TIMEOUT_S: Final = 5.0  # on stop, wait this long for outstanding PUBACKs
MAX_LAG_S: Final = 2.0  # real seconds the simulation may fall behind before it slows down


class _Pump:
    """Moves messages from the simulation to one live connection, at most IN_FLIGHT at once."""

    def __init__(
        self,
        sim: TownSimulation,
        clock: SimClock,
        bucket: TokenBucket,
        stats: SimStats,
        stop: asyncio.Event,
        on_publish: Callable[[str], None] | None,
    ) -> None:
        self.sim = sim
        self.clock = clock
        self.bucket = bucket
        self.stats = stats
        self.stop = stop
        self.on_publish = on_publish
        self.backlog: deque[Outgoing] = (
            deque()
        )  # produced, not yet published (kept across reconnects)

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish until ``stop`` is set; raises ``MqttError`` when the connection breaks."""
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(IN_FLIGHT)
        broken = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        failed: list[Outgoing] = []
        waiters = {asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(broken.wait())}
        clean = False
        try:
            while not self.stop.is_set() and not broken.is_set():
                if not self.backlog:
                    now = loop.time()
                    t = self.sim.next_time()
                    if t > self.clock.sim_at(now):
                        timeout = min(self.clock.real_delay(t, now), 3600.0)
                        await asyncio.wait(waiters, timeout=timeout)
                        continue
                    self.clock.hold_back(t, now, MAX_LAG_S)
                    self.stats.sim_time = _utc(t)
                    self.backlog.extend(self.sim.step())
                    continue
                delay = self.bucket.take(loop.time())
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                await sem.acquire()
                if broken.is_set():
                    sem.release()
                    break
                msg = self.backlog.popleft()
                task = asyncio.create_task(self._publish(client, msg, sem, broken, failed))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            clean = not broken.is_set()
        finally:
            for w in waiters:
                w.cancel()
            if tasks and clean:
                await asyncio.wait(set(tasks), timeout=DRAIN_TIMEOUT_S)  # let PUBACKs land
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            # Whatever did not get its PUBACK goes first after the reconnect.
            failed.sort(key=lambda m: m.sim_time)
            self.backlog.extendleft(reversed(failed))
        if broken.is_set():
            raise aiomqtt.MqttError("publish failed: connection lost")

    async def _publish(
        self,
        client: aiomqtt.Client,
        msg: Outgoing,
        sem: asyncio.Semaphore,
        broken: asyncio.Event,
        failed: list[Outgoing],
    ) -> None:
        try:
            await client.publish(msg.topic, msg.payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            self.stats.errors += 1
            failed.append(msg)
            if not broken.is_set():
                log.debug("publish to %s failed: %s", msg.topic, exc)
            broken.set()
            return
        except asyncio.CancelledError:
            failed.append(msg)
            raise
        finally:
            sem.release()
        self.stats.add(msg.kind)
        if self.on_publish is not None:
            try:
                self.on_publish(msg.topic)
            except Exception:
                log.exception("on_publish callback failed")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await wait_for(stop.wait(), timeout=seconds)


async def run_simulator(
    params: MqttParams,
    town: Town,
    options: SimulatorOptions,
    *,
    stop: asyncio.Event | None = None,
    on_publish: Callable[[str], None] | None = None,
) -> SimStats:
    """Publish the simulated town to the broker until *stop* is set (or the task is
    cancelled, which propagates after in-flight publishes are cancelled).

    Uses a clean session (a simulator's backlog is worthless after a restart). While the
    broker is away the simulated clock stands still; messages that lost their PUBACK are
    re-sent first after the reconnect. *on_publish* gets the topic of each PUBACKed message.
    """
    loop = asyncio.get_running_loop()
    stop = stop if stop is not None else asyncio.Event()
    start = options.start if options.start is not None else datetime.now(UTC)
    sim = TownSimulation(
        town, start=start, seed=options.seed, fault_fraction=options.fault_fraction
    )
    if sim.skipped:
        log.warning("simulator: %d sensor(s) of unknown models skipped", len(sim.skipped))
    stats = SimStats()
    clock = SimClock(sim.start, options.speed, loop.time(), paused=True)
    bucket = TokenBucket(options.max_rate, burst=min(options.max_rate, IN_FLIGHT), now=loop.time())
    backoff = Backoff(base=0.2, cap=10.0, rng=random.Random(options.seed))
    pump = _Pump(sim, clock, bucket, stats, stop, on_publish)
    params = replace(params, clean=True)
    log.info(
        "simulating %d sensors and %d car-park controllers (%d faulty) at %gx from %s",
        len(sim.sensors),
        len(sim.carparks),
        len(sim.faults),
        options.speed,
        _utc(sim.start).isoformat(timespec="seconds"),
    )
    failing = False
    while not stop.is_set():
        client = make_client(params)
        client.pending_calls_threshold = IN_FLIGHT + 1  # our bound, not a leak: no warning
        try:
            async with client:
                if failing:
                    log.info("simulator reconnected to %s:%s", params.host, params.port)
                failing = False
                backoff.reset()
                clock.resume(loop.time())
                await pump.run(client)
        except aiomqtt.MqttError as exc:
            stats.reconnects += 1
            if not failing:
                log.warning(
                    "simulator: MQTT %s:%s unavailable: %s (retrying)",
                    params.host,
                    params.port,
                    exc,
                )
            failing = True
        finally:
            clock.pause(loop.time())
        if not stop.is_set():
            await _sleep_unless(stop, backoff.next_delay())
    log.info(
        "simulator stopped: %d published (%d errors, %d reconnects), sim time %s",
        stats.published,
        stats.errors,
        stats.reconnects,
        stats.sim_time.isoformat(timespec="seconds") if stats.sim_time else "-",
    )
    return stats
