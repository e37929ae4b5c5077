"""Inserting thousands of rows with no SQLAlchemy work per row (a bulk import's device and
audit rows): plain values, one statement for them all.

The caller gives each row as a tuple of values as the driver takes them (text, numbers, None, JSON
already serialised) and the values every row shares (``now``, the actor) as Python values:
those are bound once, through their column's own type for the database in use (a datetime as
SQLite's text, an aware datetime on PostgreSQL), so the rows stored are those a Core
``insert`` would store.

SQLite: the driver's own executemany on the session's connection (so in its transaction),
with the rows as tuples; SQLAlchemy's per-row parameter handling is most of an executemany's
time there. A driver error is raised as SQLAlchemy's (``IntegrityError`` ...), as from
``session.execute``. PostgreSQL: one ``INSERT ... SELECT FROM unnest(...)`` with a column of
values per parameter (one round trip, one parameter set), through ``session.execute``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Table, bindparam, text
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import NullType

from gateway.infra.gcpause import gc_paused

__all__ = ["bound", "insert_plain", "rows_of"]


def bound(column: Column[Any], value: Any, dialect: Dialect) -> Any:
    """*value* as *column*'s type hands it to *dialect*'s driver."""
    process = column.type.dialect_impl(dialect).bind_processor(dialect)
    return value if process is None else process(value)


def rows_of(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> list[tuple[Any, ...]]:
    """The values of *columns* of each of *rows*, as ``insert_plain`` takes them."""
    with gc_paused():  # thousands of tuples, no await
        if len(columns) == 1:
            return [(r[columns[0]],) for r in rows]
        return list(map(itemgetter(*columns), rows))


async def insert_plain(
    session: AsyncSession,
    table: Table,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    shared: Mapping[str, Any] | None = None,
) -> None:
    """Insert *rows* into *table* in *session*'s transaction, one statement.

    Each row gives the values of *columns*, in that order, as the driver takes them;
    *shared* are the columns every row has the same value of, as Python values, bound once
    through their column's type. ``rows_of`` makes the tuples of mappings."""
    if not rows:
        return
    dialect = session.get_bind().dialect
    shared = {n: bound(table.c[n], v, dialect) for n, v in (shared or {}).items()}
    quote = dialect.identifier_preparer.quote
    names = ", ".join(quote(n) for n in (*columns, *shared))
    into = f"INSERT INTO {quote(table.name)} ({names})"
    if dialect.name == "postgresql":
        await _unnest(session, table, into, columns, rows, shared)
        return
    if dialect.name != "sqlite":  # the two databases citygate runs on
        raise NotImplementedError(f"no plain insert for {dialect.name}")
    values: Sequence[tuple[Any, ...]] = rows
    if shared:
        same = tuple(shared.values())
        with gc_paused():  # thousands of tuples, no await
            values = [v + same for v in rows]
    sql = f"{into} VALUES ({', '.join('?' * (len(columns) + len(shared)))})"
    conn = await session.connection()  # the session's, in its transaction
    raw = await conn.get_raw_connection()
    try:
        await raw.driver_connection.executemany(sql, values)  # type: ignore[union-attr]
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(sql, None, exc, dialect.loaded_dbapi.Error) from exc


async def _unnest(
    session: AsyncSession,
    table: Table,
    into: str,
    columns: Sequence[str],
    rows: Sequence[tuple[Any, ...]],
    shared: Mapping[str, Any],
) -> None:
    dialect = session.get_bind().dialect
    typed = dialect.type_compiler_instance.process
    picks = [f"CAST(:s_{n} AS {typed(table.c[n].type)})" for n in shared]
    arrays = ", ".join(f"CAST(:c_{n} AS {typed(table.c[n].type)}[])" for n in columns)
    cols = ", ".join(f"u.c{i}" for i in range(len(columns)))
    alias = ", ".join(f"c{i}" for i in range(len(columns)))
    sql = f"{into} SELECT {', '.join([cols, *picks])} FROM unnest({arrays}) AS u({alias})"  # noqa: S608 (schema names)
    params = [bindparam(f"s_{n}", v, type_=NullType()) for n, v in shared.items()]
    with gc_paused():  # a list per column, no await
        params += [bindparam(f"c_{n}", list(values), type_=NullType())
                   for n, values in zip(columns, zip(*rows, strict=True), strict=True)]  # fmt: skip
    await session.execute(text(sql).bindparams(*params))
