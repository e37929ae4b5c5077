"""Gate controllers over real Modbus: a pymodbus server simulating two controllers on one
Modbus TCP bus, and one on a virtual serial pair (socat pty) over RTU. Commands confirmed by
read-back and sent at most once (the simulator's write log says what reached a controller),
a controller dropping mid-command, a power cycle, malformed and exception answers."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import serial_asyncio_fast
from pymodbus.constants import ExcCodes

from drivers.backoff import Backoff
from drivers.gates.bus import frame_gap, parse_bus_url
from drivers.gates.controller import GateController
from drivers.gates.hub import HubPool, ModbusHub
from drivers.gates.models import shipped_model
from drivers.gates.registers import GateMap, GateState
from events import now_utc
from gateway.demo.gates import GateSimulator, SimGate, WriteRecord, socat_pair
from tests.conftest import wait_for

RELAY = shipped_model("example-relay4")
LOGIC = shipped_model("example-logic-hr")
TRAVEL = 0.15


@pytest.fixture(autouse=True)
def quiet_pymodbus() -> Iterator[None]:
    """pymodbus logs every timeout itself; the hub reports once per episode instead."""
    logger = logging.getLogger("pymodbus")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


@pytest.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    s = GateSimulator({1: SimGate(RELAY, travel_s=TRAVEL), 2: SimGate(LOGIC, travel_s=TRAVEL)})
    await s.start_tcp()
    yield s
    await s.stop()


def fast_backoff() -> Backoff:
    return Backoff(base=0.05, cap=0.4)


@contextlib.asynccontextmanager
async def hub_for(sim: GateSimulator, **kw: float) -> AsyncIterator[ModbusHub]:
    async with ModbusHub(sim.url, backoff=fast_backoff(), **kw) as hub:
        assert await hub.wait_online(5)
        yield hub


def gate(hub: ModbusHub, unit: int, m: GateMap, **kw: float) -> GateController:
    return GateController(hub, unit, m, clock=now_utc, confirm_interval=0.02, **kw)


@contextlib.asynccontextmanager
async def polling(g: GateController) -> AsyncIterator[asyncio.Task[None]]:
    task = asyncio.create_task(g.run())
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def logged(caplog: pytest.LogCaptureFixture, logger: str, word: str) -> int:
    return sum(1 for r in caplog.records if r.name == logger and word in r.getMessage())


async def test_two_controllers_on_one_tcp_bus(sim: GateSimulator) -> None:
    async with hub_for(sim) as hub:
        g1, g2 = gate(hub, 1, RELAY), gate(hub, 2, LOGIC)
        assert (await g1.read()).position == "down"
        assert await g2.read() == GateState("down", False, 0, None, 2)
        first, second = await asyncio.gather(g1.command("raise", "d-1"), g2.command("raise", "d-2"))
        assert (first.outcome, second.outcome) == ("confirmed", "confirmed")
        assert first.state is not None and first.state.position == "up" and first.sent
        assert second.state is not None and second.state.position == "up"
        assert hub.max_in_flight == 1  # the bus lock serialised both controllers' requests
        assert {r.unit for r in sim.requests} == {1, 2}
        assert (sim.action_writes(1, "raise"), sim.action_writes(2, "raise")) == (1, 1)
        assert first.elapsed_s < RELAY.actions["raise"].pulse_ms / 1000  # no wait for the pulse
        await wait_for(
            lambda: sim.gates[1].coils[0] == 0 and sim.gates[2].holding[0] == 0,
            5,
            what="pulses end",
        )
        pulse_on, pulse_off = (r for r in sim.writes if r.unit == 1)
        assert pulse_off.at - pulse_on.at >= RELAY.actions["raise"].pulse_ms / 1000
        # The same decision again: its outcome, nothing sent.
        writes = len(sim.writes)
        assert await g1.command("raise", "d-1") is first
        again = await asyncio.gather(g2.command("lower", "d-3"), g2.command("lower", "d-3"))
        assert again[0] is again[1] and again[0].outcome == "confirmed"
        assert sim.action_writes(2, "lower") == 1
        await wait_for(lambda: len(sim.writes) == writes + 2, 5, what="the lower's pulse end")
        assert g2.last_state is not None and g2.last_state.position == "down"


async def test_outcomes_that_are_not_confirmed(sim: GateSimulator) -> None:
    async with hub_for(sim) as hub:
        g = gate(hub, 2, LOGIC, confirm_timeout=0.6)
        assert (await g.command("raise", "up")).outcome == "confirmed"
        sim.gates[2].vehicle_present = True  # the loop detector holds the boom up
        held = await g.command("lower", "held")
        assert (held.outcome, held.sent) == ("unconfirmed", True)
        assert held.error is not None and "vehicle present" in held.error
        assert held.state is not None and held.state.vehicle_present
        assert sim.action_writes(2, "lower") == 1  # read back many times, written once
        sim.gates[2].vehicle_present = False
        sim.gates[2].fault_code = 1
        jammed = await g.command("lower", "jammed")
        assert jammed.outcome == "unconfirmed" and "motor overload" in (jammed.error or "")
        sim.gates[2].fault_code = 0
        sim.refuse_next(2, ExcCodes.ILLEGAL_ADDRESS)
        refused = await g.command("lower", "refused")
        assert (refused.outcome, refused.sent) == ("failed", True)
        assert "exception code 2" in (refused.error or "")
        no_stop = GateMap.model_validate(
            LOGIC.model_dump()
            | {"actions": {k: v for k, v in LOGIC.actions.items() if k != "stop"}}
        )
        odd = await gate(hub, 2, no_stop).command("stop", "no-stop")
        assert (odd.outcome, odd.sent) == ("failed", False)
        assert (await g.command("open sesame", "nonsense")).outcome == "failed"
        writes = len(sim.writes)
        await sim.stop()
        await wait_for(lambda: not hub.online, 5, what="the hub sees the bus down")
        down = await gate(hub, 2, LOGIC, confirm_timeout=0.3).command("lower", "bus-down")
        assert (down.outcome, down.sent) == ("failed", False) and "not sent" in (down.error or "")
        assert len(sim.writes) == writes


async def test_dropping_mid_command_is_unconfirmed_and_never_written_twice(
    sim: GateSimulator,
) -> None:
    async with hub_for(sim) as hub:
        g = gate(hub, 1, RELAY, confirm_timeout=1.0, poll_interval=0.05, silent_poll_max=0.2)
        assert (await g.read()).position == "down"

        def pull_the_plug(r: WriteRecord) -> None:
            if r.value == 1:  # the raise's write reached the controller: now the network goes
                sim.on_write = None
                asyncio.get_running_loop().create_task(sim.stop())

        sim.on_write = pull_the_plug
        outcome = await g.command("raise", "mid")
        assert (outcome.outcome, outcome.sent) == ("unconfirmed", True)
        assert outcome.state is not None and outcome.state.position == "down"  # last seen
        assert not sim.running and sim.action_writes(1, "raise") == 1
        assert sim.gates[1].coils[0] == 1  # the relay is still closed: its reset did not get out
        async with polling(g):
            await sim.start_again()
            # The polling task ends the pulse after the reconnect; the raise is not repeated.
            await wait_for(lambda: sim.gates[1].coils.get(0) == 0, 5, what="the relay reset")
            await wait_for(lambda: g.last_state and g.last_state.position == "up", 5)
        assert sim.action_writes(1, "raise") == 1
        assert await g.command("raise", "mid") is outcome
        assert sim.action_writes(1, "raise") == 1


async def test_a_blip_mid_command_is_confirmed_by_the_state_read_after_reconnect(
    sim: GateSimulator,
) -> None:
    async with hub_for(sim) as hub:
        g = gate(hub, 2, LOGIC, confirm_timeout=4.0)

        async def blip() -> None:
            await sim.stop()
            await asyncio.sleep(0.2)  # the outage to ride out, not a wait for luck
            await sim.start_again()

        def on_write(r: WriteRecord) -> None:
            if r.value == 1:
                sim.on_write = None
                asyncio.get_running_loop().create_task(blip())

        sim.on_write = on_write
        outcome = await g.command("raise", "blip")
        assert outcome.outcome == "confirmed", outcome
        assert outcome.state is not None and outcome.state.position == "up"
        assert hub.connects >= 2 and sim.starts == 2
        assert sim.action_writes(2, "raise") == 1
        await wait_for(lambda: sim.gates[2].holding.get(0) == 0, 5, what="the command word reset")


async def test_power_cycle_reconnects_by_itself_and_is_logged_once(
    sim: GateSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="drivers")
    cap = fast_backoff().cap
    async with hub_for(sim) as hub:
        g = gate(hub, 2, LOGIC, poll_interval=0.05, silent_poll_max=0.2)
        changes: list[tuple[bool, str | None]] = []
        g.on_online = lambda _g, online, why: changes.append((online, why))
        async with polling(g) as task:
            await wait_for(lambda: g.online, 5)
            await sim.stop()  # power off
            await wait_for(lambda: not g.online, 5, what="offline")
            await wait_for(lambda: hub.failing_since >= 4, 10, what="reconnects failing")
            for unit in sim.gates.values():
                unit.power_cycle(sim.clock())
            polls = g.polls
            started = asyncio.get_running_loop().time()
            await sim.start_again()  # power on
            await wait_for(lambda: hub.online, cap + 2, what="reconnected")
            assert asyncio.get_running_loop().time() - started <= cap + 0.3
            await wait_for(lambda: g.online and g.polls > polls + 2, 5, what="polling resumed")
            assert not task.done()
        assert changes[0] == (True, None) and changes[1][0] is False and changes[-1] == (True, None)
        hub_log, gate_log = "drivers.gates.hub", "drivers.gates.controller"
        assert logged(caplog, hub_log, "failing") == 1
        assert logged(caplog, hub_log, "recovered") == 1
        assert logged(caplog, gate_log, "failing") == 1
        assert logged(caplog, gate_log, "recovered") == 1


async def test_malformed_and_exception_answers_do_not_kill_polling(sim: GateSimulator) -> None:
    async with hub_for(sim) as hub:
        g = gate(hub, 2, LOGIC, poll_interval=0.02, silent_poll_max=0.1)
        g.on_state = lambda *_: (_ for _ in ()).throw(RuntimeError("a listener that fails"))
        real_read = hub.read
        calls = 0

        async def sometimes_nonsense(*args: object, **kw: object) -> object:
            nonlocal calls
            calls += 1
            if calls == 3:
                raise RuntimeError("something nobody expected")
            return await real_read(*args, **kw)  # type: ignore[arg-type]

        hub.read = sometimes_nonsense  # type: ignore[method-assign]
        async with polling(g) as task:
            await wait_for(lambda: g.online, 5)
            sim.refuse_next(2, ExcCodes.DEVICE_FAILURE, n=4)
            sim.garble_next(2)
            await wait_for(lambda: not g.online, 5, what="offline after errors")
            await wait_for(lambda: g.online and g.last_error is None, 5, what="back")
            assert calls > 3 and not sim._refuse[2] and not task.done()
            assert hub.connects >= 2  # a garbled TCP frame costs the connection, not the task
            polls = g.polls
            await wait_for(lambda: g.polls > polls + 3, 5, what="polling goes on")


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
async def test_one_controller_over_rtu_on_a_pty_pair(tmp_path: Path) -> None:
    async with socat_pair(tmp_path) as (gateway_end, simulator_end):
        s = GateSimulator({7: SimGate(LOGIC, travel_s=TRAVEL)})
        await s.start_serial(simulator_end, 9600)
        url = f"serial://{gateway_end}?baudrate=9600"
        try:
            async with ModbusHub(url, backoff=fast_backoff(), timeout=0.3) as hub:
                assert await hub.wait_online(5)
                transport = hub._client.ctx.transport  # type: ignore[union-attr]
                assert isinstance(transport, serial_asyncio_fast.SerialTransport)
                g = gate(hub, 7, LOGIC)
                outcome = await g.command("raise", "rtu-1")
                assert outcome.outcome == "confirmed" and s.action_writes(7, "raise") == 1
                with pytest.raises(Exception, match="no answer"):
                    await gate(hub, 8, LOGIC).read()  # nobody at unit 8 on this line
                assert (await g.read()).position == "up"  # the line is still in step
                assert (await g.command("lower", "rtu-2")).outcome == "confirmed"
                async with ModbusHub(url, backoff=fast_backoff()) as second:
                    assert not await second.wait_online(0.5)  # the port is opened exclusively
                gap = frame_gap(parse_bus_url(url))
                assert gap == pytest.approx(3.5 * 10 / 9600)
                seen = [r.at for r in s.requests]
                assert min(b - a for a, b in itertools.pairwise(seen)) >= gap
        finally:
            await s.stop()


def test_a_silent_controller_is_polled_less_often() -> None:
    g = GateController(ModbusHub("tcp://127.0.0.1:9"), 1, LOGIC, clock=now_utc, poll_interval=0.5)
    assert g.next_poll_in() == 0.5
    intervals = []
    for _ in range(8):
        g._missed("no answer")
        intervals.append(g.next_poll_in())
    assert intervals == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0, 10.0]
    assert not g.online and g.last_error == "no answer"
    g._seen(GateState("up"))
    assert g.next_poll_in() == 0.5 and g.online


async def test_one_hub_per_bus(sim: GateSimulator) -> None:
    pool = HubPool(backoff=fast_backoff())
    try:
        port = sim.url.rsplit(":", 1)[1]
        hub = pool.get(sim.url)
        assert (
            pool.get(f"tcp://127.0.0.1:{port}") is hub and pool.get(parse_bus_url(sim.url)) is hub
        )
        assert pool.get("serial:///dev/ttyNONE") is not hub
        with pytest.raises(ValueError, match="already configured as serial:///dev/ttyNONE"):
            pool.get("serial:///dev/ttyNONE?baudrate=19200")
        with pytest.raises(ValueError, match="already configured"):
            pool.get(f"{sim.url}?timeout_ms=50")
        assert await hub.wait_online(5)
        assert (await gate(hub, 1, RELAY).read()).position == "down"
        hubs = pool.hubs
        assert len(hubs) == 2 and hub.online
    finally:
        await pool.close()
    assert not any(h.online for h in hubs) and pool.hubs == []


@pytest.mark.skipif(shutil.which("socat") is None, reason="socat not installed")
async def test_the_serial_line_goes_and_comes_back(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The pty pair disappears (a USB adapter pulled, socat ended) and a new one appears at
    the same path: the hub reopens it by itself, polling goes on, each logged once."""
    caplog.set_level(logging.INFO, logger="drivers")
    s = GateSimulator({3: SimGate(LOGIC, travel_s=TRAVEL)})
    async with contextlib.AsyncExitStack() as line:
        gateway_end, simulator_end = await line.enter_async_context(socat_pair(tmp_path))
        await s.start_serial(simulator_end)
        url = f"serial://{gateway_end}?baudrate=9600&timeout_ms=300"
        async with ModbusHub(url, backoff=fast_backoff()) as hub:
            assert await hub.wait_online(5)
            g = gate(hub, 3, LOGIC, poll_interval=0.05, silent_poll_max=0.2)
            async with polling(g):
                await wait_for(lambda: g.online, 5)
                await s.stop()
                await line.aclose()  # socat ends: the gateway's end of the line is gone
                await wait_for(lambda: not hub.online, 5, what="the line lost")
                await wait_for(lambda: hub.failing_since >= 3, 5, what="reopening fails")
                await wait_for(lambda: g.last_error is not None, 5, what="polling sees it")
                await line.enter_async_context(socat_pair(tmp_path))
                await s.start_again()
                await wait_for(lambda: hub.online and g.online, 5, what="the line back")
                assert (await g.command("raise", "after")).outcome == "confirmed"
        await s.stop()
    assert logged(caplog, "drivers.gates.hub", "failing") == 1
    assert logged(caplog, "drivers.gates.hub", "recovered") == 1
