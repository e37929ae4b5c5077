"""The drone service: joins the links' reports to the town's drones, runs the alert rules,
publishes positions and alerts, and sends the operators' commands.

The links (``dronelink.model.DroneLink``, by source: ``dji``, ``mavlink``) call ``on_report``,
``on_dock`` and ``on_progress``; a key no town drone has is a counted rejection. Presence and
alerts are ``dronelink.patrol``'s; an alert raised is logged once at WARNING ("ALERT"),
counted and published as ``DroneAlert``; a changed fix is published as ``DronePosition``.

Commands go through ``gateway.services.drones.commands`` (written through, completed from
another instance's progress); progress from this instance's links is written to the command's
row by id. State is written behind (``run``); the views flush it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from dronelink.model import (
    CommandKind,
    CommandProgress,
    DockReport,
    DroneLink,
    DroneReport,
)
from dronelink.patrol import Alert, AlertRules, observe, tick
from events import DroneAlert, DronePosition
from gateway.config import DronesConfig
from gateway.infra.bus import EventBus
from gateway.metrics import FastCounter, Metrics
from gateway.services.drones.commands import CommandBusy, CommandRunner, NotRecorded
from gateway.services.drones.live import DroneInfo, DroneLive, row_values
from gateway.services.drones.store import CommandRecord, DroneStore

__all__ = ["CommandBusy", "DroneService", "NotRecorded", "UnknownDrone"]

log = logging.getLogger(__name__)
EXPIRE_EVERY_S = 10.0


class UnknownDrone(LookupError):
    """No drone of the town has this id."""


def _fix_ok(r: DroneReport) -> bool:
    f = r.fix
    if f is None:
        return True
    return (
        math.isfinite(f.lat)
        and math.isfinite(f.lon)
        and -90 <= f.lat <= 90
        and -180 <= f.lon <= 180
    )


class DroneService:
    def __init__(
        self,
        config: DronesConfig,
        store: DroneStore,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], datetime],
        links: Mapping[str, DroneLink],
    ) -> None:
        self.config = config
        self.store, self.bus, self.clock, self.links = store, bus, clock, links
        self.rules = AlertRules(
            config.low_battery_percent,
            config.battery_hysteresis,
            config.area_margin_m,
            config.link_lost_after_s,
        )
        r = metrics.registry
        self.counts = FastCounter(
            "citygate_drone_reports",
            "Drone link reports by what (report, dock, progress) and outcome or rejection reason",
            ["what", "outcome"],
            r,
        )
        self.alert_counts = FastCounter(
            "citygate_drone_alerts", "Drone alerts by kind and change", ["alert", "change"], r
        )
        self.commands = CommandRunner(config, store, clock, links, r)
        # When this gateway began to listen: silence before it (the gateway was down) is
        # not a drone's (see ``patrol.tick``); set by ``run``.
        self.listening_since: datetime | None = None
        self.drones: dict[str, DroneInfo] = {}
        self.live: dict[str, DroneLive] = {}
        self._by_key: dict[tuple[str, str], str] = {}
        self._by_dock: dict[str, str] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._progress_lock = asyncio.Lock()
        self._flush_lock = asyncio.Lock()
        self.activate: Callable[[str], None] = lambda drone_id: None  # the lifecycle's

    # -- life cycle ----------------------------------------------------------------------------
    async def load(self) -> None:
        drones, live = await self.store.load()
        self.drones.update(drones)
        self.live.update(live)
        self._index()
        for d in drones.values():
            if d.area is None:
                log.error("drone %s: its stored patrol area is unusable: no area alerts", d.id)
        log.info("drones: %d in the town, %d with restored state", len(drones), len(live))

    def _index(self) -> None:
        self._by_key = {(d.kind, d.key): d.id for d in self.drones.values()}
        self._by_dock = {d.dock_sn: d.id for d in self.drones.values() if d.dock_sn}

    def knows_sn(self, sn: str) -> bool:
        """Whether *sn* is the dock or the aircraft of one of the town's drones (DJI)."""
        return sn in self._by_dock or ("dji", sn) in self._by_key

    async def refresh(self, drone_id: str) -> None:
        """The change feed: the drone was imported, changed or removed."""
        info = await self.store.drone(drone_id)
        if info is None:
            self.drones.pop(drone_id, None)
        else:
            self.drones[drone_id] = info
        self._index()

    async def run(self) -> None:
        """Timers: silent links (alerts), the write-behind, commands left open by a stopped
        instance."""
        loop = asyncio.get_running_loop()
        self.listening_since = self.listening_since or self.clock()
        next_flush = next_tick = next_expire = 0.0
        while True:
            await asyncio.sleep(0.2)
            mono = loop.time()
            if mono >= next_tick:
                next_tick = mono + 1.0
                self.sweep(self.clock())
            if mono >= next_flush:
                next_flush = mono + self.config.persist_interval_s
                await self.flush()
            if mono >= next_expire:
                next_expire = mono + EXPIRE_EVERY_S
                await self._expire()

    def sweep(self, now: datetime) -> None:
        """The alert rules at *now* for every drone (a link gone silent raises link_lost)."""
        for drone_id, live in self.live.items():
            info = self.drones.get(drone_id)
            if info is None or info.lifecycle == "maintenance":  # no alerts in maintenance
                continue
            live.watch, alerts = tick(live.watch, now, self.rules, self.listening_since)
            for a in alerts:
                live.dirty = True
                self._alert(info, a)

    async def _expire(self) -> None:
        now = self.clock()
        before = now - timedelta(seconds=self.commands.max_command_s() + 60)
        try:
            n = await self.store.expire(before, now)
        except Exception as exc:
            log.warning("drones: stale commands not expired (%s: %s)", type(exc).__name__, exc)
            return
        if n:
            log.warning("drones: %d command(s) left open by a stopped gateway: timeout", n)

    async def flush(self) -> None:
        """Write the dirty drones' state (kept dirty for the next try on failure)."""
        async with self._flush_lock:
            dirty = [d for d in self.live.values() if d.dirty and d.drone_id in self.drones]
            if not dirty:
                return
            for d in dirty:
                d.dirty = False
            now = self.clock()
            try:
                await self.store.flush([row_values(d, now) for d in dirty])
            except Exception as exc:
                log.warning("drones: state not written (%s: %s)", type(exc).__name__, exc)
                self.counts.labels("persist", "failed").inc()
                for d in dirty:
                    d.dirty = True

    async def close(self) -> None:
        """Stop waiting for commands (their rows are expired later) and write the state."""
        for t in [*self._tasks, *self.commands.tasks]:
            t.cancel()
        with contextlib.suppress(Exception):
            await self.flush()

    # -- the links' callbacks ------------------------------------------------------------------
    def on_report(self, report: DroneReport) -> None:
        try:
            self._report(report)
        except Exception:  # a bug here must not take the link's receive loop down
            log.exception("drones: report from %s %s not applied", report.source, report.key)
            self.counts.labels("report", "error").inc()

    def _report(self, r: DroneReport) -> None:
        drone_id = self._by_key.get((r.source, r.key))
        info = None if drone_id is None else self.drones.get(drone_id)
        if info is None:
            self.counts.labels("report", "unknown_drone").inc()
            return
        if r.at.tzinfo is None or r.at.utcoffset() is None:
            self.counts.labels("report", "naive_time").inc()
            return
        if not _fix_ok(r):
            self.counts.labels("report", "bad_fix").inc()
            r = replace(r, fix=None)
        b = r.battery_percent
        if b is not None and not (math.isfinite(b) and 0 <= b <= 100):
            self.counts.labels("report", "bad_battery").inc()
            r = replace(r, battery_percent=None)
        live = self.live.get(info.id)
        if live is None:
            live = self.live[info.id] = DroneLive(info.id)
        if info.lifecycle == "commissioned":  # its first good message (the lifecycle's)
            info = self.drones[info.id] = replace(info, lifecycle="active")
            self.activate(info.id)
        live.apply(r)
        if info.lifecycle != "maintenance":  # in maintenance: no alerts (they resume after)
            live.watch, alerts = observe(live.watch, r, info.area, self.rules)
            for a in alerts:
                self._alert(info, a)
        self.counts.labels("report", "ok").inc()
        if r.fix is not None:
            self._publish_position(info, live, r)

    def on_dock(self, dock: DockReport) -> None:
        try:
            drone_id = self._by_dock.get(dock.key)
            if drone_id is None or drone_id not in self.drones:
                self.counts.labels("dock", "unknown_dock").inc()
                return
            if dock.at.tzinfo is None or dock.at.utcoffset() is None:
                self.counts.labels("dock", "naive_time").inc()
                return
            b = dock.drone_battery_percent
            if b is not None and not (math.isfinite(b) and 0 <= b <= 100):
                self.counts.labels("dock", "bad_battery").inc()
                dock = replace(dock, drone_battery_percent=None)
            live = self.live.get(drone_id)
            if live is None:
                live = self.live[drone_id] = DroneLive(drone_id)
            live.apply_dock(dock)
            self.counts.labels("dock", "ok").inc()
        except Exception:
            log.exception("drones: dock report from %s not applied", dock.key)
            self.counts.labels("dock", "error").inc()

    def on_progress(self, progress: CommandProgress) -> None:
        """A step of a command by id, from this instance's link (whichever instance sent it):
        written to its row in arrival order."""
        task = asyncio.get_running_loop().create_task(self._progress(progress))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _progress(self, p: CommandProgress) -> None:
        async with self._progress_lock:
            try:
                stepped = await self.store.update_command(
                    p.command_id[:36], p.status, self.clock(), result_code=p.result_code,
                    percent=p.percent, detail=p.detail,
                )  # fmt: skip
            except Exception as exc:
                log.warning("drones: progress of %s not written (%s)", p.command_id, exc)
                self.counts.labels("progress", "not_written").inc()
                return
        if stepped:
            self.counts.labels("progress", "ok").inc()
            return
        # Not open: a dock's last progress event often lands after the reply that made the
        # command final (expected, kept apart), or it is for a command nobody here sent.
        try:
            known = await self.store.command(p.command_id[:36]) is not None
        except Exception:
            known = False
        self.counts.labels("progress", "after_final" if known else "unknown_command").inc()

    def _publish_position(self, info: DroneInfo, live: DroneLive, r: DroneReport) -> None:
        f = r.fix
        assert f is not None
        values = (f.lat, f.lon, f.height_m, f.elevation_m, f.speed_mps, f.heading_deg,
                  live.battery_percent)  # fmt: skip
        if values == live.published:
            return  # an unchanged repeat
        live.published = values
        self.bus.publish(
            DronePosition(
                device_id=info.id, ts=r.at, lat=f.lat, lon=f.lon, height_m=f.height_m,
                elevation_m=f.elevation_m, speed_mps=f.speed_mps, heading_deg=f.heading_deg,
                battery_percent=live.battery_percent,
            )
        )  # fmt: skip

    def _alert(self, info: DroneInfo, a: Alert) -> None:
        self.alert_counts.labels(a.kind.value, "raised" if a.raised else "cleared").inc()
        if a.raised:
            log.warning("ALERT drone %s (%s): %s: %s", info.id, info.name, a.kind.value, a.detail)
        else:
            log.info("drone %s (%s): %s cleared: %s", info.id, info.name, a.kind.value, a.detail)
        self.bus.publish(
            DroneAlert(
                device_id=info.id, ts=a.at, alert=a.kind.value, raised=a.raised, detail=a.detail
            )
        )

    # -- commands ------------------------------------------------------------------------------
    async def command(
        self,
        drone_id: str,
        kind: CommandKind,
        args: Mapping[str, Any],
        requested_by: str,
    ) -> CommandRecord:
        """Record the command, send it, record and return its outcome (see
        ``gateway.services.drones.commands``). Raises UnknownDrone, CommandBusy, NotRecorded,
        or ValueError for arguments the kind does not take."""
        info = self.drones.get(drone_id)
        if info is None:
            raise UnknownDrone(drone_id)
        return await self.commands.command(info, kind, args, requested_by)
