"""``citygate token``: API tokens (stored hashed; a secret is printed once)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Exit,
    WithConfig,
    cli_actor,
    fail,
    print_json,
    settings_for,
    with_db,
)


def cmd_token_create(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import Role, create_token

    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        async with sessions.begin() as session:
            info, token = await create_token(
                session, Role(args.role), now_utc(), args.label, actor=cli_actor(args)
            )
        if args.json:
            print_json({"id": info.id, "role": info.role.value, "label": args.label,
                        "token": token})  # fmt: skip
        else:
            print(token)
        print(
            f"token {info.id} ({info.role.value}) created; it is shown only once", file=sys.stderr
        )
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import TokenError, revoke_token

    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        try:
            async with sessions.begin() as session:
                found = await revoke_token(session, args.id, now_utc(), actor=cli_actor(args))
        except TokenError:
            found = False
        if not found:
            return fail(args, Exit.NOT_FOUND, f"no token {args.id!r}",
                        "`citygate token list` shows the ids")  # fmt: skip
        token_id = args.id.split("_")[1] if args.id.startswith("cg_") else args.id
        if args.json:
            print_json({"id": token_id, "revoked": True})
        print(f"token {token_id} revoked", file=sys.stderr)
        return 0

    return asyncio.run(with_db(settings, work))


def cmd_token_list(args: argparse.Namespace) -> int:
    from gateway.directory.tokens import list_tokens

    settings = settings_for(args)

    async def work(sessions: Any) -> int:
        async with sessions() as session:
            tokens = await list_tokens(session)
        if args.json:
            print_json({"tokens": [
                {"id": t.id, "role": t.role.value, "label": t.label,
                 "created_at": t.created_at.isoformat(),
                 "revoked_at": t.revoked_at.isoformat() if t.revoked_at else None}
                for t in tokens
            ]})  # fmt: skip
            return 0
        for t in tokens:
            state = f"revoked {t.revoked_at:%Y-%m-%d}" if t.revoked_at else "active"
            print(f"{t.id}  {t.role.value:<10}  {t.created_at:%Y-%m-%d %H:%M}  {state}  {t.label}")
        return 0

    return asyncio.run(with_db(settings, work))


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    tok = sub.add_parser("token", help="API tokens").add_subparsers(
        dest="token_command", required=True
    )
    create = with_config(tok.add_parser("create", help="create a token; prints it alone"))
    create.add_argument(
        "--role",
        required=True,
        choices=["device", "payments", "technician", "inspector", "operator", "admin"],
    )
    create.add_argument("--label", default="", help="who or what it is for")
    create.set_defaults(func=cmd_token_create)
    rev = with_config(tok.add_parser("revoke", help="revoke a token by id (or the token)"))
    rev.add_argument("id")
    rev.set_defaults(func=cmd_token_revoke)
    with_config(tok.add_parser("list", help="list tokens (never their secrets)")).set_defaults(
        func=cmd_token_list
    )
