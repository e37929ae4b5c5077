"""``citygate cases``: the local mirror of case reports (``--json`` is the body of
``GET /api/v1/cases``: both format rows with ``gateway.cases.view``)."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any, get_args

from gateway.cases.mirror import CaseStep
from gateway.cli.common import (
    WithConfig,
    print_table,
    settings_for,
    with_db,
)


def cmd_cases_list(args: argparse.Namespace) -> int:
    """The local mirror of case reports: what was raised, delivered, and how far it got."""
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.cases.view import cases_page, place_text

        async with sessions() as session:
            page = await cases_page(
                session,
                status=args.status,
                category=args.category,
                delivery=args.delivery,
                limit=args.limit,
            )
        if args.json:  # exactly the body of GET /api/v1/cases with the same filters
            print(json.dumps(page.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return 0
        if not page.cases:
            print("no case reports")
            return 0
        cols = ["reported_at", "category", "title", "place", "delivery", "status", "id"]
        print_table(
            cols,
            [
                [
                    f"{c.reported_at:%Y-%m-%d %H:%M:%S}",
                    c.category,
                    c.title,
                    place_text(c.place),
                    c.delivery.state,
                    c.status,
                    c.id,
                ]
                for c in page.cases
            ],
        )
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    cases = sub.add_parser("cases", help="case reports to the case system").add_subparsers(
        dest="cases_command", required=True
    )
    cl = with_config(cases.add_parser("list", help="raised reports, delivery and case status"))
    cl.add_argument(
        "--status", choices=get_args(CaseStep), default=None, help="the case's current step"
    )
    cl.add_argument("--category", default=None, help="e.g. 0505")
    cl.add_argument("--delivery", choices=["pending", "delivered", "rejected"], default=None)
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true", help="JSON instead of a table")
    cl.set_defaults(func=cmd_cases_list)
