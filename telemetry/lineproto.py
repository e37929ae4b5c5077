"""InfluxDB line protocol: formatting only (pure: no I/O, no clock).

One line is ``measurement[,tag=value...] field=value[,field=value...] timestamp_ns``. The rules
(``docs/telemetry.md`` has the full table):

* measurement: ``,`` and space are escaped; tag keys, tag values and field keys: ``,``, ``=``
  and space are escaped; string field values are double-quoted with ``"`` and ``\\`` escaped.
* names (measurement, tag keys, field keys) are code, not data: an empty name, a control
  character (this includes CR, LF and TAB), a backslash, a leading ``#`` on a measurement (a
  comment line), or a reserved key (``time``, or a key starting with ``_``) is a programming
  error and raises ``ValueError``.
* values are data and never make a line unparseable: in tag values every character line protocol
  cannot carry the same way to every server (control characters U+0000-U+001F and U+007F, lone
  surrogates, and a backslash that stands last or right before ``,``, ``=`` or space) becomes
  U+FFFD; in string field values CR, LF and lone surrogates become U+FFFD. An empty tag value
  omits the tag.
* ints get the ``i`` suffix and must fit int64; floats are written in ``repr`` form (shortest
  round-trip); bools are ``true``/``false``. A NaN or infinite float, or an int outside int64,
  cannot be stored by InfluxDB: that field is skipped. A point left with no field is an error.
* tags are sorted by key (InfluxDB's recommendation: it saves the server a sort).
* timestamps are integer nanoseconds since the epoch, within InfluxDB's range.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

__all__ = [
    "MAX_TS_NS",
    "MIN_TS_NS",
    "REPLACEMENT",
    "FieldValue",
    "escape_key",
    "escape_measurement",
    "escape_string",
    "escape_tag_value",
    "field_value",
    "format_line",
    "ts_ns",
]

FieldValue = bool | int | float | str

#: Marks a character of a value that line protocol cannot carry.
REPLACEMENT = "\ufffd"

#: InfluxDB's valid timestamp range (the two extremes of int64 are reserved).
MIN_TS_NS = -9_223_372_036_854_775_806
MAX_TS_NS = 9_223_372_036_854_775_806
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_S = 1_000_000_000

_CONTROLS = frozenset(chr(c) for c in (*range(0x20), 0x7F))
_CONTROL_TO_REPLACEMENT: dict[int, str] = {ord(c): REPLACEMENT for c in _CONTROLS}

_TAG_SPECIAL = frozenset(",= ")
_MEASUREMENT_TABLE = str.maketrans({",": "\\,", " ": "\\ "})
_KEY_TABLE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "})
_TAG_VALUE_TABLE = str.maketrans({",": "\\,", "=": "\\=", " ": "\\ "} | _CONTROL_TO_REPLACEMENT)
_STRING_TABLE = str.maketrans(
    {'"': '\\"', "\\": "\\\\", "\n": REPLACEMENT, "\r": REPLACEMENT},
)


def ts_ns(ts: datetime) -> int:
    """Nanoseconds since the epoch of an aware datetime, exactly (integer arithmetic only)."""
    try:
        d = ts - _EPOCH
    except TypeError:  # naive, or a tzinfo without an offset: refused, not guessed
        raise ValueError("naive datetime: timestamps must carry a UTC offset") from None
    return (d.days * 86_400 + d.seconds) * _NS_PER_S + d.microseconds * 1_000


def _no_surrogates(s: str) -> str:
    """Replace lone surrogates (which UTF-8 cannot encode) with U+FFFD."""
    if s.isascii():
        return s
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return "".join(REPLACEMENT if "\ud800" <= c <= "\udfff" else c for c in s)
    return s


def _check_name(name: str, what: str) -> None:
    if not name:
        raise ValueError(f"empty {what}")
    if "\\" in name or not _CONTROLS.isdisjoint(name):
        raise ValueError(f"{what} {name!r} contains a backslash or a control character")
    if _no_surrogates(name) is not name:
        raise ValueError(f"{what} {name!r} is not valid Unicode")


def escape_measurement(name: str) -> str:
    """Escape a measurement name (``,`` and space); invalid names raise ``ValueError``."""
    escaped = _MEASUREMENTS.get(name)
    if escaped is None:
        _check_name(name, "measurement")
        if name[0] == "#":
            raise ValueError(f"measurement {name!r} would read as a comment line")
        escaped = _remember(_MEASUREMENTS, name, name.translate(_MEASUREMENT_TABLE))
    return escaped


def escape_key(key: str) -> str:
    """Escape a tag or field key (``,``, ``=``, space); invalid keys raise ``ValueError``."""
    escaped = _KEYS.get(key)
    if escaped is None:
        _check_name(key, "key")
        if key == "time" or key[0] == "_":
            raise ValueError(f"key {key!r} is reserved by InfluxDB")
        escaped = _remember(_KEYS, key, key.translate(_KEY_TABLE))
    return escaped


# Names are code, so there are few of them: validated and escaped once, then looked up.
_MEASUREMENTS: dict[str, str] = {}
_KEYS: dict[str, str] = {}
_NAME_CACHE_LIMIT = 10_000


def _remember(cache: dict[str, str], name: str, escaped: str) -> str:
    if len(cache) >= _NAME_CACHE_LIMIT:
        cache.clear()
    cache[name] = escaped
    return escaped


def escape_tag_value(value: str) -> str:
    """Escape a tag value; characters it cannot carry become U+FFFD (never raises)."""
    value = _no_surrogates(value)
    if "\\" in value:
        value = _tame_backslashes(value)
    return value.translate(_TAG_VALUE_TABLE)


def _tame_backslashes(value: str) -> str:
    """Replace each backslash that stands last or before ``,``, ``=`` or space with U+FFFD.

    Such a backslash cannot be written so that every server reads it back: InfluxDB 1.x and the
    2.x/3.x parser take ``\\\\,`` as a backslash and an escaped comma, VictoriaMetrics drops
    the line; a trailing one would escape the separator that follows the value.
    """
    chars = list(value)
    last = len(chars) - 1
    for i, c in enumerate(chars):
        if c == "\\" and (i == last or chars[i + 1] in _TAG_SPECIAL):
            chars[i] = REPLACEMENT
    return "".join(chars)


def escape_string(value: str) -> str:
    """A string field value, quoted: ``"`` and ``\\`` escaped, CR/LF become U+FFFD."""
    return '"' + _no_surrogates(value).translate(_STRING_TABLE) + '"'


def field_value(value: FieldValue) -> str | None:
    """The line-protocol form of a field value, or ``None`` if InfluxDB cannot store it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        v = int(value)  # an IntEnum formats as its name otherwise
        return f"{v}i" if _INT64_MIN <= v <= _INT64_MAX else None
    if isinstance(value, float):
        f = float(value)
        return repr(f) if f - f == 0.0 else None  # NaN and +-inf fail this test
    if isinstance(value, str):
        return escape_string(value)
    raise TypeError(f"unsupported field value type {type(value).__name__}")


def format_line(
    measurement: str,
    tags: Mapping[str, str],
    fields: Mapping[str, FieldValue],
    ts_ns: int,
) -> str:
    """One line of line protocol (no trailing newline).

    Tags are sorted by key and empty tag values omitted; fields keep the mapping's order. A
    field InfluxDB cannot store (NaN, inf, an int outside int64) is skipped; if none is left,
    ``ValueError``. A timestamp outside InfluxDB's range is a ``ValueError`` too.
    """
    if type(ts_ns) is not int:
        raise TypeError("ts_ns must be an int")
    if not MIN_TS_NS <= ts_ns <= MAX_TS_NS:
        raise ValueError(f"timestamp {ts_ns} is outside InfluxDB's range")
    head = escape_measurement(measurement)
    for key in sorted(tags):
        value = tags[key]
        if key in fields:
            raise ValueError(f"{key!r} is both a tag and a field")
        k = escape_key(key)
        if value:
            head += "," + k + "=" + escape_tag_value(value)
    parts = []
    for key, field in fields.items():
        formatted = field_value(field)
        k = escape_key(key)
        if formatted is not None:
            parts.append(k + "=" + formatted)
    if not parts:
        raise ValueError(f"a {measurement} point without any storable field")
    return f"{head} {','.join(parts)} {ts_ns}"
