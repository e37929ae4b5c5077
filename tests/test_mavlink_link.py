"""MavlinkLink against the simulated vehicle, both over real UDP on loopback with pymavlink on
each side: link up with its mode, streams at the asked rates, reports, return to launch with
every kind of answer (and none), lost link and recovery, hostile datagrams from a plain socket."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from dronelink.mavlink import MavlinkLink
from dronelink.mavlink.wire import MAV_RESULT_DENIED, MAV_RESULT_FAILED, CommandLong, Encoder
from dronelink.model import CommandStatus, DroneReport, LinkState, Unsupported
from gateway.demo.mav_vehicle import MavVehicle
from tests.conftest import wait_for

pytestmark = pytest.mark.timeout(30)

# A loop around 鼓楼十字, 山丹县 (about 38.78 N, 101.08 E).
PATROL = [(38.7800, 101.0800), (38.7810, 101.0800), (38.7810, 101.0815), (38.7800, 101.0815)]
STREAMS = {"GLOBAL_POSITION_INT": 0.1, "SYS_STATUS": 0.2}


@dataclass
class Rig:
    link: MavlinkLink
    vehicle: MavVehicle
    reports: list[DroneReport]
    rejects: list[str] = field(default_factory=list)

    def of(self, key: str) -> list[DroneReport]:
        return [r for r in self.reports if r.key == key]

    def rtl_confirmations(self) -> list[int]:
        return [c.confirmation for c in self.vehicle.commands if c.command == 20]

    def stream_requests(self) -> list[CommandLong]:
        return [c for c in self.vehicle.commands if c.command == 511]


def _now() -> datetime:
    return datetime.now(UTC)


@contextlib.asynccontextmanager
async def rig(link_kw: dict[str, Any] | None = None, **vehicle_kw: Any) -> AsyncIterator[Rig]:
    reports: list[DroneReport] = []
    rejects: list[str] = []
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "link_timeout_s": 1.0,  # 10 heartbeats: a loaded CI machine never fakes a loss
        "ack_timeout_s": 0.5,
        "retries": 2,
        "stream_intervals": STREAMS,
        "on_reject": rejects.append,
    }
    options.update(link_kw or {})
    link = MavlinkLink(reports.append, _now, **options)
    port = await link.start()
    kw: dict[str, Any] = {"heartbeat_s": 0.1, "speed_mps": 20.0, "altitude_m": 3.0}
    kw.update(vehicle_kw)
    vehicle = MavVehicle(("127.0.0.1", port), PATROL, **kw)
    await vehicle.start()
    tasks = [asyncio.create_task(link.run()), asyncio.create_task(vehicle.run())]
    try:
        yield Rig(link, vehicle, reports, rejects)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        vehicle.close()
        link.close()


def online(r: Rig, key: str = "1") -> Callable[[], bool]:
    return lambda: key in r.link.vehicles and r.link.vehicles[key].link is LinkState.ONLINE


async def test_heartbeat_brings_the_vehicle_online_with_its_mode() -> None:
    async with rig() as r:
        await wait_for(online(r), 5, what="vehicle online")
        beat = next(x for x in r.of("1") if x.mode is not None)
        assert (beat.source, beat.link, beat.mode, beat.armed, beat.flying) == (
            "mavlink",
            LinkState.ONLINE,
            "AUTO",
            True,
            True,
        )
        assert beat.at.tzinfo is not None
        vehicle = r.link.vehicles["1"]
        assert (vehicle.system_id, vehicle.component_id) == (1, 1)
        assert vehicle.address == ("127.0.0.1", r.vehicle.port)


async def test_stream_rates_are_asked_and_position_and_battery_reported() -> None:
    async with rig(position_interval_s=5.0, sys_status_interval_s=5.0) as r:
        await wait_for(lambda: r.vehicle.intervals == {33: 0.1, 1: 0.2}, 5, what="intervals")
        # At its own 5 s rates the vehicle would send one of each by now; the asked rates: many.
        await wait_for(lambda: sum(x.fix is not None for x in r.of("1")) >= 5, 5, what="fixes")
        await wait_for(lambda: sum(x.battery_percent is not None for x in r.of("1")) >= 3, 5)
        fixes = [x.fix for x in r.of("1") if x.fix is not None]
        for fix in fixes:
            assert 38.7799 <= fix.lat <= 38.7811 and 101.0799 <= fix.lon <= 101.0816
            assert fix.elevation_m == pytest.approx(3.0)
            assert fix.height_m == pytest.approx(1503.0)
        assert any(
            f.speed_mps is not None and f.speed_mps == pytest.approx(20, abs=1.5) for f in fixes
        )
        battery = [x.battery_percent for x in r.of("1") if x.battery_percent is not None]
        assert all(b is not None and 0 <= b <= 100 for b in battery)


async def test_return_to_launch_accepted_flies_home_and_lands() -> None:
    async with rig() as r:
        await wait_for(online(r), 5)
        outcome = await r.link.return_home("1", command_id="c-1")
        assert (outcome.status, outcome.attempts, outcome.result_code) == (CommandStatus.OK, 1, 0)
        assert r.rtl_confirmations() == [0]
        await wait_for(lambda: r.link.vehicles["1"].mode == "RTL", 5, what="RTL mode")
        assert any(x.text == "Mode RTL" for x in r.of("1"))
        assert any(
            (x.text or "").startswith("RTL: returning to launch from ")
            and (x.text or "").endswith("m above home, then landing")
            for x in r.of("1")
        )  # two chunks, one line
        await wait_for(lambda: r.link.vehicles["1"].armed is False, 10, what="landed")
        assert any(x.text == "Landed, disarmed" for x in r.of("1"))
        fix = r.link.vehicles["1"].fix
        assert fix is not None and (fix.lat, fix.lon) == pytest.approx(PATROL[0], abs=1e-6)


async def test_an_ignored_command_is_resent_with_confirmation_one() -> None:
    async with rig(ignore_commands=1) as r:
        await wait_for(online(r), 5)
        outcome = await r.link.return_home("1", command_id="c-2")
        assert (outcome.status, outcome.attempts) == (CommandStatus.OK, 2)
        assert r.rtl_confirmations() == [0, 1]


@pytest.mark.parametrize(
    ("result", "status"),
    [(MAV_RESULT_DENIED, CommandStatus.REJECTED), (MAV_RESULT_FAILED, CommandStatus.FAILED)],
)
async def test_a_refusal_is_final(result: int, status: CommandStatus) -> None:
    async with rig(command_result=result) as r:
        await wait_for(online(r), 5)
        outcome = await r.link.return_home("1", command_id="c-3")
        assert (outcome.status, outcome.result_code, outcome.attempts) == (status, result, 1)
        assert r.rtl_confirmations() == [0]
        assert r.vehicle.flight.phase == "patrol"


async def test_a_silent_vehicle_times_out_after_the_retries() -> None:
    async with rig(answer_commands=False) as r:
        await wait_for(online(r), 5)
        outcome = await r.link.return_home("1", command_id="c-4")
        assert (outcome.status, outcome.attempts) == (CommandStatus.TIMEOUT, 3)
        assert r.rtl_confirmations() == [0, 1, 2]


async def test_in_progress_holds_the_resends_until_the_answer() -> None:
    async with rig(in_progress_s=0.9) as r:  # longer than ack_timeout_s (0.5), progress at 0.3
        await wait_for(online(r), 5)
        outcome = await r.link.return_home("1", command_id="c-ip")
        assert (outcome.status, outcome.attempts) == (CommandStatus.OK, 1)
        assert r.rtl_confirmations() == [0]


async def test_a_flood_from_one_address_is_refused_before_parsing() -> None:
    async with rig({"rate_per_s": 1.0, "burst": 30}) as r:
        await wait_for(lambda: r.link.counts.get("rate_limited", 0) >= 1, 5, what="limited")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for _ in range(50):
                sock.sendto(b"rubbish", ("127.0.0.1", r.link.port))
            await wait_for(lambda: r.link.counts.get("bad_prefix", 0) >= 30, 5, what="parsed")
        # The plain socket has a bucket of its own, 30 deep (plus a token or two of refill):
        # the vehicle's flood did not cost it, and its own excess was never parsed.
        assert r.link.counts["bad_prefix"] <= 33


async def test_one_outstanding_rtl_per_vehicle() -> None:
    async with rig(ignore_commands=1) as r:
        await wait_for(online(r), 5)
        first = asyncio.create_task(r.link.return_home("1", command_id="c-5"))
        await wait_for(lambda: r.rtl_confirmations() == [0], 5)
        again = await asyncio.wait_for(r.link.return_home("1", command_id="c-6"), 5)
        assert again.status is CommandStatus.REJECTED and "c-5" in again.detail
        same = await r.link.return_home("1", command_id="c-5")  # a retry of the caller: joins
        assert (await first) == same
        assert same.status is CommandStatus.OK
        assert r.rtl_confirmations() == [0, 1]


async def test_commands_to_an_unknown_vehicle_and_the_loudspeaker() -> None:
    async with rig() as r:
        await wait_for(online(r), 5)
        for key in ("42", "x", "1" * 5, ""):
            outcome = await r.link.return_home(key, command_id="c-7")
            assert (outcome.status, outcome.attempts) == (CommandStatus.REJECTED, 0)
        with pytest.raises(Unsupported):
            await r.link.speaker("1", "请勿占道经营", 80, False, command_id="c-8")
        with pytest.raises(Unsupported):
            await r.link.speaker_stop("1", command_id="c-9")


async def test_the_link_is_lost_after_the_silence_and_recovers() -> None:
    async with rig() as r:
        await wait_for(online(r), 5)
        asked = len(r.stream_requests())
        assert asked == 2
        r.vehicle.silent = True
        await wait_for(lambda: r.link.vehicles["1"].link is LinkState.LOST, 5, what="lost")
        lost = [x for x in r.of("1") if x.link is LinkState.LOST]
        assert len(lost) == 1 and lost[0].fix is None and lost[0].mode is None
        r.vehicle.silent = False
        await wait_for(online(r), 5, what="recovered")
        await wait_for(lambda: len(r.stream_requests()) == asked + 2, 5, what="streams again")
        assert len([x for x in r.of("1") if x.link is LinkState.LOST]) == 1
        links = [x.link for x in r.of("1")]
        assert links.index(LinkState.LOST) < len(links) - 1
        assert links[links.index(LinkState.LOST) + 1] is LinkState.ONLINE


async def test_garbage_and_a_broken_crc_are_counted_and_the_link_keeps_working() -> None:
    async with rig() as r:
        await wait_for(online(r), 5)
        good = Encoder(1, 1).statustext(severity=6, text="after the storm")
        broken = bytearray(Encoder(1, 1).statustext(severity=6, text="forged"))
        broken[-1] ^= 0xFF
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for data in (b"\x00\xff" * 40, bytes(broken), b"\xfd\x10", good):
                sock.sendto(data, ("127.0.0.1", r.link.port))
        await wait_for(lambda: any(x.text == "after the storm" for x in r.of("1")), 5)
        counts = r.link.counts
        assert counts.get("bad_prefix", 0) >= 1
        assert counts.get("bad_crc") == 1
        assert counts.get("truncated") == 1
        assert not any(x.text == "forged" for x in r.reports)
        assert sorted(r.rejects) == sorted(reason for reason, n in counts.items() for _ in range(n))
        outcome = await r.link.return_home("1", command_id="c-10")
        assert outcome.status is CommandStatus.OK


async def test_system_ids_outside_the_allow_list_are_refused() -> None:
    async with rig({"allowed_system_ids": {7}}, system_id=3) as r:
        await wait_for(lambda: r.link.counts.get("unexpected_system", 0) >= 3, 5)
        assert r.link.vehicles == {} and r.reports == []
        assert r.vehicle.commands == []  # nothing asked of a stranger


async def test_close_ends_a_waiting_command_as_canceled() -> None:
    async with rig(answer_commands=False) as r:
        await wait_for(online(r), 5)
        task = asyncio.create_task(r.link.return_home("1", command_id="c-11"))
        await wait_for(lambda: r.rtl_confirmations() == [0], 5)
        r.link.close()
        outcome = await asyncio.wait_for(task, 5)
        assert outcome.status is CommandStatus.CANCELED


@pytest.mark.parametrize(
    "bad",
    [
        {"stream_intervals": {"NOT_A_MESSAGE": 1.0}},
        {"stream_intervals": {"SYS_STATUS": 0.0}},
        {"own_system_id": 0},
        {"allowed_system_ids": {300}},
        {"retries": -1},
        {"ack_timeout_s": 0},
        {"link_timeout_s": 0},
    ],
)
def test_bad_settings_fail_fast(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each setting names itself in the message
        MavlinkLink(lambda _r: None, _now, **bad)
