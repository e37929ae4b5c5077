"""The GB/T 28181 signalling platform for the officers' body cams (no media).

Glue between the SIP endpoint (``drivers.sip.transport``) and the pure parts: requests are
matched to server transactions first (a retransmission is answered from the table, never
processed twice), then REGISTER goes to the registrar, MESSAGE and NOTIFY bodies to
``apply_message``. After a registration the platform asks DeviceInfo and DeviceStatus and
subscribes to MobilePosition (``Event: presence``), refreshing the subscription in the dialog
it created before it expires; a 481 ends that dialog and a new SUBSCRIBE starts one (never a
loop on a stale dialog). A cam restored after a restart is asked again at its first keepalive.
State is written behind (``run``); everything the API shows is flushed first.

A few lines over 400, long because the receiving paths (quick lane, general, REGISTER) and
the write-behind share the cams and the transaction tables; the queries and the quick lane
are mixins already.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.manscdp import Manscdp, parse_manscdp
from drivers.gb28181.presence import PresenceState
from drivers.gb28181.xmlsafe import ManscdpError, XmlLimits
from drivers.sip.digest import NonceBook
from drivers.sip.errors import SipParseError
from drivers.sip.flood import FloodControl, FloodLimits
from drivers.sip.message import SipRequest, SipResponse, stamp_received
from drivers.sip.responses import response_to
from drivers.sip.transactions import T1, Retransmission, ServerTransactions
from drivers.sip.transport import Peer, SipEndpoint
from events import BodycamPosition, CaseRaised
from gateway.config import BodycamsConfig
from gateway.directory.bodycams import credential, credentials, set_passwords
from gateway.infra.bus import EventBus
from gateway.metrics import FastCounter, Metrics
from gateway.services.bodycams.asking import Asker
from gateway.services.bodycams.cams import CamLive, due_cams, routine_values, row_values
from gateway.services.bodycams.messages import PendingQueries, apply_message, body_charset
from gateway.services.bodycams.outgoing import Outgoing
from gateway.services.bodycams.quicklane import QuickLane
from gateway.services.bodycams.registrar import (
    Registrar,
    RegistrarPolicy,
    contact_uri,
    device_of,
)
from gateway.services.bodycams.requests import Local
from gateway.services.bodycams.store import AlarmRecord, BodycamStore
from parking.enforcement import RuleBook

__all__ = ["BodycamService"]

log = logging.getLogger(__name__)
ALLOW = "REGISTER, MESSAGE, NOTIFY, OPTIONS, ACK, BYE"


class BodycamService(Asker, QuickLane):
    def __init__(
        self,
        config: BodycamsConfig,
        store: BodycamStore,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], datetime],
        zone: ZoneInfo,
        on_case: Callable[[], None] = lambda: None,
        rules: Callable[[], RuleBook | None] = lambda: None,
    ) -> None:
        self.config = c = config
        self.store, self.bus, self.clock, self.zone = store, bus, clock, zone
        self._kick_cases, self.rules = on_case, rules
        self.counts = FastCounter(
            "citygate_bodycam_sip",
            "Body cam signalling by what (register, message, drop, query, subscribe, alarm) "
            "and outcome or reason",
            ["what", "outcome"],
            metrics.registry,
        )
        self.metrics = metrics
        self.credentials: dict[str, Any] = {}
        self.officers: dict[str, Any] = {}
        self.cams: dict[str, CamLive] = {}
        self.registrar = Registrar(
            RegistrarPolicy(
                c.effective_realm,
                c.register_expires_min_s,
                c.register_expires_max_s,
                c.auth_failures_before_slowdown,
                c.slowdown_s,
            ),
            NonceBook(os.urandom(32), lifetime=c.nonce_ttl_s),
            self.credentials,
            os.urandom,
            zone,
        )
        self.endpoint = SipEndpoint(
            self.on_message,
            self.on_drop,
            max_size=c.max_message_bytes,
            rate_per_s=c.per_source_rate_per_s,
            burst=c.per_source_burst,
            on_quick=self.on_quick,
        )
        self.flood = FloodControl(
            FloodLimits(c.per_device_rate_per_s, c.per_device_burst, c.per_host_rate_per_s,
                        c.per_host_burst)
        )  # fmt: skip
        self.tx = {"UDP": ServerTransactions(), "TCP": ServerTransactions(lifetime=2 * T1)}
        self.outgoing = Outgoing(self.endpoint.send, os.urandom)
        self.queries = PendingQueries()
        self.catalogs = CatalogAssembler()
        self.limits = XmlLimits(max_bytes=c.max_message_bytes)
        self._sn = itertools.count(int.from_bytes(os.urandom(2), "big") + 1)
        self._alarms: list[AlarmRecord] = []
        self.flush_lock = asyncio.Lock()
        self.local = Local(c.platform_id, c.effective_realm, c.host, c.sip_port)
        self.activate: Callable[[str], None] = lambda device_id: None  # the lifecycle's

    # -- life cycle ----------------------------------------------------------------------------
    async def load(self) -> None:
        c = self.config
        creds, officers, cams = await self.store.load(c.keepalive_interval_s, c.keepalive_count)
        self.credentials.update(creds)
        self.officers.update(officers)
        self.cams.update(cams)
        now = self.clock()
        online = sum(1 for cam in cams.values() if cam.presence.online(now))
        log.info("body cams: %d provisioned, %d restored online", len(creds), online)

    async def start(self) -> int:
        port = await self.endpoint.start(self.config.host, self.config.sip_port)
        c = self.config
        wildcard = c.host in ("0.0.0.0", "::", "")
        # What requests say when no per-cam address is found (see ``local_for``).
        host = c.advertised_host or ("127.0.0.1" if wildcard else c.host)
        self.local = Local(c.platform_id, c.effective_realm, host, port)
        log.info("body cam SIP platform %s on udp+tcp %s:%d%s", c.platform_id, c.host, port,
                 f", advertised as {c.advertised_host}" if c.advertised_host else "")  # fmt: skip
        return port

    def close(self) -> None:
        self.endpoint.close()

    @property
    def port(self) -> int:
        return self.endpoint.port

    async def run(self) -> None:
        """Timers: retransmissions, expiries, subscription refreshes, the write-behind."""
        next_flush = next_second = 0.0
        while True:
            await asyncio.sleep(0.1)  # Timer E's resolution (T1 = 0.5 s)
            mono = self._mono()
            self.outgoing.tick(mono)
            if mono >= next_second:  # scans of every entry: once a second is plenty
                next_second = mono + 1.0
                for table in self.tx.values():
                    table.expire(mono)
                self.queries.expire(mono, self.config.query_timeout_s)
                self.catalogs.expire(mono)
                self.refresh_subscriptions(mono)
            if mono >= next_flush:
                next_flush = mono + self.config.persist_interval_s
                await self.flush(everything=False)

    async def flush(self, *, everything: bool = True) -> None:
        """Write the cams due (every change, with *everything*; else routine ones once they
        are ``persist_routine_s`` old) and the alarms that arrived (kept for the next try
        on failure)."""
        async with self.flush_lock:
            now = self.clock()
            routine_s = -1.0 if everything else self.config.persist_routine_s
            due = due_cams(self.cams.values(), now, routine_s)
            alarms, self._alarms = self._alarms, []
            if not due and not alarms:
                return
            rows = [(row_values if c.dirty else routine_values)(c, now) for c in due]
            for cam in due:
                cam.written()
            try:
                await self.store.flush(rows, alarms, self._case, self.rules())
            except Exception as exc:
                log.warning("body cams: state not written (%s: %s)", type(exc).__name__, exc)
                self.counts.labels("persist", "failed").inc()
                for cam in due:
                    cam.dirty = True
                self._alarms = alarms + self._alarms

    def _case(self, case: CaseRaised, recorded: bool) -> None:
        self.metrics.cases_raised.labels(
            case.category, "recorded" if recorded else "duplicate"
        ).inc()
        if recorded:
            self.bus.publish(case)
            self._kick_cases()

    # -- the change feed ---------------------------------------------------------------------------
    async def refresh_cam(self, cam_id: str) -> None:
        async with self.store.sessions() as db:
            cred = await credential(db, cam_id)
        if cred is None:
            self.credentials.pop(cam_id, None)
        else:
            self.credentials[cam_id] = cred
            if cred.officer_id and cred.officer_id not in self.officers:
                await self.refresh_officer(cred.officer_id)

    async def set_passwords(self, passwords: dict[str, str], *, create: bool = False) -> int:
        """Set cams' digest passwords from code (the demo's simulated cams, a bench): stored
        as HA1 through the change feed like any provisioning, and live here at once."""
        async with self.store.sessions.begin() as db:
            n = await set_passwords(
                db, passwords, self.config.effective_realm, self.clock(), create=create
            )
        async with self.store.sessions() as db:
            self.credentials.update(await credentials(db))
        return n

    async def refresh_officer(self, officer_id: str) -> None:
        info = await self.store.officer(officer_id)
        if info is None:
            self.officers.pop(officer_id, None)
        else:
            self.officers[officer_id] = info

    # -- receiving -------------------------------------------------------------------------------
    def on_drop(self, reason: str, peer: Peer) -> None:
        self.counts.labels("drop", reason).inc()

    def on_message(self, msg: SipRequest | SipResponse, peer: Peer) -> None:
        """One message from the transport. A header the parser let through but that cannot be
        read where it matters (a garbled To, Via) is a counted drop: there is no answer that
        the sender could match."""
        try:
            self._receive(msg, peer)
        except SipParseError as exc:
            self.counts.labels("drop", exc.reason.split(":")[0][:32]).inc()

    def _receive(self, msg: SipRequest | SipResponse, peer: Peer) -> None:
        mono, now = self._mono(), self.clock()
        device = self._registered_sender(msg, peer, now)
        if not self.flood.allow(device, peer.host, mono):
            self.counts.labels("drop", "rate_limited_" + ("device" if device else "host")).inc()
            return
        if isinstance(msg, SipResponse):
            if not self.outgoing.on_response(msg, mono):
                self.counts.labels("response", "unmatched").inc()
            return
        request = stamp_received(msg, peer.addr)
        table = self.tx[peer.transport]
        got = table.receive(request, mono)
        if isinstance(got, Retransmission):
            self.counts.labels("retransmission", request.method.lower()[:16]).inc()
            data = got.data()
            if data is not None:
                self.endpoint.send(peer, data)
            return
        response = self._handle(request, peer, mono, now)
        if response is not None:
            table.respond(request, response, mono)
            self.endpoint.send(peer, response.to_bytes())

    def _registered_sender(
        self, msg: SipRequest | SipResponse, peer: Peer, now: datetime
    ) -> str | None:
        """The registered cam *msg* is from (its From, or the To of a response to us), when it
        comes from the cam's host (where its messages are taken from); else None: it pays per
        source host."""
        try:
            uri = (msg.from_ if isinstance(msg, SipRequest) else msg.to).uri
        except SipParseError:
            return None
        return self.registered_at(uri, peer.host, now)

    def _handle(
        self, request: SipRequest, peer: Peer, mono: float, now: datetime
    ) -> SipResponse | None:
        method = request.method
        if method == "REGISTER":
            return self._register(request, peer, mono, now)
        if method in ("MESSAGE", "NOTIFY"):
            return self._message(request, peer, mono, now)
        if method == "ACK":
            return None
        if method in ("OPTIONS", "BYE"):
            return response_to(request, 200, headers=[("Allow", ALLOW)])
        self.counts.labels("request", "not_allowed").inc()
        return response_to(request, 405, headers=[("Allow", ALLOW)])

    def _register(self, request: SipRequest, peer: Peer, mono: float, now: datetime) -> SipResponse:
        out = self.registrar.register(request, mono, now)
        self.counts.labels("register", out.reason).inc()
        if out.device_id is None or out.kind not in ("registered", "unregistered"):
            if out.reason in ("bad_password", "slowed_down"):
                log.warning(
                    "body cam %s: REGISTER refused (%s) from %s", out.device_id, out.reason, peer
                )
            return out.response
        cam = self.cams.get(out.device_id)
        if cam is None:
            c = self.config
            presence = PresenceState(None, None, c.keepalive_interval_s, c.keepalive_count)
            cam = self.cams[out.device_id] = CamLive(out.device_id, presence)
        if out.kind == "registered":
            self.good_message(out.device_id)
            fresh = not cam.presence.online(now)
            cam.registered(now, out.expires_s, peer, contact_uri(out.contact))
            if fresh:
                cam.subscription = None  # a cam that was away keeps no dialog of ours
            asyncio.get_running_loop().call_soon(self.follow_up, cam)
        else:
            cam.unregistered()
            log.info("body cam %s unregistered", cam.device_id)
        return out.response

    def _message(self, request: SipRequest, peer: Peer, mono: float, now: datetime) -> SipResponse:
        device_id = device_of(request)
        cam = self.cams.get(device_id or "")
        if device_id is None or device_id not in self.credentials:
            self.counts.labels("message", "unknown_device").inc()
            return response_to(request, 403 if device_id else 400)
        if cam is None or not cam.presence.registered_until or cam.presence.registered_until <= now:
            self.counts.labels("message", "not_registered").inc()
            return response_to(request, 403, "Not Registered")
        if cam.peer is not None and cam.peer.host != peer.host:
            self.counts.labels("message", "source_mismatch").inc()
            return response_to(request, 403)
        charset = body_charset(request.content_type)
        try:
            msg = parse_manscdp(request.body, charset, tz=self.zone, limits=self.limits)
        except ManscdpError as exc:
            self.counts.labels("message", exc.reason.split(":")[0][:32]).inc()
            return response_to(request, 400)
        self._take(cam, msg, peer, now, mono)
        return response_to(request, 200)

    def _take(self, cam: CamLive, msg: Manscdp, peer: Peer, now: datetime, mono: float) -> None:
        """What a cam's MANSCDP message does, once it is known to be the cam's; dropped (but
        answered) when another live instance holds the cam (``shared``)."""
        if cam.elsewhere is not None:
            self.counts.labels("message", "held_elsewhere").inc()
            return
        cam.seen(now, peer)
        self.good_message(cam.device_id)
        kind = type(msg).__name__
        self.counts.labels("message", kind).inc()
        effects = apply_message(cam, msg, now, mono, self.queries, self.catalogs)
        for reason in effects.dropped:
            self.counts.labels("message", reason).inc()
        for p in effects.positions:
            self.publish_position(cam.device_id, p)
        if effects.alarm is not None:
            self._alarm(cam, effects.alarm, now)
        if effects.catalog is not None:
            log.info("body cam %s: catalog of %d items", cam.device_id, len(effects.catalog.items))
        if not cam.queried or (cam.subscription is None and not cam.subscribing):
            asyncio.get_running_loop().call_soon(self.follow_up, cam)

    def good_message(self, device_id: str) -> None:
        """A commissioned cam's first REGISTER or message: active (gateway.services.lifecycle)."""
        cred = self.credentials.get(device_id)
        if cred is not None and cred.lifecycle == "commissioned":
            self.credentials[device_id] = replace(cred, lifecycle="active")
            self.activate(device_id)

    def _officer_of(self, device_id: str) -> Any:
        cred = self.credentials.get(device_id)
        return self.officers.get(cred.officer_id) if cred and cred.officer_id else None

    def publish_position(self, device_id: str, p: Any, *, mirrored: bool = False) -> None:
        o = self._officer_of(device_id)
        self.bus.publish(
            BodycamPosition(
                device_id=device_id,
                ts=p.time,
                lat=p.latitude,
                lon=p.longitude,
                officer_id=o.id if o else None,
                squad=o.squad if o else None,
                speed_kmh=p.speed_kmh,
                direction_deg=p.direction_deg,
                altitude_m=p.altitude_m,
                mirrored=mirrored,
            )
        )

    def _alarm(self, cam: CamLive, alarm: Any, now: datetime) -> None:
        o = self._officer_of(cam.device_id)
        lat, lon = alarm.latitude, alarm.longitude
        if lat is None and cam.position is not None:
            lat, lon = cam.position.latitude, cam.position.longitude
        kind = alarm.alarm_type
        self.counts.labels("alarm", str(kind if kind is not None else "")).inc()
        log.warning(
            "ALERT body cam %s (%s): alarm priority %s method %s: %s at %s,%s",
            cam.device_id, o.name if o else "no officer", alarm.priority, alarm.method,
            alarm.description or "", lat, lon,
        )  # fmt: skip
        self._alarms.append(AlarmRecord(alarm, now, lat, lon, o))
