"""``citygate db``: migrations."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from gateway.cli.common import WithConfig, print_json, settings_for, shown_url, with_db


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    settings = settings_for(args)

    async def work(_: Any) -> int:
        if args.json:
            print_json({"database": shown_url(settings.database.url), "current": True})
        else:
            print("database schema is current")
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    db = sub.add_parser("db", help="database").add_subparsers(dest="db_command", required=True)
    with_config(db.add_parser("upgrade", help="run migrations")).set_defaults(func=cmd_db_upgrade)
