"""Typed reads of TOML values for the parking data files, with errors naming the entry.

The tariff and rules loaders share these; each raises its own error type (a ``ValueError``)
so a caller can tell which file was at fault.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

MINUTES_PER_DAY = 24 * 60


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
