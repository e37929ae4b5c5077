"""A time zone by its IANA name, or a ValueError that says so: the one lookup every file
and setting that names a zone goes through.

``ZoneInfo`` looks a key up as a file path: a name longer than a path component is an
``OSError`` (file name too long), not ``ZoneInfoNotFoundError``, and a hostile file or setting
must get the same clear refusal as a misspelt one. IANA names are short (the longest is 32
characters), so a longer one is refused before any file is touched."""

from __future__ import annotations

from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["MAX_ZONE_NAME", "zone_named"]

MAX_ZONE_NAME = 64


def zone_named(name: str) -> ZoneInfo:
    """The zone *name* names; ``ValueError("unknown time zone ...")`` for anything else."""
    if not 0 < len(name) <= MAX_ZONE_NAME:
        raise ValueError(f"unknown time zone {name[:80]!r}")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown time zone {name!r}") from None
