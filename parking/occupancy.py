"""Live occupancy of berths and car parks: the pure engine behind the town's vacancy map.

Everything here is synchronous, deterministic and free of I/O: time only ever arrives as an
argument (an event's ``ts`` or a ``now``), so the same inputs always give the same book and the
same events, which is what lets the gateway replay, test and persist it. ``apply`` sits on the
ingest hot path (thousands of uplinks a second), so it does O(1) work: dictionary look-ups and
incremental tallies, never a scan of berths or sites.

Ordering, in one place (sensors; controllers follow the same scheme with ``seq``):

* a report never moves time backwards: one stamped before the newest thing heard from that
  device (or before its binding) cannot change anything;
* the frame counter detects re-deliveries and retransmissions (same fCnt: ``duplicate``) and late
  frames (lower fCnt within ``fcnt_window``: ``stale``); either way a timestamp newer than
  anything heard is recorded as ``last_seen``, and a late frame's also restores lost comms (a
  ``duplicate`` never has events); without a counter, the same timestamp again is the
  ``duplicate``;
* a counter discontinuity (more than the window away) or a ``SensorStartup`` is a counter
  reset, accepted only if it is the newest thing heard, so a replay of old traffic after a
  reset can never be mistaken for news.

Because acceptance always needs the newest timestamp, and every timestamp heard is recorded
whatever the verdict, feeding the same traffic twice changes nothing the second time. The newest
timestamp heard is ``last_seen``, so the persisted ``last_seen`` and ``last_fcnt`` are all a
restored book needs to judge re-deliveries exactly as this one would. This relies on ``ts`` being
when the device spoke (the network server's ``time``), not when the gateway happened to receive
it.

The module is long because the book is one object whose invariants (tallies, ordering,
bindings, the town's shape) span all of its methods; the docstrings above and below keep
each part readable on its own.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from events import (
    BerthState,
    BerthStateChanged,
    CarParkCount,
    CommsLost,
    CommsRestored,
    Event,
    MagnetometerSample,
    SensorHeartbeat,
    SensorStartup,
    SensorStatus,
    SiteCountsChanged,
)

__all__ = [
    "BerthInfo",
    "BerthView",
    "OccupancyBook",
    "OccupancyConfig",
    "Outcome",
    "SensorBinding",
    "SensorReport",
    "SiteInfo",
    "SiteView",
    "Verdict",
]

Verdict = Literal["applied", "duplicate", "stale", "unbound"]
SensorReport = SensorStatus | SensorHeartbeat | SensorStartup | MagnetometerSample

_FREE = BerthState.FREE
_OCCUPIED = BerthState.OCCUPIED
_UNKNOWN = BerthState.UNKNOWN


# -- the contract -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SiteInfo:
    """A car park or street segment; ``counting`` says where its occupancy comes from."""

    site_id: str
    capacity: int
    counting: Literal["berth_sensors", "entry_exit"]
    controller_id: str | None = None


@dataclass(frozen=True, slots=True)
class BerthInfo:
    berth_id: str
    site_id: str


@dataclass(frozen=True, slots=True)
class SensorBinding:
    """Which sensor watches which berth, and how often it promises to speak."""

    dev_eui: str
    berth_id: str
    model: str
    heartbeat_s: int


@dataclass(frozen=True, slots=True)
class BerthView:
    """A berth as the book sees it. ``last_fcnt`` is extra: it is what the gateway must persist
    to hand back to ``restore_berth``."""

    berth_id: str
    site_id: str
    state: BerthState
    since: datetime
    last_seen: datetime | None
    dev_eui: str | None
    model: str | None
    comms_lost: bool
    last_fcnt: int | None = None


@dataclass(frozen=True, slots=True)
class SiteView:
    """A site's live counts; ``free + occupied + unknown == capacity`` always.

    ``updated_at`` is the newest report, count or sweep that confirmed or changed the counts.
    ``stale`` is only ever set for entry/exit sites whose controller fell silent; berth-sensor
    sites show staleness berth by berth, as ``unknown``.
    """

    site_id: str
    capacity: int
    free: int
    occupied: int
    unknown: int
    updated_at: datetime
    stale: bool


# (site_id, capacity, free, occupied, unknown, updated_at, stale): a SiteView as a tuple
SiteState = tuple[str, int, int, int, int, datetime, bool]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one input did: a verdict for the ingest metrics and the events to publish."""

    verdict: Verdict
    events: tuple[Event, ...]


@dataclass(frozen=True, slots=True)
class OccupancyConfig:
    """``fcnt_window`` bounds both the sensors' frame counters and the controllers' ``seq``."""

    silence_factor: float = 2.5
    controller_timeout_s: int = 900
    fcnt_window: int = 16384


# -- mutable internals --------------------------------------------------------------------------
class _Sensor:
    """What the book remembers of one bound sensor."""

    __slots__ = (
        "berth",
        "dev_eui",
        "floor",
        "last_fcnt",
        "last_seen",
        "limit",
        "lost",
        "model",
        "newest",
        "watch_from",
    )

    def __init__(
        self,
        binding: SensorBinding,
        dev_eui: str,
        berth: _Berth,
        limit: timedelta,
        watch_from: datetime,
        floor: datetime | None,
    ) -> None:
        self.dev_eui = dev_eui
        self.model = binding.model
        self.berth = berth
        self.limit = limit  # silence longer than this is comms_lost
        self.watch_from = watch_from  # silence is never counted from before this (start, bind)
        self.last_fcnt: int | None = None
        self.last_seen: datetime | None = None  # newest ts heard from the device, any verdict
        # last_seen, or the binding time if later: nothing stamped before it may change the berth
        self.newest: datetime | None = floor
        self.floor = floor
        self.lost = False


class _Berth:
    __slots__ = ("berth_id", "sensor", "since", "site", "state")

    def __init__(self, berth_id: str, site: _Site, since: datetime) -> None:
        self.berth_id = berth_id
        self.site = site
        self.state = _UNKNOWN
        self.since = since
        self.sensor: _Sensor | None = None


class _Site:
    """Counts of one site. Berth-sensor sites keep tallies of their berths' states; entry/exit
    sites keep the controller's running count and its ordering state."""

    __slots__ = (
        "berths",
        "by_sensors",
        "capacity",
        "controller_id",
        "count",
        "known",
        "last_seen",
        "last_seq",
        "lost",
        "n_free",
        "n_occupied",
        "newest",
        "site_id",
        "updated_at",
    )

    def __init__(self, info: SiteInfo, start: datetime) -> None:
        self.site_id = info.site_id
        self.capacity = info.capacity
        self.by_sensors = info.counting == "berth_sensors"
        self.controller_id = info.controller_id
        self.berths: list[_Berth] = []
        self.n_free = 0
        self.n_occupied = 0
        self.updated_at = start
        # entry/exit only
        self.known = False  # no count yet: all unknown; the first deltas count from zero
        self.count = 0
        self.last_seq: int | None = None
        self.last_seen: datetime | None = None
        self.newest: datetime | None = None
        self.lost = False

    def counts(self) -> tuple[int, int, int]:
        """(free, occupied, unknown), clamped so they always add up to the capacity."""
        cap = self.capacity
        if self.by_sensors:
            occupied = min(self.n_occupied, cap)
            free = min(self.n_free, cap - occupied)
        elif self.known and not self.lost:
            occupied = self.count
            free = cap - occupied
        else:
            occupied = free = 0
        return free, occupied, cap - free - occupied


_APPLIED = Outcome("applied", ())
_DUPLICATE = Outcome("duplicate", ())
_STALE = Outcome("stale", ())
_UNBOUND = Outcome("unbound", ())

_COUNTER_NAMES = (
    "reports_applied",
    "reports_duplicate",
    "reports_stale",
    "reports_unbound",
    "counts_applied",
    "counts_duplicate",
    "counts_stale",
    "counts_unbound",
    "fcnt_resets",
    "seq_resets",
    "comms_lost",
    "comms_restored",
    "counts_clamped",
    "drift_checks",
    "drift_corrections",
    "drift_total",
)


def _aware(ts: datetime, what: str) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware")
    return ts


class OccupancyBook:
    """The live occupancy of every berth and site of the town.

    Inputs are events (or a technician's binding changes) and a ``now`` for time-driven
    decisions; outputs are the events to publish, returned rather than published so the
    caller decides where they go. ``take_dirty`` tells the write-behind persistence what to
    save and ``take_changes`` hands it every berth change in order (for sessions);
    ``restore_berth``/``restore_site_count`` put it back at start-up.
    """

    def __init__(
        self,
        sites: Iterable[SiteInfo],
        berths: Iterable[BerthInfo],
        bindings: Iterable[SensorBinding],
        *,
        start: datetime,
        config: OccupancyConfig = OccupancyConfig(),
    ) -> None:
        self._start = _aware(start, "start")
        self._config = config
        if config.fcnt_window < 0 or config.silence_factor <= 0 or config.controller_timeout_s <= 0:
            raise ValueError(f"invalid occupancy config: {config}")
        self._window = config.fcnt_window
        self._controller_limit = timedelta(seconds=config.controller_timeout_s)
        self._sites: dict[str, _Site] = {}
        self._entry_exit: list[_Site] = []
        self._berths: dict[str, _Berth] = {}
        self._sensors: dict[str, _Sensor] = {}
        self._dirty_berths: set[str] = set()
        self._dirty_sites: set[str] = set()
        self._changes: list[BerthStateChanged] = []
        self._counters: dict[str, int] = dict.fromkeys(_COUNTER_NAMES, 0)
        for info in sites:
            if info.site_id in self._sites:
                raise ValueError(f"duplicate site id {info.site_id!r}")
            if info.capacity < 0:
                raise ValueError(f"site {info.site_id}: negative capacity {info.capacity}")
            if info.counting not in ("berth_sensors", "entry_exit"):
                raise ValueError(f"site {info.site_id}: unknown counting {info.counting!r}")
            site = _Site(info, start)
            self._sites[info.site_id] = site
            if not site.by_sensors:
                self._entry_exit.append(site)
        for b in berths:
            if b.berth_id in self._berths:
                raise ValueError(f"duplicate berth id {b.berth_id!r}")
            owner = self._sites.get(b.site_id)
            if owner is None:
                raise ValueError(f"berth {b.berth_id}: unknown site {b.site_id!r}")
            berth = _Berth(b.berth_id, owner, start)
            self._berths[b.berth_id] = berth
            owner.berths.append(berth)
        for binding in bindings:
            berth = self._berth(binding.berth_id, ValueError)
            dev = binding.dev_eui.lower()
            if dev in self._sensors:
                raise ValueError(f"sensor {dev} bound twice")
            if berth.sensor is not None:
                raise ValueError(f"berth {berth.berth_id} bound to more than one sensor")
            self._attach(binding, dev, berth, self._limit(binding), watch_from=start, floor=None)
        self._dirty_berths.clear()  # the configured town is the baseline, not a change
        self._changes.clear()

    # -- sensor reports (hot path) --------------------------------------------------------------
    def apply(self, event: SensorReport, occupied: bool | None = None) -> Outcome:
        """Apply one sensor report. ``occupied`` overrides the event's own verdict (the
        gateway's detector decides for magnetometer samples)."""
        sensor = self._sensors.get(event.device_id)
        if sensor is None:
            sensor = self._sensors.get(event.device_id.lower())
            if sensor is None:
                self._counters["reports_unbound"] += 1
                return _UNBOUND
        if occupied is None and not isinstance(event, MagnetometerSample):
            occupied = event.occupied
        ts = event.ts
        fcnt = event.fcnt
        startup = isinstance(event, SensorStartup)
        newest = sensor.newest
        verdict = self._order_report(sensor, ts, fcnt, startup)
        alive = newest is None or ts > newest
        if verdict != "applied":
            self._counters["reports_" + verdict] += 1
            if not alive:
                return _DUPLICATE if verdict == "duplicate" else _STALE
            # a late frame (lower fCnt) or a retransmission (same fCnt) stamped after anything
            # heard: the device is alive, its state is not news. The timestamp must still be
            # recorded, or a reset stamped before it would later pass for the newest thing heard
            # and make this very frame look new when it is delivered again.
            sensor.last_seen = sensor.newest = ts
            self._dirty_berths.add(sensor.berth.berth_id)
            if verdict == "duplicate":  # never with events: callers drop duplicates whole, so
                return _DUPLICATE  # restoring comms is left to the next frame with news
            if sensor.lost:
                return Outcome("stale", (self._restore_sensor(sensor, ts, newest),))
            return _STALE

        self._counters["reports_applied"] += 1
        if startup or fcnt is not None:
            sensor.last_fcnt = fcnt
        sensor.newest = ts
        if sensor.last_seen is None or ts > sensor.last_seen:
            sensor.last_seen = ts
        berth = sensor.berth
        site = berth.site
        self._dirty_berths.add(berth.berth_id)
        if site.by_sensors:
            if ts > site.updated_at:
                site.updated_at = ts
            self._dirty_sites.add(site.site_id)
        restored: CommsRestored | None = None
        if sensor.lost:
            if not alive:  # no proof of life after the silence: the berth stays unknown
                return _APPLIED
            restored = self._restore_sensor(sensor, ts, newest)
        new = _UNKNOWN if occupied is None else _OCCUPIED if occupied else _FREE
        if new is _UNKNOWN or new is berth.state:  # a sign of life only, or nothing new
            return _APPLIED if restored is None else Outcome("applied", (restored,))

        events: list[Event] = [] if restored is None else [restored]
        before = site.counts() if site.by_sensors else None
        self._set_state(berth, new, ts, sensor.dev_eui, events)
        if before is not None:
            self._site_changed(site, before, ts, sensor.dev_eui, events)
        return Outcome("applied", tuple(events))

    def _order_report(
        self, sensor: _Sensor, ts: datetime, fcnt: int | None, startup: bool
    ) -> Verdict:
        """Where this report stands against what was heard before (see the module doc)."""
        newest = sensor.newest
        last = sensor.last_fcnt
        if startup:  # a new boot: a reset, if it is the newest thing heard
            if newest is not None and ts <= newest:
                same = ts == sensor.last_seen and (fcnt is None or fcnt == last)
                return "duplicate" if same else "stale"
            self._counters["fcnt_resets"] += 1
            return "applied"
        if fcnt is None or last is None:  # no counter to go by: timestamps order the reports
            if ts == sensor.last_seen:
                return "duplicate"
            if newest is not None and ts < newest:
                return "stale"
            return "applied"
        delta = fcnt - last
        if delta == 0:
            return "duplicate"
        window = self._window
        if 0 < delta <= window:
            return "applied" if newest is None or ts >= newest else "stale"
        if -window <= delta < 0:
            return "stale"
        if newest is None or ts > newest:  # far away: the device reset or rejoined
            self._counters["fcnt_resets"] += 1
            return "applied"
        return "stale"

    def _restore_sensor(
        self, sensor: _Sensor, ts: datetime, heard_before: datetime | None
    ) -> CommsRestored:
        sensor.lost = False
        self._counters["comms_restored"] += 1
        basis = sensor.watch_from if heard_before is None else max(heard_before, sensor.watch_from)
        berth = sensor.berth
        return CommsRestored(
            device_id=sensor.dev_eui,
            ts=ts,
            site_id=berth.site.site_id,
            berth_id=berth.berth_id,
            silent_s=max(0.0, (ts - basis).total_seconds()),
        )

    # -- car park controllers -------------------------------------------------------------------
    def apply_count(self, event: CarParkCount) -> Outcome:
        """Apply a lane controller's counts to an entry/exit site.

        Deltas without ``seq`` cannot be deduplicated and are always applied (they add up in any
        order); an absolute ``occupied`` is only taken if the message is not older than the
        newest one heard, so an old count never overrides a newer one.
        """
        site = self._sites.get(event.site_id)
        if site is None or site.by_sensors:
            self._counters["counts_unbound"] += 1
            return _UNBOUND
        ts = event.ts
        seq = event.seq
        newest = site.newest
        verdict = self._order_count(site, ts, seq)
        self._counters["counts_" + verdict] += 1
        if verdict != "applied":
            return _DUPLICATE if verdict == "duplicate" else _STALE

        events: list[Event] = []
        before = site.counts()
        if seq is not None:
            site.last_seq = seq
        if newest is None or ts > newest:
            site.newest = ts
        if site.last_seen is None or ts > site.last_seen:
            site.last_seen = ts
        if site.lost:
            site.lost = False
            self._counters["comms_restored"] += 1
            basis = self._start if newest is None else max(newest, self._start)
            events.append(
                CommsRestored(
                    device_id=event.device_id,
                    ts=ts,
                    site_id=site.site_id,
                    berth_id=None,
                    silent_s=max(0.0, (ts - basis).total_seconds()),
                )
            )
        cap = site.capacity
        running = (site.count if site.known else 0) + event.entered - event.exited
        if not 0 <= running <= cap:
            self._counters["counts_clamped"] += 1
            running = min(max(running, 0), cap)
        if event.occupied is not None and (newest is None or ts >= newest):
            target = min(max(event.occupied, 0), cap)
            if target != event.occupied:
                self._counters["counts_clamped"] += 1
            self._counters["drift_checks"] += 1
            if target != running:
                self._counters["drift_corrections"] += 1
                self._counters["drift_total"] += abs(target - running)
                running = target
        site.count = running
        site.known = True
        if ts > site.updated_at:
            site.updated_at = ts
        self._dirty_sites.add(site.site_id)
        self._site_changed(site, before, ts, event.device_id, events)
        return Outcome("applied", tuple(events)) if events else _APPLIED

    def _order_count(self, site: _Site, ts: datetime, seq: int | None) -> Verdict:
        newest = site.newest
        last = site.last_seq
        if seq is None:
            return "applied"
        if last is None:  # first numbered count; after a restore, older ones are in the count
            return "stale" if newest is not None and ts <= newest else "applied"
        delta = seq - last
        window = self._window
        if -window <= delta <= 0:
            return "duplicate"
        if 0 < delta <= window:
            return "applied" if newest is None or ts >= newest else "stale"
        if newest is None or ts > newest:  # far away: the controller restarted
            self._counters["seq_resets"] += 1
            return "applied"
        return "stale"

    # -- time ---------------------------------------------------------------------------------
    def sweep(self, now: datetime) -> tuple[Event, ...]:
        """Declare silent sensors and controllers lost. Periodic, so a full scan is fine here."""
        events: list[Event] = []
        touched: dict[str, tuple[_Site, tuple[int, int, int]]] = {}
        for sensor in self._sensors.values():
            if sensor.lost:
                continue
            seen = sensor.last_seen
            basis = seen if seen is not None and seen > sensor.watch_from else sensor.watch_from
            if now - basis <= sensor.limit:
                continue
            sensor.lost = True
            self._counters["comms_lost"] += 1
            berth = sensor.berth
            site = berth.site
            self._dirty_berths.add(berth.berth_id)
            events.append(
                CommsLost(
                    device_id=sensor.dev_eui,
                    ts=now,
                    site_id=site.site_id,
                    berth_id=berth.berth_id,
                    last_seen=seen,
                )
            )
            if berth.state is not _UNKNOWN:
                if site.by_sensors and site.site_id not in touched:
                    touched[site.site_id] = (site, site.counts())
                self._set_state(berth, _UNKNOWN, now, sensor.dev_eui, events)
        for site in self._entry_exit:
            if site.lost:
                continue
            seen = site.last_seen
            basis = seen if seen is not None and seen > self._start else self._start
            if now - basis <= self._controller_limit:
                continue
            touched[site.site_id] = (site, site.counts())
            site.lost = True
            self._counters["comms_lost"] += 1
            self._dirty_sites.add(site.site_id)
            events.append(
                CommsLost(
                    device_id=site.controller_id or "",
                    ts=now,
                    site_id=site.site_id,
                    berth_id=None,
                    last_seen=seen,
                )
            )
        for site, before in touched.values():
            self._site_changed(site, before, now, site.controller_id or "", events)
        return tuple(events)

    # -- technicians ------------------------------------------------------------------------
    def bind(self, binding: SensorBinding, now: datetime) -> tuple[Event, ...]:
        """Bind a sensor to a berth (installation or replacement).

        The berth's previous sensor is unbound, a sensor moved from another berth leaves that
        berth unknown, and the berth stays unknown until the new sensor reports: anything it
        stamped before ``now`` is taken as stale. Re-binding the same pair only updates the
        model and heartbeat.
        """
        berth = self._berth(binding.berth_id, KeyError)
        limit = self._limit(binding)  # validate before touching anything
        now = _aware(now, "now")
        dev = binding.dev_eui.lower()
        current = self._sensors.get(dev)
        if current is not None and current.berth is berth:
            current.model = binding.model
            current.limit = limit
            self._dirty_berths.add(berth.berth_id)
            return ()
        events: list[Event] = []
        touched: dict[str, tuple[_Site, tuple[int, int, int]]] = {}
        if current is not None:
            self._detach(current, now, dev, events, touched)
        if berth.sensor is not None:
            self._detach(berth.sensor, now, dev, events, touched)
        self._attach(binding, dev, berth, limit, watch_from=max(now, self._start), floor=now)
        for site, before in touched.values():
            self._site_changed(site, before, now, dev, events)
        return tuple(events)

    def unbind(self, dev_eui: str, now: datetime) -> tuple[Event, ...]:
        """Remove a sensor; its berth becomes unknown. Unknown sensors are ignored."""
        sensor = self._sensors.get(dev_eui.lower())
        if sensor is None:
            return ()
        events: list[Event] = []
        touched: dict[str, tuple[_Site, tuple[int, int, int]]] = {}
        self._detach(sensor, now, sensor.dev_eui, events, touched)
        for site, before in touched.values():
            self._site_changed(site, before, now, sensor.dev_eui, events)
        return tuple(events)

    # -- the town changing (a town import, followed live) -------------------------------------
    def put_site(self, info: SiteInfo, now: datetime) -> tuple[Event, ...]:
        """Add a site, or change its capacity, counting or controller. Berth-sensor counts are
        recounted from the berths; a site turning to entry/exit waits for its first count."""
        now = _aware(now, "now")
        if info.capacity < 0 or info.counting not in ("berth_sensors", "entry_exit"):
            raise ValueError(f"site {info.site_id}: invalid {info}")
        site = self._sites.get(info.site_id)
        if site is None:
            site = self._sites[info.site_id] = _Site(info, now)
            if not site.by_sensors:
                self._entry_exit.append(site)
            return ()
        before = site.counts()
        by_sensors = info.counting == "berth_sensors"
        if by_sensors != site.by_sensors:
            site.by_sensors = by_sensors
            if by_sensors:
                self._entry_exit.remove(site)
            else:
                self._entry_exit.append(site)
                site.known, site.count, site.last_seq, site.lost = False, 0, None, False
        site.n_free = sum(1 for b in site.berths if b.state is _FREE)
        site.n_occupied = sum(1 for b in site.berths if b.state is _OCCUPIED)
        site.capacity = info.capacity
        site.controller_id = info.controller_id
        if site.known:
            site.count = min(site.count, site.capacity)
        events: list[Event] = []
        self._site_changed(site, before, now, info.controller_id or "", events)
        return tuple(events)

    def remove_site(self, site_id: str, now: datetime) -> tuple[Event, ...]:
        """Remove a site and its berths (their sensors unbound). Unknown sites are ignored."""
        site = self._sites.get(site_id)
        if site is None:
            return ()
        events: list[Event] = []
        for berth in list(site.berths):
            events.extend(self.remove_berth(berth.berth_id, now))
        del self._sites[site_id]
        if not site.by_sensors:
            self._entry_exit.remove(site)
        self._dirty_sites.discard(site_id)
        return tuple(events)

    def put_berth(self, info: BerthInfo, now: datetime) -> tuple[Event, ...]:
        """Add a berth (unknown until its sensor reports), or move it to another site."""
        now = _aware(now, "now")
        owner = self._sites.get(info.site_id)
        if owner is None:
            raise KeyError(f"berth {info.berth_id}: unknown site {info.site_id!r}")
        berth = self._berths.get(info.berth_id)
        if berth is None:
            berth = self._berths[info.berth_id] = _Berth(info.berth_id, owner, now)
            owner.berths.append(berth)
            return ()
        old = berth.site
        if old is owner:
            return ()
        events: list[Event] = []
        touched = {s.site_id: (s, s.counts()) for s in (old, owner)}
        self._retally(old, berth.state, _UNKNOWN)
        old.berths.remove(berth)
        berth.site = owner
        owner.berths.append(berth)
        self._retally(owner, _UNKNOWN, berth.state)
        self._dirty_berths.add(berth.berth_id)
        for site, before in touched.values():
            self._site_changed(site, before, now, "", events)
        return tuple(events)

    def remove_berth(self, berth_id: str, now: datetime) -> tuple[Event, ...]:
        """Remove a berth (its sensor unbound first). Unknown berths are ignored."""
        berth = self._berths.get(berth_id)
        if berth is None:
            return ()
        events: list[Event] = []
        if berth.sensor is not None:
            events.extend(self.unbind(berth.sensor.dev_eui, now))
        site = berth.site
        before = site.counts()
        self._retally(site, berth.state, _UNKNOWN)
        site.berths.remove(berth)
        del self._berths[berth_id]
        self._dirty_berths.discard(berth_id)
        self._site_changed(site, before, _aware(now, "now"), "", events)
        return tuple(events)

    def _limit(self, binding: SensorBinding) -> timedelta:
        if binding.heartbeat_s <= 0:
            raise ValueError(f"sensor {binding.dev_eui}: heartbeat_s must be positive")
        return timedelta(seconds=binding.heartbeat_s * self._config.silence_factor)

    def _attach(
        self,
        binding: SensorBinding,
        dev: str,
        berth: _Berth,
        limit: timedelta,
        *,
        watch_from: datetime,
        floor: datetime | None,
    ) -> None:
        sensor = _Sensor(binding, dev, berth, limit, watch_from, floor)
        berth.sensor = sensor
        self._sensors[dev] = sensor
        self._dirty_berths.add(berth.berth_id)

    def _detach(
        self,
        sensor: _Sensor,
        now: datetime,
        cause: str,
        events: list[Event],
        touched: dict[str, tuple[_Site, tuple[int, int, int]]],
    ) -> None:
        berth = sensor.berth
        site = berth.site
        del self._sensors[sensor.dev_eui]
        berth.sensor = None
        self._dirty_berths.add(berth.berth_id)
        if berth.state is not _UNKNOWN:
            if site.by_sensors and site.site_id not in touched:
                touched[site.site_id] = (site, site.counts())
            self._set_state(berth, _UNKNOWN, now, cause, events)

    # -- shared mutation ------------------------------------------------------------------------
    def _set_state(
        self, berth: _Berth, new: BerthState, since: datetime, cause: str, events: list[Event]
    ) -> None:
        """Change a berth's state, keep its site's tallies in step, and say so."""
        old = berth.state
        site = berth.site
        self._retally(site, old, new)
        berth.state = new
        berth.since = since
        self._dirty_berths.add(berth.berth_id)
        change = BerthStateChanged(
            device_id=cause,
            ts=since,
            site_id=site.site_id,
            berth_id=berth.berth_id,
            state=new,
            previous=old,
            since=since,
        )
        events.append(change)
        self._changes.append(change)

    @staticmethod
    def _retally(site: _Site, old: BerthState, new: BerthState) -> None:
        """Move one berth between the site's tallies: O(1) instead of a recount."""
        if not site.by_sensors:
            return
        if old is _FREE:
            site.n_free -= 1
        elif old is _OCCUPIED:
            site.n_occupied -= 1
        if new is _FREE:
            site.n_free += 1
        elif new is _OCCUPIED:
            site.n_occupied += 1

    def _site_changed(
        self,
        site: _Site,
        before: tuple[int, int, int],
        ts: datetime,
        cause: str,
        events: list[Event],
    ) -> None:
        """Emit one SiteCountsChanged if the (clamped) counts moved."""
        after = site.counts()
        if after == before:
            return
        if ts > site.updated_at:
            site.updated_at = ts
        self._dirty_sites.add(site.site_id)
        free, occupied, unknown = after
        events.append(
            SiteCountsChanged(
                device_id=cause,
                ts=ts,
                site_id=site.site_id,
                capacity=site.capacity,
                free=free,
                occupied=occupied,
                unknown=unknown,
            )
        )

    # -- persistence ----------------------------------------------------------------------------
    def restore_berth(
        self,
        berth_id: str,
        state: BerthState,
        since: datetime,
        last_seen: datetime | None,
        last_fcnt: int | None,
    ) -> None:
        """Put back a persisted berth at start-up (no events, nothing dirty).

        A berth whose sensor is no longer bound stays unknown: the saved state described a
        sensor that is not there any more. Silence is still counted from ``start`` at the
        earliest, since the gateway could not hear anything while it was down.
        """
        berth = self._berth(berth_id, KeyError)
        sensor = berth.sensor
        if sensor is None:
            return
        new = BerthState(state)
        self._retally(berth.site, berth.state, new)
        berth.state = new
        berth.since = since
        sensor.lost = False
        sensor.last_seen = last_seen
        sensor.last_fcnt = last_fcnt
        if last_seen is not None and (sensor.newest is None or last_seen > sensor.newest):
            sensor.newest = last_seen

    # -- several instances (one database) -----------------------------------------------------
    def berth_of(self, dev_eui: str) -> str | None:
        """The berth a sensor is bound to, if any (a report's row to lock)."""
        sensor = self._sensors.get(dev_eui) or self._sensors.get(dev_eui.lower())
        return None if sensor is None else sensor.berth.berth_id

    def silent(self, now: datetime) -> set[str]:
        """The berths ``sweep(now)`` would declare lost: read only, so a caller can lock their
        rows first. (Entry/exit sites are not berths; their counts are locked by site.)"""
        out: set[str] = set()
        for sensor in self._sensors.values():
            if sensor.lost:
                continue
            seen = sensor.last_seen
            basis = seen if seen is not None and seen > sensor.watch_from else sensor.watch_from
            if now - basis > sensor.limit:
                out.add(sensor.berth.berth_id)
        return out

    def unlose(self, berth_ids: Iterable[str]) -> None:
        """Forget that these berths' sensors were declared lost (that declaration was not
        committed), so the next ``sweep`` declares them again."""
        for bid in berth_ids:
            berth = self._berths.get(bid)
            if berth is not None and berth.sensor is not None:
                berth.sensor.lost = False

    def mirror_berth(
        self,
        berth_id: str,
        state: BerthState,
        since: datetime,
        last_seen: datetime | None,
        last_fcnt: int | None,
    ) -> tuple[Event, ...]:
        """Make a berth exactly what the database says (another instance wrote it, or this
        one is about to decide on it under the row's lock): nothing dirty, nothing in the
        journal, since the writer already persisted it and kept its sessions. Returns the
        site's new counts for the live view when they moved (``mirrored``: not telemetry)."""
        berth = self._berths.get(berth_id)
        if berth is None or berth.sensor is None:
            return ()
        sensor = berth.sensor
        site = berth.site
        before = site.counts() if site.by_sensors else None
        new = BerthState(state)
        if last_seen is not None and (sensor.last_seen is None or last_seen > sensor.last_seen):
            sensor.lost = False  # it spoke to another instance
        self._retally(site, berth.state, new)
        berth.state = new
        berth.since = since
        sensor.last_seen = last_seen
        sensor.last_fcnt = last_fcnt
        floor = sensor.floor
        sensor.newest = (
            floor
            if last_seen is None
            else last_seen
            if floor is None or last_seen > floor
            else floor
        )
        if before is None or site.counts() == before:
            return ()
        if since > site.updated_at:
            site.updated_at = since
        return (self._mirrored_counts(site, since),)

    def mirror_site_count(
        self, site_id: str, occupied: int, updated_at: datetime, seq: int | None
    ) -> tuple[Event, ...]:
        """An entry/exit site's running count exactly as the database has it, with the
        controller's ``seq`` it was taken at (see ``mirror_berth``)."""
        site = self._sites.get(site_id)
        if site is None or site.by_sensors:
            return ()
        before = site.counts()
        site.last_seq = seq
        site.count = min(max(occupied, 0), site.capacity)
        site.known = True
        site.updated_at = updated_at
        site.newest = updated_at
        if site.last_seen is None or updated_at > site.last_seen:
            site.last_seen = updated_at
            site.lost = False
        if site.counts() == before:
            return ()
        return (self._mirrored_counts(site, updated_at),)

    @staticmethod
    def _mirrored_counts(site: _Site, ts: datetime) -> SiteCountsChanged:
        """A site's counts after a mirrored change, for the live view only."""
        free, occupied, unknown = site.counts()
        return SiteCountsChanged(
            device_id="",
            ts=ts,
            site_id=site.site_id,
            capacity=site.capacity,
            free=free,
            occupied=occupied,
            unknown=unknown,
            mirrored=True,
        )

    def restore_site_count(self, site_id: str, occupied: int, updated_at: datetime) -> None:
        """Put back an entry/exit site's running count at start-up (no events, nothing dirty).

        Counts stamped up to ``updated_at`` are then stale, so a broker re-delivering old
        counts after a restart cannot count the same cars twice. Berth-sensor sites derive
        their counts from their berths and ignore this.
        """
        site = self._sites[site_id]
        if site.by_sensors:
            return
        site.count = min(max(occupied, 0), site.capacity)
        site.known = True
        site.updated_at = updated_at
        if site.newest is None or updated_at > site.newest:
            site.newest = updated_at

    def take_dirty(self) -> tuple[set[str], set[str]]:
        """(berth ids, site ids) changed since the last call, for write-behind persistence."""
        berths, sites = self._dirty_berths, self._dirty_sites
        self._dirty_berths, self._dirty_sites = set(), set()
        return berths, sites

    @property
    def changes_pending(self) -> int:
        """Berth changes not taken yet."""
        return len(self._changes)

    def take_changes(self) -> list[BerthStateChanged]:
        """Every berth state change since the last call, in order: the lossless feed that
        parking sessions are kept from (a stay that begins and ends between two calls is in
        it twice, where ``take_dirty`` only says the berth changed)."""
        changes, self._changes = self._changes, []
        return changes

    def controller_seq(self, site_id: str) -> int | None:
        """The controller's ``seq`` an entry/exit site's count was last taken at."""
        return self._sites[site_id].last_seq

    def controller_count(self, site_id: str) -> int | None:
        """An entry/exit site's running count even while stale (what persistence saves);
        None for berth-sensor sites and for sites that never had a count."""
        site = self._sites[site_id]
        if site.by_sensors or not site.known:
            return None
        return site.count

    # -- queries ----------------------------------------------------------------------------
    def site(self, site_id: str) -> SiteView:
        return self._site_view(self._sites[site_id])

    def sites(self) -> list[SiteView]:
        return [self._site_view(s) for s in self._sites.values()]

    def site_states(self) -> list[SiteState]:
        """Each site's view as a plain tuple, in ``SiteView``'s field order (``SiteView(*t)``):
        what the busiest public routes compare with what they served before, at a fraction
        of building the views."""
        return [(s.site_id, s.capacity, *s.counts(), s.updated_at, s.lost)
                for s in self._sites.values()]  # fmt: skip

    def berths(self, site_id: str) -> list[BerthView]:
        return [self._berth_view(b) for b in self._sites[site_id].berths]

    def berth(self, berth_id: str) -> BerthView:
        return self._berth_view(self._berths[berth_id])

    def counters(self) -> Mapping[str, int]:
        """Totals since construction: verdicts, counter resets, comms, clamping, drift."""
        return dict(self._counters)

    def _site_view(self, site: _Site) -> SiteView:
        free, occupied, unknown = site.counts()
        return SiteView(
            site_id=site.site_id,
            capacity=site.capacity,
            free=free,
            occupied=occupied,
            unknown=unknown,
            updated_at=site.updated_at,
            stale=site.lost,
        )

    @staticmethod
    def _berth_view(berth: _Berth) -> BerthView:
        s = berth.sensor
        return BerthView(
            berth_id=berth.berth_id,
            site_id=berth.site.site_id,
            state=berth.state,
            since=berth.since,
            last_seen=None if s is None else s.last_seen,
            dev_eui=None if s is None else s.dev_eui,
            model=None if s is None else s.model,
            comms_lost=False if s is None else s.lost,
            last_fcnt=None if s is None else s.last_fcnt,
        )

    def _berth(self, berth_id: str, error: type[Exception]) -> _Berth:
        berth = self._berths.get(berth_id)
        if berth is None:
            raise error(f"unknown berth {berth_id!r}")
        return berth
