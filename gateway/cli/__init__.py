"""``citygate`` command line: run, demo, simulate, config, town, devices, token, tariffs,
rules, telemetry, cases, chargers, bodycams, field, drones, modbus, ble, commission, db,
audit, import, completion. One module per command group; each adds its commands in ``register``.

Every command ends with an exit code of ``gateway.cli.exits.Exit`` (docs/cli.md) and takes
``--json`` (added here to every command a group registers, unless it is in ``NO_JSON``): one
JSON document on stdout, its errors as ``{"error": {...}}`` on stdout too. An exception no
command handles is one line and a hint (``--log-level debug`` shows its traceback)."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import NoReturn

from gateway.cli import (
    audit,
    ble,
    bodycams,
    cases,
    chargers,
    commission,
    completion,
    config,
    db,
    devices,
    drones,
    import_cmd,
    modbus,
    rules,
    run,
    simulate,
    tariffs,
    telemetry,
    tokens,
    town,
)
from gateway.cli.common import report, settings_for
from gateway.cli.exits import CliError, Exit
from gateway.config import SEARCH_ORDER, ConfigError
from gateway.logs import setup_logging

log = logging.getLogger("citygate")

DESCRIPTION = (
    "citygate: the IoT gateway of a county town's urban-management bureau (berth sensors, "
    "EV chargers, parking books, telemetry, case reports)."
)
EPILOG = (
    f"Every command finds its config file in this order: {SEARCH_ORDER} "
    "(the last is written by `citygate demo`), and says on stderr which one it uses; "
    "`citygate config which` prints it. Environment variables CITYGATE_<SECTION>__<KEY> "
    "override the file."
)
GROUPS = (
    run, simulate, config, town, devices, tokens, telemetry, tariffs, rules, cases, chargers,
    bodycams, drones, modbus, ble, commission, db, audit, import_cmd, completion,
)  # fmt: skip


# Commands without --json: they run until stopped (their output is logs) or print a script.
NO_JSON: frozenset[tuple[str, ...]] = frozenset(
    {("run",), ("demo",), ("simulate",), ("completion",)}
)


class UsageExit(SystemExit):
    """argparse's refusal (exit 2), with its message kept for ``--json``."""

    def __init__(self, prog: str, message: str) -> None:
        super().__init__(int(Exit.USAGE))
        self.prog = prog
        self.message = message


class CliParser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors also say what to do next (and can be JSON)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        print(f"  what to do: see `{self.prog} --help`", file=sys.stderr)
        raise UsageExit(self.prog, message)


def _commands(
    p: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every (sub)command parser under *p* with its path (aliases once, by their first name)."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            seen: set[int] = set()
            for name, child in action.choices.items():
                if id(child) not in seen:
                    seen.add(id(child))
                    yield (*path, name), child
                    yield from _commands(child, (*path, name))


def commands(p: argparse.ArgumentParser) -> dict[tuple[str, ...], argparse.ArgumentParser]:
    """The parsers of every command that runs something (has a ``func``), by path."""
    return {path: sp for path, sp in _commands(p) if sp.get_default("func") is not None}


def add_json_everywhere(p: argparse.ArgumentParser) -> None:
    """``--json`` on every command but ``NO_JSON`` (a command may add its own, with its own
    help), and its path for messages."""
    for path, sp in commands(p).items():
        sp.set_defaults(cli_path=" ".join(("citygate", *path)))
        if path in NO_JSON or "--json" in sp._option_string_actions:
            continue
        sp.add_argument(
            "--json", action="store_true", help="one JSON document on stdout (errors too)"
        )


def package_version() -> str:
    try:
        return version("citygate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = CliParser(prog="citygate", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"citygate {package_version()}")
    p.add_argument(
        "--log-level",
        type=str.upper,
        choices=["DEBUG", "INFO", "WARNING", "ERROR"],
        default=None,
        help="DEBUG (with the traceback of an error), INFO, WARNING, ERROR; any case",
    )
    p.add_argument("--log-json", action="store_true", help="JSON log lines")
    p.add_argument(
        "--as",
        dest="actor_label",
        metavar="LABEL",
        default=None,
        help="who makes the change, for the audit log (recorded as `LABEL (cli:<os user>)`; "
        "default `cli:<os user>`)",
    )
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument(
            "--config",
            "-c",
            type=Path,
            default=None,
            help=f"TOML config file; default: the first of {SEARCH_ORDER} "
            "(env CITYGATE_<SECTION>__<KEY> overrides)",
        )
        return sp

    for group in GROUPS:
        group.register(sub, with_config)
    add_json_everywhere(p)
    p.set_defaults(root_parser=p, json=False)  # root_parser: for completion
    return p


def _unexpected(exc: BaseException) -> CliError:
    """The one line for an exception no command handles (the traceback: --log-level debug)."""
    from sqlalchemy.exc import OperationalError

    from gateway.directory.town import TownFileError
    from gateway.errors import StartupError
    from telemetry.spool import SpoolBusyError, SpoolError

    if isinstance(exc, ConfigError):
        return CliError(Exit.USAGE, f"config error: {exc}",
                        "fix the file or variable it names (`citygate config keys` lists every "
                        "key; `citygate config which` names the file)", "bad_config")  # fmt: skip
    if isinstance(exc, TownFileError):
        return CliError(Exit.USAGE, f"town error: {exc}",
                        "check [town] file in the config file, or the file given",
                        "bad_town")  # fmt: skip
    if isinstance(exc, SpoolBusyError):  # another gateway runs on it
        return CliError(Exit.REFUSED, f"cannot start: {exc}",
                        "stop the other gateway, or give this one its own [telemetry] spool_dir",
                        "busy")  # fmt: skip
    if isinstance(exc, StartupError):
        return CliError(Exit.UNAVAILABLE, f"cannot start: {exc}",
                        "free or change what it names in the config file",
                        "cannot_start")  # fmt: skip
    if isinstance(exc, SpoolError):
        return CliError(Exit.FAILED, str(exc), "see docs/telemetry.md", "spool")
    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return CliError(Exit.UNAVAILABLE, f"lost the database or a peer: {exc}".splitlines()[0],
                        "check that the database and broker in the config file answer, then "
                        "run the command again", "unavailable")  # fmt: skip
    return CliError(Exit.FAILED, f"unexpected error: {type(exc).__name__}: {exc}".splitlines()[0],
                    "run it again with --log-level debug for the traceback, and report it",
                    "internal")  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(words)
    except UsageExit as exc:
        if "--json" in words:
            error = CliError(Exit.USAGE, f"{exc.prog}: {exc.message}",
                             f"see `{exc.prog} --help`", "usage")  # fmt: skip
            print(json.dumps(error.as_json(), ensure_ascii=False))
        raise
    level = args.log_level or "INFO"
    setup_logging(level.upper(), args.log_json)
    try:
        if hasattr(args, "config") or args.command != "config":
            # Honour [log] from the config file / environment where there is one.
            try:
                s = settings_for(args)
                setup_logging(
                    (args.log_level or s.log.level).upper(), args.log_json or s.log.json_format
                )
            except ConfigError:
                pass  # reported properly by the command itself
        return int(args.func(args))
    except CliError as exc:
        log.debug("%s", exc.message, exc_info=True)
        return report(args, exc)
    except KeyboardInterrupt:
        if args.json:
            print(json.dumps(CliError(Exit.INTERRUPTED, "interrupted").as_json()))
        return int(Exit.INTERRUPTED)
    except BrokenPipeError:  # `citygate field | head -1`: the reader had enough, not an error
        with contextlib.suppress(OSError):  # nothing more goes out, not even at exit
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return int(Exit.PIPE_CLOSED)
    except Exception as exc:  # one line and a hint, never a traceback (unless asked for)
        log.debug("unhandled", exc_info=True)
        return report(args, _unexpected(exc))


if __name__ == "__main__":
    sys.exit(main())
