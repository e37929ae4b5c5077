"""Wiring of the telemetry pipeline into the running gateway (config -> spool, sink, mapper),
and the one status view of it that the CLI and the API both show."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, Field

from gateway.config import TelemetryConfig
from gateway.directory.devices import DeviceDirectory
from gateway.infra.bus import EventBus
from gateway.metrics import CallbackCounters, Metrics
from telemetry import SPOOL_FILE
from telemetry.lineproto import ts_ns
from telemetry.mapping import DeviceTags, PointMapper, health_lines
from telemetry.pipeline import TelemetryPipeline, read_status
from telemetry.reopen import ReopeningSpool
from telemetry.sinks import SinkConfig, make_sink
from telemetry.spool import Spool, SpoolBusyError, SpoolError, SpoolFormatError, read_stats

log = logging.getLogger(__name__)


class DirectoryTags(Mapping[str, DeviceTags]):
    """The mapper's view of the live device registry, so devices provisioned while running
    get their tags too."""

    def __init__(
        self, directory: DeviceDirectory, extra: Mapping[str, DeviceTags] | None = None
    ) -> None:
        self._directory = directory
        self._extra: Mapping[str, DeviceTags] = {} if extra is None else extra
        self._tags: dict[tuple[str | None, str, str], DeviceTags] = {}

    def __getitem__(self, device_id: str) -> DeviceTags:
        entry = self._directory.get(device_id)
        if entry is None:
            return self._extra[device_id]  # chargers: their own registry
        key = (entry.site_id, entry.kind, entry.model)
        tags = self._tags.get(key)  # one object per tag set: the mapper caches by identity
        if tags is None:
            tags = self._tags[key] = DeviceTags(site=key[0], kind=key[1], model=key[2])
        return tags

    def __iter__(self) -> Iterator[str]:
        yield from self._directory.ids()
        yield from self._extra

    def __len__(self) -> int:
        return len(self._directory) + len(self._extra)


class Telemetry:
    """Owns the spool, the sink and the pipeline for one gateway run."""

    def __init__(
        self,
        pipeline: TelemetryPipeline,
        spool: Spool | ReopeningSpool,
        config: TelemetryConfig,
        metrics: Metrics,
    ) -> None:
        self.pipeline = pipeline
        self.spool = spool
        self.config = config
        self.metrics = metrics
        self.dropped = 0  # by the spool's size policy, as of its last stats

    def counter_values(self) -> dict[str, float]:
        """accepted, written, spooled, replayed, dead_lettered, dropped, lost, ..."""
        values = {
            k: float(v) for k, v in vars(self.pipeline.counters).items() if isinstance(v, int)
        }
        values["dropped"] = float(self.dropped)
        return values

    @classmethod
    async def start(
        cls,
        config: TelemetryConfig,
        bus: EventBus,
        directory: DeviceDirectory,
        metrics: Metrics,
        clock: Callable[[], datetime],
        extra_tags: Mapping[str, DeviceTags] | None = None,
    ) -> Telemetry:
        async def open_spool() -> Spool:
            try:
                await asyncio.to_thread(config.spool_dir.mkdir, parents=True, exist_ok=True)
            except OSError as exc:
                raise SpoolError(f"telemetry spool directory {config.spool_dir}: {exc}") from exc
            return await Spool.open(
                config.spool_dir / SPOOL_FILE,
                max_bytes=config.spool_max_bytes,
                policy=config.spool_policy,
                synchronous=config.spool_sync,
            )

        spool: Spool | ReopeningSpool
        try:
            spool = await open_spool()
        except (SpoolBusyError, SpoolFormatError):
            raise  # a second gateway, or not a spool: the operator must act, fail loudly
        except SpoolError as exc:  # a full disk, say: start anyway, degraded, open it later
            log.error("telemetry spool cannot be opened: %s; retrying while running", exc)
            spool = ReopeningSpool(open_spool, exc)
        sink = None
        if config.url:
            sink = make_sink(
                SinkConfig(
                    url=config.url,
                    mode=config.mode,
                    org=config.org,
                    bucket=config.bucket,
                    database=config.database,
                    retention_policy=config.retention_policy,
                    token=config.token.get_secret_value() if config.token else None,
                    username=config.username,
                    password=config.password.get_secret_value() if config.password else None,
                    gzip=config.gzip,
                    timeout_s=config.timeout_s,
                    ca_file=config.ca_file,
                )
            )
        mapper = PointMapper(DirectoryTags(directory, extra_tags))
        # Another instance's change mirrored here: that instance wrote its points.
        sub = bus.subscribe(
            "telemetry", lambda e: not getattr(e, "mirrored", False), maxsize=200_000
        )
        pipeline = TelemetryPipeline(
            events=sub.queue,
            to_lines=mapper.lines,
            sink=sink,
            spool=spool,
            spool_dir=config.spool_dir,
            clock=clock,
            batch_size=config.batch_size,
            flush_interval_s=config.flush_interval_s,
            replay_rate=config.replay_rate,
            on_write_seconds=metrics.telemetry_write_seconds.observe,
        )
        telemetry = cls(pipeline, spool, config, metrics)
        CallbackCounters(
            "citygate_telemetry_points",
            "Telemetry points",
            telemetry.counter_values,
            metrics.registry,
        )
        metrics.telemetry_degraded.set_function(lambda: float(pipeline.degraded))
        metrics.telemetry_held.set_function(lambda: float(pipeline.held))
        where = config.url or f"the spool only ({config.spool_dir})"
        log.info("telemetry to %s (%s)", where, config.mode if config.url else "no server")
        return telemetry

    async def health(
        self, clock: Callable[[], datetime], snapshot: Callable[[], Mapping[str, float]]
    ) -> None:
        """Every health interval: the gateway's own figures as points; spool gauges."""
        while True:
            now = clock()
            try:
                stats = await self.spool.stats()
            except SpoolError as exc:  # a failing disk never stops the gateway: say so, go on
                log.warning("telemetry spool figures unavailable: %s", exc)
                await asyncio.sleep(self.config.health_interval_s)
                continue
            self.dropped = stats.dropped
            self.metrics.telemetry_pending.set(stats.pending_points)
            lag = 0.0
            if stats.oldest_ts_ns is not None:
                lag = max(0.0, now.timestamp() - stats.oldest_ts_ns / 1e9)
            self.metrics.telemetry_lag.set(lag)
            values = {
                **snapshot(),
                "spool_points": stats.pending_points,
                "spool_dropped": stats.dropped,
                "dead_lettered": stats.dead_lettered,
            }
            self.pipeline.add_lines(health_lines("gateway", values, ts_ns(now)))
            await asyncio.sleep(self.config.health_interval_s)

    async def close(self) -> None:
        """After the pipeline task has finished (it spools what it still held)."""
        await self.pipeline.close()
        await self.spool.close()


class TelemetryStatus(BaseModel):
    """What ``citygate telemetry status`` and ``GET /api/v1/telemetry/status`` show: one
    model, filled by one function (``telemetry_status``), so the two always agree."""

    server: str | None = Field(description="InfluxDB base URL (without credentials); null: none")
    mode: str = Field(description="v2 or v1 write API")
    spooled_pending: int = Field(description="points waiting in the spool")
    spool_bytes: int
    spool_limit_bytes: int
    dropped: int = Field(description="points the spool's size policy dropped, ever")
    dead_lettered: int = Field(description="points the server refused for good, ever")
    buffered: int | None = Field(description="points in memory, not yet spooled")
    accepted: int | None
    delivered: int | None = Field(description="points the server confirmed")
    replayed: int | None
    healthy: bool | None = Field(description="the last write succeeded")
    last_error: str | None
    status_age_s: float | None = Field(description="age of the pipeline's last status report")


def _without_userinfo(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=host))


def telemetry_status(config: TelemetryConfig, now: float) -> TelemetryStatus | None:
    """The pipeline's figures from its spool and status file (readable from any process while
    the gateway writes them); ``None`` when no gateway has run with this spool yet. Blocking
    (two small reads): the API calls it in a worker thread. *now*: POSIX seconds."""
    path = config.spool_dir / SPOOL_FILE
    if not path.exists():
        return None
    stats = read_stats(path)
    status = read_status(config.spool_dir)

    def count(key: str) -> int | None:
        value = status.get(key)
        return value if isinstance(value, int) else None

    at = status.get("at")
    healthy = status.get("healthy")
    return TelemetryStatus(
        server=_without_userinfo(config.url),
        mode=config.mode,
        spooled_pending=stats.pending_points,
        spool_bytes=stats.pending_bytes,
        spool_limit_bytes=config.spool_max_bytes,
        dropped=stats.dropped,
        dead_lettered=stats.dead_lettered,
        buffered=count("buffered"),
        accepted=count("accepted"),
        delivered=count("written"),
        replayed=count("replayed"),
        healthy=healthy if isinstance(healthy, bool) else None,
        last_error=str(status.get("last_error") or "") or None,
        status_age_s=round(now - float(at), 1) if isinstance(at, int | float) else None,
    )
