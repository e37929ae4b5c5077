"""``citygate town``: load or update the town (sites, berths, zones, sensors)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.cli.common import (
    WithConfig,
    cli_actor,
    settings_for,
    with_db,
)


def cmd_town_import(args: argparse.Namespace) -> int:
    from gateway.directory.town import load_town
    from gateway.directory.town_import import import_town

    settings = settings_for(args)
    town = load_town(args.file)

    async def work(sessions: Any) -> int:
        async with sessions.begin() as session:
            report = await import_town(session, town, now_utc(), actor=cli_actor(args, "import"))
        print(json.dumps(report.as_dict(), ensure_ascii=False))
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    town = sub.add_parser("town", help="town data").add_subparsers(
        dest="town_command", required=True
    )
    imp = with_config(town.add_parser("import", help="load or update a town file"))
    imp.add_argument("file", type=Path)
    imp.set_defaults(func=cmd_town_import)
