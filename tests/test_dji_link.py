"""DjiLink end to end over a real Mosquitto, against the simulated docks
(``gateway.demo.dji_dock``): partial osd merged, update_topo and its status_reply, events
answered with their tid and bid, the speaker and return home with replies and progress, late,
duplicate and missing replies, two instances in one share group, presence lost and regained.

Every test uses serial numbers of its own, so they share the session's broker; cadences are
sped up (osd every few hundred ms) so each test takes a second or two."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import aiomqtt
import pytest

from drivers.mqtt.transport import MqttParams
from dronelink.dji.link import DjiLink
from dronelink.model import (
    CommandOutcome,
    CommandProgress,
    CommandStatus,
    DockReport,
    DroneReport,
    LinkState,
)
from gateway.demo.dji_dock import DockFleet, DockOptions, DockSpec
from tests.conftest import Broker, wait_for

pytestmark = pytest.mark.slow

FAST = DockOptions(
    dock_osd_interval_s=0.3,
    aircraft_osd_interval_s=0.2,
    progress_interval_s=0.05,
    event_retry_s=0.4,
    late_s=1.5,
)
HOME = (38.7800, 101.0800)
LOOP = [(38.7810, 101.0790), (38.7810, 101.0810), (38.7790, 101.0810), (38.7790, 101.0790)]


def clock() -> datetime:
    return datetime.now(UTC)


@dataclass
class Seen:
    reports: list[DroneReport] = field(default_factory=list)
    docks: list[DockReport] = field(default_factory=list)
    progress: list[CommandProgress] = field(default_factory=list)


def spec() -> DockSpec:
    tag = uuid.uuid4().hex[:8].upper()
    return DockSpec(f"DOCK{tag}", f"AIR{tag}", HOME, LOOP)


def make_link(
    broker: Broker,
    seen: Seen,
    on_progress: Callable[[CommandProgress], None] | None = None,
    **kw: Any,
) -> DjiLink:
    params = MqttParams(broker.host, broker.port, f"gw-{uuid.uuid4().hex[:8]}", clean=True)
    opts: dict[str, Any] = {
        "reply_timeout_s": 0.4,
        "retries": 2,
        "presence_timeout_s": 1.0,
        "tick_s": 0.05,
    }
    opts.update(kw)
    return DjiLink(
        params,
        None,
        seen.reports.append,
        seen.docks.append,
        on_progress or seen.progress.append,
        clock,
        **opts,
    )


@contextlib.asynccontextmanager
async def running(*things: Any) -> AsyncIterator[None]:
    """Run links (``run()``), then, once they are subscribed, fleets (``run(stop)``)."""
    stop = asyncio.Event()
    tasks = []
    try:
        for t in things:
            if isinstance(t, DjiLink):
                tasks.append(asyncio.create_task(t.run()))
                await asyncio.wait_for(t.transport.connected.wait(), 5)
        for t in things:
            if isinstance(t, DockFleet):
                tasks.append(asyncio.create_task(t.run(stop)))
                await asyncio.wait_for(t.transport.connected.wait(), 5)
        yield
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        _, stuck = await asyncio.wait(tasks, timeout=10)
        if stuck:
            for t in asyncio.all_tasks():
                t.print_stack()
        assert not stuck, f"{len(stuck)} task(s) ignored their cancellation"
        for t in tasks:
            if not t.cancelled() and t.exception() is not None:
                raise t.exception()  # type: ignore[misc]


async def paired(link: DjiLink, s: DockSpec) -> None:
    await wait_for(lambda: link.topology.dock_of(s.aircraft_sn) == s.dock_sn, 5, what="pairing")


def fleet_of(broker: Broker, s: DockSpec, **kw: Any) -> DockFleet:
    return DockFleet(broker.host, broker.port, [s], replace(FAST, **kw))


async def test_partial_osd_merged_topology_and_status_reply(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s)
    async with running(link, fleet):

        def merged() -> DockReport | None:
            for d in reversed(seen.docks):
                if d.fix and d.drone_battery_percent is not None and d.cover_state is not None:
                    return d
            return None

        dock = await wait_for(merged, 5, what="a dock report with every field group")
        assert dock.key == s.dock_sn and dock.aircraft_key == s.aircraft_sn
        assert dock.mode == "idle" and dock.link is LinkState.ONLINE
        assert dock.fix is not None and (dock.fix.lat, dock.fix.lon) == HOME
        (topo,) = fleet.stats.topo_sent
        await wait_for(lambda: fleet.stats.status_replies.get(topo) == 1, 5, what="status_reply")
        air = await wait_for(lambda: [r for r in seen.reports if r.fix], 5)
        r = air[-1]
        assert (r.key, r.dock_key, r.mode, r.flying, r.source) == (
            s.aircraft_sn, s.dock_sn, "wayline", True, "dji",
        )  # fmt: skip
        assert r.fix is not None and 38.778 < r.fix.lat < 38.782 and r.battery_percent
        assert not link.counts


async def test_events_needing_replies_get_one_with_same_tid_and_bid(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s)
    async with running(link, fleet):
        await paired(link, s)
        key = await fleet.send_event(s.dock_sn, "hms", {"list": [{"level": 1, "code": "0x1"}]})
        await wait_for(lambda: fleet.stats.events_replied.get(key) == 1, 5, what="events_reply")
        assert link.stats["events_replies"] == 1  # answered once: the dock did not re-send
        no = await fleet.send_event(s.dock_sn, "hms", {"list": []}, need_reply=False)
        await asyncio.sleep(0.3)
        assert no not in fleet.stats.events_replied


async def test_speaker_reply_and_progress(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s)
    async with running(link, fleet):
        await paired(link, s)
        out = await link.speaker(s.aircraft_sn, "请勿在消防通道停车", 70, True, command_id="spk-1")
        assert out.status is CommandStatus.OK and out.attempts == 3
        calls = [(m, b) for d, m, _, b in fleet.stats.services if d == s.dock_sn]
        assert calls == [
            ("speaker_play_volume_set", "spk-1"),
            ("speaker_play_mode_set", "spk-1"),
            ("speaker_tts_play_start", "spk-1"),
        ]
        await wait_for(lambda: any(p.status is CommandStatus.OK for p in seen.progress), 5)
        assert [p.command_id for p in seen.progress] == ["spk-1"] * FAST.progress_steps
        assert seen.progress[0].status is CommandStatus.IN_PROGRESS and seen.progress[0].percent
        # Same volume and loop: only the text goes.
        out = await link.speaker(s.aircraft_sn, "谢谢配合", 70, True, command_id="spk-2")
        assert out.status is CommandStatus.OK
        assert [m for d, m, _, b in fleet.stats.services if b == "spk-2"] == [
            "speaker_tts_play_start"
        ]
        stop = await link.speaker_stop(s.aircraft_sn, command_id="spk-3")
        assert stop.status is CommandStatus.OK
        bad = await link.speaker(s.aircraft_sn, "x", 101, False, command_id="spk-4")
        unknown = await link.speaker("NOSUCH", "x", 50, False, command_id="spk-5")
        assert bad.status is unknown.status is CommandStatus.REJECTED


async def test_return_home_flies_home(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s, speed_mps=200.0)
    async with running(link, fleet):
        await paired(link, s)
        out = await link.return_home(s.aircraft_sn, command_id="rth-1")
        assert out.status is CommandStatus.OK and out.result_code == 0
        await wait_for(lambda: any(p.command_id == "rth-1" for p in seen.progress), 5)
        await wait_for(
            lambda: any(r.mode in ("returning_home", "landing") for r in seen.reports), 5
        )
        home = await wait_for(lambda: [r for r in seen.reports if r.mode == "standby"], 8)
        assert home[-1].flying is False and home[-1].fix is not None
        assert abs(home[-1].fix.lat - HOME[0]) < 1e-6 and abs(home[-1].fix.lon - HOME[1]) < 1e-6


async def test_duplicate_and_late_replies_are_ignored_and_counted(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s, reply_mode="twice")
    async with running(link, fleet):
        await paired(link, s)
        out = await link.return_home(s.aircraft_sn, command_id="dup-1")
        assert out.status is CommandStatus.OK
        await wait_for(lambda: link.counts.get("reply_duplicate") == 1, 5)
        fleet.reply_mode = "late"  # 1.5 s > 3 tries x 0.4 s
        out = await link.return_home(s.aircraft_sn, command_id="late-1")
        assert out.status is CommandStatus.TIMEOUT and out.attempts == 3
        await wait_for(lambda: link.counts.get("reply_late") == 3, 5, what="three late replies")


async def test_no_reply_retries_with_same_bid_then_times_out(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s, reply_mode="drop")
    async with running(link, fleet):
        await paired(link, s)
        out = await link.return_home(s.aircraft_sn, command_id="rth-drop")
        assert out == CommandOutcome(
            CommandStatus.TIMEOUT, 3, None, "return_home: no reply after 3 tries"
        )
        sent = [(t, b) for _, m, t, b in fleet.stats.services if m == "return_home"]
        assert len(sent) == 3 and {b for _, b in sent} == {"rth-drop"}
        assert len({t for t, _ in sent}) == 3  # a fresh tid each time
        assert fleet.stats.runs["rth-drop/return_home"] == 3  # run once, asked three times
        assert link.stats["service_retries"] == 2
        fleet.reply_mode = "error"
        out = await link.return_home(s.aircraft_sn, command_id="rth-err")
        assert out.status is CommandStatus.FAILED and out.result_code == FAST.error_code


async def test_two_instances_in_a_share_group(mosquitto: Broker) -> None:
    """The dock's replies get lost; progress goes to either instance. The instance that gets
    it records it (here: a dict standing for the shared database) and the waiting instance is
    told through ``resolve``."""
    s = spec()
    group = f"g{uuid.uuid4().hex[:6]}"
    db: dict[str, CommandProgress] = {}
    holders: dict[str, DjiLink] = {}
    seen_a, seen_b = Seen(), Seen()

    def gateway_hook(seen: Seen) -> Callable[[CommandProgress], None]:
        """What the gateway's drone service does with a progress, on any instance: store it
        by command id, and tell the instance that waits for that command."""

        def on_progress(p: CommandProgress) -> None:
            seen.progress.append(p)
            db[p.command_id] = p
            if p.status.final and p.command_id in holders:
                outcome = CommandOutcome(p.status, detail="learned from the database")
                holders[p.command_id].resolve(p.command_id, outcome)

        return on_progress

    # A ends its waits only through resolve: the hook is the one way the outcome reaches
    # it, whichever instance the progress went to.
    a = make_link(
        mosquitto, seen_a, gateway_hook(seen_a), share_group=group, reply_timeout_s=5.0,
        resolve_on_progress=False,
    )  # fmt: skip
    b = make_link(mosquitto, seen_b, gateway_hook(seen_b), share_group=group, reply_timeout_s=5.0)
    fleet = fleet_of(mosquitto, s, progress_steps=6)
    async with running(a, b, fleet):
        await paired(a, s)
        await paired(b, s)
        # services_reply is not shared: B sees A's replies too, and drops them.
        holders["sh-0"] = a
        out = await a.speaker(s.aircraft_sn, "请出示证件", 50, False, command_id="sh-0")
        assert out.status is CommandStatus.OK and out.attempts == 3
        await wait_for(lambda: b.stats.get("replies_not_ours", 0) == 3, 5)
        assert "replies_not_ours" not in a.stats and not a.counts and not b.counts
        await wait_for(lambda: db.get("sh-0") and db["sh-0"].status.final, 5)
        # Now the reply gets lost: the progress, wherever it went, ends A's wait.
        fleet.reply_mode = "drop"
        holders["sh-1"] = a
        n_a, n_b = len(seen_a.progress), len(seen_b.progress)
        out = await a.speaker(s.aircraft_sn, "注意安全", 50, False, command_id="sh-1")
        assert out == CommandOutcome(CommandStatus.OK, detail="learned from the database")
        assert db["sh-1"].status is CommandStatus.OK
        await wait_for(lambda: len(seen_a.progress) - n_a + len(seen_b.progress) - n_b == 6, 5)
        assert seen_b.progress[n_b:] and not b.waiting("sh-1")  # B got progress it does not hold
        assert seen_a.progress[n_a:]  # each message went to one member
        # status went to one instance: one status_reply only.
        (topo,) = fleet.stats.topo_sent
        assert fleet.stats.status_replies[topo] == 1


async def test_presence_lost_and_back_and_a_restarted_gateway(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link, fleet = make_link(mosquitto, seen), fleet_of(mosquitto, s)
    async with running(link, fleet):
        await paired(link, s)
        await fleet.set_aircraft_online(s.dock_sn, False)  # update_topo, no sub_devices

        def aircraft_lost() -> bool:
            return any(r.link is LinkState.LOST and r.key == s.aircraft_sn for r in seen.reports)

        await wait_for(aircraft_lost, 5, what="the aircraft reported lost")
        assert link.topology.dock_of(s.aircraft_sn) is None
        await wait_for(lambda: seen.docks[-1].aircraft_key is None, 5)
        n = len(seen.reports)
        await fleet.set_aircraft_online(s.dock_sn, True)
        await wait_for(lambda: any(r.link is LinkState.ONLINE for r in seen.reports[n:]), 5)
        assert link.topology.dock_of(s.aircraft_sn) == s.dock_sn
        # The aircraft falls silent with no word from the dock: lost after the timeout, once;
        # back with its next message.
        await fleet.set_aircraft_online(s.dock_sn, False, announce=False)
        n = len(seen.reports)

        def lost_by_timeout() -> list[DroneReport]:
            return [r for r in seen.reports[n:] if r.link is LinkState.LOST]

        await wait_for(lost_by_timeout, 5, what="the silent aircraft lost")
        assert lost_by_timeout()[0].dock_key == s.dock_sn
        assert link.presence.state(s.aircraft_sn) is LinkState.LOST
        assert link.presence.state(s.dock_sn) is LinkState.ONLINE  # the dock still talks
        await asyncio.sleep(0.3)
        assert len(lost_by_timeout()) == 1
        await fleet.set_aircraft_online(s.dock_sn, True, announce=False)
        await wait_for(lambda: link.presence.state(s.aircraft_sn) is LinkState.ONLINE, 5)
        assert seen.reports[-1].link is LinkState.ONLINE
    # The dock went silent (its fleet stopped): lost after the timeout, once.
    lost = Seen()
    link2 = make_link(mosquitto, lost)
    fleet2 = fleet_of(mosquitto, s)
    async with running(link2, fleet2):
        await paired(link2, s)
    async with running(link2):
        await wait_for(
            lambda: [d for d in lost.docks if d.link is LinkState.LOST], 5, what="dock lost"
        )
        await asyncio.sleep(0.3)
        assert sum(d.link is LinkState.LOST for d in lost.docks) == 1
        assert link2.presence.state(s.dock_sn) is LinkState.LOST
        # The dock is back (no update_topo seen by a fresh gateway): online from its next
        # message, paired from the aircraft's osd, and commands work again.
        fresh = Seen()
        link3 = make_link(mosquitto, fresh)
        fleet3 = fleet_of(mosquitto, s)
        async with running(link3):
            assert link3.presence.state(s.dock_sn) is LinkState.UNKNOWN
            fleet3_task = asyncio.create_task(fleet3.run(stop := asyncio.Event()))
            try:
                n = len(lost.docks)
                await wait_for(lambda: any(d.link is LinkState.ONLINE for d in lost.docks[n:]), 5)
                await paired(link3, s)
                out = await link3.return_home(s.aircraft_sn, command_id="after-restart")
                assert out.status is CommandStatus.OK
            finally:
                stop.set()
                await fleet3_task


async def test_garbage_is_counted_not_fatal(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link = make_link(mosquitto, seen)
    async with running(link):
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as c:
            await c.publish(f"thing/product/{s.dock_sn}/osd", b"{oops", qos=1)
            await c.publish(
                f"thing/product/{s.dock_sn}/osd", b'{"data":{"latitude":99,"longitude":1}}', qos=1
            )
            await c.publish(f"thing/product/{s.dock_sn}/events", b"[]", qos=1)
            await c.publish(
                f"thing/product/{s.dock_sn}/services_reply",
                b'{"tid":"x","bid":"y","data":{}}',
                qos=1,
            )
        await wait_for(lambda: sum(link.counts.values()) == 4, 5, what="four rejections")
        assert link.counts == {
            "not_json": 1, "bad_coordinates": 1, "not_object": 1, "reply_unknown": 1,
        }  # fmt: skip
        assert not seen.docks and not seen.reports


async def test_unknown_serial_numbers_are_refused(mosquitto: Broker) -> None:
    s, seen = spec(), Seen()
    link = make_link(mosquitto, seen)
    link._known = lambda sn: sn != s.dock_sn and sn != s.aircraft_sn
    fleet = fleet_of(mosquitto, s)
    async with running(link, fleet):
        await wait_for(lambda: link.counts.get("unknown_sn", 0) >= 3, 5)
        assert not seen.docks and not seen.reports and not fleet.stats.status_replies


async def test_a_command_survives_a_broker_restart(own_mosquitto: Broker) -> None:
    """The broker goes away as a command is sent: the publish fails (counted), the book
    sends it again with the same bid once the link is back (subscriptions replayed)."""
    s, seen = spec(), Seen()
    link = make_link(own_mosquitto, seen, reply_timeout_s=1.0, retries=5, presence_timeout_s=10)
    fleet = fleet_of(own_mosquitto, s)
    async with running(link, fleet):
        await paired(link, s)
        own_mosquitto.stop()
        await wait_for(lambda: not link.transport.connected.is_set(), 5)
        command = asyncio.create_task(link.return_home(s.aircraft_sn, command_id="rth-outage"))
        await wait_for(lambda: link.stats.get("publish_failed", 0) >= 1, 5)
        own_mosquitto.start()
        out = await asyncio.wait_for(command, 15)
        assert out.status is CommandStatus.OK and out.attempts >= 2
        assert {b for _, m, _, b in fleet.stats.services if m == "return_home"} == {"rth-outage"}
        assert fleet.stats.runs["rth-outage/return_home"] >= 1


async def test_a_docks_requests_are_answered_config_from_settings_the_rest_unsupported(
    mosquitto: Broker,
) -> None:
    from dronelink.dji.requests import UNSUPPORTED, RequestAnswers

    s, seen = spec(), Seen()
    answers = RequestAnswers("ntp.bureau.local", "app-7", "key-SECRET-1", "lic-SECRET-2")
    link, fleet = make_link(mosquitto, seen, answers=answers), fleet_of(mosquitto, s)
    async with running(link, fleet):
        await paired(link, s)
        # the dock asked for its config when it came up
        boot = await wait_for(lambda: list(fleet.stats.requests_replied.values()), 5)
        assert boot[0] == [
            {"ntp_server_host": "ntp.bureau.local", "app_id": "app-7",
             "app_key": "key-SECRET-1", "app_license": "lic-SECRET-2"},
        ]  # fmt: skip
        key = await fleet.send_request(s.dock_sn, "storage_config_get", {"module": 0})
        other = await fleet.send_request(s.dock_sn, "no_such_request", {})
        await wait_for(lambda: other in fleet.stats.requests_replied, 5, what="requests_reply")
        await wait_for(lambda: key in fleet.stats.requests_replied, 5, what="requests_reply")
        assert fleet.stats.requests_replied[key] == [{"result": UNSUPPORTED}]
        assert fleet.stats.requests_replied[other] == [{"result": UNSUPPORTED}]
        assert link.stats["requests_config"] == 1
        assert link.stats["requests_unsupported:storage_config_get"] == 1
        assert link.stats["requests_unsupported:other"] == 1
        assert "SECRET" not in repr(answers)
