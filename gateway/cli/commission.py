"""``citygate commission DEVICE``: a field technician's pass/fail checks of one device (a
berth sensor, plate camera, charger, body cam, or a lane's gate controller named by its lane
id), from what the database holds and, for a gate, a live Modbus probe (``--cycle`` also raises
and lowers the barrier, confirmed by reading it back). ``--json`` prints exactly what
``POST /api/v1/commission/{device_id}`` answers.

Exit codes (``gateway.cli.exits``): 0 every check passed (or was skipped), 1 a check failed,
2 bad usage (or a device with no checks, or an id several kinds share without ``--kind``),
3 no such device, 5 the database cannot be opened.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from events import now_utc
from gateway.cli.common import Exit, WithConfig, cli_actor, fail, print_table, settings_for, with_db


def cmd_commission(args: argparse.Namespace) -> int:
    from gateway.services.commissioning.gather import (
        CannotCommission,
        FreshGates,
        NoSuchDevice,
    )
    from gateway.services.commissioning.service import Commissioner, keepalive_timeout

    settings = settings_for(args)
    out: list[dict[str, object]] = []

    async def work(sessions: Any) -> int:
        c = settings.commissioning
        commissioner = Commissioner(
            sessions, c, keepalive_timeout(settings.bodycams), now_utc,
            FreshGates(now_utc, c.gate_timeout_s, dict(settings.lanes.serial_ports)),
        )  # fmt: skip
        out.append(
            await commissioner.commission(
                args.device, kind=args.kind, cycle=args.cycle, actor=cli_actor(args)
            )
        )
        return 0

    try:
        asyncio.run(with_db(settings, work, town=True))
    except NoSuchDevice as exc:
        return fail(args, Exit.NOT_FOUND, str(exc),
                    "`citygate devices list`, `chargers health`, `bodycams list` list the ids; "
                    "a gate controller goes by its lane's id")  # fmt: skip
    except CannotCommission as exc:
        return fail(args, Exit.USAGE, str(exc),
                    "name the kind with --kind sensor|camera|charger|bodycam|gate")  # fmt: skip
    result = out[0]
    if args.json:
        print(json.dumps(result, ensure_ascii=False))
    else:
        print(f"{result['kind']} {result['device_id']} at {result['at']}")
        checks: list[dict[str, str]] = result["checks"]  # type: ignore[assignment]
        rows = [
            [c["name"], c["status"].upper() if c["status"] == "failed" else c["status"],
             c["observed"], c["expected"], c["hint"]]
            for c in checks
        ]  # fmt: skip
        print_table(["check", "result", "observed", "expected", "hint"], rows)
        counts: dict[str, int] = result["counts"]  # type: ignore[assignment]
        verdict = "PASSED" if result["passed"] else "FAILED"
        print(
            f"{verdict}: {counts['passed']} passed, {counts['failed']} failed, "
            f"{counts['skipped']} skipped"
        )
        if result["commissioned_now"]:
            print("now commissioned: its next good message makes it active")
        else:
            print(f"lifecycle: {result['lifecycle']}")
    return int(Exit.OK if result["passed"] else Exit.FAILED)


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    p = with_config(
        sub.add_parser(
            "commission",
            help="pass/fail commissioning checks of one device",
            description="Checks a berth sensor, plate camera, charger, body cam, or a lane's "
            "gate controller (by the lane's id). Exit codes: 0 all passed, 1 a check failed, "
            "2 bad usage, 3 no such device, 5 database unavailable (docs/cli.md).",
        )
    )
    p.add_argument("device", help="the device's id (a gate controller: its lane's id)")
    p.add_argument(
        "--kind",
        choices=["sensor", "camera", "charger", "bodycam", "gate"],
        default=None,
        help="only look for a device of this kind",
    )
    p.add_argument(
        "--cycle",
        action="store_true",
        help="gate: also raise and lower the barrier, confirmed by read-back (it moves!)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object (the API's answer)")
    p.set_defaults(func=cmd_commission)
