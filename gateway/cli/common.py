"""What every command group shares: settings, a migrated database, signals, tables, and the
one way a command prints its JSON document or its error (``print_json``, ``fail``)."""

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
from gateway.cli.exits import CliError, Exit, from_status
from gateway.config import ConfigSource, Settings, describe, find_config, load_settings
from gateway.directory.audit import Actor
from telemetry import SPOOL_FILE

__all__ = [
    "SPOOL_FILE",
    "Actor",
    "CliError",
    "Exit",
    "Settings",
    "WithConfig",
    "cli_actor",
    "config_source",
    "describe",
    "fail",
    "from_status",
    "install_stop",
    "invalid",
    "load_settings",
    "print_json",
    "print_password",
    "print_table",
    "refused",
    "report",
    "settings_for",
    "shown_url",
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


def print_json(doc: Any, indent: int | None = 2) -> None:
    """The command's one JSON document on stdout (non-ASCII as is: 甘G12345 stays readable)."""
    print(json.dumps(doc, ensure_ascii=False, indent=indent, default=str))


def report(args: argparse.Namespace, err: CliError) -> int:
    """Print *err* (JSON on stdout with ``--json``, else two lines on stderr: what went wrong,
    what to do next) and return its exit code."""
    if getattr(args, "json", False):
        print(json.dumps(err.as_json(), ensure_ascii=False))
    else:
        where = getattr(args, "cli_path", "") or "citygate"
        print(f"{where}: {err.message}", file=sys.stderr)
        if err.hint:
            print(f"  what to do: {err.hint}", file=sys.stderr)
    return int(err.exit)


def fail(args: argparse.Namespace, exit: Exit, message: str, hint: str = "", code: str = "") -> int:
    """End a command with *exit*, saying *message* and *hint* (see ``report``)."""
    return report(args, CliError(exit, message, hint, code))


def refused(args: argparse.Namespace, status: int, message: str, listing: str) -> int:
    """End with a directory error (ChargerError, BodycamError, RegistryError: *status* is the
    HTTP status the API answers): 404 not found, 409 refused, 422 usage. *listing* is the
    command that lists what exists."""
    exit = from_status(status)
    hint = {
        Exit.NOT_FOUND: f"`{listing}` lists what exists",
        Exit.REFUSED: f"it exists already: choose another id, or see `{listing}`",
    }.get(exit, "fix the value it names and run the command again")
    return fail(args, exit, message, hint)


def invalid(args: argparse.Namespace, what: str, exc: Any) -> int:
    """End with a pydantic ValidationError of *what* (a charger, a device...): exit 2."""
    text = "; ".join(
        f"{'.'.join(str(p) for p in err['loc']) or what}: {err['msg']}" for err in exc.errors()
    )
    return fail(args, Exit.USAGE, f"invalid {what}: {text}",
                "fix the value it names (`--help` gives the forms)", "invalid")  # fmt: skip


def shown_url(url: str) -> str:
    """A database URL as it may be printed (no password)."""
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(an unparsable URL)"


def _missing_sqlite_dir(url: str) -> Path | None:
    """The directory a SQLite database file would be in, when it does not exist."""
    from sqlalchemy import make_url

    parsed = make_url(url)
    if not parsed.drivername.startswith("sqlite") or parsed.database in (None, "", ":memory:"):
        return None
    parent = Path(parsed.database).parent
    return None if parent.is_dir() else parent


def database_unavailable(settings: Settings, exc: BaseException) -> CliError:
    """The error for a database that cannot be opened or migrated, with where to look."""
    reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    detail = reason[0] if reason else type(exc).__name__
    return CliError(
        Exit.UNAVAILABLE,
        f"cannot open the database {shown_url(settings.database.url)}: {detail}",
        "check [database] url in the config file (`citygate config which` names it) or "
        "CITYGATE_DATABASE__URL; is the server up, does the directory exist? Then run "
        "`citygate db upgrade`",
        "database_unavailable",
    )


async def with_db(
    settings: Settings, work: Callable[[Any], Awaitable[int]], town: bool = False
) -> int:
    """Run *work* with a migrated database (and, with *town*, the town imported if empty).
    A database that cannot be opened or migrated is a ``CliError`` (exit 5) saying where."""
    from alembic.util import CommandError
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for

    try:
        engine = create_engine(settings.database.url)
    except (ArgumentError, ValueError, ImportError) as exc:
        raise CliError(
            Exit.USAGE,
            f"[database] url is not a database URL: {exc}",
            "give e.g. sqlite+aiosqlite:///data/citygate.db or "
            "postgresql+asyncpg://user@host/db (docs/configuration.md)",
            "bad_config",
        ) from exc
    missing = _missing_sqlite_dir(settings.database.url)
    if missing is not None:  # say so before aiosqlite tries (and leaves a thread behind)
        await engine.dispose()
        raise database_unavailable(settings, OSError(f"no directory {missing}"))
    try:
        try:
            await migrate(engine)
        except (OSError, SQLAlchemyError) as exc:
            raise database_unavailable(settings, exc) from exc
        except CommandError as exc:  # alembic: a revision it does not know (a newer schema)
            raise CliError(
                Exit.REFUSED,
                f"the database's schema is not one this citygate knows: {exc}",
                "a newer citygate has migrated it: run that version (or restore a backup)",
                "schema_unknown",
            ) from exc
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
