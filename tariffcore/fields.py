"""Typed reads of TOML values for posted-tariff and rules files, with errors naming the entry.

Every loader shares these; each raises its own error type (a ``ValueError``) so a caller can
tell which file was at fault.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from tariffcore.day import MINUTES_PER_DAY


class FieldReader:
    """Reads fields of parsed TOML, raising ``error(f"{where}: {message}")`` on bad input."""

    def __init__(self, error: type[ValueError]) -> None:
        self.error = error

    def fail(self, where: str, message: str) -> ValueError:
        return self.error(f"{where}: {message}")

    def table(self, value: object, where: str) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(where, "must be a table")
        return value

    def array(self, value: object, where: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(where, "must be an array")
        return value

    def string(
        self, table: Mapping[str, Any], key: str, where: str, *, max_len: int | None = None
    ) -> str:
        value = table.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(where, f"{key} must be a non-empty string")
        if max_len is not None and len(value) > max_len:
            raise self.fail(where, f"{key} must be at most {max_len} characters")
        return value

    def integer(self, value: object, what: str, where: str, *, minimum: int) -> int:
        """An integer >= ``minimum`` (never a bool); money fields say money is integer fen."""
        if isinstance(value, bool) or not isinstance(value, int):
            why = " (money is integer fen)" if "fen" in what else ""
            raise self.fail(where, f"{what} must be an integer{why}")
        if value < minimum:
            raise self.fail(where, f"{what} must be >= {minimum}, got {value}")
        return value

    def clock(self, table: Mapping[str, Any], key: str, where: str) -> int:
        """``"HH:MM"`` (00:00–24:00) as minutes of the day."""
        value = table.get(key)
        if not isinstance(value, str):
            raise self.fail(where, f"{key} must be a string HH:MM")
        parts = value.split(":")
        ok = len(parts) == 2 and all(len(p) == 2 and p.isdigit() for p in parts)
        minutes = int(parts[0]) * 60 + int(parts[1]) if ok else -1
        if not ok or int(parts[1]) >= 60 or not 0 <= minutes <= MINUTES_PER_DAY:
            raise self.fail(where, f"{key} {value!r} is not a time HH:MM between 00:00 and 24:00")
        return minutes

    def window(self, raw: object, where: str) -> tuple[Mapping[str, Any], str, str, int, int]:
        """A ``{ name, start = "HH:MM", end = "HH:MM" }`` window of the day: its table, its
        ``where`` (now naming it), name, start and end minutes (24:00 may only end one)."""
        table = self.table(raw, where)
        name = self.string(table, "name", where)
        where = f'{where} "{name}"'
        start = self.clock(table, "start", where)
        end = self.clock(table, "end", where)
        if start == MINUTES_PER_DAY:
            raise self.fail(where, "start cannot be 24:00")
        return table, where, name, start, end

    def effective_from(self, value: object, where: str) -> dt.datetime:
        """An ISO 8601 date-time with an offset (a TOML offset date-time or a string)."""
        if isinstance(value, str):
            try:
                value = dt.datetime.fromisoformat(value)
            except ValueError:
                raise self.fail(where, f"effective_from {value!r} is not ISO 8601") from None
        if not isinstance(value, dt.datetime) or value.utcoffset() is None:
            raise self.fail(where, "effective_from must be an ISO 8601 date-time with an offset")
        return value
