"""``citygate modbus``: a technician's look at a barrier gate controller on its bus.

``probe`` reads the controller's register map once (as the gateway's read plan does, through
the same hub) and prints what it read and what that decodes to; it writes nothing. It needs
no config file: the bus URL, the unit and the model say everything.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from gateway.cli.common import Exit, WithConfig, fail, print_json

DEFAULT_MODEL = "example-relay4"


async def probe(url: str, unit: int, gate_map: Any, per_request: float) -> dict[str, Any]:
    """Read *gate_map* from controller *unit* on the bus at *url* once."""
    from drivers.backoff import Backoff
    from drivers.gates.hub import BusError, ModbusHub
    from drivers.gates.registers import DecodeError, decode, read_plan

    out: dict[str, Any] = {
        "bus": url, "unit": unit, "model": gate_map.model, "example": gate_map.example,
        "reads": [], "state": None, "error": None,
    }  # fmt: skip
    async with ModbusHub(url, timeout=per_request, backoff=Backoff(base=0.2, cap=1.0)) as hub:
        out["bus"] = hub.url
        if not await hub.wait_online(per_request + 1):
            out["error"] = hub.last_error or f"cannot connect to {hub.url}"
            if out["error"].startswith("cannot connect to serial"):
                out["error"] += " (no such port, or in use: a running gateway holds its ports)"
            return out
        blocks = []
        try:
            for req in read_plan(gate_map):
                block = await hub.read(unit, req)
                blocks.append(block)
                out["reads"].append(
                    {"table": block.table, "address": block.address, "values": list(block.values)}
                )
            state = decode(gate_map, blocks)
        except (BusError, DecodeError) as exc:
            out["error"] = str(exc)
            return out
    out["state"] = {
        "position": state.position, "raw_position": state.raw_position,
        "vehicle_present": state.vehicle_present, "fault_code": state.fault_code,
        "fault": state.fault,
    }  # fmt: skip
    return out


def cmd_modbus_probe(args: argparse.Namespace) -> int:
    from drivers.gates.bus import BusUrlError, parse_bus_url
    from drivers.gates.models import MapError, load_map, shipped_model

    try:
        bus = parse_bus_url(args.url)
        gate_map = load_map(args.map) if args.map else shipped_model(args.model)
    except (BusUrlError, MapError) as exc:
        return fail(args, Exit.USAGE, str(exc),
                    "`citygate modbus models` lists the shipped maps; the URL forms are in "
                    "`citygate modbus probe --help`")  # fmt: skip
    timeout = args.timeout if args.timeout is not None else bus.timeout_ms / 1000
    result = asyncio.run(probe(args.url, args.unit, gate_map, timeout))
    # Nothing answered (no connection, or no reply to the first read): unavailable.
    exit = Exit.FAILED if result["reads"] else Exit.UNAVAILABLE
    hint = (
        "check the bus URL, the unit id and the controller's power and wiring"
        if exit is Exit.UNAVAILABLE
        else "check --model / --map against the controller (`citygate modbus models`)"
    )
    if args.json:
        if result["error"]:  # the document, with its error as every command's (docs/cli.md)
            code = "no_answer" if exit is Exit.UNAVAILABLE else "probe_failed"
            result = {**result, "error": {"code": code, "message": result["error"], "hint": hint}}
        print(json.dumps(result, ensure_ascii=False))
    else:
        example = " (example map)" if result["example"] else ""
        print(f"{'bus':>16}: {result['bus']}")
        print(f"{'unit':>16}: {result['unit']}")
        print(f"{'model':>16}: {result['model']}{example}")
        for r in result["reads"]:
            values = " ".join(str(v) for v in r["values"])
            print(f"{r['table'] + ' ' + str(r['address']):>16}: {values}")
        for key, value in (result["state"] or {}).items():
            shown = "-" if value is None else value
            shown = str(value).lower() if isinstance(value, bool) else shown
            print(f"{key:>16}: {shown}")
    if result["error"]:
        message = result["error"]["message"] if args.json else result["error"]
        print(f"probe failed: {message}\n  what to do: {hint}", file=sys.stderr)
        return int(exit)
    return int(Exit.OK)


def cmd_modbus_models(args: argparse.Namespace) -> int:
    from drivers.gates.models import model_names, shipped_model

    models = [shipped_model(n) for n in model_names()]
    if args.json:
        print_json({"models": [m.model_dump(mode="json") for m in models]}, indent=None)
    else:
        for m in models:
            print(f"{m.model:<20} {m.description}")
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    group = sub.add_parser("modbus", help="barrier gate controllers on Modbus TCP / RTU")
    mb = group.add_subparsers(dest="modbus_command", required=True)
    p = mb.add_parser(
        "probe",
        help="read a gate controller's register map once and print it",
        description="URL: tcp://host:port or serial:///dev/ttyX?baudrate=9600&parity=N&stopbits=1"
        " (optional timeout_ms=, gap_ms=). Reads only; writes nothing.",
    )
    p.add_argument("url", help="the bus: tcp://host:port or serial:///dev/ttyX?baudrate=...")
    p.add_argument("--unit", type=int, required=True, help="the controller's Modbus unit id")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--model", default=DEFAULT_MODEL, help=f"a shipped model (default {DEFAULT_MODEL})"
    )
    which.add_argument("--map", type=Path, default=None, help="a register map TOML file")
    p.add_argument("--timeout", type=float, default=None, help="seconds per request")
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(func=cmd_modbus_probe, announce_config=False)
    m = mb.add_parser("models", help="the shipped register maps (examples)")
    m.add_argument("--json", action="store_true", help="a JSON list")
    m.set_defaults(func=cmd_modbus_models, announce_config=False)
