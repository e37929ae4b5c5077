"""The pure part of the gate driver: register maps, read plans, decoding, action plans, bus
URLs and timing. No sockets, no clock."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path
from typing import Any, get_args

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from drivers.gates.bus import (
    BusUrlError,
    SerialBus,
    TcpBus,
    canonical_bus_url,
    char_time,
    frame_gap,
    parse_bus_url,
)
from drivers.gates.models import MapError, load_map, model_names, shipped_model
from drivers.gates.registers import (
    EXPECTED,
    MAX_READ,
    Block,
    GateMap,
    GateState,
    Position,
    ReadRequest,
    Table,
    Write,
    action_plan,
    confirms,
    decode,
    plan_reads,
    read_plan,
)

ROOT = Path(__file__).resolve().parent.parent
TABLES: tuple[Table, ...] = get_args(Table)
POSITIONS: tuple[Position, ...] = get_args(Position)


def relay_map(**over: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "model": "t",
        "actions": {
            "raise": {"kind": "coil", "address": 0},
            "lower": {"kind": "coil", "address": 1, "pulse_ms": 200},
        },
        "position": {"table": "discrete", "address": 0, "count": 2,
                     "values": {"1": "up", "2": "down", "0": "moving"}},
    }  # fmt: skip
    base.update(over)
    return base


# -- the pure modules stay pure ---------------------------------------------------------


@pytest.mark.parametrize("module", ["drivers/gates/registers.py", "drivers/gates/bus.py"])
def test_pure_modules_do_no_io_and_read_no_clock(module: str) -> None:
    tree = ast.parse((ROOT / module).read_text())
    imported = {
        (n.module or "").split(".")[0] if isinstance(n, ast.ImportFrom) else a.name.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in n.names
    }
    assert not imported & {"asyncio", "socket", "serial", "pymodbus", "time", "datetime", "os"}
    assert imported <= {"__future__", "collections", "dataclasses", "typing", "pydantic", "urllib"}


# -- maps --------------------------------------------------------------------------------


def test_shipped_models_load_and_say_they_are_examples() -> None:
    names = model_names()
    assert names == ["example-logic-hr", "example-relay4"]
    for name in names:
        m = shipped_model(name)
        assert m.model == name and m.example and "EXAMPLE" in m.description
        assert set(m.actions) == {"raise", "lower", "stop"}
        assert len(read_plan(m)) == 1  # each is laid out to be read in one request


def test_unknown_model_and_bad_files(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="unknown model 'nope'; shipped: example-logic-hr"):
        shipped_model("nope")
    bad = tmp_path / "m.toml"
    bad.write_text('model = "x"\n[position\n')
    with pytest.raises(MapError, match=r"m\.toml"):
        load_map(bad)
    bad.write_text('model = "x"\nwat = 1\n')
    with pytest.raises(MapError, match="wat: Extra inputs are not permitted"):
        load_map(bad)
    with pytest.raises(MapError, match="No such file"):
        load_map(tmp_path / "missing.toml")


def test_a_map_file_round_trips(tmp_path: Path) -> None:
    f = tmp_path / "own.toml"
    f.write_text(
        'model = "own"\n[actions.raise]\nkind = "register"\naddress = 7\nvalue = 9\n'
        '[actions.lower]\nkind = "coil"\naddress = 3\npulse_ms = 250\n'
        '[position]\ntable = "holding"\naddress = 10\nvalues = { 5 = "up", 6 = "down" }\n'
    )
    m = load_map(f)
    assert action_plan(m, "raise").reset is None  # a register write without a pulse
    assert action_plan(m, "lower").pulse_s == 0.25


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"actions": {"raise": {"kind": "coil", "address": 0}}}, "lower missing"),
        ({"actions": {"raise": {"kind": "relay", "address": 0}}}, "does not match any"),
        ({"actions": {"open": {"kind": "coil", "address": 0}}}, "raise"),
        ({"position": {"table": "holding", "address": 0, "count": 2, "values": {"1": "up"}}},
         "count must be 1"),
        ({"position": {"table": "coil", "address": 0, "values": {"2": "up"}}},
         r"values \[2\] cannot be read from 1 bit"),
        ({"position": {"table": "coil", "address": 65535, "count": 2, "values": {"1": "up"}}},
         "past address 65535"),
        ({"position": {"table": "input", "address": 0, "values": {}}}, "at least one"),
        ({"position": {"table": "input", "address": 0, "values": {"1": "open"}}}, "up"),
        ({"loop": {"table": "discrete", "address": 0, "present": 2}}, "present must be 0 or 1"),
        ({"fault": {"table": "coil", "address": 0}}, "holding"),
        ({"extra": 1}, "Extra inputs"),
        ({"confirm_timeout_s": 0}, "greater than 0"),
    ],
)  # fmt: skip
def test_bad_maps_are_refused(change: dict[str, Any], reason: str) -> None:
    with pytest.raises(ValidationError, match=reason):
        GateMap.model_validate(relay_map(**change))


def test_action_plans() -> None:
    m = GateMap.model_validate(relay_map(actions={
        "raise": {"kind": "coil", "address": 4},
        "lower": {"kind": "coil", "address": 5, "pulse_ms": None},
        "stop": {"kind": "register", "address": 9, "value": 3, "pulse_ms": 100, "reset_value": 7},
    }))  # fmt: skip
    up = action_plan(m, "raise")
    assert (up.write, up.pulse_s, up.reset) == (Write("coil", 4, 1), 0.5, Write("coil", 4, 0))
    flash = action_plan(m, "lower")
    assert (flash.write, flash.reset) == (Write("coil", 5, 1), None)
    stop = action_plan(m, "stop")
    assert (stop.write, stop.reset) == (Write("holding", 9, 3), Write("holding", 9, 7))
    no_stop = GateMap.model_validate(relay_map())
    with pytest.raises(KeyError):
        action_plan(no_stop, "stop")


# -- read plans --------------------------------------------------------------------------

spans = st.lists(
    st.tuples(st.sampled_from(TABLES), st.integers(0, 400), st.integers(1, 16)), max_size=30
)


@settings(max_examples=400, deadline=None)
@given(spans, st.integers(0, 5))
def test_read_plan_covers_everything_within_limits(
    s: list[tuple[Table, int, int]], gap: int
) -> None:
    plan = plan_reads(s, max_gap=gap)
    for table, address, count in s:
        assert any(
            r.table == table and r.address <= address and address + count <= r.address + r.count
            for r in plan
        ), (table, address, count)
    for r in plan:
        assert 1 <= r.count <= MAX_READ[r.table]
    assert len(plan) <= len(s)
    assert list(plan) == sorted(plan, key=lambda r: (r.table, r.address))
    assert plan_reads(list(reversed(s)), max_gap=gap) == plan  # order does not matter


@settings(max_examples=400, deadline=None)
@given(spans)
def test_read_plan_without_gap_reads_only_what_was_asked_and_is_minimal(
    s: list[tuple[Table, int, int]],
) -> None:
    plan = plan_reads(s)
    wanted = {(t, a) for t, address, count in s for a in range(address, address + count)}
    read = [(r.table, a) for r in plan for a in range(r.address, r.address + r.count)]
    assert set(read) == wanted  # nothing that was not asked for (it may not exist)
    by_table: dict[str, list[ReadRequest]] = {}
    for r in plan:
        by_table.setdefault(r.table, []).append(r)
    for reqs in by_table.values():
        for a, b in itertools.pairwise(reqs):
            # Two requests of a table are apart, or merging them would pass the limit.
            assert (
                a.address + a.count < b.address
                or b.address + b.count - a.address > MAX_READ[a.table]
            )


def test_read_plan_examples() -> None:
    assert plan_reads([("input", 0, 1), ("input", 1, 1), ("input", 2, 1)]) == (
        ReadRequest("input", 0, 3),
    )
    assert plan_reads([("input", 0, 1), ("input", 2, 1)]) == (
        ReadRequest("input", 0, 1), ReadRequest("input", 2, 1),
    )  # fmt: skip
    assert plan_reads([("input", 0, 1), ("input", 2, 1)], max_gap=1) == (
        ReadRequest("input", 0, 3),
    )
    assert plan_reads([("holding", 0, 1), ("holding", 124, 1), ("holding", 125, 1)]) == (
        ReadRequest("holding", 0, 1), ReadRequest("holding", 124, 2),
    )  # fmt: skip
    assert plan_reads([("holding", 0, 100), ("holding", 100, 100)]) == (
        ReadRequest("holding", 0, 100),
        ReadRequest("holding", 100, 100),
    )  # fmt: skip  (a value is never split over two requests)
    assert plan_reads([("coil", 0, 3), ("discrete", 0, 1)]) == (
        ReadRequest("coil", 0, 3), ReadRequest("discrete", 0, 1),
    )  # fmt: skip
    assert plan_reads([("holding", 0, 300)]) == (
        ReadRequest("holding", 0, 125), ReadRequest("holding", 125, 125),
        ReadRequest("holding", 250, 50),
    )  # fmt: skip
    for bad in [("input", -1, 1), ("input", 0, 0), ("input", 65535, 2)]:
        with pytest.raises(ValueError, match="bad span"):
            plan_reads([bad])  # type: ignore[list-item]


def test_the_logic_board_is_read_in_one_request() -> None:
    m = shipped_model("example-logic-hr")
    assert read_plan(m) == (ReadRequest("input", 0, 3),)
    r4 = shipped_model("example-relay4")
    assert read_plan(r4) == (ReadRequest("discrete", 0, 4),)


# -- decoding ----------------------------------------------------------------------------


def test_decode_the_logic_board() -> None:
    m = shipped_model("example-logic-hr")
    assert decode(m, [Block("input", 0, (1, 0, 0))]) == GateState("up", False, 0, None, 1)
    assert decode(m, [Block("input", 0, (3, 1, 2))]) == GateState(
        "moving", True, 2, "obstacle (photocell)", 3
    )
    assert decode(m, [Block("input", 0, (9, 0, 77))]) == GateState(
        "unknown", False, 77, "unknown fault code 77", 9
    )


def test_decode_limit_switches_lsb_first() -> None:
    m = shipped_model("example-relay4")
    cases = {(1, 0, 0): "up", (0, 1, 0): "down", (0, 0, 0): "stopped", (0, 0, 1): "moving",
             (1, 1, 0): "unknown"}  # fmt: skip
    for bits, position in cases.items():
        state = decode(m, [Block("discrete", 0, (*bits, 1))])
        assert (state.position, state.vehicle_present, state.fault) == (position, True, None)
    assert decode(m, [Block("discrete", 0, (True, False, False, False))]).position == "up"


def test_decode_refuses_what_does_not_cover_the_map() -> None:
    m = shipped_model("example-logic-hr")
    for blocks, reason in [
        ([], "nothing read covers input 0"),
        ([Block("input", 0, (1, 0))], "nothing read covers input 2"),
        ([Block("holding", 0, (1, 0, 0))], "nothing read covers input 0"),
        ([Block("input", 0, (70000, 0, 0))], "out of range"),
        ([Block("input", 0, (-1, 0, 0))], "out of range"),
    ]:
        with pytest.raises(ValueError, match=reason):
            decode(m, blocks)
    with pytest.raises(ValueError, match="out of range"):
        decode(shipped_model("example-relay4"), [Block("discrete", 0, (2, 0, 0, 0))])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 65535), min_size=3, max_size=3))
def test_decode_any_register_values(values: list[int]) -> None:
    """Whatever a controller answers within range decodes to a state, never an exception."""
    m = shipped_model("example-logic-hr")
    s = decode(m, [Block("input", 0, tuple(values))])
    assert s.position in POSITIONS and s.raw_position == values[0]
    assert (s.fault is None) == (values[2] == 0)
    assert s.vehicle_present == (values[1] == 1)


def test_blocks_may_come_split_and_in_any_order() -> None:
    m = shipped_model("example-logic-hr")
    split = [Block("input", 2, (1,)), Block("input", 0, (2, 1))]
    assert decode(m, split) == GateState("down", True, 1, "motor overload", 2)


def test_confirmation() -> None:
    for action, wanted in EXPECTED.items():
        for position in POSITIONS:
            assert confirms(action, GateState(position)) == (position in wanted)
            assert not confirms(action, GateState(position, fault_code=3, fault="jam"))
    assert confirms("stop", GateState("up")) and not confirms("stop", GateState("moving"))


# -- bus URLs and timing -----------------------------------------------------------------


def test_bus_urls() -> None:
    assert parse_bus_url("tcp://10.0.0.5:5020") == TcpBus(host="10.0.0.5", port=5020)
    assert parse_bus_url("tcp://gate-box").port == 502
    s = parse_bus_url("serial:///dev/ttyUSB0?baudrate=19200&parity=e&stopbits=2&timeout_ms=300")
    assert s == SerialBus(device="/dev/ttyUSB0", baudrate=19200, parity="E", stopbits=2,
                          timeout_ms=300)  # fmt: skip
    assert parse_bus_url("serial:///dev/ttyS1").url == (
        "serial:///dev/ttyS1?baudrate=9600&parity=N&stopbits=1"
    )
    assert parse_bus_url("tcp://[::1]:1502").url == "tcp://::1:1502"


@given(
    spec=st.one_of(
        st.builds(
            TcpBus,
            host=st.sampled_from(["10.0.0.5", "Gate-Box.local", "::1", "h"]),
            port=st.integers(1, 65535),
            timeout_ms=st.sampled_from([1000.0, 250.0, 0.0, 1500.5]),
            gap_ms=st.sampled_from([None, 0.0, 3.5]),
        ),
        st.builds(
            SerialBus,
            device=st.sampled_from(["/dev/ttyUSB0", "/dev/serial/by-id/x-if00"]),
            baudrate=st.sampled_from([300, 9600, 115200]),
            bytesize=st.sampled_from([7, 8]),
            parity=st.sampled_from(["N", "E", "O"]),
            stopbits=st.sampled_from([1, 2]),
            timeout_ms=st.sampled_from([1000.0, 80.0]),
            gap_ms=st.sampled_from([None, 2.0]),
        ),
    )
)
def test_the_one_spelling_reads_back_as_its_bus(spec: TcpBus | SerialBus) -> None:
    timing = [f"timeout_ms={spec.timeout_ms}"]
    timing += [] if spec.gap_ms is None else [f"gap_ms={spec.gap_ms}"]
    if isinstance(spec, TcpBus):
        host = f"[{spec.host}]" if ":" in spec.host else spec.host
        url = f"tcp://{host}:{spec.port}?" + "&".join(timing)
        same = spec.model_copy(update={"host": spec.host.lower()})
    else:
        line = [f"parity={spec.parity.lower()}", f"stopbits={spec.stopbits}",
                f"bytesize={spec.bytesize}", f"baudrate={spec.baudrate}"]  # fmt: skip
        url = f"serial://{spec.device}?" + "&".join(timing + line)
        same = spec
    spelt = canonical_bus_url(url)
    assert parse_bus_url(spelt) == same
    assert canonical_bus_url(spelt) == spelt  # one spelling: spelling it again changes nothing


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://x:80", "scheme must be tcp:// or serial://"),
        ("/dev/ttyUSB0", "scheme must be"),
        ("tcp://:502", "needs a host"),
        ("tcp://x:502/path", "no path"),
        ("tcp://x:99999", "Port out of range"),
        ("serial://", "an absolute path"),
        ("serial://dev/ttyUSB0", "three slashes"),
        ("serial:///dev/x?baudrate=fast", "baudrate"),
        ("serial:///dev/x?baudrate=12", "baudrate"),
        ("serial:///dev/x?parity=X", "parity"),
        ("serial:///dev/x?stopbits=3", "stopbits"),
        ("serial:///dev/x?bytesize=seven", "invalid literal"),
        ("serial:///dev/x?speed=9600", "speed: Extra inputs"),
        ("tcp://x?gap_ms=-1", "gap_ms"),
    ],
)
def test_bad_bus_urls(url: str, reason: str) -> None:
    with pytest.raises(BusUrlError, match=reason):
        parse_bus_url(url)


def test_frame_gap_is_three_and_a_half_characters() -> None:
    s9600 = SerialBus(device="/dev/x", baudrate=9600)
    assert char_time(s9600) == pytest.approx(10 / 9600)
    assert frame_gap(s9600) == pytest.approx(3.5 * 10 / 9600)  # ~3.65 ms
    even = SerialBus(device="/dev/x", baudrate=19200, parity="E")
    assert frame_gap(even) == pytest.approx(3.5 * 11 / 19200)
    assert frame_gap(SerialBus(device="/dev/x", baudrate=115200)) == 0.00175  # the spec's floor
    assert frame_gap(SerialBus(device="/dev/x", gap_ms=20)) == 0.02
    assert frame_gap(TcpBus(host="x")) == 0.0
    assert frame_gap(TcpBus(host="x", gap_ms=5)) == 0.005


@settings(max_examples=200, deadline=None)
@given(st.integers(300, 19200), st.sampled_from([7, 8]), st.sampled_from("NEO"),
       st.sampled_from([1, 2]))  # fmt: skip
def test_frame_gap_follows_the_baud_rate(baud: int, size: int, parity: str, stop: int) -> None:
    bus = SerialBus.model_validate(
        {"device": "/dev/x", "baudrate": baud, "bytesize": size, "parity": parity,
         "stopbits": stop}
    )  # fmt: skip
    bits = 1 + size + (parity != "N") + stop
    assert frame_gap(bus) == pytest.approx(3.5 * bits / baud)
