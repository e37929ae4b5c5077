"""Loading a versioned posted-tariff book from TOML: the file's optional ``zone`` must be the
town's (passed in: no default zone here), then ``[[version]]`` tables become versions in
``effective_from`` order, and every error names the file and the entry."""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from tariffcore.fields import FieldReader
from tariffcore.versions import Versioned
from tariffcore.zones import zone_named

V = TypeVar("V", bound=Versioned)
B = TypeVar("B")


def read_toml(text: str, source: str, error: type[ValueError]) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise error(f"{source}: not valid TOML: arrays or tables nested too deeply") from None


def read_file(path: Path, error: type[ValueError]) -> str:
    """The text of a UTF-8 file; unreadable or not UTF-8 is *error*, naming the file."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path.name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path.name}: not UTF-8 text (byte {exc.start})") from None


def check_zone(data: Mapping[str, Any], zone: ZoneInfo, fields: FieldReader) -> None:
    """A file may name its zone; it must then be the town's (a tariff read in another zone
    than the town's would move every posted hour)."""
    if "zone" not in data:
        return
    name = data["zone"]
    if not isinstance(name, str):
        raise fields.fail("zone", "must be a string such as 'Asia/Shanghai'")
    try:
        zone_named(name)
    except ValueError as exc:
        raise fields.fail("zone", str(exc)) from None
    if name != zone.key:
        raise fields.fail("zone", f"{name!r} is not the town's zone {zone.key!r}")


def parse_book(
    data: Mapping[str, Any],
    source: str,
    *,
    zone: ZoneInfo,
    fields: FieldReader,
    version: Callable[[object, str, ZoneInfo], V],
    book: Callable[[tuple[V, ...]], B],
) -> B:
    """The book of ``data``'s ``[[version]]`` tables, each read by ``version(raw, where,
    zone)``; raises ``fields.error`` prefixed with ``source``."""
    try:
        check_zone(data, zone, fields)
        raw_versions = fields.array(data.get("version"), "version")
        versions = [version(raw, f"version[{i}]", zone) for i, raw in enumerate(raw_versions)]
        if not versions:
            raise fields.fail("version", "needs at least one [[version]]")
        versions.sort(key=lambda v: v.effective_from)
        try:
            return book(tuple(versions))
        except ValueError as exc:
            raise fields.fail("version", str(exc)) from None
    except fields.error as exc:
        raise fields.error(f"{source}: {exc}") from None
