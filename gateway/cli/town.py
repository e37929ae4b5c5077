"""``citygate town``: load or update the town (sites, berths, zones, sensors)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Exit,
    WithConfig,
    cli_actor,
    fail,
    settings_for,
    with_db,
)


def cmd_town_import(args: argparse.Namespace) -> int:
    from gateway.directory.town import TownFileError, load_town
    from gateway.directory.town_import import import_town

    settings = settings_for(args)
    try:
        town = load_town(args.file)
    except TownFileError as exc:  # read and refused: nothing imported
        return fail(args, Exit.FAILED, f"town error: {exc}",
                    "fix the field it names and import again (nothing was imported)",
                    "invalid_town")  # fmt: skip

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
