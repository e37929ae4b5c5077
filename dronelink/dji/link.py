"""``DjiLink``: the DJI Cloud API over one MQTT connection, as a ``DroneLink``.

The link is thin: every message goes through the sans-I/O cores (``envelope``, ``topics``,
``osd``, ``topology``, ``presence``, ``events``, ``requests``, ``services``) and the link only
publishes what they say to publish, and calls the gateway's callbacks. Keys: an aircraft is named by
its sn, a dock (the MQTT gateway device) by its own; commands take the aircraft's sn and go
out on ``thing/product/{dock_sn}/services`` of the dock the topology pairs it with.

Several gateway instances (shared subscriptions). With ``share_group`` the uplinks (osd,
state, events, requests, status) are subscribed as ``$share/{group}/...``: the broker hands
each message to one instance, which answers it (events_reply, status_reply, requests_reply:
``requests`` answers ``config`` from ``answers`` and says the rest are not served here) and
reports it.
``services_reply`` is subscribed by every instance *without* ``$share``: replies are few, and
this way the instance that sent a request (and whose caller waits) always sees its reply; the
others drop it (counted in ``stats["replies_not_ours"]``, not as a rejection: with a share
group a reply to another instance is normal; without one, a reply to a request never made is
the rejection ``reply_unknown``). Progress events, though, are shared, so the
instance that gets a command's progress is often not the one that waits: it still calls
``on_progress`` (the gateway stores it by command id, which is the bid, so the caller's view
completes), and the gateway, on learning that a command it waits for ended elsewhere, calls
``resolve(command_id, outcome)`` on its own link to end the wait. An instance that holds the
bid itself also ends the command on a final progress event (the reply may have been lost),
unless built with ``resolve_on_progress=False`` (then only ``resolve`` does: one path).

Presence is rebuilt from traffic (``presence``): a restarted gateway reports each dock and
aircraft online again with its next message; silence past ``presence_timeout_s`` reports it
LOST once. Bad input never raises: each rejection is counted by reason in ``counts`` (and
handed to ``on_reject``, which the gateway maps to a Prometheus counter).

The module is long because the dispatch of the six topics and the command API share one
state (the request book, the topology, presence, the dock merge) and read best side by side;
every decision in them is in the cores.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from drivers.mqtt.transport import MqttParams, MqttTransport
from dronelink.dji import envelope, osd, requests
from dronelink.dji.events import events_reply, progress_of
from dronelink.dji.presence import Presence
from dronelink.dji.services import (
    Finished,
    Ignored,
    Outgoing,
    ServiceBook,
    Step,
    return_home_steps,
    speaker_steps,
    speaker_stop_steps,
)
from dronelink.dji.topics import TopicKind, parse_topic, subscriptions, topic
from dronelink.dji.topology import TopoChange, Topology, status_reply
from dronelink.model import (
    CommandKind,
    CommandOutcome,
    CommandStatus,
    DockReport,
    DroneReport,
    LinkState,
    OnDock,
    OnProgress,
    OnReport,
)

__all__ = ["DjiLink"]

log = logging.getLogger(__name__)

MAX_TTS_CHARS = 500  # the dock's text-to-speech takes short announcements
PUBLISHERS = 4  # concurrent publishes (each waits for its PUBACK)
PUBLISH_TIMEOUT_S = 10.0


class DjiLink:
    """DJI docks and their aircraft on one MQTT connection (see the module docstring)."""

    source = "dji"
    speaks = True  # the dock's aircraft carry the PSDK speaker

    def __init__(
        self,
        params: MqttParams,
        known: Callable[[str], bool] | None,
        on_report: OnReport,
        on_dock: OnDock,
        on_progress: OnProgress,
        clock: Callable[[], datetime],
        *,
        reply_timeout_s: float = 5.0,
        retries: int = 2,
        presence_timeout_s: float = 30.0,
        share_group: str | None = None,
        psdk_index: int = 0,
        on_reject: Callable[[str], None] | None = None,
        tick_s: float = 0.1,
        resolve_on_progress: bool = True,
        max_devices: int = 10_000,
        answers: requests.RequestAnswers | None = None,
    ) -> None:
        self._known = known
        self._answers = answers or requests.RequestAnswers()
        self._on_report = on_report
        self._on_dock = on_dock
        self._on_progress = on_progress
        self._clock = clock
        self._on_reject = on_reject
        self._psdk_index = psdk_index
        self._tick_s = tick_s
        self._resolve_on_progress = resolve_on_progress
        self._max_devices = max_devices
        self.share_group = share_group
        self.book = ServiceBook(reply_timeout_s, retries)
        self.topology = Topology()
        self.presence = Presence(presence_timeout_s)
        self.docks = osd.DockMerge()
        self._dock_sns: set[str] = set()
        self._aircraft_sns: set[str] = set()
        self.counts: dict[str, int] = {}  # rejections by reason
        self.stats: dict[str, int] = {}  # everything else worth a number
        self._waiting: dict[str, asyncio.Future[CommandOutcome]] = {}
        self._outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.transport = MqttTransport(
            params, subscriptions(share_group), self._on_message, on_state=self._on_state
        )

    def _on_state(self, up: bool) -> None:
        """On each connect, TCP_NODELAY on the socket (paho leaves Nagle on): a service
        request or reply is one small packet that otherwise waits for the broker's delayed
        ACK, ~40 ms (bench/bench_drones.py: speaker round trip p99 44 ms -> a few ms)."""
        client = self.transport._client  # the live aiomqtt client while connected
        sock = client._client.socket() if up and client is not None else None
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- counting ---------------------------------------------------------------------------

    def _reject(self, reason: str, detail: str = "") -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if self.counts[reason] == 1:
            log.warning("DJI message rejected (%s): %s", reason, detail[:200])
        if self._on_reject is not None:
            self._on_reject(reason)

    def _count(self, what: str) -> None:
        self.stats[what] = self.stats.get(what, 0) + 1

    # -- running ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, listen and answer until cancelled; commands still waiting then end
        CANCELED (a caller never waits on a link that is gone)."""
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.transport.run())
                for _ in range(PUBLISHERS):
                    tg.create_task(self._publisher())
                tg.create_task(self._ticker())
        finally:
            for command_id in list(self._waiting):
                self.resolve(
                    command_id, CommandOutcome(CommandStatus.CANCELED, detail="link stopped")
                )

    async def _publisher(self) -> None:
        while True:
            name, payload = await self._outbox.get()
            try:
                # Bounded: a PUBACK that never comes (connection lost under it) must not
                # hold this publisher for ever. asyncio.timeout, not wait_for: on 3.11
                # wait_for swallows a cancellation that lands as the publish completes.
                async with asyncio.timeout(PUBLISH_TIMEOUT_S):
                    await self.transport.publish(name, payload)
                self._count("published")
            except (ConnectionError, OSError, Exception) as exc:
                # A lost reply: the dock sends its event again; a lost request: the book
                # retries it. Nothing here may end the link.
                self._count("publish_failed")
                log.debug("DJI publish on %s failed: %s", name, exc)

    def _publish(self, name: str, payload: bytes) -> None:
        self._outbox.put_nowait((name, payload))

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                self.tick(self._clock())
            except Exception:
                # A callback's bug must not stop retries and timeouts: callers would wait
                # for ever.
                log.exception("DJI link tick failed")

    def tick(self, now: datetime) -> None:
        """Retries, timeouts and presence at *now* (the ticker calls this)."""
        for action in self.book.due(now):
            self._act(action)
        for sn in self.presence.expire(now):
            self._report_lost(sn, now)

    def _report_lost(self, sn: str, now: datetime) -> None:
        if sn in self._dock_sns:
            report = self.docks.report(sn, now, self.topology.aircraft_of(sn))
            self._on_dock(_with_link(report, LinkState.LOST))
        else:
            self._on_report(
                DroneReport(
                    source="dji",
                    key=sn,
                    at=now,
                    link=LinkState.LOST,
                    dock_key=self.topology.dock_of(sn),
                )
            )

    def _act(self, action: Outgoing | Finished | Ignored) -> None:
        if isinstance(action, Outgoing):
            if action.attempt > 1:
                self._count("service_retries")
            self._publish(action.topic, action.payload)
        elif isinstance(action, Finished):
            fut = self._waiting.get(action.command_id)
            if fut is not None and not fut.done():
                fut.set_result(action.outcome)
        else:
            self._reject(action.reason)

    # -- messages ---------------------------------------------------------------------------

    def _on_message(self, name: str, payload: bytes) -> None:
        now = self._clock()
        parsed = parse_topic(name)
        if parsed is None:
            self._reject("bad_topic", name)
            return
        kind, sn = parsed
        if self._known is not None and not self._known(sn):
            self._reject("unknown_sn", sn)
            return
        if self.presence.last_seen(sn) is None and len(self.presence) >= self._max_devices:
            # Without a ``known`` filter, anyone on the broker could make us remember
            # serial numbers without end.
            self._reject("too_many_devices", sn)
            return
        env = envelope.parse(payload)
        if isinstance(env, envelope.Rejection):
            self._reject(env.reason, f"{name}: {env.detail}")
            return
        if kind is TopicKind.SERVICES_REPLY:
            action = self.book.on_reply(env, now)
            if self.share_group and action == Ignored("reply_unknown"):
                self._count("replies_not_ours")
            else:
                self._act(action)
            return
        if kind in (TopicKind.OSD, TopicKind.STATE):
            self._osd(kind, sn, env, now)
        elif kind is TopicKind.STATUS:
            self._status(sn, env, now)
        elif kind is TopicKind.EVENTS:
            self._event(sn, env, now)
        elif kind is TopicKind.REQUESTS:
            self._seen_dock(sn, now)
            payload, label = requests.answer(env, self._answers, _ms(now))
            self._publish(topic(TopicKind.REQUESTS_REPLY, sn), payload)
            self._count(f"requests_{label}")
        else:
            self._reject("unexpected_topic", name)  # our own downlinks, echoed

    def _seen_dock(self, sn: str, now: datetime) -> None:
        """A message from dock *sn*: online (again, if it was lost: the report this message
        makes says so)."""
        self._dock_sns.add(sn)
        self.presence.seen(sn, now)

    def _osd(self, kind: TopicKind, sn: str, env: envelope.Envelope, now: datetime) -> None:
        dock_sn = env.gateway if env.gateway and env.gateway != sn else None
        if dock_sn is not None or self.topology.is_aircraft(sn):
            if dock_sn is not None and (self._known is None or self._known(dock_sn)):
                self._topo_changed(self.topology.learn(dock_sn, sn), now)
            if kind is TopicKind.STATE:
                self.presence.seen(sn, now)
                self._aircraft_sns.add(sn)
                return
            report = osd.aircraft_report(sn, env.data, now, self.topology.dock_of(sn))
            if isinstance(report, envelope.Rejection):
                self._reject(report.reason, f"{sn}: {report.detail}")
                return
            self._aircraft_sns.add(sn)
            self.presence.seen(sn, now)
            self._on_report(report)
            return
        sub = env.data.get("sub_device")
        if (
            isinstance(sub, dict)
            and isinstance(sub.get("device_sn"), str)
            and sub.get("device_online_status") == 1
        ):
            self._topo_changed(self.topology.learn(sn, sub["device_sn"]), now)
        dock = self.docks.merge(sn, env.data, now, self.topology.aircraft_of(sn))
        if isinstance(dock, envelope.Rejection):
            self._reject(dock.reason, f"{sn}: {dock.detail}")
            return
        self._seen_dock(sn, now)
        self._on_dock(dock)

    def _topo_changed(self, change: TopoChange | None, now: datetime) -> None:
        if change is None:
            return
        for gone in change.gone:
            self.presence.lost(gone)
            self._on_report(
                DroneReport(
                    source="dji", key=gone, at=now, link=LinkState.LOST, dock_key=change.dock_sn
                )
            )
        self._on_dock(self.docks.report(change.dock_sn, now, change.aircraft_sn))

    def _status(self, sn: str, env: envelope.Envelope, now: datetime) -> None:
        if env.method != "update_topo":
            self._reject("unknown_method", f"status {env.method}")
            return
        change = self.topology.update_topo(sn, env.data)
        if isinstance(change, envelope.Rejection):
            self._reject(change.reason, f"{sn} update_topo: {change.detail}")
            return
        self._seen_dock(sn, now)
        self._publish(topic(TopicKind.STATUS_REPLY, sn), status_reply(env, _ms(now)))
        self._count("status_replies")
        self._topo_changed(change, now)
        if change.aircraft_sn is None and not change.gone:
            self._on_dock(self.docks.report(sn, now, None))

    def _event(self, sn: str, env: envelope.Envelope, now: datetime) -> None:
        self._seen_dock(sn, now)
        if env.need_reply:
            self._publish(topic(TopicKind.EVENTS_REPLY, sn), events_reply(env, _ms(now)))
            self._count("events_replies")
        progress = progress_of(env, now)
        if progress is None:
            self._count("events_other")
            return
        self._on_progress(progress)
        if (
            self._resolve_on_progress
            and progress.status.final
            and self.book.pending(progress.command_id)
        ):
            outcome = CommandOutcome(
                progress.status, result_code=progress.result_code, detail=progress.detail
            )
            self.resolve(progress.command_id, outcome)

    # -- commands ---------------------------------------------------------------------------

    def resolve(self, command_id: str, outcome: CommandOutcome) -> bool:
        """End the wait for *command_id* with *outcome* learned elsewhere (another instance
        handled its reply or progress); False if this link does not wait for it."""
        finished = self.book.resolve(command_id, outcome)
        if finished is None:
            return False
        self._act(finished)
        return True

    def waiting(self, command_id: str) -> bool:
        return command_id in self._waiting

    async def _command(
        self, kind: CommandKind, key: str, command_id: str, steps: Sequence[Step]
    ) -> CommandOutcome:
        fut = self._waiting.get(command_id)
        if fut is not None:  # the same command asked again: wait for the one in flight
            return await asyncio.shield(fut)
        dock = self.topology.dock_of(key)
        if dock is None:
            return CommandOutcome(
                CommandStatus.REJECTED, 0, detail=f"aircraft {key} is at no dock heard from"
            )
        if self.presence.state(dock) is not LinkState.ONLINE:
            return CommandOutcome(CommandStatus.REJECTED, 0, detail=f"dock {dock} is offline")
        fut = asyncio.get_running_loop().create_future()
        self._waiting[command_id] = fut
        try:
            self._act(self.book.start(command_id, kind, dock, steps, self._clock()))
            return await asyncio.shield(fut)
        finally:
            self.book.resolve(command_id, CommandOutcome(CommandStatus.CANCELED))
            self._waiting.pop(command_id, None)

    async def return_home(self, key: str, *, command_id: str) -> CommandOutcome:
        """Send aircraft *key* home; the outcome of the dock's reply (``in_progress`` while
        it flies; its progress comes through ``on_progress``)."""
        return await self._command(CommandKind.RETURN_HOME, key, command_id, return_home_steps())

    async def speaker(
        self, key: str, text: str, volume: int, loop: bool, *, command_id: str
    ) -> CommandOutcome:
        """Say *text* on aircraft *key*'s loudspeaker at *volume* (0-100), once or looped."""
        if not 0 <= volume <= 100:
            return CommandOutcome(CommandStatus.REJECTED, 0, detail="volume must be 0..100")
        if not text.strip() or len(text) > MAX_TTS_CHARS:
            return CommandOutcome(
                CommandStatus.REJECTED, 0, detail=f"text must be 1..{MAX_TTS_CHARS} characters"
            )
        dock = self.topology.dock_of(key)
        known = self.book.speaker_settings.get(dock) if dock else None
        steps = speaker_steps(text, volume, loop, self._psdk_index, known)
        return await self._command(CommandKind.SPEAKER, key, command_id, steps)

    async def speaker_stop(self, key: str, *, command_id: str) -> CommandOutcome:
        steps = speaker_stop_steps(self._psdk_index)
        return await self._command(CommandKind.SPEAKER_STOP, key, command_id, steps)


def _ms(at: datetime) -> int:
    return int(at.timestamp() * 1000)


def _with_link(report: DockReport, link: LinkState) -> DockReport:
    return replace(report, link=link)
