"""``citygate config``: which file a command uses, validate a file, list every key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    WithConfig,
    config_source,
    describe,
    load_settings,
    settings_for,
)


def cmd_config_which(args: argparse.Namespace) -> int:
    """The file every other command would use here, alone on stdout (none: exit 1)."""
    source = config_source(args)
    settings_for(args)  # validates it, and says on stderr how it was found
    if source.path is None:
        return 1
    print(source.path)
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    load_settings(args.file)
    print(f"{args.file}: OK")
    return 0


def cmd_config_keys(_: argparse.Namespace) -> int:
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
