"""Body cams across several instances on one PostgreSQL database (issue 16).

A cam registers with one instance (the one its SIP reaches); that instance keeps it in memory
and writes its ``bodycam_state`` row behind the signalling, naming itself in ``instance_id``
and NOTIFYing the cams it wrote in the same transaction (``notify``). Every other instance
LISTENs on a dedicated connection and re-reads the notified rows into its own memory as
mirrors (``CamLive.elsewhere``), and re-reads every row at each (re)connect, so a notification
lost with a connection costs nothing. A mirror is shown (presence from the *stored* keepalive
and registration, so an instance that never heard the cam does not call it offline early;
power, position), never written, queried or subscribed from here; alarms and their cases are
filed by the instance that received them. A REGISTER from the cam reaching this instance
makes it the holder; other requests for a cam a live instance holds (a NOTIFY in that
instance's old subscription dialog after the cam moved) are answered and dropped, so two
instances never take turns on one cam. Each instance holds an advisory lock (``LIVE_NS``, a
hash of its id) on its listening connection: a cam whose holder's lock has been free for
``GRACE_S`` (the holder died or restarted) is anyone's, taken by the first instance that
hears it, as a single instance takes its restored cams after a restart. A row re-read while
this instance has an unwritten change of the cam is left alone (its own write is newer).
Re-reads and flushes take turns on the service's flush lock, so a re-read never overtakes a
flush in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from gateway.infra.listen import listening
from gateway.infra.storage.schema import BodycamStateRow
from gateway.logs import OnceLogger
from gateway.services.bodycams.cams import cam_from_row
from gateway.services.bodycams.service import BodycamService

__all__ = ["CHANNEL", "SharedCams", "notices", "parse_notice"]

log = logging.getLogger(__name__)

CHANNEL = "citygate_bodycams"
RETRY_S = 1.0
NOTICE_BYTES = 7000  # PostgreSQL's NOTIFY payload limit is 8000 bytes
LIVE_NS = 0x6367_0021  # pg_try_advisory_lock(LIVE_NS, instance_key(id)): held while following
GRACE_S = 5.0  # a holder's lock free this long: its cams are anyone's (not a reconnect)
_LIVE = (
    "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND granted "
    "AND classid::bigint = $1 AND objsubid = 2"
)


def instance_key(instance: str) -> int:
    """The second key of *instance*'s liveness lock: 31 bits of its id's hash."""
    digest = hashlib.blake2b(instance.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") & 0x7FFF_FFFF


def notices(instance: str, ids: Iterable[str]) -> list[str]:
    """NOTIFY payloads naming the cams *ids*, each under PostgreSQL's size limit."""
    out: list[str] = []
    batch: list[str] = []
    size = 0
    for one in sorted(set(ids)):
        if batch and size + len(one) + 3 > NOTICE_BYTES:
            out.append(json.dumps({"i": instance, "c": batch}, separators=(",", ":")))
            batch, size = [], 0
        batch.append(one)
        size += len(one) + 3
    if batch:
        out.append(json.dumps({"i": instance, "c": batch}, separators=(",", ":")))
    return out


def parse_notice(payload: str) -> tuple[str, list[str]] | None:
    """(instance, cams) of a payload; None for one this release did not write."""
    try:
        data = json.loads(payload)
        inst, cams = data["i"], data["c"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(inst, str) or not isinstance(cams, list):
        return None
    return inst, [x for x in cams if isinstance(x, str)]


class SharedCams:
    """The NOTIFY of this instance's writes, and the follower of the other instances'."""

    def __init__(self, engine: AsyncEngine, service: BodycamService, instance: str) -> None:
        self._engine, self._service, self.instance = engine, service, instance
        self._wanted: set[str] = set()
        self._wake = asyncio.Event()
        self._lost = asyncio.Event()
        self._warn = OnceLogger(log, "body cams: following the other instances")
        self.followed = asyncio.Event()  # set once the first full re-read is done
        self.mirrored = 0  # rows re-read (a test's and a log's figure)
        self.connects = 0  # (re)connections of the listening connection
        self._live: set[int] = set()  # the instance keys whose liveness lock is held
        self._missing: dict[int, float] = {}  # key: since when (monotonic) it is not held
        service.store.instance = instance
        service.store.notify = self.notify

    async def notify(self, db: AsyncSession, ids: list[str]) -> None:
        """In the writer's transaction: the other instances re-read *ids* after the commit."""
        for payload in notices(self.instance, ids):
            await db.execute(text("SELECT pg_notify(:c, :p)"), {"c": CHANNEL, "p": payload})

    async def run(self) -> None:
        """Follow the other instances' writes on one dedicated connection; reconnect quietly."""
        while True:
            self._lost.clear()
            try:
                async with listening(
                    self._engine, CHANNEL, self._notified, self._lost.set
                ) as driver:
                    await driver.fetchval("SELECT pg_try_advisory_lock($1, $2)",
                                          LIVE_NS, instance_key(self.instance))  # fmt: skip
                    self._wanted.clear()
                    await self._alive(driver)
                    await self._read(None)
                    self.connects += 1
                    self.followed.set()
                    self._warn.recovered()
                    while not self._lost.is_set():
                        with contextlib.suppress(TimeoutError):
                            async with asyncio.timeout(RETRY_S):
                                await self._wake.wait()
                        self._wake.clear()
                        await self._alive(driver)
                        self._orphan_the_dead()
                        if self._wanted:
                            ids, self._wanted = self._wanted, set()
                            try:
                                await self._read(sorted(ids))
                            except Exception:
                                self._wanted |= ids  # again with the next wake or reconnect
                                raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._warn.failed(f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(RETRY_S)

    async def _alive(self, driver: Any) -> None:
        live = {int(k) for (k,) in await driver.fetch(_LIVE, LIVE_NS)}
        now = time.monotonic()
        for key in self._live - live:
            self._missing.setdefault(key, now)
        for key in live:
            self._missing.pop(key, None)
        self._live = live

    def dead(self, instance: str) -> bool:
        """Whether *instance*'s liveness lock has been free for ``GRACE_S`` (or was never
        seen held since this instance follows)."""
        key = instance_key(instance)
        if key in self._live:
            return False
        since = self._missing.get(key)
        return since is None or time.monotonic() - since >= GRACE_S

    def _orphan_the_dead(self) -> None:
        """Cams whose holder died: anyone's now (the first instance that hears one takes it)."""
        gone: dict[str, bool] = {}
        for cam in self._service.cams.values():
            holder = cam.elsewhere
            if holder is not None and gone.setdefault(holder, self.dead(holder)):
                cam.elsewhere = None

    def _notified(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        notice = parse_notice(payload)
        if notice is None or notice[0] == self.instance:
            return
        self._wanted.update(notice[1])
        self._wake.set()

    async def _read(self, ids: list[str] | None) -> None:
        svc = self._service
        async with svc.flush_lock:  # never between a flush's read of the cams and its commit
            rows = await svc.store.states(ids)
            self.mirror(rows)

    def mirror(self, rows: list[BodycamStateRow]) -> None:
        """Take the rows other instances wrote into memory (not the ones with unwritten
        changes here); a newer position moves the cam on this instance's live map too."""
        svc = self._service
        c = svc.config
        svc.store.stored([r.device_id for r in rows])
        for row in rows:
            if row.instance_id is None or row.instance_id == self.instance:
                continue
            old = svc.cams.get(row.device_id)
            if old is not None and old.elsewhere is None and old.unwritten():
                continue
            cam = cam_from_row(row, c.keepalive_interval_s, c.keepalive_count)
            if self.dead(row.instance_id):
                cam.elsewhere = None  # its writer is gone: anyone's
            svc.cams[row.device_id] = cam
            self.mirrored += 1
            p = cam.position
            if p is not None and (
                old is None or old.position is None or old.position.time < p.time
            ):
                svc.publish_position(cam.device_id, p, mirrored=True)
