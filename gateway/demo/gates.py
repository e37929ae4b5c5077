"""Simulated barrier gate controllers for the demo, the tests and the bench.

One pymodbus server simulates several controllers (unit ids), each after its register map
(``drivers.gates.registers.GateMap``): over Modbus TCP on a port, or over Modbus RTU on a
serial port (one end of a socat pty pair, ``socat_pair``). An action's write starts the boom
moving; it arrives after ``travel_s``; a lower is refused while the loop detector sees a
vehicle; a faulted controller ignores commands. Faults, the loop detector, exception answers,
garbled frames, a unit that stops answering and a power cycle (the server stops and starts on
the same port) can be injected. Every request and every write is logged, with the loop's time,
so a test can assert what reached the controller (and how often).

The datastore is ``ModbusServerContext`` subclassed (pymodbus serves such a context as it is):
the gates compute their inputs at read time, which the SimDevice register arrays of
pymodbus 3.16 cannot do without mirroring every change into them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymodbus.constants import ExcCodes
from pymodbus.datastore import ModbusServerContext
from pymodbus.exceptions import NoSuchIdException
from pymodbus.framer import FramerType
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

from drivers.gates.registers import (
    BIT_TABLES,
    ActionName,
    CoilPulse,
    GateMap,
    Position,
    action_plan,
)

__all__ = [
    "GateSimulator",
    "RequestRecord",
    "SimGate",
    "WriteRecord",
    "socat_pair",
]

_TABLE_OF = {1: "coil", 5: "coil", 15: "coil", 2: "discrete", 3: "holding", 6: "holding",
             16: "holding", 4: "input"}  # fmt: skip
ADDRESSES = 100  # each table answers addresses 0..99; beyond is ILLEGAL_ADDRESS


@dataclass(frozen=True, slots=True)
class WriteRecord:
    unit: int
    table: str
    address: int
    value: int
    at: float


@dataclass(frozen=True, slots=True)
class RequestRecord:
    unit: int
    function: int
    address: int
    count: int
    at: float


@dataclass
class SimGate:
    """One controller and its boom."""

    gate_map: GateMap
    travel_s: float = 3.0
    position: Position = "down"
    vehicle_present: bool = False
    fault_code: int = 0
    unplugged: bool = False  # answers nothing (a dead controller on a live bus)
    moving_to: Position | None = None
    arrive_at: float = 0.0
    coils: dict[int, int] = field(default_factory=dict)
    holding: dict[int, int] = field(default_factory=dict)

    def now(self, t: float) -> Position:
        if self.moving_to is not None and t >= self.arrive_at:
            self.position, self.moving_to = self.moving_to, None
        return "moving" if self.moving_to is not None else self.position

    def act(self, action: ActionName, t: float) -> None:
        here = self.now(t)
        if self.fault_code:
            return  # a faulted controller does not move the boom
        if action == "stop":
            if here == "moving":
                self.position, self.moving_to = "stopped", None
            return
        target: Position = "up" if action == "raise" else "down"
        if action == "lower" and self.vehicle_present:
            return  # the loop detector holds the boom up
        if here != target and self.moving_to != target:
            self.moving_to, self.arrive_at = target, t + self.travel_s

    def power_cycle(self, t: float) -> None:
        """Power lost and back: a moving boom stops where it is, the outputs drop."""
        if self.now(t) == "moving":
            self.position, self.moving_to = "stopped", None
        self.coils.clear()
        self.holding.clear()

    def write(self, table: str, address: int, value: int, t: float) -> None:
        store = self.coils if table == "coil" else self.holding
        old = store.get(address, 0)
        store[address] = value
        for name, a in self.gate_map.actions.items():
            if isinstance(a, CoilPulse):
                hit = table == "coil" and address == a.address and value == 1 and old == 0
            else:
                hit = table == "holding" and address == a.address and value == a.value
                hit = hit and old != value
            if hit:
                self.act(name, t)

    def read(self, table: str, address: int, t: float) -> int:
        m = self.gate_map
        p = m.position
        if table == p.table and p.address <= address < p.address + p.count:
            code = _code_of(m, self.now(t))
            return (code >> (address - p.address)) & 1 if table in BIT_TABLES else code
        if m.loop is not None and table == m.loop.table and address == m.loop.address:
            if self.vehicle_present:
                return m.loop.present
            return 0 if m.loop.present else 1
        if m.fault is not None and table == m.fault.table and address == m.fault.address:
            return self.fault_code or m.fault.ok
        if table == "coil":
            return self.coils.get(address, 0)
        if table == "holding":
            return self.holding.get(address, 0)
        return 0


def _code_of(gate_map: GateMap, position: Position) -> int:
    for value, pos in gate_map.position.values.items():
        if pos == position:
            return value
    return 0


class _Context(ModbusServerContext):
    """Routes each request to its simulated gate (unknown or unplugged units: no answer)."""

    def __init__(self, sim: GateSimulator) -> None:  # no super(): its deprecation warning
        self._sim = sim
        self.old_simulator = True
        self.simdevices = []

    def device_ids(self) -> list[int]:
        return list(self._sim.gates)

    def _gate(self, unit: int) -> SimGate:
        gate = self._sim.gates.get(unit)
        if gate is None or gate.unplugged:
            raise NoSuchIdException(f"no unit {unit}")
        return gate

    async def async_getValues(
        self, device_id: int, func_code: int, address: int, count: int = 1
    ) -> list[int] | list[bool] | ExcCodes:
        gate = self._gate(device_id)
        sim = self._sim
        t = sim.clock()
        if func_code not in (5, 6):  # a write's echo is not a request of its own
            sim.requests.append(RequestRecord(device_id, func_code, address, count, t))
        if (refused := sim.refusal(device_id)) is not None:
            return refused
        table = _TABLE_OF.get(func_code)
        if table is None:
            return ExcCodes.ILLEGAL_FUNCTION
        if address + count > ADDRESSES:
            return ExcCodes.ILLEGAL_ADDRESS
        values = [gate.read(table, a, t) for a in range(address, address + count)]
        if table in BIT_TABLES:
            return [bool(v) for v in values]
        return values

    async def async_setValues(
        self,
        device_id: int,
        func_code: int,
        address: int,
        values: Sequence[int] | Sequence[bool],
    ) -> ExcCodes | None:
        gate = self._gate(device_id)
        sim = self._sim
        t = sim.clock()
        sim.requests.append(RequestRecord(device_id, func_code, address, len(values), t))
        if (refused := sim.refusal(device_id)) is not None:
            return refused
        table = _TABLE_OF.get(func_code)
        if table not in ("coil", "holding"):
            return ExcCodes.ILLEGAL_FUNCTION
        if address + len(values) > ADDRESSES:
            return ExcCodes.ILLEGAL_ADDRESS
        for i, v in enumerate(values):
            record = WriteRecord(device_id, table, address + i, int(v), t)
            sim.writes.append(record)
            gate.write(table, address + i, int(v), t)
            if sim.on_write is not None:
                sim.on_write(record)
        return None


class GateSimulator:
    """Several controllers behind one Modbus server (TCP or RTU)."""

    def __init__(self, gates: Mapping[int, SimGate]) -> None:
        self.gates: dict[int, SimGate] = dict(gates)
        self.writes: list[WriteRecord] = []
        self.requests: list[RequestRecord] = []
        self.on_write: Callable[[WriteRecord], None] | None = None  # tests: act on a write
        self._refuse: dict[int, list[int]] = {}
        self._garble = 0
        self._server: ModbusTcpServer | ModbusSerialServer | None = None
        self._where: tuple[str, Any] | None = None
        self._handlers: list[Any] = []  # the connections of the server now serving
        self.starts = 0

    @staticmethod
    def clock() -> float:
        return asyncio.get_running_loop().time()

    @property
    def url(self) -> str:
        if self._where is None:
            raise RuntimeError("not started")
        kind, where = self._where
        if kind == "tcp":
            return f"tcp://{where[0]}:{where[1]}"
        return f"serial://{where[0]}?baudrate={where[1]}"

    @property
    def running(self) -> bool:
        return self._server is not None

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve Modbus TCP on *host*:*port* (0: a free port); returns the bus URL."""
        handlers: list[Any] = []
        server = ModbusTcpServer(
            _Context(self), address=(host, port), ignore_missing_devices=True,
            trace_packet=self._tracer(handlers),
        )  # fmt: skip
        self._track(server, handlers)
        await server.serve_forever(background=True)
        sock = server.transport.sockets[0]  # type: ignore[attr-defined]
        self._where = ("tcp", (host, sock.getsockname()[1]))
        self._server = server
        self.starts += 1
        return self.url

    async def start_serial(self, device: str, baudrate: int = 9600) -> str:
        """Serve Modbus RTU on serial *device* (the simulator's end of a pty pair)."""
        handlers: list[Any] = []
        server = ModbusSerialServer(
            _Context(self), framer=FramerType.RTU, port=device, baudrate=baudrate,
            ignore_missing_devices=True, trace_packet=self._tracer(handlers),
        )  # fmt: skip
        self._track(server, handlers)
        await server.serve_forever(background=True)
        self._where = ("serial", (device, baudrate))
        self._server = server
        self.starts += 1
        return self.url

    async def stop(self) -> None:
        """Stop serving: every connection drops. pymodbus misses one accepted just before
        its shutdown, which went on answering; so each is closed here, and one that still
        carries a request afterwards is closed then, unanswered (``_tracer``)."""
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()  # type: ignore[no-untyped-call]
        self._close_handlers(self._handlers)

    def _track(self, server: ModbusTcpServer | ModbusSerialServer, handlers: list[Any]) -> None:
        """Keep every connection *server* makes in *handlers*, so ``stop`` can close them."""
        self._handlers = handlers
        make = server.callback_new_connection

        def new_connection() -> Any:
            handler = make()  # type: ignore[no-untyped-call]
            handlers.append(handler)
            return handler

        server.callback_new_connection = new_connection  # type: ignore[method-assign]

    @staticmethod
    def _close_handlers(handlers: list[Any]) -> None:
        for handler in handlers:
            transport = getattr(handler, "transport", None)
            if transport is not None:
                transport.close()

    async def start_again(self) -> None:
        """Serve again where it served before (same port or device)."""
        if self._where is None:
            raise RuntimeError("never started")
        kind, where = self._where
        if kind == "tcp":
            await self.start_tcp(where[0], where[1])
        else:
            await self.start_serial(where[0], where[1])

    async def power_cycle(self) -> None:
        """Every controller loses power and comes back: the server stops and starts again."""
        await self.stop()
        t = self.clock()
        for gate in self.gates.values():
            gate.power_cycle(t)
        await self.start_again()

    def refuse_next(self, unit: int, code: ExcCodes = ExcCodes.DEVICE_BUSY, n: int = 1) -> None:
        """The next *n* requests to *unit* are answered with Modbus exception *code*."""
        self._refuse.setdefault(unit, []).extend([int(code)] * n)

    def refusal(self, unit: int) -> ExcCodes | None:
        queue = self._refuse.get(unit)
        return ExcCodes(queue.pop(0)) if queue else None

    def garble_next(self, n: int = 1) -> None:
        """The next *n* answers go out malformed (a frame that does not decode)."""
        self._garble += n

    def _tracer(self, handlers: list[Any]) -> Callable[[bool, bytes], bytes]:
        """The packet hook of the server being started (its connections in *handlers*):
        once that server is stopped, they carry nothing (a stopped controller answers
        nothing) and are closed."""
        starts = self.starts + 1

        def trace(sending: bool, data: bytes) -> bytes:
            if self.starts != starts or self._server is None:
                asyncio.get_running_loop().call_soon(self._close_handlers, handlers)
                return b""
            return self._trace(sending, data)

        return trace

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending and self._garble > 0:
            self._garble -= 1
            if self._where is not None and self._where[0] == "tcp":
                # A read answer's header (same transaction, right length) with a byte count
                # that claims more than the frame holds.
                return data[:4] + b"\x00\x04" + data[6:7] + bytes([data[7] & 0x7F, 0xFA, 0x00])
            return data[:1] + bytes([data[1] & 0x7F, 0xFA]) + data[3:]  # bad CRC as well
        return data

    def action_writes(self, unit: int, action: ActionName) -> int:
        """How many times the write that performs *action* reached controller *unit*."""
        w = action_plan(self.gates[unit].gate_map, action).write
        return sum(
            1
            for r in self.writes
            if (r.unit, r.table, r.address, r.value) == (unit, w.table, w.address, w.value)
        )


@contextlib.asynccontextmanager
async def socat_pair(directory: Path) -> AsyncIterator[tuple[str, str]]:
    """A virtual serial pair: (the gateway's end, the simulator's end), as paths in
    *directory*; ready when socat says so."""
    a, b = directory / "ttyGW", directory / "ttySIM"
    proc = await asyncio.create_subprocess_exec(
        "socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        process_group=0,  # a terminal's Ctrl-C is for the demo: the line goes when it is done
    )  # fmt: skip
    assert proc.stderr is not None
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(10):
            while b"starting data transfer loop" not in (line := await proc.stderr.readline()):
                if not line:
                    raise RuntimeError("socat exited before the pty pair was ready")

        async def _drain(stream: asyncio.StreamReader) -> None:
            while await stream.readline():
                pass

        drain = asyncio.create_task(_drain(proc.stderr))
        yield str(a), str(b)
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()
        if drain is not None:
            drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drain
