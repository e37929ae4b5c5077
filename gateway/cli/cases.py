"""``citygate cases``: the local mirror of case reports."""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

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
        from gateway.cases.outbox import list_cases

        async with sessions() as session:
            page = await list_cases(
                session,
                status=args.status,
                category=args.category,
                delivery=args.delivery,
                limit=args.limit,
            )
        rows = [
            {
                "id": r.id,
                "created_at": r.created_at.isoformat(),
                "observed_at": r.observed_at.isoformat(),
                "category": r.category,
                "rule_id": r.rule_id,
                "title": r.title,
                "place": r.berth_id
                or r.site_id
                or r.zone_id
                or (f"{r.lat:.5f},{r.lon:.5f}" if r.lat is not None and r.lon is not None else ""),
                "plate": r.plate,
                "prior_offences": r.prior_offences,
                "delivery": r.delivery_state,
                "attempts": r.attempts,
                "status": r.status,
                "remote_id": r.remote_id,
            }
            for r in page.cases
        ]
        if args.json:
            print(json.dumps({"cases": rows}, ensure_ascii=False, indent=2))
            return 0
        if not rows:
            print("no case reports")
            return 0
        cols = ["created_at", "category", "title", "place", "delivery", "status", "id"]
        print_table(cols, [[str(r[c] or "") for c in cols] for r in rows])
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    cases = sub.add_parser("cases", help="case reports to the case system").add_subparsers(
        dest="cases_command", required=True
    )
    cl = with_config(cases.add_parser("list", help="raised reports, delivery and case status"))
    cl.add_argument("--status", default=None, help="reported, registered, ... evaluated")
    cl.add_argument("--category", default=None, help="e.g. 0505")
    cl.add_argument("--delivery", choices=["pending", "delivered", "rejected"], default=None)
    cl.add_argument("--limit", type=int, default=50)
    cl.add_argument("--json", action="store_true", help="JSON instead of a table")
    cl.set_defaults(func=cmd_cases_list)
