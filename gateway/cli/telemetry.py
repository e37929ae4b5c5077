"""``citygate telemetry``: the telemetry pipeline and its spool (the same view as
``GET /api/v1/telemetry/status``: both call ``telemetry_status``)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from gateway.cli.common import SPOOL_FILE, Exit, WithConfig, fail, settings_for


def cmd_telemetry_status(args: argparse.Namespace) -> int:
    from gateway.services.telemetry import telemetry_status

    t = settings_for(args).telemetry
    status = telemetry_status(t, time.time())
    if status is None:
        return fail(args, Exit.NOT_FOUND,
                    f"no telemetry spool at {(t.spool_dir / SPOOL_FILE).resolve()} "
                    "(the gateway has not run with this config yet)",
                    "start the gateway (`citygate run`) with this config, or point "
                    "[telemetry] spool_dir at its spool", "no_spool")  # fmt: skip
    out = status.model_dump(mode="json")
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for key, value in out.items():
            shown = (
                "-" if value is None else str(value).lower() if isinstance(value, bool) else value
            )
            print(f"{key:>18}: {shown}")
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    tel = sub.add_parser("telemetry", help="telemetry to InfluxDB").add_subparsers(
        dest="telemetry_command", required=True
    )
    tstat = with_config(tel.add_parser("status", help="pending, spooled, dead-lettered, delivered"))
    tstat.add_argument("--json", action="store_true", help="one JSON object")
    tstat.set_defaults(func=cmd_telemetry_status)
