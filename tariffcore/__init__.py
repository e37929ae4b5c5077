"""The posted-tariff core that parking and charging share: the local day (windows across
midnight, coverage, wall-clock minutes as instants), versioned books (a version in force from
a date), the TOML field reader and the book loader. Pure: no I/O, no clock, and no default
zone (the town's zone is always passed in)."""

from tariffcore.day import (
    MINUTES_PER_DAY,
    DayWindow,
    check_cover_day,
    check_window,
    hhmm,
    intervals,
    local_at,
    require_aware,
)
from tariffcore.fields import FieldReader
from tariffcore.loader import check_zone, parse_book, read_file, read_toml
from tariffcore.versions import VersionBook, Versioned, check_version

__all__ = [
    "MINUTES_PER_DAY",
    "DayWindow",
    "FieldReader",
    "VersionBook",
    "Versioned",
    "check_cover_day",
    "check_version",
    "check_window",
    "check_zone",
    "hhmm",
    "intervals",
    "local_at",
    "parse_book",
    "read_file",
    "read_toml",
    "require_aware",
]
