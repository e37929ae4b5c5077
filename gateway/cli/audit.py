"""``citygate audit``: the audit log, newest first (``--json`` is the body of
``GET /api/v1/audit`` with the same filters, as an admin sees it: the same query function)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from datetime import datetime
from typing import Any

from gateway.cli.common import WithConfig, print_table, settings_for, with_db
from gateway.directory.audit_view import MAX_LIMIT


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 time: {text!r}") from None


def _limit(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_LIMIT:
        raise argparse.ArgumentTypeError(f"give 1..{MAX_LIMIT}, not {text!r}")
    return n


def _changed(before: Any, after: Any) -> str:
    """The fields an entry changed, for the table (``--json`` has the values)."""
    if before is None and after is None:
        return ""
    if before is None:
        return "created"
    if after is None:
        return "deleted"
    if not isinstance(before, dict) or not isinstance(after, dict):
        return "changed"
    keys = [k for k in {**before, **after} if before.get(k) != after.get(k) and k != "updated_at"]
    return ", ".join(sorted(keys)) or "-"


def cmd_audit(args: argparse.Namespace) -> int:
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.audit_view import audit_page

        async with sessions() as session:
            page = await audit_page(
                session, kind=args.kind, key=args.key, actor=args.actor, since=args.since,
                until=args.until, limit=args.limit, cursor=args.cursor,
            )  # fmt: skip
        if args.json:  # exactly the body of GET /api/v1/audit with the same filters
            print(json.dumps(page.model_dump(mode="json"), ensure_ascii=False, indent=2))
            return 0
        if not page.entries:
            print("no audit entries")
            return 0
        cols = ["at", "actor", "source", "kind", "key", "action", "changed"]
        print_table(
            cols,
            [
                [f"{e.at:%Y-%m-%d %H:%M:%S}", e.actor, e.source, e.kind, e.key, e.action,
                 _changed(e.before, e.after)]
                for e in page.entries
            ],
        )  # fmt: skip
        if page.next_cursor is not None:
            print(f"(more: --cursor {page.next_cursor})", file=sys.stderr)
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    p = with_config(
        sub.add_parser(
            "audit", help="the audit log: who changed what, when, before and after (newest first)"
        )
    )
    p.add_argument(
        "--kind", default=None, help="device, camera, charger, bodycam, token, site, ..."
    )
    p.add_argument("--key", default=None, help="the object's id")
    p.add_argument("--actor", default=None, help="a token's label, or cli:<user>")
    p.add_argument("--since", type=_when, default=None, help="ISO time, inclusive (no zone: UTC)")
    p.add_argument("--until", type=_when, default=None, help="ISO time, exclusive (no zone: UTC)")
    p.add_argument("--limit", type=_limit, default=100, help=f"at most N entries (1..{MAX_LIMIT})")
    p.add_argument("--cursor", type=int, default=None, help="next_cursor of the previous page")
    p.add_argument("--json", action="store_true", help="the API's JSON body instead of a table")
    p.set_defaults(func=cmd_audit)
