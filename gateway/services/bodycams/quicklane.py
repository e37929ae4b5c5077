"""The quick lane of the body cams' platform: a routine MESSAGE or NOTIFY (keepalive,
position) from a cam that is registered and speaks from where it registered, read by
``drivers.sip.quick`` and ``drivers.gb28181.quick`` and answered without the general header
map or element tree (about 430 of them a second for 2,000 cams: most of the platform's work).

A mixin of ``BodycamService``: what it does is what the general way (``_receive``,
``_message``) does for the same request, the same checks, flood bucket, transaction table,
counters and what ``_take`` does (``_take_routine``, without building ``Effects``); anything
else returns False and takes the general way, which also says why it refuses.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from drivers.gb28181.manscdp import Keepalive, MobilePositions, Position
from drivers.gb28181.quick import quick_manscdp
from drivers.gb28181.xmlsafe import XmlLimits
from drivers.sip.flood import FloodControl
from drivers.sip.quick import quick_response, read_quick
from drivers.sip.transactions import Retransmission, ServerTransactions
from drivers.sip.transport import Peer, SipEndpoint
from gateway.metrics import FastCounter
from gateway.services.bodycams.cams import CamLive
from gateway.services.bodycams.registrar import device_in

__all__ = ["QuickLane"]


class QuickLane:
    clock: Callable[[], datetime]
    zone: ZoneInfo
    cams: dict[str, CamLive]
    credentials: dict[str, Any]
    endpoint: SipEndpoint
    flood: FloodControl
    tx: dict[str, ServerTransactions]
    limits: XmlLimits
    counts: FastCounter

    def _mono(self) -> float:
        raise NotImplementedError  # the service's (``Asker._mono``)

    def registered_at(self, uri: str, host: str, now: datetime) -> str | None:
        """The cam whose URI is *uri* when it is registered and speaks from *host*, the host
        it registered from (where its messages are taken from); else None."""
        device = device_in(uri)
        cam = None if device is None else self.cams.get(device)
        if cam is None or cam.peer is None or cam.peer.host != host:
            return None
        until = cam.presence.registered_until
        return device if until is not None and until > now else None

    def good_message(self, device_id: str) -> None:
        raise NotImplementedError  # the service's

    def publish_position(self, device_id: str, p: Position, *, mirrored: bool = False) -> None:
        raise NotImplementedError  # the service's

    def follow_up(self, cam: CamLive) -> None:
        raise NotImplementedError  # the service's (``Asker.follow_up``)

    def _take_routine(
        self, cam: CamLive, msg: Keepalive | MobilePositions, peer: Peer, now: datetime
    ) -> None:
        """The service's ``_take`` for a keepalive or a position, the same effects without
        building them (``apply_message`` does nothing else for these two)."""
        if cam.elsewhere is not None:  # another live instance holds the cam: answered only
            self.counts.labels("message", "held_elsewhere").inc()
            return
        cam.seen(now, peer)
        self.good_message(cam.device_id)
        counts = self.counts
        if isinstance(msg, Keepalive):
            counts.labels("message", "Keepalive").inc()
            if msg.device_id != cam.device_id:
                counts.labels("message", "device_mismatch").inc()
        else:
            counts.labels("message", "MobilePositions").inc()
            for p in msg.positions:
                if p.device_id != cam.device_id:
                    counts.labels("message", "position_other_id").inc()
                elif cam.moved(p):
                    self.publish_position(cam.device_id, p)
        if not cam.queried or (cam.subscription is None and not cam.subscribing):
            asyncio.get_running_loop().call_soon(self.follow_up, cam)

    def on_quick(self, data: bytes, peer: Peer) -> bool:
        """True when *data* was a routine request and is answered; False: the general way."""
        q = read_quick(data, self.endpoint.max_size)
        if q is None or peer.transport != "UDP":
            return False
        now = self.clock()
        device = self.registered_at(q.from_uri, peer.host, now)
        if device is None or device not in self.credentials:
            return False  # the general way answers (403, 400) and counts why
        cam = self.cams[device]
        msg = quick_manscdp(q.body, self.zone, self.limits)
        if msg is None:
            return False
        mono = self._mono()
        if not self.flood.allow(device, peer.host, mono):
            self.counts.labels("drop", "rate_limited_device").inc()
            return True
        table, key = self.tx["UDP"], q.key  # the key: built once
        got = table.receive_key(key, mono)
        if isinstance(got, Retransmission):
            self.counts.labels("retransmission", q.method.lower()).inc()
            resend = got.data()
            if resend is not None:
                self.endpoint.send(peer, resend)
            return True
        self._take_routine(cam, msg, peer, now)
        wire = quick_response(q, peer.addr)
        table.respond_wire(key, wire, mono)
        self.endpoint.send(peer, wire)
        return True
