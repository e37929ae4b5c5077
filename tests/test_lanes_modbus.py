"""A lane's gate over real Modbus TCP: the gateway with ``[lanes] gates = "modbus"`` and a
pymodbus server simulating the lane's controller. An entry read raises the gate once,
confirmed by reading it back; the same car read again sends nothing; a lane whose gate does
not answer ends in fault (no retry) and an operator can still open it once it is back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from drivers.gates.models import shipped_model
from gateway.demo.gates import GateSimulator, SimGate
from gateway.directory.town import load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.services.lanes.contract import LaneRead
from gateway.services.lanes.runtime import LaneRuntime
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)
FINAL = {"confirmed", "unconfirmed", "failed", "interrupted"}


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[GateSimulator]:
    s = GateSimulator({1: SimGate(shipped_model("example-relay4"), travel_s=0.2)})
    await s.start_tcp()
    try:
        yield s
    finally:
        await s.stop()


@pytest_asyncio.fixture
async def gw(mosquitto: Broker, db_url: str, sim: GateSimulator) -> AsyncIterator[Any]:
    settings = gateway_settings(db_url, mosquitto, lanes={"gates": "modbus"})
    async with running_gateway(settings, lambda: T0 + timedelta(seconds=10)) as gateway:
        town = load_town(None)
        (site,) = [s for s in town.sites if s.id == "cp-keyunzhan"]
        extra = parse_town(
            '[town]\nname = "x"\n'
            f'[[sites]]\nid = "{site.id}"\nname = "{site.name}"\nkind = "{site.kind.value}"\n'
            f"lat = {site.lat}\nlon = {site.lon}\ncapacity = {site.capacity}\n"
            f'counting = "entry_exit"\nsegment_class = "{site.segment_class}"\n'
            '[[lanes]]\nid = "ln-test-in"\nsite = "cp-keyunzhan"\nkind = "entry"\n'
            'camera = "cam-test-in"\n'
            f'gate = {{ bus = "{sim.url}", unit = 1, model = "example-relay4" }}\n'
        )
        town = town.model_copy(update={"lanes": [*town.lanes, *extra.lanes]})
        async with gateway.services.sessions.begin() as db:
            await import_town(db, town, T0)
        await wait_for(lambda: "ln-test-in" in gateway.services.lanes.lanes, 5, what="lane live")
        yield gateway


def lane(gw: Any) -> LaneRuntime:
    rt: LaneRuntime = gw.services.lanes.lanes["ln-test-in"]
    return rt


async def settled(rt: LaneRuntime, n: int) -> Any:
    await wait_for(
        lambda: len(rt.recent) >= n and rt.recent[-1].state in FINAL, 10, what="gate outcome"
    )
    return rt.recent[-1]


async def test_entry_raises_the_real_gate_once(gw: Any, sim: GateSimulator) -> None:
    answer = await gw.services.lanes.on_read(LaneRead("cam-test-in", "甘G24680", T0, "r1"))
    assert answer.open
    d = await settled(lane(gw), 1)
    assert d.state == "confirmed"
    assert sim.action_writes(1, "raise") == 1
    # The camera fires again for the same car: nothing more reaches the controller.
    await gw.services.lanes.on_read(
        LaneRead("cam-test-in", "甘G24680", T0 + timedelta(seconds=3), "r2")
    )
    assert len(lane(gw).recent) == 1 and sim.action_writes(1, "raise") == 1
    # Operators see the gate as the controller reports it.
    await wait_for(
        lambda: (gw.services.lanes.gates.status("ln-test-in") or {}).get("position") == "up",
        10,
        what="the gate reported up",
    )
    assert gw.services.lanes.gates.status("ln-test-in")["online"] is True


async def test_a_gate_that_is_gone_is_a_fault_and_an_operator_opens_it_later(
    gw: Any, sim: GateSimulator
) -> None:
    await sim.stop()
    await gw.services.lanes.on_read(LaneRead("cam-test-in", "甘G13579", T0, "r3"))
    d = await settled(lane(gw), 1)
    assert d.state in ("failed", "unconfirmed")
    assert lane(gw).state.phase == "fault"
    await sim.start_again()
    await gw.services.lanes.operator_open(
        "ln-test-in", reason="gate back, car waiting", operator="tok-operator"
    )
    d2 = await settled(lane(gw), 2)
    assert d2.state == "confirmed" and sim.action_writes(1, "raise") == 1


def test_a_serial_port_the_town_names_is_opened_as_this_hosts_device() -> None:
    """The town (shared by every instance) names ``/dev/ttyUSB0``; each host says which of
    its devices that is (``[lanes] serial_ports``). Other buses are left as they are."""
    from datetime import UTC, datetime

    from gateway.config import Settings
    from gateway.services.lanes.modbus_gates import ModbusGates

    gates = ModbusGates(
        lambda: datetime.now(UTC), serial_ports={"/dev/ttyUSB0": "/dev/serial/by-id/usb-FTDI-1"}
    )
    assert (
        gates.host_bus("serial:///dev/ttyUSB0?baudrate=19200&parity=E&stopbits=1")
        == "serial:///dev/serial/by-id/usb-FTDI-1?baudrate=19200&parity=E&stopbits=1"
    )
    assert gates.host_bus("serial:///dev/ttyS1") == "serial:///dev/ttyS1"
    assert gates.host_bus("tcp://127.0.0.1:1502") == "tcp://127.0.0.1:1502"
    with pytest.raises(ValueError, match="absolute device paths"):
        Settings.model_validate({"lanes": {"serial_ports": {"ttyUSB0": "/dev/ttyACM0"}}})


async def test_a_lane_that_goes_away_stops_its_gate_polling_unless_another_lane_has_it() -> None:
    from dataclasses import replace
    from datetime import UTC, datetime

    from gateway.services.lanes.config import LaneConfig
    from gateway.services.lanes.modbus_gates import ModbusGates

    gates = ModbusGates(lambda: datetime.now(UTC))
    a = LaneConfig(
        "ln-a", "cp-x", "entry", "cam-a", "tcp://127.0.0.1:9", 1, "example-relay4", 4, True
    )
    b = replace(a, id="ln-b", camera_id="cam-b")  # the same controller (a test town's mistake)
    gates.gate_for(a)
    gates.gate_for(b)
    gates.forget("ln-a")
    assert gates.controller("ln-a") is None and gates.controller("ln-b") is not None
    gates.forget("ln-b")
    assert gates.controller("ln-b") is None and not gates._controllers


async def test_a_gate_in_maintenance_is_never_commanded(gw: Any, sim: GateSimulator) -> None:
    """A technician has the controller: the lane records the car it would let in as a failed
    decision saying why, and writes nothing to the controller; back in service, it drives."""
    from gateway.directory.devices import Lifecycle
    from gateway.directory.lifecycle import LifeKind
    from gateway.services import lifecycle

    async def gate_in(state: str) -> None:
        await lifecycle.move(gw.services.sessions, "ln-test-in", Lifecycle(state), T0,
                             kind=LifeKind.GATE, reason="test")  # fmt: skip
        gw.services.follower.kick()  # follow the feed now, as the API does after its own write
        await wait_for(lambda: lane(gw).config.gate_lifecycle == state, 5, what=f"gate {state}")

    await gate_in("maintenance")
    answer = await gw.services.lanes.on_read(LaneRead("cam-test-in", "甘G11223", T0, "r9"))
    d = await settled(lane(gw), 1)
    assert d.state == "failed" and "maintenance: not driven" in d.detail, (answer, d.detail)
    assert lane(gw).state.phase == "fault"
    assert sim.action_writes(1, "raise") == 0  # not one write reached the controller
    await gate_in("active")
    await gw.services.lanes.operator_open("ln-test-in", reason="gate back in service",
                                          operator="tok-operator")  # fmt: skip
    d2 = await settled(lane(gw), 2)
    assert d2.state == "confirmed" and sim.action_writes(1, "raise") == 1
