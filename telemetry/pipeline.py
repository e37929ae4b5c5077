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

A full (or failing) disk never stops the pipeline, let alone the gateway: a batch the spool
cannot store is held in memory (at most ``max_held_points``, oldest dropped first and counted
as ``lost``) and retried every ``retry_interval_s`` until the spool takes it again; a status
file that cannot be written is counted and retried on the next tick. ``degraded`` says so
meanwhile (the gateway's ``/readyz`` and ``/metrics`` show it).
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
from telemetry.reopen import ReopeningSpool
from telemetry.sinks import Sink, WriteOk, WriteRejected, WriteRetry
from telemetry.spool import Spool, SpoolError

log = logging.getLogger(__name__)

STATUS_FILE = "status.json"
# How long the consumer lets events gather between wake-ups, at most (and at most a tenth of
# the flush interval): 0.1 s is a tenth of the default flush and ten wake-ups a second under
# a steady stream (2,000 body cams: ~430 events a second), not fifty.
GATHER_S = 0.1


@dataclass
class TelemetryCounters:
    """What happened to points, for metrics and ``citygate telemetry status``."""

    accepted: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    dead_lettered: int = 0
    unmapped: int = 0
    lost: int = 0  # the spool could not store them (disk full) and memory was full too
    write_failures: int = 0
    spool_failures: int = 0  # spool operations that failed (disk full, I/O error)
    status_failures: int = 0  # status file writes that failed
    last_write_ok: float | None = None  # unix time
    last_error: str = ""


class TelemetryPipeline:
    def __init__(
        self,
        *,
        events: asyncio.Queue[Event] | None,
        to_lines: Callable[[Event], list[str]],
        sink: Sink | None,
        spool: Spool | ReopeningSpool,
        spool_dir: Path,
        clock: Callable[[], datetime],
        batch_size: int = 5000,
        flush_interval_s: float = 1.0,
        replay_rate: float = 50_000.0,
        backoff: Backoff | None = None,
        on_write_seconds: Callable[[float], None] | None = None,
        max_held_points: int = 200_000,
        retry_interval_s: float = 1.0,
    ) -> None:
        self._events = events
        self._to_lines = to_lines
        self._sink = sink
        self._spool = spool
        self._dir = spool_dir
        self._clock = clock
        self._batch_size = batch_size
        self._flush_interval = flush_interval_s
        self._gather_s = min(GATHER_S, flush_interval_s / 10)
        self._replay_rate = replay_rate
        self._backoff = backoff or Backoff(base=0.5, cap=60.0, rng=random.Random())
        self._on_write_seconds = on_write_seconds or (lambda _s: None)
        self._buffer: list[str] = []
        self._buffer_since: float | None = None
        self._backlog = asyncio.Event()  # set while the spool may hold points
        self._healthy = sink is not None
        self._lock = asyncio.Lock()  # one write path at a time keeps order
        self._max_held = max_held_points
        self._retry_interval = retry_interval_s
        self._held: list[str] = []  # oldest first: what the spool could not store (yet)
        self._held_since = 0.0  # monotonic time of the last failed attempt to spool them
        self.spool_error = ""  # the last spool failure while the spool is failing, else ""
        self.status_error = ""  # the last status file failure while it fails, else ""
        self.counters = TelemetryCounters()

    @property
    def degraded(self) -> bool:
        """The spool or the status file is failing (disk full, I/O error)."""
        return bool(self.spool_error or self.status_error or self._held)

    @property
    def held(self) -> int:
        """Points kept in memory because the spool could not store them."""
        return len(self._held)

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
        try:
            stats = await self._spool.stats()
        except SpoolError as exc:
            self._spool_failed("read", exc)
            stats = None
            self._backlog.set()  # it may hold points from before: replay tries until it opens
        if stats is not None and stats.pending_points:
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
            if self._held:
                log.error("telemetry: %d held point(s) lost at shutdown", len(self._held))
                self.counters.lost += len(self._held)
                self._held = []
            await asyncio.shield(self._write_status())

    async def _consume(self) -> None:
        assert self._events is not None
        events = self._events
        while True:
            self.add_event(await events.get())
            # Take what else is queued (at most a slice, so catching up after a burst never
            # holds the loop), then let the next ones gather: one wake-up per batch, not one
            # per event, at a cost of ``_gather_s`` of latency on the way to a flush of seconds.
            for _ in range(255):
                if events.empty():
                    break
                self.add_event(events.get_nowait())
            if len(self._buffer) >= self._batch_size:
                await self.flush()
            else:
                await asyncio.sleep(self._gather_s if events.empty() else 0)

    async def _flusher(self) -> None:
        while True:
            await asyncio.sleep(min(0.1, self._flush_interval))
            since = self._buffer_since
            if since is not None and time.monotonic() - since >= self._flush_interval:
                await self.flush()
            elif self._held and time.monotonic() - self._held_since >= self._retry_interval:
                async with self._lock:  # the disk may have room again
                    if self._held:
                        await self._to_spool([])

    # -- the write path ------------------------------------------------------------------------
    async def flush(self) -> None:
        """Write (or spool) everything buffered, in batches."""
        while self._buffer:
            batch = self._buffer[: self._batch_size]
            del self._buffer[: self._batch_size]
            self._buffer_since = time.monotonic() if self._buffer else None
            async with self._lock:
                if self._sink is None or self._backlog.is_set() or not self._healthy or self._held:
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
        """Spool what is held (older) and then *lines*; hold them all if the spool fails."""
        batch = self._held + lines if self._held else lines
        if not batch:
            return
        try:
            kept = await self._spool.append(batch)
        except SpoolError as exc:  # disk full or broken: keep them in memory, up to a bound
            self._spool_failed("append", exc)
            over = len(batch) - self._max_held
            if over > 0:
                self.counters.lost += over
                log.warning("telemetry: %d held point(s) dropped (memory bound)", over)
                batch = batch[over:]
            self._held = batch
            self._held_since = time.monotonic()
            return
        if self._held or self.spool_error:
            log.info("telemetry spool writable again (%d held point(s) stored)", len(self._held))
        self._held = []
        self.spool_error = ""
        if kept < len(batch):
            log.warning("telemetry spool full: %d point(s) dropped by policy", len(batch) - kept)
        self.counters.spooled += kept
        self._backlog.set()

    def _spool_failed(self, what: str, exc: SpoolError) -> None:
        self.counters.spool_failures += 1
        if not self.spool_error:  # once per episode; the counter says how often
            log.error("telemetry spool failing (%s): %s; holding points in memory", what, exc)
        self.spool_error = f"{what}: {exc}"[:200]

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
            try:
                await self._spool.dead_letter(result.bad_lines, result.reason, self._clock())
            except SpoolError as exc:  # refused for good anyway: only the evidence is lost
                self._spool_failed("dead_letter", exc)
                self.counters.lost += len(result.bad_lines)
            else:
                self.counters.dead_lettered += len(result.bad_lines)
                self.spool_error = ""  # the spool writes again
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
            try:
                async with self._lock:
                    batch = await self._spool.peek(self._batch_size)
                    if batch is None:
                        self._backlog.clear()
                        log.info("telemetry spool drained")
                        continue
                    started = time.monotonic()
                    result = await self._write(batch.lines)
                    if isinstance(result, WriteOk | WriteRejected):
                        # If this ack fails, the batch is sent again later: InfluxDB keeps
                        # one point per series and timestamp, so nothing is doubled.
                        await self._spool.ack(batch)
                        self.counters.replayed += len(batch.lines)
                        self.spool_error = ""  # the spool writes again
            except SpoolError as exc:
                self._spool_failed("replay", exc)
                await asyncio.sleep(self._retry_interval)
                continue
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
            # the spool's trouble: a status file that failed before is fixed by this write
            "degraded": bool(self.spool_error or self._held),
            "held": len(self._held),
            "spool_error": self.spool_error,
            "pid": os.getpid(),
            "at": time.time(),
        }
        path = self._dir / STATUS_FILE
        tmp = path.with_suffix(".tmp")
        body = json.dumps(data)
        try:
            await asyncio.to_thread(_atomic_write, tmp, path, body)
        except OSError as exc:  # disk full: the old file stays; counted, retried next tick
            self.counters.status_failures += 1
            if not self.status_error:
                log.error("telemetry status file %s cannot be written: %s", path, exc)
            self.status_error = str(exc)[:200]
            return
        if self.status_error:
            log.info("telemetry status file written again")
        self.status_error = ""


def _atomic_write(tmp: Path, path: Path, body: str) -> None:
    try:
        tmp.write_text(body)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)  # a partial file must not hold the space
        raise


def read_status(spool_dir: Path) -> dict[str, object]:
    with contextlib.suppress(OSError, ValueError):
        data: dict[str, object] = json.loads((spool_dir / STATUS_FILE).read_text())
        return data
    return {}
