"""``citygate telemetry``: the telemetry pipeline and its spool."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from gateway.cli.common import (
    SPOOL_FILE,
    WithConfig,
    settings_for,
)


def cmd_telemetry_status(args: argparse.Namespace) -> int:
    from telemetry.pipeline import read_status
    from telemetry.spool import read_stats

    settings = settings_for(args)
    t = settings.telemetry
    path = t.spool_dir / SPOOL_FILE
    if not path.exists():
        print(
            f"no telemetry spool at {path} (the gateway has not run with this config yet)",
            file=sys.stderr,
        )
        return 1
    stats = read_stats(path)
    status = read_status(t.spool_dir)
    out = {
        "server": t.url or None,
        "mode": t.mode,
        "spooled_pending": stats.pending_points,
        "spool_bytes": stats.pending_bytes,
        "spool_limit_bytes": t.spool_max_bytes,
        "dropped": stats.dropped,
        "dead_lettered": stats.dead_lettered,
        "buffered": status.get("buffered"),
        "accepted": status.get("accepted"),
        "delivered": status.get("written"),
        "replayed": status.get("replayed"),
        "healthy": status.get("healthy"),
        "last_error": status.get("last_error") or None,
        "status_age_s": round(time.time() - float(status["at"]), 1)  # type: ignore[arg-type]
        if "at" in status
        else None,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False))
    else:
        for key, value in out.items():
            print(f"{key:>18}: {value}")
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    tel = sub.add_parser("telemetry", help="telemetry to InfluxDB").add_subparsers(
        dest="telemetry_command", required=True
    )
    tstat = with_config(tel.add_parser("status", help="pending, spooled, dead-lettered, delivered"))
    tstat.add_argument("--json", action="store_true", help="one JSON object")
    tstat.set_defaults(func=cmd_telemetry_status)
