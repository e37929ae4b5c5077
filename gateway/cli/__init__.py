"""``citygate`` command line: run, demo, simulate, config, town, devices, token, tariffs,
rules, telemetry, cases, chargers, bodycams, field, drones, modbus, ble, commission, db,
audit, import, completion. One module per command group; each adds its commands in ``register``."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

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
from gateway.cli.common import settings_for
from gateway.config import SEARCH_ORDER, ConfigError
from gateway.directory.town import TownFileError
from gateway.errors import StartupError
from gateway.logs import setup_logging
from telemetry.spool import SpoolBusyError, SpoolError

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


def package_version() -> str:
    try:
        return version("citygate")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="citygate", description=DESCRIPTION, epilog=EPILOG)
    p.add_argument("--version", action="version", version=f"citygate {package_version()}")
    p.add_argument("--log-level", default=None, help="DEBUG, INFO, WARNING, ERROR")
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
    p.set_defaults(root_parser=p)  # for commands about the CLI itself (completion)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    level = args.log_level or "INFO"
    setup_logging(level.upper(), args.log_json)
    try:
        if hasattr(args, "config") or args.command != "config":
            # Honour [log] from the config file / environment where there is one.
            try:
                s = settings_for(args)
                setup_logging(args.log_level or s.log.level, args.log_json or s.log.json_format)
            except ConfigError:
                pass  # reported properly by the command itself
        result: int = args.func(args)
        return result
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except TownFileError as exc:
        print(f"town error: {exc}", file=sys.stderr)
        return 2
    except (StartupError, SpoolBusyError) as exc:  # a busy spool: another gateway runs on it
        print(f"cannot start: {exc}", file=sys.stderr)
        return 2
    except SpoolError as exc:
        print(str(exc), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
