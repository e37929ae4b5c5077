"""Simulated GB/T 28181 body cams: N officers' cams as SIP user agents over real UDP.

Each cam registers with MD5 digest (401, then credentials; qop=auth when offered, nonce-count
growing on a kept nonce), refreshes before expiry, sends keepalives and MobilePosition pushes
(the 2016 flat form, or the vendor list form for a share of the fleet) as its officer walks
between the town's sites (:mod:`gateway.demo.patrol`), answers the platform's DeviceInfo,
DeviceStatus (battery draining slowly) and Catalog queries (split over messages by SumNum),
accepts a MobilePosition SUBSCRIBE (then the positions go as NOTIFY in that dialog, at the
asked interval, until it expires) and now and then raises an alarm. A platform that stops
answering (restart) or forgets the cam (403/404) gets a new registration, with backoff.

Why one socket per cam: a body cam is a device with its own address. The platform answers to
the Via/rport of the source, sends queries to the registered Contact, and keys flood control
on the source address; one shared socket would make 2,000 cams look like one flooding device
and need our own demultiplexing of queries. 2,000 sockets are 2,000 descriptors (the limit
here is 20,000) and epoll does not slow down with them; the cams are plain objects with one
coroutine each, so the bench's fleet costs a few MB.

Requests are client transactions (retransmitted on Timer E until Timer F); everything runs in
one TaskGroup; ``stop`` ends every cam (unregistering, if asked, within two seconds).

The module is long because one cam's life (registration, cadence, answers, the subscription
dialog) reads best as one state machine; what it builds on is apart: ``bodycam_options``
(options, stats), ``bodycam_requests`` (the SIP it sends), ``sipua`` (socket and
transactions), ``patrol`` (the walk).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import random
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime
from typing import Any

from drivers.aio import wait_for
from drivers.backoff import Backoff
from drivers.gb28181.device import (
    CatalogEntry,
    DeviceQuery,
    Fix,
    PowerReport,
    alarm_body,
    catalog_bodies,
    device_info_body,
    device_status_body,
    keepalive_body,
    mobile_position_body,
    mobile_position_list_body,
    parse_query,
)
from drivers.gb28181.xmlsafe import ManscdpError
from drivers.sip.client_digest import Challenge, authorization, parse_challenge
from drivers.sip.errors import SipParseError
from drivers.sip.message import SipRequest
from drivers.sip.responses import response_to
from gateway.demo.bodycam_options import (
    DEFAULT_PLATFORM_ID,
    BodyCamOptions,
    CamSpec,
    SimStats,
    cam_id,
)
from gateway.demo.bodycam_requests import (
    CamAddress,
    Dialog,
    message,
    notify,
    register,
    subscribe_ok,
    target_of,
)
from gateway.demo.patrol import Patrol
from gateway.demo.sipua import SipEndpoint

__all__ = [
    "DEFAULT_PLATFORM_ID",
    "BodyCamOptions",
    "BodyCamSimulator",
    "CamSpec",
    "SimStats",
    "cam_id",
]

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 8  # requests one cam has outstanding; more are skipped (counted)
ALTITUDE_M = 1765.0  # 山丹县 lies about 1,765 m above sea level


def _new_id() -> str:
    return os.urandom(8).hex()


class _Cam:
    def __init__(self, spec: CamSpec, sim: BodyCamSimulator, index: int) -> None:
        self.spec = spec
        self.host = sim.options.host_for(index)
        self.id = spec.device_id
        self.sim = sim
        o = sim.options
        self.rng = random.Random(f"{o.seed}:{spec.device_id}")
        self.t0 = sim.clock().timestamp()
        self.patrol = Patrol(sim.sites, random.Random(self.rng.random()), self.t0)
        self.list_form = self.rng.random() < o.list_form_share
        self.battery_used = 100 - self.rng.uniform(55, 100)
        self.storage_free0 = self.rng.uniform(16_000, 60_000)
        self.sn = self.rng.randrange(1, 1000)
        self.cseq = 0
        self.reg_call_id = f"{_new_id()}@{self.host}"
        self.reg_tag = _new_id()
        self.challenge: Challenge | None = None
        self.nc = 0
        self.registered = False
        self.granted_s = o.register_expires_s
        self.dialog: Dialog | None = None
        self.failures = 0
        self.lost = False
        self.pos_now = False
        self.tasks: set[asyncio.Task[None]] = set()
        self.ep: SipEndpoint | None = None
        self.addr: CamAddress | None = None
        self._napping: asyncio.Future[None] | None = None
        video, alarm_in = self.id[:10] + "131" + self.id[13:], self.id[:10] + "134" + self.id[13:]
        label = spec.name or f"执法记录仪{self.id[-4:]}"
        self.catalog = [
            CatalogEntry(video, f"{label} 视频", "citygate-sim", "BWC-S1", self.id),
            CatalogEntry(alarm_in, f"{label} 报警", "citygate-sim", "BWC-S1", self.id),
        ]

    # -- waiting --------------------------------------------------------------------------

    async def _nap(self, seconds: float) -> None:
        """Sleep until *seconds* pass or :meth:`wake` (stop, lost registration, subscription)."""
        if self.sim.stopping or seconds <= 0:
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._napping = fut
        handle = loop.call_later(seconds, _resolve, fut)
        try:
            await fut
        finally:
            handle.cancel()
            self._napping = None

    def wake(self) -> None:
        if self._napping is not None:
            _resolve(self._napping)

    def spawn(self, work: Callable[[], Coroutine[Any, Any, None]]) -> None:
        if len(self.tasks) >= MAX_IN_FLIGHT or self.sim.stopping:
            self.sim.stats.skipped += 1
            return
        task = self.sim.tg.create_task(_guarded(work(), self.id))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    # -- life -----------------------------------------------------------------------------

    async def run(self) -> None:
        o = self.sim.options
        await self._nap(self.rng.uniform(0, o.start_spread_s))
        if self.sim.stopping:
            return
        self.ep = await SipEndpoint.open(
            self.host, self._on_request, self.sim.stats.counters, t1=o.t1, t2=o.t2
        )
        self.addr = CamAddress(self.id, o.platform_id, o.realm_, self.ep.local, o.platform)
        backoff = Backoff(base=1.0, cap=o.backoff_cap_s, rng=self.rng)
        try:
            while not self.sim.stopping:
                if await self._register(o.register_expires_s):
                    backoff.reset()
                    await self._online()
                elif not self.sim.stopping:
                    await self._nap(backoff.next_delay())
        finally:
            for task in list(self.tasks):
                task.cancel()
            if self.registered and o.unregister_on_stop:
                with contextlib.suppress(TimeoutError):
                    await wait_for(self._register(0), 2.0)
            self._unregistered()
            self.ep.close()

    def _unregistered(self) -> None:
        if self.registered:
            self.registered = False
            self.sim.stats.registered -= 1

    def _lose(self) -> None:
        if not self.lost:
            self.lost = True
            self.sim.stats.lost += 1
            self._unregistered()
            self.wake()

    async def _register(self, expires: int) -> bool:
        assert self.ep is not None and self.addr is not None
        stats, o = self.sim.stats, self.sim.options
        for _ in range(3):
            auth = None
            if self.challenge is not None:
                self.nc += 1
                auth = authorization(
                    self.challenge, username=self.id, password=self.spec.password,
                    method="REGISTER", uri=f"sip:{o.platform_id}@{o.realm_}",
                    nc=self.nc, cnonce=_new_id(),
                )  # fmt: skip
            self.cseq += 1
            req = register(
                self.addr, call_id=self.reg_call_id, from_tag=self.reg_tag, cseq=self.cseq,
                expires=expires, authorization=auth,
            )  # fmt: skip
            out = await self.ep.request(req, o.platform)
            r = out.response
            if r is None:
                stats.failed["register"] = stats.failed.get("register", 0) + 1
                self._unregistered()
                return False
            if r.status in (401, 407):
                stats.challenges += 1
                header = r.headers.get("WWW-Authenticate") or r.headers.get("Proxy-Authenticate")
                try:
                    self.challenge, self.nc = parse_challenge(header or ""), 0
                except SipParseError:
                    break
                continue
            if r.status == 423 and (r.headers.get("Min-Expires") or "").isdigit():
                expires = int(r.headers.get("Min-Expires") or expires)
                continue
            if not stats.done("register", out):
                break
            if expires == 0:
                self._unregistered()
                return True
            granted = r.headers.get("Expires") or ""
            self.granted_s = int(granted) if granted.isdigit() and int(granted) > 0 else expires
            if not self.registered:
                self.registered = True
                stats.registered += 1
            stats.registrations += 1
            return True
        stats.refused += 1
        self.challenge = None
        self._unregistered()
        return False

    async def _online(self) -> None:
        o = self.sim.options
        loop = asyncio.get_running_loop()
        now = loop.time()
        refresh = self.granted_s * 0.8 if self.granted_s < 300 else self.granted_s - 60
        refresh_at = now + refresh
        next_ka = now + self.rng.uniform(0, o.keepalive_interval_s)
        next_pos = now + self.rng.uniform(0, o.position_interval_s)
        rate = o.alarm_rate_per_h / 3600
        next_alarm = now + self.rng.expovariate(rate) if rate > 0 else math.inf
        self.failures, self.lost = 0, False
        while not self.sim.stopping and not self.lost:
            now = loop.time()
            if now >= refresh_at:
                if not await self._register(o.register_expires_s):
                    return
                refresh = self.granted_s * 0.8 if self.granted_s < 300 else self.granted_s - 60
                refresh_at = loop.time() + refresh
                continue
            if now >= next_ka:
                self.spawn(lambda: self._message("keepalive", keepalive_body(self._sn(), self.id)))
                next_ka = max(next_ka + o.keepalive_interval_s, now)
            dialog = self._dialog(now)
            interval = dialog.interval_s if dialog is not None else o.position_interval_s
            if self.pos_now or now >= next_pos:
                next_pos = now + interval if self.pos_now else max(next_pos + interval, now)
                self.pos_now = False
                self.spawn(self._position)
            if now >= next_alarm:
                self.spawn(self._alarm)
                next_alarm = now + self.rng.expovariate(rate)
            await self._nap(min(refresh_at, next_ka, next_pos, next_alarm) - loop.time())

    # -- what the cam says ----------------------------------------------------------------

    def _sn(self) -> int:
        self.sn += 1
        return self.sn

    def _fix(self) -> Fix:
        at = self.sim.clock()
        spot = self.patrol.at(at.timestamp())
        alt = ALTITUDE_M + 3 * math.sin(spot.latitude * 1e4)
        return Fix(at, spot.longitude, spot.latitude, spot.speed_kmh, spot.direction_deg, alt)

    def _power(self) -> PowerReport:
        hours = (self.sim.clock().timestamp() - self.t0) / 3600
        used = self.battery_used + self.sim.options.battery_drain_per_h * hours
        battery = round(100 - used % 95)  # a fresh battery is swapped in at 5 %
        free = self.storage_free0 - (hours * 900) % (self.storage_free0 - 1024)  # 0.25 MB/s
        return PowerReport(battery, 65536.0, round(free))

    async def _message(self, kind: str, body: bytes) -> None:
        assert self.ep is not None and self.addr is not None
        self.cseq += 1
        req = message(self.addr, body, call_id=_new_id(), from_tag=_new_id(), cseq=self.cseq)
        out = await self.ep.request(req, self.sim.options.platform)
        if self.sim.stats.done(kind, out):
            self.failures = 0
            return
        r = out.response
        if r is None:
            self.failures += 1
            if self.failures >= self.sim.options.keepalive_failures:
                self._lose()
        elif r.status in (401, 403, 404):  # the platform does not know us (any more)
            self._lose()

    async def _position(self) -> None:
        fix, sn = self._fix(), self._sn()
        tz = self.sim.options.tz
        dialog = self._dialog(asyncio.get_running_loop().time())
        if self.list_form:
            body = mobile_position_list_body(sn, self.id, [(self.id, fix)], tz)
        else:
            body = mobile_position_body(sn, self.id, fix, tz)
        if dialog is None:
            await self._message("position", body)
            return
        assert self.ep is not None and self.addr is not None
        req = notify(self.addr, dialog, body, asyncio.get_running_loop().time())
        out = await self.ep.request(req, dialog.target)
        ended = out.response is not None and out.response.status == 481
        if not self.sim.stats.done("notify", out) and ended and self.dialog is dialog:
            self.dialog = None  # the platform ended it: back to MESSAGE pushes

    async def _alarm(self) -> None:
        body = alarm_body(
            self._sn(), self.id, time=self.sim.clock(), tz=self.sim.options.tz,
            priority=self.rng.choice((1, 2, 3)), method=2, alarm_type=1,
            description="一键报警", fix=self._fix(),
        )  # fmt: skip
        await self._message("alarm", body)

    def _dialog(self, now: float) -> Dialog | None:
        if self.dialog is not None and self.dialog.expires_at <= now:
            self.dialog = None
        return self.dialog

    # -- what the platform asks -------------------------------------------------------------

    def _on_request(self, req: SipRequest, source: tuple[str, int]) -> None:
        assert self.ep is not None
        if req.method == "MESSAGE":
            try:
                q = parse_query(req.body, req.content_type)
            except ManscdpError:
                self.ep.respond(req, response_to(req, 400), source)
                return
            self.ep.respond(req, response_to(req, 200), source)
            self.spawn(lambda: self._answer(q))
        elif req.method == "SUBSCRIBE":
            self._on_subscribe(req, source)
        elif req.method == "ACK":
            return
        elif req.method == "OPTIONS":
            self.ep.respond(req, response_to(req, 200), source)
        else:
            allow = [("Allow", "MESSAGE, SUBSCRIBE, OPTIONS")]
            self.ep.respond(req, response_to(req, 405, headers=allow), source)

    async def _answer(self, q: DeviceQuery) -> None:
        cmd, o = q.cmd_type.lower(), self.sim.options
        if cmd == "deviceinfo":
            bodies = [
                device_info_body(
                    q.sn, self.id, name=self.spec.name or self.id, manufacturer="citygate-sim",
                    model="BWC-S1", firmware="1.0.0", channels=len(self.catalog),
                    power=self._power(),
                )
            ]  # fmt: skip
        elif cmd == "devicestatus":
            bodies = [
                device_status_body(
                    q.sn, self.id, device_time=self.sim.clock(), tz=o.tz, recording=True,
                    power=self._power(),
                )
            ]  # fmt: skip
        elif cmd == "catalog":
            bodies = catalog_bodies(q.sn, self.id, self.catalog, per_part=o.catalog_per_part)
        else:
            return
        for body in bodies:
            await self._message("answer", body)
        self.sim.stats.queries_answered += 1

    def _on_subscribe(self, req: SipRequest, source: tuple[str, int]) -> None:
        assert self.ep is not None and self.addr is not None
        event = (req.headers.get("Event") or "").partition(";")[0].strip().lower()
        if event != "presence":
            self.ep.respond(req, response_to(req, 489), source)
            return
        try:
            q = parse_query(req.body, req.content_type)
            expires_h = (req.headers.get("Expires") or "3600").strip()
            expires = int(expires_h) if expires_h.isdigit() else -1
            from_, to_tag = req.from_, req.to.tag
        except (ManscdpError, SipParseError):
            q, expires = None, -1
        if q is None or q.cmd_type.lower() != "mobileposition" or not 0 <= expires <= 86400:
            self.ep.respond(req, response_to(req, 400), source)
            return
        now = asyncio.get_running_loop().time()
        d = self._dialog(now)
        if to_tag:  # a refresh: only in the dialog it created (else 481, RFC 6665 §4.1.2.2)
            if d is None or (d.call_id, d.local_tag, d.remote_tag) != (
                req.call_id, to_tag, from_.tag or "",
            ):  # fmt: skip
                self.ep.respond(req, response_to(req, 481), source)
                return
        else:
            d = Dialog(
                req.call_id, _new_id(), from_.tag or "", from_.uri, target_of(req, source),
                now, max(1, int(self.sim.options.position_interval_s)),
            )  # fmt: skip
        d.expires_at = now + expires
        d.interval_s = q.interval_s or d.interval_s
        self.dialog = d if expires > 0 else None
        self.ep.respond(req, subscribe_ok(self.addr, req, d.local_tag, expires), source)
        self.sim.stats.subscriptions += 1
        if expires > 0:
            self.pos_now = True  # the notifier's first NOTIFY goes at once (RFC 6665 §4.2.1)
            self.wake()


async def _guarded(work: Coroutine[Any, Any, None], device_id: str) -> None:
    """One request of one cam: a bug in it is logged, never the end of the fleet."""
    try:
        await work
    except Exception:
        log.exception("simulated cam %s failed", device_id)


def _resolve(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class BodyCamSimulator:
    """The fleet. ``run(stop)`` until *stop* is set; ``stats`` as it goes."""

    def __init__(
        self,
        cams: Sequence[CamSpec],
        options: BodyCamOptions,
        sites: Sequence[tuple[float, float]],
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.options = options
        self.sites = list(sites)
        self.clock = clock
        self.stats = SimStats()
        self.stopping = False
        self.cams = [_Cam(spec, self, i) for i, spec in enumerate(cams)]
        self._tg: asyncio.TaskGroup | None = None

    @property
    def tg(self) -> asyncio.TaskGroup:
        assert self._tg is not None, "the simulator is not running"
        return self._tg

    def cam(self, device_id: str) -> _Cam:
        return next(c for c in self.cams if c.id == device_id)

    async def run(self, stop: asyncio.Event) -> SimStats:
        async def watch() -> None:
            await stop.wait()
            self.stopping = True
            for cam in self.cams:
                cam.wake()

        async def keep(cam: _Cam) -> None:
            while not self.stopping:
                try:
                    await cam.run()
                except Exception:
                    log.exception("simulated cam %s failed; it starts again", cam.id)
                    await cam._nap(5.0)

        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                tg.create_task(watch())
                for cam in self.cams:
                    tg.create_task(keep(cam))
        finally:
            self._tg = None
        return self.stats
