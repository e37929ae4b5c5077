"""``citygate ble``: a field technician configures berth sensors over Bluetooth LE.

``scan`` lists the configurable sensors in range; ``configure ADDR`` writes the heartbeat,
the sensitivity and/or a recalibration over GATT and reads every written value back. Neither
needs a config file. Exit codes are the CLI's (docs/cli.md, ``gateway.cli.exits``); each
``error.code`` maps to one in ``EXIT_CODES`` (docs/ble.md). With
``--json`` stdout is one object that always has ``ok`` and ``error`` (null, or ``code``,
``message``, ``hint``); without it a table, and errors on stderr with what to do next.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from typing import Any, Final

from gateway.cli.common import Exit, WithConfig, print_table

EXIT_OK: Final = Exit.OK
EXIT_BAD_ARGS: Final = Exit.USAGE  # what argparse uses for its own refusals too
EXIT_CODES: Final = {
    "not_found": Exit.NOT_FOUND,
    "no_adapter": Exit.UNAVAILABLE,
    "verify_failed": Exit.FAILED,
    "connect_failed": Exit.UNAVAILABLE,
    "timeout": Exit.UNAVAILABLE,
    "device_error": Exit.FAILED,
    "bluetooth_error": Exit.UNAVAILABLE,
}
# A MAC address (Linux, Windows) or a CoreBluetooth UUID (macOS).
_ADDRESS = re.compile(
    r"([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
)
# The bleak backend and the retry pacing; the tests put an in-memory backend here.
BACKEND: Any = None  # a gateway.services.ble.link.Backend; None: the platform's
RETRY_BASE_S: float = 0.5
RECALIBRATION_TIMEOUT_S: float = 10.0  # how long a recalibration may take to finish


def _backend(args: argparse.Namespace) -> Any:
    from dataclasses import replace

    from gateway.services.ble.link import Backend

    backend = BACKEND if BACKEND is not None else Backend()
    return replace(backend, adapter=args.adapter) if args.adapter else backend


def _fail(args: argparse.Namespace, code: str, message: str, hint: str, **extra: Any) -> int:
    if args.json:
        error = {"code": code, "message": message, "hint": hint}
        print(json.dumps({"ok": False, **extra, "error": error}, ensure_ascii=False))
    print(f"ble {args.ble_command}: {message}\n  what to do: {hint}", file=sys.stderr)
    return EXIT_CODES.get(code, EXIT_BAD_ARGS)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0 or value != value or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds, not {text!r}")
    return value


def _attempts(text: str) -> int:
    value = int(text)
    if not 1 <= value <= 20:
        raise argparse.ArgumentTypeError(f"must be 1..20, not {text!r}")
    return value


def cmd_ble_scan(args: argparse.Namespace) -> int:
    from gateway.services.ble.errors import BleFailure
    from gateway.services.ble.link import scan

    try:
        sensors = asyncio.run(scan(args.timeout, _backend(args)))
    except BleFailure as exc:
        return _fail(args, exc.code, exc.message, exc.hint, sensors=[])
    if args.json:
        error = None
        if not sensors:
            error = {"code": "not_found", "message": f"no sensor heard in {args.timeout:g} s",
                     "hint": "move closer or scan longer (--timeout)"}  # fmt: skip
        body = {"ok": bool(sensors), "sensors": [s.as_dict() for s in sensors], "error": error}
        print(json.dumps(body, ensure_ascii=False))
    elif sensors:
        rows = [
            [s.address, s.model or f"? ({s.problem})", f"{s.rssi} dBm",
             "" if s.battery_percent is None else f"{s.battery_percent}%", s.name or ""]
            for s in sensors
        ]  # fmt: skip
        print_table(["address", "model", "rssi", "battery", "name"], rows)
    if not sensors:
        if not args.json:
            print(f"ble scan: no configurable sensor heard in {args.timeout:g} s\n"
                  "  what to do: move closer, wake the sensor (a magnet on its reed switch) "
                  "or scan longer (--timeout)", file=sys.stderr)  # fmt: skip
        return EXIT_CODES["not_found"]
    return EXIT_OK


def _print_report(report: Any) -> None:
    battery = "?" if report.battery_percent is None else f"{report.battery_percent}%"
    rssi = "?" if report.rssi is None else f"{report.rssi} dBm"
    print(f"{report.address}  {report.model}  firmware {report.firmware or '?'}  "
          f"battery {battery}  rssi {rssi}  (connected on attempt {report.attempts})")  # fmt: skip
    rows = [[name, "" if v is None else str(v)] for name, v in report.before.items()]
    print_table(["setting", "before"], rows)
    if report.checks:
        print()
        rows = [
            [c.name, str(c.requested), "-" if c.read_back is None else str(c.read_back),
             "yes" if c.ok else "NO", c.detail]
            for c in report.checks
        ]  # fmt: skip
        print_table(["written", "requested", "read back", "ok", "detail"], rows)


def cmd_ble_configure(args: argparse.Namespace) -> int:
    from drivers.ble.charmap import BleValueError
    from drivers.ble.plan import Request, check_any_model
    from gateway.services.ble.errors import BleFailure
    from gateway.services.ble.link import Retry, configure

    address: str = args.address
    if not _ADDRESS.fullmatch(address):
        return _bad(args, f"{address!r} is not a Bluetooth address",
                    "give it as AA:BB:CC:DD:EE:FF (`citygate ble scan` lists them)")  # fmt: skip
    request = Request(args.heartbeat, args.sensitivity, args.recalibrate)
    try:
        check_any_model(request)
        report = asyncio.run(
            configure(
                address, request, _backend(args), model=args.model,
                scan_timeout_s=args.scan_timeout, timeout_s=args.timeout,
                retry=Retry(attempts=args.attempts, connect_timeout_s=args.connect_timeout,
                            base_s=RETRY_BASE_S, cap_s=max(RETRY_BASE_S, 4.0)),
                recalibration_timeout_s=RECALIBRATION_TIMEOUT_S,
                poll_s=min(0.2, RECALIBRATION_TIMEOUT_S / 10),
            )
        )  # fmt: skip
    except BleValueError as exc:
        return _bad(args, str(exc), "see `citygate ble models` for each model's limits")
    except BleFailure as exc:
        return _fail(args, exc.code, exc.message, exc.hint, address=address)
    failed = [c for c in report.checks if not c.ok]
    error = None
    if failed:
        what = "; ".join(f"{c.name}: {c.detail}" for c in failed)
        error = {"code": "verify_failed", "message": f"read-back differs: {what}",
                 "hint": "the sensor did not keep the value: run the command again; if it "
                         "persists, check its firmware against docs/ble.md"}  # fmt: skip
    if args.json:
        print(json.dumps({**report.as_dict(), "error": error}, ensure_ascii=False))
    else:
        _print_report(report)
    if error is not None:
        print(f"ble configure: {error['message']}\n  what to do: {error['hint']}",
              file=sys.stderr)  # fmt: skip
        return EXIT_CODES["verify_failed"]
    return EXIT_OK


def _bad(args: argparse.Namespace, message: str, hint: str) -> int:
    if args.json:
        error = {"code": "bad_args", "message": message, "hint": hint}
        print(json.dumps({"ok": False, "address": args.address, "error": error}))
    print(f"ble configure: {message}\n  what to do: {hint}", file=sys.stderr)
    return EXIT_BAD_ARGS


def cmd_ble_models(args: argparse.Namespace) -> int:
    from drivers.ble.charmap import MODELS

    models = list(MODELS.values())
    if args.json:
        rows = [
            {"model": m.model, "code": m.code, **m.limits(), "gatt_battery": m.gatt_battery,
             "note": m.note}
            for m in models
        ]  # fmt: skip
        print(json.dumps({"ok": True, "models": rows, "error": None}))
    else:
        table = [[m.model, *m.limits().values(), m.note] for m in models]
        print_table(["model", "heartbeat", "sensitivity", "note"], table)
    return EXIT_OK


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    from drivers.ble.charmap import MODELS

    codes = ", ".join(f"{int(c)} {name}" for name, c in EXIT_CODES.items())
    group = sub.add_parser(
        "ble",
        help="configure berth sensors over Bluetooth LE (field technicians)",
        epilog=f"Exit codes: 0 ok, 2 bad arguments, {codes}. See docs/ble.md.",
    )
    ble = group.add_subparsers(dest="ble_command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="one JSON object on stdout")
        p.add_argument("--adapter", default=None, help="the BlueZ adapter (default: hci0)")

    s = ble.add_parser("scan", help="list the configurable sensors advertising in range")
    s.add_argument("--timeout", type=_positive, default=5.0, help="seconds to listen (5)")
    common(s)
    s.set_defaults(func=cmd_ble_scan, announce_config=False)

    c = ble.add_parser(
        "configure",
        help="write heartbeat / sensitivity / recalibrate and read each back",
        description="Without a setting, reads and prints the sensor's current values.",
    )
    c.add_argument("address", help="the sensor's address (AA:BB:CC:DD:EE:FF)")
    c.add_argument("--model", choices=sorted(MODELS), default=None,
                   help="the sensor's model (default: what it advertises)")  # fmt: skip
    c.add_argument("--heartbeat", type=int, default=None, metavar="SECONDS",
                   help="heartbeat period in seconds (limits per model: `ble models`)")  # fmt: skip
    c.add_argument("--sensitivity", type=int, default=None, metavar="N",
                   help="detection sensitivity (range per model: `ble models`)")  # fmt: skip
    c.add_argument("--recalibrate", action="store_true",
                   help="recalibrate the magnetometer baseline (an empty berth!)")  # fmt: skip
    c.add_argument("--attempts", type=_attempts, default=4, help="connection attempts (4)")
    c.add_argument("--connect-timeout", type=_positive, default=10.0,
                   help="seconds per connection attempt (10)")  # fmt: skip
    c.add_argument("--scan-timeout", type=_positive, default=10.0,
                   help="seconds to listen for the sensor first (10)")  # fmt: skip
    c.add_argument("--timeout", type=_positive, default=60.0,
                   help="seconds for the whole operation (60)")  # fmt: skip
    common(c)
    c.set_defaults(func=cmd_ble_configure, announce_config=False)

    m = ble.add_parser("models", help="the models' characteristic limits")
    m.add_argument("--json", action="store_true", help="one JSON object on stdout")
    m.set_defaults(func=cmd_ble_models, announce_config=False)
