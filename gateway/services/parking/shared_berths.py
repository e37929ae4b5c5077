"""Berths and car-park counts shared by several instances on one PostgreSQL database.

Whichever instance a sensor's uplink reaches (an MQTT shared subscription picks one), the
uplink is decided once and in frame-counter order: the receiving instance queues it instead
of applying it at once, and its next write-behind flush (``SharedPersister``), in one
transaction, locks the rows of the berths the queued uplinks name (``SELECT … FOR UPDATE``,
in key order), makes its book exactly what those rows say (``OccupancyBook.mirror_berth``),
applies the uplinks in arrival order with the book's own ordering rules, and writes the
rows, the parking sessions the changes open or close and a NOTIFY naming the berths, all in
that transaction. Two instances deciding on one berth take turns on its row, each starting
from the other's committed frame counter, so no frame is applied twice or after a newer one,
and sessions (money) follow the one committed order.

The other instances re-read the notified rows into their books (``run``), and the notified
devices' health (last seen, battery, signal) into their directories: a dedicated
connection LISTENs, and at each (re)connect every berth and count is re-read, so a
notification lost with a connection costs nothing. A re-read that a flush of this instance
overtaken by a flush of this instance is dropped (``_epoch``): that flush read the row later,
under its lock.

Silence (comms lost, the berth unknown) is declared by one instance, the holder of an
advisory lock (``leader``), under the same row locks, so every instance shows it and it is
alerted once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from events import BerthState, CarParkCount, CommsLost, Event
from gateway.directory.devices import DeviceDirectory
from gateway.infra.bus import EventBus
from gateway.infra.listen import listening
from gateway.logs import OnceLogger
from parking.occupancy import OccupancyBook, Outcome, SensorReport

log = logging.getLogger(__name__)

CHANNEL = "citygate_berths"
LEADER_KEY = 0x6367_0010  # pg_try_advisory_lock: the instance that declares silent sensors lost
RETRY_S = 1.0
NOTICE_BYTES = 7000  # PostgreSQL's NOTIFY payload limit is 8000 bytes

Item = tuple[SensorReport | CarParkCount, bool | None]

_LOCK_BERTHS = text(
    "SELECT id, state, since, last_seen, last_fcnt FROM berths "
    "WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
)
_LOCK_SITES = text(
    "SELECT id, occupied_count, count_updated_at, count_seq FROM sites "
    "WHERE id = ANY(:ids) ORDER BY id FOR UPDATE"
)
_READ_BERTHS = text(
    "SELECT id, state, since, last_seen, last_fcnt FROM berths "
    "WHERE id = ANY(:ids) AND since IS NOT NULL"
)
_READ_SITES = text(
    "SELECT id, occupied_count, count_updated_at, count_seq FROM sites "
    "WHERE id = ANY(:ids) AND count_updated_at IS NOT NULL"
)
_ALL_BERTHS = text(
    "SELECT id, state, since, last_seen, last_fcnt FROM berths WHERE since IS NOT NULL"
)
_ALL_SITES = text(
    "SELECT id, occupied_count, count_updated_at, count_seq FROM sites "
    "WHERE count_updated_at IS NOT NULL"
)

_DEVICE_HEALTH = "SELECT id, last_seen, battery_mv, battery_pct, rssi, snr FROM devices "
_READ_DEVICES = text(_DEVICE_HEALTH + "WHERE id = ANY(:ids)")
_ALL_DEVICES = text(_DEVICE_HEALTH + "WHERE last_seen IS NOT NULL")


@dataclass
class Decided:
    """What one locked decision did: each item's outcome (in order) and the sweep's events."""

    outcomes: list[tuple[SensorReport | CarParkCount, Outcome]] = field(default_factory=list)
    swept: tuple[Event, ...] = ()
    swept_at: datetime | None = None


def notices(
    instance: str, berths: Iterable[str], sites: Iterable[str], devices: Iterable[str] = ()
) -> list[str]:
    """NOTIFY payloads naming *berths*, *sites* and *devices* (their health: last seen,
    battery, signal), each under PostgreSQL's size limit."""
    out: list[str] = []
    parts: dict[str, list[str]] = {"b": [], "s": [], "d": []}
    size = 0

    def close() -> None:
        nonlocal size
        if any(parts.values()):
            out.append(json.dumps({"i": instance, **parts}, separators=(",", ":")))
        for v in parts.values():
            v.clear()
        size = 0

    for kind, ids in (("b", berths), ("s", sites), ("d", devices)):
        for one in sorted(ids):
            if size + len(one) + 3 > NOTICE_BYTES:
                close()
            parts[kind].append(one)
            size += len(one) + 3
    close()
    return out


def parse_notice(payload: str) -> tuple[str, list[str], list[str], list[str]] | None:
    """(instance, berths, sites, devices) of a payload; None for one this release did not
    write."""
    try:
        data = json.loads(payload)
        inst, berths, sites = data["i"], data["b"], data["s"]
        devices = data.get("d", [])
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    lists = (berths, sites, devices)
    if not isinstance(inst, str) or not all(isinstance(x, list) for x in lists):
        return None
    b, s, d = ([x for x in one if isinstance(x, str)] for one in lists)
    return inst, b, s, d


class SharedBerths:
    """The queue of undecided uplinks, the locked decision, and the follower of the others."""

    def __init__(
        self,
        engine: AsyncEngine,
        sessions: async_sessionmaker[Any],
        book: OccupancyBook,
        directory: DeviceDirectory,
        bus: EventBus,
        instance: str,
    ) -> None:
        self.instance = instance
        self._directory = directory
        self._engine = engine
        self._sessions = sessions
        self._book = book
        self._bus = bus
        self._queue: list[Item] = []
        self.leader = False
        self._sweep_at: datetime | None = None
        self._epoch = 0
        self._decided: dict[str, int] = {}  # berth or "site:" id -> epoch of our last decision
        self._deciding: set[str] = set()  # ... of the decision whose transaction is open
        self._wanted_b: set[str] = set()
        self._wanted_s: set[str] = set()
        self._wanted_d: set[str] = set()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._warn = OnceLogger(log, "berths across instances")
        self.followed = asyncio.Event()  # set once the first full re-read is done
        self.on_sweep: Callable[[], None] = lambda: None  # the persister's wake

    # -- the receiving side ---------------------------------------------------------------------
    def submit(self, event: SensorReport | CarParkCount, occupied: bool | None = None) -> None:
        """Queue an uplink for the next flush's locked decision."""
        self._queue.append((event, occupied))

    def take(self) -> list[Item]:
        items, self._queue = self._queue, []
        return items

    def put_back(self, items: list[Item], decided: Decided | None) -> None:
        """A decision's transaction failed: its items go first into the next one, and a
        sweep it made is made again."""
        self._queue[:0] = items
        if decided is not None and decided.swept_at is not None:
            self._book.unlose(
                e.berth_id for e in decided.swept if isinstance(e, CommsLost) and e.berth_id
            )
            if self._sweep_at is None:
                self._sweep_at = decided.swept_at

    @property
    def sweep_pending(self) -> bool:
        return self._sweep_at is not None

    def sweep(self, now: datetime) -> tuple[Event, ...]:
        """``OccupancyBook.sweep`` for shared berths: the leader asks its next flush to
        declare silent sensors lost (at once: ``on_sweep``), under the rows' locks; the
        events come once that is committed, so none are returned here."""
        if self.leader:
            self._sweep_at = now
            self.on_sweep()
        return ()

    async def decide(self, db: AsyncSession, items: Sequence[Item]) -> Decided:
        """Lock the rows *items* (and a due sweep) touch, make the book what they say, then
        apply *items* in order. The caller writes the rows and commits (or rolls back: the
        next decision re-reads the rows, which undoes this one's changes to the book)."""
        book = self._book
        sweep_at, self._sweep_at = self._sweep_at, None
        berth_ids: set[str] = set()
        site_ids: set[str] = set()
        for event, _ in items:
            if isinstance(event, CarParkCount):
                site_ids.add(event.site_id)
            else:
                bid = book.berth_of(event.device_id)
                if bid is not None:
                    berth_ids.add(bid)
        if sweep_at is not None:
            berth_ids |= book.silent(sweep_at)
        self._epoch += 1
        for bid in berth_ids:
            self._decided[bid] = self._epoch
        for sid in site_ids:
            self._decided["site:" + sid] = self._epoch
        self._deciding = berth_ids | {"site:" + sid for sid in site_ids}
        if berth_ids:
            rows = await db.execute(_LOCK_BERTHS, {"ids": sorted(berth_ids)})
            for r in rows:
                if r.since is not None:
                    book.mirror_berth(r.id, BerthState(r.state), r.since, r.last_seen, r.last_fcnt)
        if site_ids:
            rows = await db.execute(_LOCK_SITES, {"ids": sorted(site_ids)})
            for r in rows:
                if r.count_updated_at is not None:
                    book.mirror_site_count(r.id, r.occupied_count, r.count_updated_at, r.count_seq)
        out = Decided(swept_at=sweep_at)
        for event, occupied in items:
            if isinstance(event, CarParkCount):
                out.outcomes.append((event, book.apply_count(event)))
            else:
                out.outcomes.append((event, book.apply(event, occupied)))
        if sweep_at is not None:
            out.swept = book.sweep(sweep_at)
        return out

    def finished(self) -> None:
        """The decision's transaction is over (committed or not)."""
        self._deciding = set()

    async def notify(
        self,
        db: AsyncSession,
        berths: Iterable[str],
        sites: Iterable[str],
        devices: Iterable[str] = (),
    ) -> None:
        """NOTIFY in *db*'s transaction (PostgreSQL delivers it at commit)."""
        for payload in notices(self.instance, berths, sites, devices):
            await db.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})

    # -- following the others -------------------------------------------------------------------
    async def run(self) -> None:
        """Follow the other instances' writes and hold (or try for) the leader's lock, on one
        dedicated connection; reconnect quietly when it is lost."""
        while True:
            self._lost.clear()
            try:
                async with listening(
                    self._engine, CHANNEL, self._notified, self._on_lost
                ) as driver:
                    await self._follow(driver)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.failed(f"{type(exc).__name__}: {exc}")
            finally:
                self.leader = False
            await asyncio.sleep(RETRY_S)

    async def _follow(self, driver: Any) -> None:
        """Re-read everything, then what the others notify; try for the leader's lock."""
        await self._resync()
        self.followed.set()
        self._warn.recovered()
        while not self._lost.is_set():
            if not self.leader:
                self.leader = bool(
                    await driver.fetchval("SELECT pg_try_advisory_lock($1)", LEADER_KEY)
                )
                if self.leader:
                    log.info("berths: %s declares silent sensors lost", self.instance)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RETRY_S):
                    await self._wake.wait()
            self._wake.clear()
            await self._reread()

    def _on_lost(self) -> None:
        self._lost.set()
        self._wake.set()

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None or notice[0] == self.instance:
            return
        self._wanted_b.update(notice[1])
        self._wanted_s.update(notice[2])
        self._wanted_d.update(notice[3])
        self._wake.set()

    async def _reread(self) -> None:
        if not (self._wanted_b or self._wanted_s or self._wanted_d):
            return
        berths, sites, devices = self._wanted_b, self._wanted_s, self._wanted_d
        self._wanted_b, self._wanted_s, self._wanted_d = set(), set(), set()
        try:
            await self._read(berths, sites, devices, whole=False)
        except Exception:
            self._wanted_b |= berths  # read again with the next wake or reconnect
            self._wanted_s |= sites
            self._wanted_d |= devices
            raise

    async def _resync(self) -> None:
        self._wanted_b.clear()
        self._wanted_s.clear()
        self._wanted_d.clear()
        await self._read(set(), set(), set(), whole=True)

    async def _read(
        self, berths: set[str], sites: set[str], devices: set[str], *, whole: bool
    ) -> None:
        start = self._epoch
        async with self._sessions() as db:
            b_rows = list(
                await db.execute(_ALL_BERTHS)
                if whole
                else await db.execute(_READ_BERTHS, {"ids": sorted(berths)})
                if berths
                else []
            )
            s_rows = list(
                await db.execute(_ALL_SITES)
                if whole
                else await db.execute(_READ_SITES, {"ids": sorted(sites)})
                if sites
                else []
            )
            d_rows = list(
                await db.execute(_ALL_DEVICES)
                if whole
                else await db.execute(_READ_DEVICES, {"ids": sorted(devices)})
                if devices
                else []
            )
        decided, deciding = self._decided, self._deciding
        book = self._book
        events: list[Event] = []
        # A row one of our flushes has locked since this read began, or holds now, is left to
        # that flush: it read the row later, under the lock, and what it commits is newer.
        for r in b_rows:
            if r.id in deciding or decided.get(r.id, -1) > start:
                continue
            with contextlib.suppress(KeyError, ValueError):
                events += book.mirror_berth(
                    r.id, BerthState(r.state), r.since, r.last_seen, r.last_fcnt
                )
        for r in s_rows:
            key = "site:" + r.id
            if key in deciding or decided.get(key, -1) > start:
                continue
            with contextlib.suppress(KeyError, ValueError):
                events += book.mirror_site_count(
                    r.id, r.occupied_count, r.count_updated_at, r.count_seq
                )
        for r in d_rows:
            entry = self._directory.get(r.id)
            if entry is None or r.last_seen is None:
                continue
            if entry.last_seen is None or r.last_seen > entry.last_seen:
                # Health another instance heard: set, not ``seen`` (this one writes nothing).
                entry.last_seen = r.last_seen
                entry.battery_mv, entry.battery_pct = r.battery_mv, r.battery_pct
                entry.rssi, entry.snr = r.rssi, r.snr
        for ev in events:
            self._bus.publish(ev)
