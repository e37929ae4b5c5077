"""A barrier gate controller's register map, its read plan and the decoding of what was read.

No public register map exists for these controllers (relay boards and gate logic boards from
many vendors), so the map is configuration per controller model: which coil or holding
register raises, stops and lowers the boom (function 05 or 06, with a pulse length), and where
the position, the loop detector and the fault code are read. Pure: no I/O and no clock, so
every rule here is tested without a socket.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = [
    "ACTIONS",
    "EXPECTED",
    "MAX_READ",
    "ActionName",
    "ActionPlan",
    "Block",
    "CoilPulse",
    "DecodeError",
    "FaultInput",
    "GateMap",
    "GateState",
    "LoopInput",
    "Position",
    "PositionInput",
    "ReadRequest",
    "RegisterWrite",
    "Table",
    "Write",
    "action_plan",
    "confirms",
    "decode",
    "plan_reads",
    "read_plan",
]

Table = Literal["coil", "discrete", "holding", "input"]
Position = Literal["up", "down", "moving", "stopped", "unknown"]
ActionName = Literal["raise", "stop", "lower"]
ACTIONS: tuple[ActionName, ...] = ("raise", "stop", "lower")
BIT_TABLES: frozenset[str] = frozenset({"coil", "discrete"})
# The largest read of one request (Modbus application protocol 1.1b3, functions 01-04).
MAX_READ: Mapping[str, int] = {"coil": 2000, "discrete": 2000, "holding": 125, "input": 125}
# What the boom shows once an action took effect: a stop leaves it wherever it was, not moving.
EXPECTED: Mapping[ActionName, frozenset[Position]] = {
    "raise": frozenset({"up"}),
    "lower": frozenset({"down"}),
    "stop": frozenset({"stopped", "up", "down"}),
}

Address = Annotated[int, Field(ge=0, le=65535)]
Word = Annotated[int, Field(ge=0, le=65535)]
PulseMs = Annotated[int, Field(ge=1, le=10_000)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CoilPulse(_Model):
    """Function 05: the coil goes on, and off again after ``pulse_ms`` (``None``: the board
    drops the relay by itself, "flash" mode, so no second write)."""

    kind: Literal["coil"]
    address: Address
    pulse_ms: PulseMs | None = 500


class RegisterWrite(_Model):
    """Function 06: ``value`` is written; with ``pulse_ms`` the register is set back to
    ``reset_value`` after that long (logic boards that take a command word)."""

    kind: Literal["register"]
    address: Address
    value: Word
    pulse_ms: PulseMs | None = None
    reset_value: Word = 0


Action = Annotated[CoilPulse | RegisterWrite, Field(discriminator="kind")]


class PositionInput(_Model):
    """Where the boom is: one register, or ``count`` bits (limit switches) read LSB first into
    one number, mapped to a position. Values not in ``values`` decode as ``unknown``."""

    table: Table
    address: Address
    count: int = Field(default=1, ge=1, le=16)
    values: dict[int, Position]

    @model_validator(mode="after")
    def _check(self) -> PositionInput:
        if self.table not in BIT_TABLES and self.count != 1:
            raise ValueError("a register position is one register: count must be 1")
        if self.address + self.count > 65536:
            raise ValueError("position bits run past address 65535")
        top = (1 << self.count) - 1 if self.table in BIT_TABLES else 65535
        bad = sorted(v for v in self.values if not 0 <= v <= top)
        if bad:
            raise ValueError(f"position values {bad} cannot be read from {self.count} bit(s)")
        if not self.values:
            raise ValueError("position values: map at least one value")
        return self


class LoopInput(_Model):
    """The loop detector under the boom: a vehicle is present when the input reads
    ``present``."""

    table: Table
    address: Address
    present: Word = 1

    @model_validator(mode="after")
    def _check(self) -> LoopInput:
        if self.table in BIT_TABLES and self.present > 1:
            raise ValueError("a bit input reads 0 or 1: present must be 0 or 1")
        return self


class FaultInput(_Model):
    """The controller's fault code register; ``ok`` is the no-fault value."""

    table: Literal["holding", "input"]
    address: Address
    ok: Word = 0
    codes: dict[int, str] = Field(default_factory=dict)


class GateMap(_Model):
    """One controller model's register map (raise and lower are required, stop optional)."""

    model: str = Field(min_length=1, max_length=64)
    description: str = ""
    example: bool = False  # invented for the demo and tests: no vendor publishes this map
    confirm_timeout_s: float = Field(default=10.0, gt=0, le=120)
    actions: dict[ActionName, Action]
    position: PositionInput
    loop: LoopInput | None = None
    fault: FaultInput | None = None

    @model_validator(mode="after")
    def _check(self) -> GateMap:
        missing = [a for a in ("raise", "lower") if a not in self.actions]
        if missing:
            raise ValueError(f"actions: {', '.join(missing)} missing")
        return self


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One read of ``count`` contiguous values of *table* from *address*."""

    table: Table
    address: int
    count: int


@dataclass(frozen=True, slots=True)
class Block:
    """What one read returned: values of *table* from *address* on (bits as 0/1)."""

    table: Table
    address: int
    values: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class GateState:
    """The controller's state as read: ``fault`` is None when the fault code reads ok."""

    position: Position
    vehicle_present: bool | None = None
    fault_code: int | None = None
    fault: str | None = None
    raw_position: int | None = None


@dataclass(frozen=True, slots=True)
class Write:
    """One write: a coil (function 05, value 0/1) or a holding register (function 06)."""

    table: Literal["coil", "holding"]
    address: int
    value: int


@dataclass(frozen=True, slots=True)
class ActionPlan:
    """An action as writes: ``write`` is the one that moves the boom and is sent at most once;
    ``reset`` (after ``pulse_s``) only ends the pulse, so sending it again is harmless."""

    action: ActionName
    write: Write
    pulse_s: float | None
    reset: Write | None


class DecodeError(ValueError):
    """What was read does not cover the map or is out of range (a bad or short answer)."""


def plan_reads(
    spans: Iterable[tuple[Table, int, int]], *, max_gap: int = 0
) -> tuple[ReadRequest, ...]:
    """The fewest reads that cover every ``(table, address, count)`` span: spans of one table
    that touch, overlap or lie at most *max_gap* apart share a request, up to the protocol's
    maximum per request. Ordered by table, then address."""
    out: list[ReadRequest] = []
    by_table: dict[Table, list[tuple[int, int]]] = {}
    for table, address, count in spans:
        if count < 1 or address < 0 or address + count > 65536:
            raise ValueError(f"bad span {table} {address}+{count}")
        by_table.setdefault(table, []).append((address, address + count))
    for table in sorted(by_table):
        limit = MAX_READ[table]
        start = end = -1
        for lo, hi in sorted(by_table[table]):
            while hi - lo > limit:  # a span longer than one request: whole requests first
                if start >= 0:
                    out.append(ReadRequest(table, start, end - start))
                    start = -1
                out.append(ReadRequest(table, lo, limit))
                lo += limit
            if start >= 0 and lo <= end + max_gap and max(end, hi) - start <= limit:
                end = max(end, hi)
                continue
            if start >= 0:
                out.append(ReadRequest(table, start, end - start))
            start, end = lo, hi
        if start >= 0:
            out.append(ReadRequest(table, start, end - start))
    return tuple(out)


def _spans(gate_map: GateMap) -> list[tuple[Table, int, int]]:
    p = gate_map.position
    spans: list[tuple[Table, int, int]] = [(p.table, p.address, p.count)]
    if gate_map.loop is not None:
        spans.append((gate_map.loop.table, gate_map.loop.address, 1))
    if gate_map.fault is not None:
        spans.append((gate_map.fault.table, gate_map.fault.address, 1))
    return spans


def read_plan(gate_map: GateMap, *, max_gap: int = 0) -> tuple[ReadRequest, ...]:
    """The reads that give one state of *gate_map*'s controller."""
    return plan_reads(_spans(gate_map), max_gap=max_gap)


def _values(blocks: Sequence[Block], table: Table, address: int, count: int) -> list[int]:
    for b in blocks:
        inside = b.address <= address and address + count <= b.address + len(b.values)
        if b.table == table and inside:
            got = list(b.values[address - b.address : address - b.address + count])
            top = 1 if table in BIT_TABLES else 65535
            for v in got:
                if isinstance(v, bool):
                    continue
                if not isinstance(v, int) or not 0 <= v <= top:
                    raise DecodeError(f"{table} {address}: value {v!r} out of range")
            return [int(v) for v in got]
    raise DecodeError(f"nothing read covers {table} {address}+{count}")


def decode(gate_map: GateMap, blocks: Sequence[Block]) -> GateState:
    """The gate's state from the blocks its read plan returned."""
    p = gate_map.position
    bits = _values(blocks, p.table, p.address, p.count)
    raw = sum(v << i for i, v in enumerate(bits)) if p.table in BIT_TABLES else bits[0]
    position: Position = p.values.get(raw, "unknown")
    vehicle: bool | None = None
    if gate_map.loop is not None:
        lp = gate_map.loop
        vehicle = _values(blocks, lp.table, lp.address, 1)[0] == lp.present
    code: int | None = None
    fault: str | None = None
    if gate_map.fault is not None:
        f = gate_map.fault
        code = _values(blocks, f.table, f.address, 1)[0]
        if code != f.ok:
            fault = f.codes.get(code, f"unknown fault code {code}")
    return GateState(position, vehicle, code, fault, raw)


def action_plan(gate_map: GateMap, action: ActionName) -> ActionPlan:
    """The writes of *action*; ``KeyError`` when the model has no such action (no stop)."""
    a = gate_map.actions[action]
    pulse = a.pulse_ms / 1000 if a.pulse_ms is not None else None
    if isinstance(a, CoilPulse):
        reset = Write("coil", a.address, 0) if pulse is not None else None
        return ActionPlan(action, Write("coil", a.address, 1), pulse, reset)
    reset = Write("holding", a.address, a.reset_value) if pulse is not None else None
    return ActionPlan(action, Write("holding", a.address, a.value), pulse, reset)


def confirms(action: ActionName, state: GateState) -> bool:
    """Whether *state* shows *action* done (a fault never confirms)."""
    return state.fault is None and state.position in EXPECTED[action]
