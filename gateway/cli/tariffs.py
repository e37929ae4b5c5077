"""``citygate tariff``: posted tariffs and quotes."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from gateway.cli.common import (
    WithConfig,
    settings_for,
)


def cmd_tariff_quote(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from gateway.directory.town import load_town, town_zone
    from gateway.services.parking.quotes import QuoteRequest, load_book, make_quote

    settings = settings_for(args)
    town = load_town(settings.town.file)
    sites = {s.id: s for s in town.sites}
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
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "request"
            print(f"invalid quote request: {where}: {err['msg']}", file=sys.stderr)
        return 2
    site = sites.get(req.site_id)
    if site is None:
        print(f"unknown site {req.site_id!r}", file=sys.stderr)
        return 2
    try:
        book = load_book(settings.tariffs.file, town_zone(town, settings.town.timezone))
        out = make_quote(book, site, req)
    except ValueError as exc:
        print(f"cannot quote: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(out, ensure_ascii=False))
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    tar = sub.add_parser("tariff", help="posted tariffs").add_subparsers(
        dest="tariff_command", required=True
    )
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
