"""``citygate config``: which file a command uses, validate a file, list every key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    Exit,
    WithConfig,
    config_source,
    describe,
    fail,
    load_settings,
    print_json,
    settings_for,
)
from gateway.config import SEARCH_ORDER


def cmd_config_which(args: argparse.Namespace) -> int:
    """The file every other command would use here, alone on stdout (none: exit 3)."""
    source = config_source(args)
    settings_for(args)  # validates it, and says on stderr how it was found
    if source.path is None:
        return fail(args, Exit.NOT_FOUND, f"no config file (searched {SEARCH_ORDER})",
                    "give --config FILE, set CITYGATE_CONFIG, or write ./citygate.toml "
                    "(docs/configuration.md)")  # fmt: skip
    if args.json:
        print_json({"path": str(source.path), "found_by": source.found_by})
    else:
        print(source.path)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    load_settings(args.file)
    if args.json:
        print_json({"file": str(args.file), "ok": True})
    else:
        print(f"{args.file}: OK")
    return 0


def cmd_config_keys(args: argparse.Namespace) -> int:
    if args.json:
        print_json({"keys": [
            {"section": sect, "key": key, "default": default, "doc": doc}
            for sect, key, default, doc in describe()
        ]})  # fmt: skip
        return 0
    section = ""
    for sect, key, default, doc in describe():
        if sect != section:
            print(f"\n[{sect}]")
            section = sect
        print(f"  {key} = {default}    # {doc}")
    return 0


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    cfg = sub.add_parser("config", help="check configuration").add_subparsers(
        dest="config_command", required=True
    )
    which = with_config(
        cfg.add_parser("which", help="the config file commands use here (search order)")
    )
    which.set_defaults(func=cmd_config_which)
    check = cfg.add_parser("check", help="validate a config file (and the environment)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)
    cfg.add_parser("keys", help="list every key with default and meaning").set_defaults(
        func=cmd_config_keys
    )
