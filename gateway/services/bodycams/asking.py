"""The platform's own requests to a cam: DeviceInfo/DeviceStatus/Catalog queries matched by
SN, and the MobilePosition subscription, refreshed in the dialog it created (a 481 ends that
dialog and one new SUBSCRIBE starts another: never a refresh loop on a stale dialog).

A mixin of ``BodycamService`` (it uses the service's clock, outgoing transactions, pending
queries and counters), apart so each module keeps one job.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime

from drivers.gb28181.manscdp import QueryCmd
from drivers.sip.message import SipResponse
from drivers.sip.transport import Peer, SipEndpoint
from gateway.config import BodycamsConfig
from gateway.metrics import FastCounter
from gateway.services.bodycams.cams import CamLive, Dialog
from gateway.services.bodycams.messages import PendingQueries
from gateway.services.bodycams.outgoing import Outgoing
from gateway.services.bodycams.requests import Local, query_request, subscribe_request

__all__ = ["Asker"]


def _hex(n: int) -> str:
    return os.urandom(n).hex()


def _int(value: str | None) -> int | None:
    return int(value) if value and value.strip().isdigit() and len(value) < 10 else None


class Asker:
    config: BodycamsConfig
    clock: Callable[[], datetime]
    cams: dict[str, CamLive]
    counts: FastCounter
    outgoing: Outgoing
    queries: PendingQueries
    local: Local
    endpoint: SipEndpoint
    _sn: itertools.count[int]
    # No dialog is due for a refresh before this (monotonic): the once-a-second scan of every
    # cam is skipped until then; a grant (``_subscribe``'s answer) brings it forward.
    _next_refresh: float = 0.0

    def _mono(self) -> float:
        return asyncio.get_running_loop().time()

    def local_for(self, peer: Peer) -> Local:
        """Who we are toward *peer*: the advertised host if one is set, else the address the
        endpoint says the peer reaches us at (see ``SipEndpoint.local_host``)."""
        host = self.config.advertised_host or self.endpoint.local_host(peer)
        return (
            self.local
            if host is None or host == self.local.host
            else replace(self.local, host=host)
        )

    def follow_up(self, cam: CamLive) -> None:
        """After a registration (or a restored cam's first message): DeviceInfo, DeviceStatus
        and Catalog queries (the Catalog's parts reassembled by SN and SumNum), and the
        position SUBSCRIBE."""
        if cam.peer is None or cam.elsewhere or not cam.presence.online(self.clock()):
            return  # not here, or another instance's (it asks)
        if not cam.queried:
            cam.queried = True
            for cmd in ("DeviceInfo", "DeviceStatus", "Catalog"):
                self.query(cam, cmd)
        if cam.subscription is None and not cam.subscribing:
            self._subscribe(cam, None)

    def query(self, cam: CamLive, cmd: QueryCmd) -> int | None:
        """Ask *cam* a DeviceInfo, DeviceStatus or Catalog query; its SN, or None if not sent."""
        if cam.peer is None:
            return None
        sn, local = next(self._sn), self.local_for(cam.peer)
        req = query_request(cmd, sn, local, cam.device_id, cam.peer, cam.contact,
                            f"{_hex(8)}@{local.host}", _hex(4))  # fmt: skip
        mono = self._mono()

        def done(r: SipResponse | None) -> None:
            self.counts.labels("query", "timeout" if r is None else str(r.status)).inc()

        if self.outgoing.start(req, cam.peer, mono, done):
            self.queries.add(cam.device_id, sn, cmd, mono)
            return sn
        return None

    def _subscribe(self, cam: CamLive, dialog: Dialog | None) -> None:
        """A new subscription (``dialog`` None) or the refresh of ``dialog``, in that dialog."""
        if cam.peer is None:
            return
        c, mono, local = self.config, self._mono(), self.local_for(cam.peer)
        if dialog is None:
            dialog = Dialog(f"{_hex(8)}@{local.host}", _hex(4), None, 0, 0.0)
        dialog.cseq += 1
        sn, peer = next(self._sn), cam.peer
        req = subscribe_request(sn, local, cam.device_id, peer, cam.contact, dialog,
                                c.subscription_expires_s, c.position_interval_s)  # fmt: skip
        refresh = dialog.confirmed
        cam.subscribing = True

        def done(r: SipResponse | None) -> None:
            cam.subscribing = False
            outcome = "timeout" if r is None else str(r.status)
            self.counts.labels("subscribe_refresh" if refresh else "subscribe", outcome).inc()
            if r is not None and 200 <= r.status < 300:
                dialog.remote_tag = dialog.remote_tag or r.to.tag
                dialog.confirmed = True
                expires = _int(r.headers.get("Expires")) or c.subscription_expires_s
                dialog.expires_at = self._mono() + expires
                dialog.expires_s = expires
                cam.subscription = dialog
                self._next_refresh = min(self._next_refresh, dialog.refresh_at())
            elif r is not None and r.status == 481 and refresh:
                cam.subscription = None  # the cam forgot the dialog: a new one, once
                self._subscribe(cam, None)
            else:
                cam.subscription = None

        if not self.outgoing.start(req, cam.peer, mono, done):
            cam.subscribing = False

    def refresh_subscriptions(self, mono: float) -> None:
        """Refresh the dialogs that are due (and drop those of cams gone offline); a scan of
        every cam only once the earliest refresh is due, not every second."""
        if mono < self._next_refresh:
            return
        now, soonest = None, float("inf")
        for cam in self.cams.values():
            d = cam.subscription
            if d is None or cam.elsewhere:  # a mirror is never subscribed here
                continue
            at = d.refresh_at()
            if cam.subscribing or mono < at:
                soonest = min(soonest, at)
                continue
            now = now or self.clock()
            if cam.presence.online(now):
                self._subscribe(cam, d)
            else:
                cam.subscription = None  # gone: subscribed afresh when it registers again
        self._next_refresh = min(soonest, mono + 60.0)  # and a full look once a minute
