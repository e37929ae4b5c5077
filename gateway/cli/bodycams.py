"""``citygate bodycams`` (register cams, set their digest passwords, list them) and
``citygate field`` (the field picture). Registry changes go through the change feed: the
running SIP platform takes them within seconds. Both views are the API's own functions."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Exit,
    WithConfig,
    cli_actor,
    fail,
    invalid,
    print_password,
    print_table,
    refused,
    settings_for,
    with_db,
)

LISTING = "citygate bodycams list"


def _read_password(args: argparse.Namespace) -> str | None:
    if not args.password_stdin:
        return None
    return sys.stdin.readline().strip() or None


def cmd_bodycams_add(args: argparse.Namespace) -> int:
    """Register a cam (for an officer) and print its password once."""
    from pydantic import ValidationError

    from gateway.directory.bodycams import BodycamCreate

    settings = settings_for(args)
    try:
        body = BodycamCreate(id=args.id, officer_id=args.officer, password=_read_password(args))
    except ValidationError as exc:
        return invalid(args, "body cam", exc)

    async def work(sessions: Any) -> int:
        from gateway.directory.bodycams import BodycamError, add_bodycam

        realm = settings.bodycams.effective_realm
        try:
            async with sessions.begin() as db:
                password = await add_bodycam(
                    db,
                    body.id,
                    body.officer_id,
                    realm,
                    body.password,
                    now_utc(),
                    actor=cli_actor(args),
                )
        except BodycamError as exc:
            return refused(args, exc.status, str(exc), LISTING)
        print_password(args, password)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_bodycams_set_password(args: argparse.Namespace) -> int:
    from pydantic import TypeAdapter, ValidationError

    from gateway.directory.bodycams import Password

    settings = settings_for(args)
    given = _read_password(args)
    if given is not None:
        try:
            TypeAdapter(Password).validate_python(given)
        except ValidationError:
            return fail(args, Exit.USAGE, "invalid password",
                        "give 8-64 printable ASCII characters on stdin", "invalid")  # fmt: skip

    async def work(sessions: Any) -> int:
        from gateway.directory.bodycams import BodycamError, set_password

        try:
            async with sessions.begin() as db:
                password = await set_password(
                    db,
                    args.id,
                    settings.bodycams.effective_realm,
                    given,
                    now_utc(),
                    actor=cli_actor(args),
                )
        except BodycamError as exc:
            return refused(args, exc.status, str(exc), LISTING)
        print_password(args, password)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def cmd_bodycams_list(args: argparse.Namespace) -> int:
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.directory.bodycams import registry_view

        async with sessions() as db:
            view = await registry_view(db)
        if args.json:
            print(json.dumps({"bodycams": view}, ensure_ascii=False, indent=2))
            return 0
        cols = ["id", "officer_id", "officer", "squad", "lifecycle", "password_set"]
        print_table(cols, [["" if r[c] is None else str(r[c]) for c in cols] for r in view])
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def _storage(free_mb: float | None, total_mb: float | None) -> str:
    """Free storage as the operator reads it: "12.3/64.0 GB" (or what the cam said)."""
    if free_mb is None:
        return ""
    if total_mb:
        return f"{free_mb / 1024:.1f}/{total_mb / 1024:.1f} GB"
    return f"{free_mb / 1024:.1f} GB"


def cmd_field(args: argparse.Namespace) -> int:
    """The field picture from the state the platform keeps (exactly ``GET /api/v1/field``)."""
    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        from gateway.services.bodycams.views import field_view

        b = settings.bodycams
        async with sessions() as db:
            view = await field_view(
                db, now_utc(), b.keepalive_interval_s, b.keepalive_count,
                drone_presence_s=settings.drones.presence_timeout_s,
            )  # fmt: skip
        if args.json:
            print(json.dumps(view, ensure_ascii=False, indent=2))
            return 0
        print(f"{view['total']} body cams, {view['online']} online (positions {view['datum']})")
        rows = []
        for x in view["cams"]:
            p = x["position"]
            rows.append(
                [
                    x["device_id"],
                    x["officer"] or "",
                    x["squad"] or "",
                    "online" if x["online"] else "offline",
                    (x["last_seen"] or "")[:19],
                    "" if x["battery_percent"] is None else f"{x['battery_percent']:.0f}%",
                    _storage(x.get("storage_free_mb"), x.get("storage_total_mb")),
                    "" if p is None else f"{p['lat']:.5f},{p['lon']:.5f}",
                    str(len(x["alarms"])) if x["alarms"] else "",
                ]
            )
        cols = ["cam", "officer", "squad", "state", "last_seen", "battery", "storage free",
                "position", "alarms"]  # fmt: skip
        print_table(cols, rows)
        drones = view.get("drones") or []
        if drones:
            print(f"\n{len(drones)} drones")
            lines = []
            for d in drones:
                p = d["position"]
                lines.append([
                    d["id"], d["name"], d["link"], "yes" if d["flying"] else "no",
                    d["mode"] or "",
                    "" if d["battery_percent"] is None else f"{d['battery_percent']:.0f}%",
                    "" if p is None else f"{p['lat']:.5f},{p['lon']:.5f}",
                ])  # fmt: skip
            print_table(["drone", "name", "link", "flying", "mode", "battery", "position"], lines)
        return 0

    return asyncio.run(with_db(settings, work, town=True))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    bc = sub.add_parser("bodycams", help="officers' body cams (GB/T 28181)").add_subparsers(
        dest="bodycams_command", required=True
    )
    add = with_config(bc.add_parser("add", help="register a body cam; prints its password once"))
    add.add_argument("id", help="the cam's 20-digit GB/T 28181 id")
    add.add_argument("--officer", default=None, help="the officer who carries it")
    add.add_argument(
        "--password-stdin",
        action="store_true",
        help="read the password from stdin (else one is made)",
    )
    add.add_argument("--json", action="store_true", help='print {"id", "password"}')
    add.set_defaults(func=cmd_bodycams_add)
    pw = with_config(bc.add_parser("set-password", help="set or rotate a cam's digest password"))
    pw.add_argument("id")
    pw.add_argument("--password-stdin", action="store_true", help="read it from stdin")
    pw.add_argument("--json", action="store_true", help='print {"id", "password"}')
    pw.set_defaults(func=cmd_bodycams_set_password)
    ls = with_config(bc.add_parser("list", help="the registered cams and their officers"))
    ls.add_argument("--json", action="store_true", help="JSON instead of a table")
    ls.set_defaults(func=cmd_bodycams_list)
    fd = with_config(sub.add_parser("field", help="the field picture: officers' cams, positions"))
    fd.add_argument("--json", action="store_true", help="exactly what GET /api/v1/field returns")
    fd.set_defaults(func=cmd_field)
