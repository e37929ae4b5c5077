"""A car park's two lanes whose barrier controllers hang on one RS-485 line, end to end:
plate cameras posting their vendors' pushes over HTTP (a Hikvision at the entry, a Vzenith
at the exit), the gateway deciding, and the gates commanded over Modbus RTU through a
virtual serial pair (socat) to a pymodbus RTU server simulating both controllers (unit 1 a
relay board, unit 2 a gate logic board). What reached the controllers is the simulator's
write log; what operators see is the lanes API. SQLite and PostgreSQL.

Each test: one lane step and what became of it: an entry; a free night exit; an unknown
plate that waits for an operator; the controller gone between the raise and its read-back;
the controller (and its line) power-cycled; the gateway restarted mid-raise; a camera's
resend of its offline reads with a duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import func, select

from drivers.gates.controller import GateController
from drivers.gates.models import shipped_model
from gateway.demo.cameras import HikvisionCamera, VzenithCamera
from gateway.demo.gates import GateSimulator, SimGate, WriteRecord, socat_pair
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.storage.schema import CameraReadRow, LaneDecisionRow, PlateReadRow
from gateway.services.lanes.modbus_gates import ModbusGates
from gateway.services.lanes.runtime import LaneRuntime
from tests.conftest import Broker, gateway_settings, make_tokens, running_gateway, wait_for

# slow: seven tests on both backends, each starting a gateway (about 1.3 s), 25-40 s in all.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed"),
]

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)  # Tuesday 09:00 in Asia/Shanghai
NIGHT = datetime(2026, 11, 24, 15, 0, tzinfo=UTC)  # 23:00 local: the night band is free
MIN = timedelta(minutes=1)
FINAL = {"confirmed", "unconfirmed", "failed", "interrupted"}
SITE = "cp-tonghe"  # class A, no first free hour: a day stay is owed, a night one is not
ENTRY, EXIT = "ln-rtu-entry", "ln-rtu-exit"
CAM_IN, CAM_OUT = "cam-rtu-entry", "cam-rtu-exit"
RELAY, LOGIC = shipped_model("example-relay4"), shipped_model("example-logic-hr")
BAUD = 38400


def fresh_gates() -> dict[int, SimGate]:
    """Both controllers as they are after power-on: booms down, outputs off."""
    return {1: SimGate(RELAY, travel_s=0.1), 2: SimGate(LOGIC, travel_s=0.1)}


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Line:
    """The RS-485 line: a socat pty pair at fixed paths, that can go and come back."""

    directory: Path
    gateway_end: str = ""
    simulator_end: str = ""
    _stack: contextlib.AsyncExitStack | None = None

    @property
    def bus(self) -> str:
        return f"serial://{self.gateway_end}?baudrate={BAUD}&timeout_ms=300"

    async def up(self) -> None:
        self._stack = contextlib.AsyncExitStack()
        self.gateway_end, self.simulator_end = await self._stack.enter_async_context(
            socat_pair(self.directory)
        )

    async def down(self) -> None:
        if self._stack is not None:
            stack, self._stack = self._stack, None
            await stack.aclose()


@dataclass
class Rig:
    line: Line
    sim: GateSimulator
    secrets: dict[str, str] = field(default_factory=dict)  # camera id -> its push secret


@pytest_asyncio.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    line = Line(tmp_path)
    await line.up()
    r = Rig(line, GateSimulator(fresh_gates()))
    await r.sim.start_serial(line.simulator_end, BAUD)
    try:
        yield r
    finally:
        await r.sim.stop()
        await line.down()


@dataclass
class Run:
    """One running gateway with the clients a test drives it by."""

    gw: Any
    clock: Clock
    http: httpx.AsyncClient
    tokens: dict[str, str]
    entry: HikvisionCamera
    out: VzenithCamera

    def lane(self, lane_id: str) -> LaneRuntime:
        rt: LaneRuntime = self.gw.services.lanes.lanes[lane_id]
        return rt

    def controller(self, lane_id: str) -> GateController:
        gates: ModbusGates = self.gw.services.lanes.gates
        c = gates.controller(lane_id)
        assert c is not None, f"no controller for {lane_id}"
        return c

    async def view(self, lane_id: str) -> Any:
        r = await self.http.get(f"/api/v1/lanes/{lane_id}", headers=self.auth("operator"))
        assert r.status_code == 200, r.text
        return r.json()

    async def open(self, lane_id: str, reason: str) -> Any:
        r = await self.http.post(
            f"/api/v1/lanes/{lane_id}/open", json={"reason": reason}, headers=self.auth("operator")
        )
        assert r.status_code == 202, r.text
        return r.json()["decision"]

    def auth(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    async def settled(self, lane_id: str, n: int) -> Any:
        """The lane's *n*-th decision, once its outcome is known."""
        rt = self.lane(lane_id)
        await wait_for(
            lambda: len(rt.recent) >= n and rt.recent[n - 1].state in FINAL, 10, what="outcome"
        )
        return rt.recent[n - 1]


def lanes_town(bus: str) -> Any:
    """The sample town plus the two RTU lanes at 同和医院."""
    town = load_town(None)
    (site,) = [s for s in town.sites if s.id == SITE]
    lanes = "".join(
        f'[[lanes]]\nid = "{lane}"\nsite = "{SITE}"\nkind = "{kind}"\ncamera = "{cam}"\n'
        f'gate = {{ bus = "{bus}", unit = {unit}, model = "{model}" }}\n'
        for lane, kind, cam, unit, model in (
            (ENTRY, "entry", CAM_IN, 1, RELAY.model),
            (EXIT, "exit", CAM_OUT, 2, LOGIC.model),
        )
    )
    extra = parse_town(
        '[town]\nname = "x"\n'
        f'[[sites]]\nid = "{site.id}"\nname = "{site.name}"\nkind = "{site.kind.value}"\n'
        f"lat = {site.lat}\nlon = {site.lon}\ncapacity = {site.capacity}\n"
        f'counting = "{site.counting.value}"\nsegment_class = "{site.segment_class}"\n' + lanes
    )
    return town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})


@contextlib.asynccontextmanager
async def started(db_url: str, broker: Broker, rig: Rig, clock: Clock) -> AsyncIterator[Run]:
    """A gateway with the RTU lanes; the first one on a database imports them and registers
    the cameras, a later one (a restart) finds them there."""
    settings = gateway_settings(db_url, broker, lanes={"gates": "modbus", "poll_interval_s": 0.1})
    async with running_gateway(settings, clock) as gw:
        base = f"http://127.0.0.1:{gw.api_port}"
        async with httpx.AsyncClient(base_url=base) as http:
            tokens = await make_tokens(gw)
            if not rig.secrets:
                async with gw.services.sessions.begin() as db:
                    await import_town(db, lanes_town(rig.line.bus), clock.now)
                for cam, vendor, lane in ((CAM_IN, "hikvision", ENTRY), (CAM_OUT, "vzenith", EXIT)):
                    r = await http.post(
                        "/api/v1/devices/cameras",
                        json={"id": cam, "vendor": vendor, "site_id": SITE, "lane_id": lane},
                        headers={"Authorization": f"Bearer {tokens['technician']}"},
                    )
                    assert r.status_code == 201, r.text
                    rig.secrets[cam] = r.json()["secret"]
            await wait_for(
                lambda: (
                    {ENTRY, EXIT} <= set(gw.services.lanes.lanes)
                    and gw.services.live.directory.get(CAM_OUT) is not None
                ),
                5,
                what="lanes and cameras live",
            )
            entry = HikvisionCamera(base, CAM_IN, rig.secrets[CAM_IN])
            out = VzenithCamera(base, CAM_OUT, rig.secrets[CAM_OUT])
            try:
                yield Run(gw, clock, http, tokens, entry, out)
            finally:
                await asyncio.gather(entry.aclose(), out.aclose())


@pytest_asyncio.fixture
async def run(mosquitto: Broker, db_url: str, rig: Rig) -> AsyncIterator[Run]:
    async with started(db_url, mosquitto, rig, Clock()) as r:
        yield r


async def enter(run: Run, sim: GateSimulator, plate: str, at: datetime, n: int) -> Any:
    """A car at the entry: the camera's push, the lane's *n*-th decision confirmed."""
    run.clock.now = at
    r = await run.entry.push(plate, at)
    assert r.status_code == 200, r.text
    d = await run.settled(ENTRY, n)
    assert (d.state, d.verdict, d.plate) == ("confirmed", "entry_opened", plate), d
    return d


def raises(sim: GateSimulator, unit: int) -> int:
    return sim.action_writes(unit, "raise")


async def test_entry_over_rtu_opens_a_session_and_raises_once_confirmed(run: Run, rig: Rig) -> None:
    # A lane added live: its controller is polled before the first car comes.
    view = await wait_for(
        lambda: _view_if(run, ENTRY, lambda v: v["gate"]["now"]["online"] is True), 5
    )
    assert view["gate"]["now"]["position"] == "down" and rig.sim.writes == []
    d = await enter(run, rig.sim, "甘G70001", T0, 1)
    assert raises(rig.sim, 1) == 1 and raises(rig.sim, 2) == 0
    assert rig.sim.url.startswith("serial://")  # the RTU server on the pty pair
    assert run.controller(ENTRY).hub.url.startswith(f"serial://{rig.line.gateway_end}")
    s = await run.http.get(f"/api/v1/sessions/{d.session_id}", headers=run.auth("payments"))
    assert (s.json()["state"], s.json()["plate"], s.json()["site_id"]) == ("open", "甘G70001", SITE)
    # The camera fires again for the same car: recorded, nothing more reaches the controller.
    run.clock.now = T0 + 3 * MIN / 60
    assert (await run.entry.push("甘G70001", run.clock.now)).status_code == 200
    assert len(run.lane(ENTRY).recent) == 1 and raises(rig.sim, 1) == 1
    # Operators see the decision and the gate as the controller reports it (read back).
    view = await wait_for(
        lambda: _view_if(run, ENTRY, lambda v: v["gate"]["now"]["position"] == "up"), 5
    )
    assert view["phase"] == "idle" and view["gate"]["now"]["online"] is True
    assert [(x["id"], x["state"]) for x in view["decisions"]] == [(d.id, "confirmed")]
    await wait_for(lambda: rig.sim.gates[1].coils.get(0) == 0, 5, what="the relay released")
    assert raises(rig.sim, 1) == 1


async def _view_if(run: Run, lane_id: str, ok: Any) -> Any:
    view = await run.view(lane_id)
    return view if view["gate"]["now"] is not None and ok(view) else None


async def test_exit_at_night_is_free_and_raises_over_rtu(run: Run, rig: Rig) -> None:
    await enter(run, rig.sim, "甘G70002", NIGHT, 1)
    run.clock.now = NIGHT + 4 * 60 * MIN  # 03:00 local: four hours, all in the night band
    r = await run.out.push("甘G70002", run.clock.now)
    assert r.status_code == 200, r.text
    reply = r.json()["Response_AlarmInfoPlate"]
    assert reply["info"] == "ok"  # the camera is told to open
    d = await run.settled(EXIT, 1)
    assert (d.state, d.verdict) == ("confirmed", "exit_free")
    assert raises(rig.sim, 2) == 1 and raises(rig.sim, 1) == 1
    view = await run.view(EXIT)
    assert view["phase"] == "idle" and view["display"] == ["甘G70002", "一路顺风"]
    assert view["decisions"][0]["verdict"] == "exit_free"
    s = await run.http.get(f"/api/v1/sessions/{d.session_id}", headers=run.auth("payments"))
    assert (s.json()["state"], s.json()["due_fen"]) == ("closed", 0)


async def test_unknown_plate_at_exit_waits_for_an_operator_who_opens_over_rtu(
    run: Run, rig: Rig
) -> None:
    run.clock.now = T0 + 30 * MIN
    r = await run.out.push("甘G70003", run.clock.now)
    assert r.status_code == 200 and r.json()["Response_AlarmInfoPlate"]["info"] == "no"
    view = await run.view(EXIT)
    assert view["phase"] == "waiting_operator"
    assert view["display"] == ["甘G70003", "无入场记录", "请联系管理员"]
    assert view["decisions"] == [] and [w for w in rig.sim.writes if w.unit == 2] == []
    reason = "no entry record: ticket shown at the booth"
    decision = await run.open(EXIT, reason)
    assert decision["operator"] == run.tokens["operator"].split("_")[1]
    d = await run.settled(EXIT, 1)
    assert (d.state, d.verdict, d.id) == ("confirmed", "operator_open", decision["id"])
    assert raises(rig.sim, 2) == 1
    view = await run.view(EXIT)
    assert view["phase"] == "idle" and reason in view["decisions"][0]["reason"]
    async with run.gw.services.sessions() as db:
        row = await db.get(LaneDecisionRow, d.id)
    assert row is not None and (row.state, row.operator) == ("confirmed", decision["operator"])


async def test_controller_gone_mid_command_is_a_fault_never_written_twice(
    run: Run, rig: Rig
) -> None:
    sim = rig.sim
    await enter(run, sim, "甘G70004", T0, 1)
    # The confirmation window of the shipped model is 8 s; a shorter one keeps this quick.
    run.controller(ENTRY).confirm_timeout = 1.5

    def gone_after_the_raise(w: WriteRecord) -> None:
        if (w.unit, w.table, w.address, w.value) == (1, "coil", 0, 1):
            sim.on_write = None  # the raise reached the controller; now it goes
            asyncio.get_running_loop().create_task(sim.stop())

    sim.on_write = gone_after_the_raise
    run.clock.now = T0 + 10 * MIN
    r = await run.entry.push("甘G70005", run.clock.now)
    assert r.status_code == 200, r.text
    d = await run.settled(ENTRY, 2)
    assert d.state == "unconfirmed" and "not raise within" in d.detail, d
    assert not sim.running and raises(sim, 1) == 2  # once per car: read back, never rewritten
    view = await run.view(ENTRY)
    assert view["phase"] == "fault" and view["display"][0] == "道闸故障"
    assert view["decisions"][0]["state"] == "unconfirmed"
    # The controller is back: an operator opens; one more raise, for that decision only.
    await sim.start_again()
    decision = await run.open(ENTRY, "gate fault cleared, car waiting")
    d3 = await run.settled(ENTRY, 3)
    assert (d3.id, d3.state, d3.verdict) == (decision["id"], "confirmed", "operator_open")
    assert raises(sim, 1) == 3
    await wait_for(lambda: sim.gates[1].coils.get(0) == 0, 5, what="the relay released")
    view = await run.view(ENTRY)
    assert view["phase"] == "idle"
    assert [x["state"] for x in view["decisions"]] == ["confirmed", "unconfirmed", "confirmed"]
    assert raises(sim, 1) == 3


async def test_controller_power_cycle_reconnects_by_itself_and_the_next_car_raises(
    run: Run, rig: Rig
) -> None:
    await enter(run, rig.sim, "甘G70006", T0, 1)
    hub = run.controller(ENTRY).hub
    connects = hub.connects
    # Power off: the controllers and the USB adapter of their line (socat ends).
    await rig.sim.stop()
    await rig.line.down()
    await wait_for(lambda: not hub.online, 5, what="the line lost")
    await wait_for(lambda: _view_if(run, ENTRY, lambda v: v["gate"]["now"]["online"] is False), 5)
    # Power on: a new line at the same path, controllers with fresh state (boom down).
    await rig.line.up()
    rig.sim = GateSimulator(fresh_gates())
    await rig.sim.start_serial(rig.line.simulator_end, BAUD)
    await wait_for(lambda: hub.online and hub.connects > connects, 15, what="reconnected")
    await enter(run, rig.sim, "甘G70007", T0 + 10 * MIN, 2)
    assert raises(rig.sim, 1) == 1  # the fresh controller saw this car's raise, once
    view = await run.view(ENTRY)
    assert view["gate"]["now"]["online"] is True and view["gate"]["now"]["position"] == "up"


async def test_gateway_restart_mid_raise_is_interrupted_and_never_resent(
    mosquitto: Broker, db_url: str, rig: Rig
) -> None:
    sim, clock = rig.sim, Clock()

    def silent_after_the_raise(w: WriteRecord) -> None:
        if (w.unit, w.table, w.address, w.value) == (1, "coil", 0, 1):
            sim.on_write = None
            sim.gates[1].unplugged = True  # the raise got through; nothing answers after it

    async with started(db_url, mosquitto, rig, clock) as first:
        sim.on_write = silent_after_the_raise
        r = await first.entry.push("甘G70008", T0)
        assert r.status_code == 200, r.text
        rt = first.lane(ENTRY)
        await wait_for(lambda: rt.recent and rt.recent[-1].state == "sent", 5, what="sent")
        await wait_for(lambda: sim.gates[1].unplugged, 5, what="the raise written")
        (d,) = rt.recent
        assert raises(sim, 1) == 1
        # The gateway stops while the raise is being read back (8 s window).
    assert raises(sim, 1) == 1
    sim.gates[1].unplugged = False
    clock.now = T0 + MIN
    async with started(db_url, mosquitto, rig, clock) as second:
        async with second.gw.services.sessions() as db:
            row = await db.get(LaneDecisionRow, d.id)
        assert row is not None and row.state == "interrupted"
        view = await second.view(ENTRY)
        assert (view["phase"], view["verdict"]) == ("waiting_operator", "restart_mid_raise")
        assert [(x["id"], x["state"]) for x in view["decisions"]] == [(d.id, "interrupted")]
        # The new run talks to the controller, and does not raise again; the relay the
        # stopped run left closed (its pulse end never went out) is released, or the next
        # raise would be no rising edge at all.
        await wait_for(
            lambda: _view_if(second, ENTRY, lambda v: v["gate"]["now"]["online"] is True), 5
        )
        await wait_for(lambda: sim.gates[1].coils.get(0) == 0, 5, what="the relay released")
        assert raises(sim, 1) == 1
        # The same car read again: an operator decides, nothing is sent.
        r = await second.entry.push("甘G70008", clock.now)
        assert r.status_code == 200, r.text
        view = await second.view(ENTRY)
        assert view["phase"] == "waiting_operator" and "请联系管理员" in view["display"]
        assert len(view["decisions"]) == 1 and raises(sim, 1) == 1
        decision = await second.open(ENTRY, "driver still at the barrier after restart")
        d2 = await second.settled(ENTRY, 2)
        assert (d2.id, d2.state) == (decision["id"], "confirmed")
        assert raises(sim, 1) == 2
        async with second.gw.services.sessions() as db:
            row = await db.get(LaneDecisionRow, d.id)
        assert row is not None and row.state == "interrupted"  # the old one stays so


async def test_offline_resend_with_a_duplicate_is_one_step_and_told_to_continue(
    run: Run, rig: Rig
) -> None:
    plate = "甘G70009"
    await enter(run, rig.sim, plate, T0, 1)
    # The exit camera lost the network while the car left; it kept the read.
    left = T0 + 30 * MIN
    run.out.read_offline(plate, left)
    pid = run.out.stored[0][2]
    run.clock.now = T0 + 50 * MIN  # back online: it resends, the same read twice
    replies = await run.out.resend_offline(duplicate_every=1)
    assert len(replies) == 2 and not run.out.stored
    for r in replies:
        assert r.status_code == 200, r.text
        body = r.json()["Response_AlarmInfoPlate"]
        assert body["ContinuePushOffline"] == {"plateid": pid, "continue": 1}
        assert body["info"] == "no"  # an old read opens nothing: the car is gone
    async with run.gw.services.sessions() as db:
        steps = (
            await db.execute(
                select(PlateReadRow.direction, PlateReadRow.outcome).where(
                    PlateReadRow.plate == plate
                )
            )
        ).all()
        reads = await db.scalar(
            select(func.count())
            .select_from(CameraReadRow)
            .where(CameraReadRow.camera_id == CAM_OUT)
        )
    assert sorted(steps) == [("in", "opened"), ("out", "closed")] and reads == 1
    # A raise is recorded before the camera's answer: none was, none reached unit 2.
    assert len(run.lane(EXIT).recent) == 0 and raises(rig.sim, 2) == 0
    view = await run.view(EXIT)
    assert view["decisions"] == []
    d = run.lane(ENTRY).recent[0]
    s = await run.http.get(f"/api/v1/sessions/{d.session_id}", headers=run.auth("payments"))
    assert s.json()["state"] == "closed"
    assert datetime.fromisoformat(s.json()["exit"]) == left
