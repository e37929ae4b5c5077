"""The sample town's gate buses for the demo: a gate simulator per loopback Modbus TCP bus,
and per serial bus one on a virtual serial pair (socat) whose other end the gateway opens in
the town's serial port's place (``[lanes] serial_ports``)."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.demo.gates import GateSimulator, SimGate, socat_pair

__all__ = ["TownGates", "simulate_town_gates"]


@dataclass
class TownGates:
    """The demo's gate simulators: what runs, what could not be simulated (to be said), and
    the serial ports the gateway is to open instead of the town's (``[lanes] serial_ports``)."""

    sims: list[GateSimulator]
    skipped: list[str]
    serial_ports: dict[str, str]


async def simulate_town_gates(
    lanes: Iterable[tuple[str, int, str]],
    stack: contextlib.AsyncExitStack,
    workdir: Path,
    travel_s: float = 2.0,
) -> TownGates:
    """For the demo: a simulator per loopback Modbus TCP bus the town's lanes name, and per
    serial bus one on a virtual serial pair (socat, when installed) whose other end the
    gateway opens in the serial port's place, serving each lane's controller (unit, model).
    The pairs live as long as *stack*."""
    from drivers.gates.bus import SerialBus, TcpBus, parse_bus_url
    from drivers.gates.models import shipped_model

    tcp: dict[tuple[str, int], dict[int, SimGate]] = {}
    serial: dict[tuple[str, int], dict[int, SimGate]] = {}
    skipped: list[str] = []
    for bus, unit, model in lanes:
        spec = parse_bus_url(bus)
        gate = SimGate(shipped_model(model), travel_s=travel_s)
        if isinstance(spec, SerialBus):
            serial.setdefault((spec.device, spec.baudrate), {})[unit] = gate
        elif isinstance(spec, TcpBus) and spec.host in ("127.0.0.1", "localhost"):
            tcp.setdefault((spec.host, spec.port), {})[unit] = gate
        else:
            skipped.append(f"{bus} (not a loopback TCP bus)")
    sims: list[GateSimulator] = []
    for (host, port), gates in sorted(tcp.items()):
        sim = GateSimulator(gates)
        try:
            await sim.start_tcp(host, port)
        except (OSError, RuntimeError) as exc:  # pymodbus says RuntimeError for a port taken
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else "port taken?"
            skipped.append(f"tcp://{host}:{port} ({why})")
            continue
        sims.append(sim)
    ports: dict[str, str] = {}
    for n, ((device, baudrate), gates) in enumerate(sorted(serial.items())):
        if shutil.which("socat") is None:
            skipped.append(f"serial://{device} (socat is not installed)")
            continue
        pair_dir = (workdir / f"serial-{n}").resolve()
        pair_dir.mkdir(parents=True, exist_ok=True)
        try:
            gw_end, sim_end = await stack.enter_async_context(socat_pair(pair_dir))
            sim = GateSimulator(gates)
            await sim.start_serial(sim_end, baudrate)
        except (OSError, RuntimeError, TimeoutError) as exc:
            skipped.append(f"serial://{device} ({exc})")
            continue
        stack.push_async_callback(sim.stop)
        sims.append(sim)
        ports[device] = gw_end
    return TownGates(sims, sorted(set(skipped)), ports)
