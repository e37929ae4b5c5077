"""The one bulk import behind ``citygate import`` and ``POST /api/v1/import``: parse the
file, diff it and apply it in one transaction, and answer one JSON document."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.directory.audit import SYSTEM, Actor
from gateway.directory.bulk.engine import Outcome, Progress, run_import
from gateway.directory.bulk.parse import Format, Kind, Limits, RowError, parse
from gateway.infra.gcpause import gc_paused


class _Rejected(Exception):
    """Rolls the transaction back (a row was rejected: nothing is written)."""


async def import_file(
    sessions: async_sessionmaker[Any],
    data: bytes,
    fmt: Format,
    now: datetime,
    *,
    limits: Limits,
    realm: str,
    kind: Kind | None = None,
    dry_run: bool = False,
    retire_missing: bool = False,
    progress: Progress | None = None,
    actor: Actor = SYSTEM,
) -> Outcome:
    """Import *data* as *actor* (every change goes into the audit log); raises
    ``ImportFileError`` for a file that cannot be read at all. The outcome's errors list
    every rejected row; then (and on a dry run) nothing is written."""
    with gc_paused():  # thousands of rows that live on: no heap walks while they are made
        parsed = parse(data, fmt, limits, kind)
    outcome: Outcome | None = None
    try:
        async with sessions.begin() as session:
            outcome = await run_import(
                session,
                parsed,
                now,
                realm=realm,
                dry_run=dry_run,
                retire_missing=retire_missing,
                progress=progress,
                actor=actor.via("import") if actor.source == "cli" else actor,
            )
            if not outcome.imported:
                raise _Rejected
    except _Rejected:
        pass
    except IntegrityError:  # another writer got there between the diff and the write
        assert outcome is not None
        outcome.errors.append(
            RowError("file", "row", "the database changed during the import: run it again")
        )
        outcome.secrets.clear()
    assert outcome is not None
    if not outcome.imported:
        outcome.secrets.clear()  # nothing stored: those were never valid
    return outcome


def limits_of(max_file_bytes: int, max_rows: int) -> Limits:
    return Limits(max_bytes=max_file_bytes, max_rows=max_rows)
