"""``citygate config``: validate a config file, list every key."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import (
    WithConfig,
    describe,
    load_settings,
)


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
    check = cfg.add_parser("check", help="validate a config file (and the environment)")
    check.add_argument("file", type=Path)
    check.set_defaults(func=cmd_config_check)
    cfg.add_parser("keys", help="list every key with default and meaning").set_defaults(
        func=cmd_config_keys
    )
