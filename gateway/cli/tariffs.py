"""``citygate tariffs`` (or ``tariff``): posted tariffs, imported into the database that every
gateway follows, and quotes at the tariff in force there (the same as the API's)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any, Literal

from gateway.cli.common import (
    Exit,
    WithConfig,
    cli_actor,
    fail,
    print_json,
    settings_for,
    with_db,
)


def cmd_tariff_quote(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.services.parking.quotes import QuoteRequest

    settings = settings_for(args)
    try:
        req = QuoteRequest(
            site_id=args.site,
            vehicle_class=args.vehicle,
            plate=args.plate,
            plate_colour=args.plate_colour,
            entry=args.entry,
            exit=args.exit,
        )
    except ValidationError as exc:
        what = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in exc.errors()
        )
        return fail(args, Exit.USAGE, f"invalid quote request: {what}",
                    "see `citygate tariffs quote --help` (times: ISO 8601 with an offset)",
                    "invalid")  # fmt: skip

    async def work(sessions: Any) -> int:
        from gateway.directory import documents
        from gateway.directory.live import site_from_row
        from gateway.directory.town import configured_zone
        from gateway.infra.storage.schema import SiteRow
        from gateway.services.parking.quotes import make_quote

        async with sessions() as session:
            row = await session.get(SiteRow, req.site_id)
        if row is None:
            return fail(args, Exit.NOT_FOUND, f"unknown site {req.site_id!r}",
                        "the site ids are in the town file (GET /api/v1/sites)")  # fmt: skip
        try:
            text, source = await documents.in_force(sessions, "tariffs", settings.tariffs.file)
            book = documents.parse_tariffs(text, source, configured_zone(settings.town))
            out = make_quote(book, site_from_row(row), req, settings.tariffs.max_stay_days)
        except ValueError as exc:
            return fail(args, Exit.USAGE, f"cannot quote: {exc}",
                        "check the stay's times and vehicle", "invalid")  # fmt: skip
        print(json.dumps(out, ensure_ascii=False))
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def import_document(args: argparse.Namespace, kind: Literal["tariffs", "rules"]) -> int:
    """Validate a tariffs or rules file and put it in force (live on every gateway)."""
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from events import now_utc
        from gateway.directory import documents
        from gateway.directory.town import configured_zone

        try:
            text = args.file.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            return fail(args, Exit.USAGE, f"{args.file}: cannot read: {exc}",
                        f"give a UTF-8 {kind} TOML file that exists", "unreadable")  # fmt: skip
        try:
            async with sessions.begin() as session:
                doc, new = await documents.import_document(
                    session,
                    kind,
                    text,
                    str(args.file.resolve()),
                    now_utc(),
                    configured_zone(settings.town),
                    actor=cli_actor(args, "import"),
                )
        except documents.DocumentError as exc:  # read and refused: the one in force stays
            return fail(args, Exit.FAILED, f"invalid {kind}: {exc}",
                        "fix what it names and import again (nothing changed)",
                        "invalid_document")  # fmt: skip
        state = "now in force" if new else "already in force (same text)"
        if args.json:
            print_json({"kind": kind, "file": str(args.file), "version": doc.id, "new": new})
        print(f"{kind} from {args.file} {state} (version {doc.id})", file=sys.stderr)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_tariffs_import(args: argparse.Namespace) -> int:
    return import_document(args, "tariffs")


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    tar = sub.add_parser("tariffs", aliases=["tariff"], help="posted tariffs").add_subparsers(
        dest="tariff_command", required=True
    )
    ti = with_config(
        tar.add_parser("import", help="validate a tariffs file and put it in force, live")
    )
    ti.add_argument("file", type=Path)
    ti.set_defaults(func=cmd_tariffs_import)
    tq = with_config(tar.add_parser("quote", help="itemised fee for a stay (JSON, as the API)"))
    tq.add_argument("--site", required=True)
    tq.add_argument("--vehicle", choices=["small", "large", "new_energy"], default=None)
    tq.add_argument("--plate", default=None, help="instead of --vehicle (粤BD12345: new energy)")
    tq.add_argument(
        "--plate-colour",
        choices=["blue", "yellow", "green", "yellow_green", "white", "black"],
        default=None,
        help="with --plate: yellow is large, green new energy",
    )
    tq.add_argument("--entry", required=True, help="ISO 8601 with offset")
    tq.add_argument("--exit", required=True, help="ISO 8601 with offset")
    tq.set_defaults(func=cmd_tariff_quote)
