"""``citygate rules``: the enforcement rules, imported into the database every gateway follows."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from gateway.cli.common import WithConfig
from gateway.cli.tariffs import import_document


def cmd_rules_import(args: argparse.Namespace) -> int:
    return import_document(args, "rules")


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    rules = sub.add_parser("rules", help="enforcement rules").add_subparsers(
        dest="rules_command", required=True
    )
    ri = with_config(
        rules.add_parser(
            "import", help="validate a rules file (against the town) and put it in force, live"
        )
    )
    ri.add_argument("file", type=Path)
    ri.set_defaults(func=cmd_rules_import)
