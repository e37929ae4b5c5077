"""The telemetry pipeline: bus events -> line protocol -> batches -> InfluxDB, with the spool
in between whenever the server cannot take them.

    events ──map──► buffer ──(size or age)──► batch ─┬─ no backlog, server healthy ─► sink
                                                     └─ otherwise ─────────────────► spool
    spool ──replay (in order, at a bounded rate, once the server answers)──────────► sink

Order is kept: while anything is spooled, new batches are spooled behind it, and only the
replay loop writes to the server. A point is acknowledged (counted as written) only when the
server confirmed it; points the server refuses as malformed go to the dead-letter table with its
reason and are never retried. Ingest is never blocked: the pipeline reads the bus through its
own bounded queue (drops, if ever, are counted by the bus).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from drivers.backoff import Backoff
from events import Event
from telemetry.sinks import Sink, WriteOk, WriteRejected, WriteRetry
from telemetry.spool import Spool, SpoolError

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"


@dataclass
class TelemetryCounters:
    """What happened to points, for metrics and ``citygate telemetry status``."""

    accepted: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    unmapped: int = 0
    lost: int = 0  # the spool could not store them (disk full): counted, logged
    write_failures: int = 0
    last_write_ok: float | None = None  # unix time
    last_error: str = ""


class TelemetryPipeline:
    def __init__(
        self,
        *,
        events: asyncio.Queue[Event] | None,
        to_lines: Callable[[Event], list[str]],
        sink: Sink | None,
        spool: Spool,
        spool_dir: Path,
        clock: Callable[[], datetime],
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        replay_rate: float = 50_000.0,
        backoff: Backoff | None = None,
        on_write_seconds: Callable[[float], None] | None = None,
    ) -> None:
        self._events = events
        self._to_lines = to_lines
        self._sink = sink
        self._spool = spool
        self._dir = spool_dir
        self._clock = clock
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._replay_rate = replay_rate
        self._backoff = backoff or Backoff(base=0.5, cap=60.0, rng=random.Random())
        self._on_write_seconds = on_write_seconds or (lambda _s: None)
        self._buffer: list[str] = []
        self._buffer_since: float | None = None
        self._backlog = asyncio.Event()  # set while the spool may hold points
        self._healthy = sink is not None
        self._lock = asyncio.Lock()  # one write path at a time keeps order
        self.counters = TelemetryCounters()

    # -- input -------------------------------------------------------------------------------
    def add_lines(self, lines: Sequence[str]) -> None:
        """Queue already formatted points (the gateway's own health, for instance)."""
        if not lines:
            return
        if not self._buffer:
            self._buffer_since = time.monotonic()
        self._buffer.extend(lines)
        self.counters.accepted += len(lines)

    def add_event(self, event: Event) -> None:
        lines = self._to_lines(event)
        if not lines:
            self.counters.unmapped += 1
        self.add_lines(lines)

    # -- tasks -------------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume events, flush batches, replay the spool; until cancelled (then flush)."""
        stats = await self._spool.stats()
        if stats.pending_points:
            log.info("telemetry spool holds %d points from before; replaying", stats.pending_points)
            self._backlog.set()
        try:
            async with asyncio.TaskGroup() as tg:
                if self._events is not None:
                    tg.create_task(self._consume())
                tg.create_task(self._flusher())
                tg.create_task(self._replayer())
                tg.create_task(self._status_writer())
        finally:
            # Shutdown: what is queued or buffered goes to the spool (durable), not into the void.
            while self._events is not None and not self._events.empty():
                self.add_event(self._events.get_nowait())
            await asyncio.shield(self._spool_buffer())
            await asyncio.shield(self._write_status())

    async def _consume(self) -> None:
        assert self._events is not None
        taken = 0
        while True:
            event = await self._events.get()
            self.add_event(event)
            taken += 1
            if len(self._buffer) >= self._batch_size:
                await self.flush()
            elif taken % 256 == 0:
                # Queue.get() does not yield while events are queued: after a burst, give the
                # loop back regularly so catching up never delays ingest or the API.
                await asyncio.sleep(0)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(min(0.1, self._flush_interval))
            since = self._buffer_since
            if since is not None and time.monotonic() - since >= self._flush_interval:
                await self.flush()

    # -- the write path ------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write (or spool) everything buffered, in batches."""
        while self._buffer:
            batch = self._buffer[: self._batch_size]
            del self._buffer[: self._batch_size]
            self._buffer_since = time.monotonic() if self._buffer else None
            async with self._lock:
                if self._sink is None or self._backlog.is_set() or not self._healthy:
                    await self._to_spool(batch)
                    continue
                result = await self._write(batch)
                if isinstance(result, WriteRetry):
                    await self._to_spool(batch)

    async def _spool_buffer(self) -> None:
        if self._buffer:
            batch, self._buffer = self._buffer, []
            self._buffer_since = None
            await self._to_spool(batch)

    async def _to_spool(self, lines: list[str]) -> None:
        try:
            kept = await self._spool.append(lines)
        except SpoolError as exc:  # disk full or broken: these points are lost, say so loudly
            self.counters.lost += len(lines)
            log.error("telemetry spool cannot store %d point(s): %s", len(lines), exc)
            return
        if kept < len(lines):
            log.warning("telemetry spool full: %d point(s) dropped by policy", len(lines) - kept)
        self.counters.spooled += kept
        self._backlog.set()

    async def _write(self, lines: list[str]) -> WriteOk | WriteRetry | WriteRejected:
        assert self._sink is not None
        started = time.perf_counter()
        result = await self._sink.write(lines)
        self._on_write_seconds(time.perf_counter() - started)
        if isinstance(result, WriteOk):
            self.counters.written += result.points
            self.counters.last_write_ok = time.time()
            if not self._healthy:
                log.info("telemetry server reachable again")
            self._healthy = True
            self._backoff.reset()
        elif isinstance(result, WriteRejected):
            self.counters.written += result.good_lines_written
            await self._spool.dead_letter(result.bad_lines, result.reason, self._clock())
            self.counters.dead_lettered += len(result.bad_lines)
            log.warning(
                "telemetry server refused %d malformed point(s): %s (dead-lettered)",
                len(result.bad_lines),
                result.reason[:200],
            )
        else:
            self.counters.write_failures += 1
            self.counters.last_error = result.reason[:200]
            if self._healthy:
                log.warning(
                    "telemetry server unavailable: %s (spooling, retrying quietly)",
                    result.reason[:200],
                )
            self._healthy = False
        return result

    async def _replayer(self) -> None:
        """Drain the spool in order at a bounded rate, waiting with backoff while it fails."""
        while True:
            await self._backlog.wait()
            if self._sink is None:
                self._backlog.clear()  # nowhere to send: the points wait in the spool
                continue
            async with self._lock:
                batch = await self._spool.peek(self._batch_size)
                if batch is None:
                    self._backlog.clear()
                    log.info("telemetry spool drained")
                    continue
                started = time.monotonic()
                result = await self._write(batch.lines)
                if isinstance(result, WriteOk | WriteRejected):
                    await self._spool.ack(batch)
                    self.counters.replayed += len(batch.lines)
            if isinstance(result, WriteRetry):
                delay = result.retry_after_s or self._backoff.next_delay()
                await asyncio.sleep(delay)
                continue
            # Bounded replay rate: a backlog of hours must not crush a server that just came back.
            budget = len(batch.lines) / self._replay_rate
            spent = time.monotonic() - started
            if budget > spent:
                await asyncio.sleep(budget - spent)

    async def close(self) -> None:
        if self._sink is not None:
            await self._sink.close()

    # -- status ---------------------------------------------------------------------------------
    async def _status_writer(self) -> None:
        while True:
            await asyncio.sleep(2.0)
            await self._write_status()

    async def _write_status(self) -> None:
        """A small JSON file next to the spool, read by ``citygate telemetry status``."""
        data = {
            **asdict(self.counters),
            "buffered": len(self._buffer),
            "server": "configured" if self._sink is not None else "none",
            "healthy": self._healthy,
            "pid": os.getpid(),
            "at": time.time(),
        }
        path = self._dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        body = json.dumps(data)
        await asyncio.to_thread(_atomic_write, tmp, path, body)


def _atomic_write(tmp: Path, path: Path, body: str) -> None:
    tmp.write_text(body)
    os.replace(tmp, path)


def read_status(spool_dir: Path) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        data: dict[str, object] = json.loads((spool_dir / STATUS_FILE).read_text())
        return data
    return {}
