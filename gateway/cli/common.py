"""What every command group shares: settings, a migrated database, signals, tables."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import signal
import sys
import unicodedata
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.config import ConfigSource, Settings, describe, find_config, load_settings
from gateway.directory.audit import Actor
from telemetry import SPOOL_FILE

__all__ = [
    "SPOOL_FILE",
    "Actor",
    "Settings",
    "WithConfig",
    "cli_actor",
    "config_source",
    "describe",
    "install_stop",
    "load_settings",
    "print_password",
    "print_table",
    "settings_for",
    "with_db",
]

WithConfig = Callable[[argparse.ArgumentParser], argparse.ArgumentParser]


def config_source(args: argparse.Namespace) -> ConfigSource:
    """The file this command uses, by the one search order (``gateway.config.find_config``)."""
    source: ConfigSource | None = getattr(args, "_config_source", None)
    if source is None:
        path: Path | None = getattr(args, "config", None)
        source = find_config(
            path,
            skip=getattr(args, "config_skip", ()),
            use_env=getattr(args, "config_use_env", True),
        )
        args._config_source = source
    return source


def cli_actor(args: argparse.Namespace, source: str = "cli") -> Actor:
    """Who runs this command, for the audit log: ``cli:<os user>``, or ``LABEL (cli:<os
    user>)`` with ``citygate --as LABEL ...``. One request id per command."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no $USER (a bare container)
        user = "unknown"
    return Actor.cli(user, getattr(args, "actor_label", None), source)


def settings_for(args: argparse.Namespace) -> Settings:
    """The command's settings, loaded once; the first call says on stderr which file it is
    (stdout stays clean for tokens and ``--json``)."""
    settings: Settings | None = getattr(args, "_settings", None)
    if settings is not None:
        return settings
    source = config_source(args)
    if getattr(args, "announce_config", True) and not getattr(args, "_announced", False):
        args._announced = True
        print(f"citygate: {source.describe()}", file=sys.stderr)
    settings = load_settings(source.path)
    args._settings = settings
    return settings


async def with_db(
    settings: Settings, work: Callable[[Any], Awaitable[int]], town: bool = False
) -> int:
    """Run *work* with a migrated database (and, with *town*, the town imported if empty)."""
    from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for

    engine = create_engine(settings.database.url)
    try:
        await migrate(engine)
        sessions = sessionmaker_for(engine)
        if town:
            from gateway.wiring import ensure_town

            await ensure_town(sessions, settings.town.file, now_utc())
        return await work(sessions)
    finally:
        await engine.dispose()


def install_stop(stop: Callable[[], None]) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


def _width(text: str) -> int:
    """Display width: CJK characters take two columns in a terminal."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def print_table(cols: list[str], table: list[list[str]]) -> None:
    widths = [max([_width(c), *(_width(t[i]) for t in table)]) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        cells = [v + " " * (w - _width(v)) for v, w in zip(values, widths, strict=True)]
        return "  ".join(cells).rstrip()

    print(line(cols))
    for t in table:
        print(line(t))


def print_password(args: argparse.Namespace, password: str) -> None:
    """The password goes to stdout once, alone (or as JSON): it is never stored in clear."""
    if args.json:
        print(json.dumps({"id": args.id, "password": password}))
    else:
        print(password)
