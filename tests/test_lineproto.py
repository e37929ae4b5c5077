"""Line protocol formatting: escaping tables, number forms, timestamps, and a parse-back property.

``parse_line`` is a small independent parser that follows InfluxDB's own decoder (a backslash
escapes only the characters of its section; elsewhere it is literal). ``forward=True`` parses
the way a stricter scanner does (VictoriaMetrics, the field scanner of InfluxDB 1.x: a backslash
always takes the next character with it); a line must read the same both ways.
"""

from __future__ import annotations

import calendar
import math
import re
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from telemetry.lineproto import (
    MAX_TS_NS,
    MIN_TS_NS,
    REPLACEMENT,
    escape_key,
    escape_measurement,
    escape_string,
    escape_tag_value,
    field_value,
    format_line,
    ts_ns,
)

R = REPLACEMENT
Fields = dict[str, bool | int | float | str]

# -- an independent parser ------------------------------------------------------------------------
_MEAS_ESC = frozenset(", ")
_KEY_ESC = frozenset(",= ")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _take(
    line: str, i: int, escapable: frozenset[str], stops: str, forward: bool
) -> tuple[str, int]:
    out: list[str] = []
    while i < len(line):
        c = line[i]
        if c == "\\" and i + 1 < len(line):
            nxt = line[i + 1]
            if nxt in escapable:
                out.append(nxt)
                i += 2
                continue
            if forward:
                out += [c, nxt]
                i += 2
                continue
        elif c in stops:
            break
        out.append(c)
        i += 1
    return "".join(out), i


def _scalar(raw: str) -> bool | int | float:
    if raw in ("true", "false"):
        return raw == "true"
    if raw.endswith("i"):
        assert re.fullmatch(r"-?\d+", raw[:-1]), raw
        return int(raw[:-1])
    value = float(raw)
    assert math.isfinite(value), raw
    return value


def parse_line(line: str, forward: bool = False) -> tuple[str, dict[str, str], Fields, int]:
    """(measurement, tags, fields, ts) of one line; AssertionError if it is not well formed."""
    assert "\n" not in line and "\r" not in line, line
    measurement, i = _take(line, 0, _MEAS_ESC, ", ", forward)
    assert measurement and not measurement.startswith("#"), line
    tags: dict[str, str] = {}
    while line[i] == ",":
        key, i = _take(line, i + 1, _KEY_ESC, ",= ", forward)
        assert line[i] == "=", line
        value, i = _take(line, i + 1, _KEY_ESC, ",= ", forward)
        assert line[i] in ", ", line
        assert key and value and key not in tags, line
        tags[key] = value
    assert list(tags) == sorted(tags), line
    assert line[i] == " ", line
    i += 1
    fields: Fields = {}
    while True:
        key, i = _take(line, i, _KEY_ESC, ",= ", forward)
        assert key and line[i] == "=" and key not in fields, line
        i += 1
        if line[i] == '"':
            i += 1
            chars: list[str] = []
            while line[i] != '"':
                if line[i] == "\\":
                    assert line[i + 1] in '\\"', line  # only \\ and \" inside strings
                    i += 1
                chars.append(line[i])
                i += 1
            fields[key] = "".join(chars)
            i += 1
        else:
            j = i
            while line[j] not in ", ":
                j += 1
            fields[key] = _scalar(line[i:j])
            i = j
        if line[i] != ",":
            break
        i += 1
    assert line[i] == " ", line
    ts = line[i + 1 :]
    assert re.fullmatch(r"-?\d+", ts), line
    for name in (measurement, *tags, *tags.values(), *fields):
        assert not _CONTROL.search(name), line
    return measurement, tags, fields, int(ts)


def parse_both(line: str) -> tuple[str, dict[str, str], Fields, int]:
    parsed = parse_line(line)
    assert parse_line(line, forward=True) == parsed, line
    return parsed


# -- escaping tables ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("berth_sensor", "berth_sensor"),
        ("a,b", "a\\,b"),
        ("a b", "a\\ b"),
        ("a=b", "a=b"),  # '=' needs no escape in a measurement
        ('a"b', 'a"b'),
        ("市民大厅", "市民大厅"),
        (" ,", "\\ \\,"),
    ],
)
def test_escape_measurement(raw: str, escaped: str) -> None:
    assert escape_measurement(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("site", "site"),
        ("a,b", "a\\,b"),
        ("a b", "a\\ b"),
        ("a=b", "a\\=b"),
        ('a"b', 'a"b'),
        ("温度", "温度"),
        (",= ", "\\,\\=\\ "),
    ],
)
def test_escape_key(raw: str, escaped: str) -> None:
    assert escape_key(raw) == escaped


@pytest.mark.parametrize(
    "bad", ["", "a\nb", "a\rb", "a\tb", "a\x00", "a\x7f", "a\\b", "a\\", "a\ud800"]
)
def test_invalid_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match=r"empty|backslash|Unicode"):
        escape_key(bad)
    with pytest.raises(ValueError, match=r"empty|backslash|Unicode"):
        escape_measurement(bad)


@pytest.mark.parametrize("bad", ["time", "_field", "_measurement", "_x"])
def test_reserved_keys_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="reserved"):
        escape_key(bad)


def test_comment_measurement_is_refused() -> None:
    with pytest.raises(ValueError, match="comment"):
        escape_measurement("#berth")


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("P1", "P1"),
        ("a,b", "a\\,b"),
        ("a b", "a\\ b"),
        ("a=b", "a\\=b"),
        ('a"b', 'a"b'),  # quotes are plain in tags
        ("市民大厅", "市民大厅"),
        ("粤B12345", "粤B12345"),
        ("🚗 P", "🚗\\ P"),
        ("a\\b", "a\\b"),  # a backslash before an ordinary character is literal
        ("\\a", "\\a"),
        # characters no server reads back the same become U+FFFD
        ("a\nb", f"a{R}b"),
        ("a\r\nb", f"a{R}{R}b"),
        ("a\tb", f"a{R}b"),
        ("a\x00b\x7f", f"a{R}b{R}"),
        ("ab\\", f"ab{R}"),  # trailing: it would escape the separator after it
        ("\\", R),
        ("ab\\\\", f"ab\\{R}"),
        ("a\\,b", f"a{R}\\,b"),
        ("a\\ b", f"a{R}\\ b"),
        ("a\\=b", f"a{R}\\=b"),
        ("a\\\nb", f"a\\{R}b"),
        ("a\ud800b", f"a{R}b"),  # a lone surrogate cannot be UTF-8 encoded
    ],
)
def test_escape_tag_value(raw: str, escaped: str) -> None:
    assert escape_tag_value(raw) == escaped


@pytest.mark.parametrize(
    ("raw", "quoted"),
    [
        ("v1.2", '"v1.2"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("C:\\dir\\", '"C:\\\\dir\\\\"'),
        ('\\"', '"\\\\\\""'),
        ("a,b c=d", '"a,b c=d"'),  # nothing else is escaped inside quotes
        ("市民大厅", '"市民大厅"'),
        ("粤B12345", '"粤B12345"'),
        ("line1\nline2", f'"line1{R}line2"'),
        ("a\r\n", f'"a{R}{R}"'),
        ("tab\tok", '"tab\tok"'),  # quoted strings carry tabs fine
        ("a\udfffb", f'"a{R}b"'),
        ("", '""'),
    ],
)
def test_escape_string(raw: str, quoted: str) -> None:
    assert escape_string(raw) == quoted


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (True, "true"),
        (False, "false"),
        (0, "0i"),
        (-17, "-17i"),
        (2**63 - 1, "9223372036854775807i"),
        (-(2**63), "-9223372036854775808i"),
        (2**63, None),
        (-(2**63) - 1, None),
        (0.0, "0.0"),
        (-0.0, "-0.0"),
        (21.5, "21.5"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1.5e-7, "1.5e-07"),
        (-97.0, "-97.0"),
        (float("nan"), None),
        (float("inf"), None),
        (float("-inf"), None),
        ("x", '"x"'),
    ],
)
def test_field_value(value: bool | int | float | str, text: str | None) -> None:
    assert field_value(value) == text


def test_field_value_refuses_other_types() -> None:
    with pytest.raises(TypeError):
        field_value(None)  # type: ignore[arg-type]


# -- whole lines ----------------------------------------------------------------------------------
def test_format_line_sorts_tags_and_keeps_field_order() -> None:
    line = format_line(
        "berth_sensor",
        {"site": "市民大厅", "device": "a1", "model": "nwave-nps405", "kind": "berth_sensor"},
        {"occupied": 1, "rssi": -97.0, "ok": True, "fw": "v1"},
        1_740_817_815_123_456_000,
    )
    assert line == (
        "berth_sensor,device=a1,kind=berth_sensor,model=nwave-nps405,site=市民大厅 "
        'occupied=1i,rssi=-97.0,ok=true,fw="v1" 1740817815123456000'
    )


def test_format_line_without_tags() -> None:
    assert format_line("m", {}, {"v": 1.5}, 0) == "m v=1.5 0"


def test_empty_tag_values_are_omitted() -> None:
    assert format_line("m", {"a": "", "b": "x"}, {"v": 1}, 5) == "m,b=x v=1i 5"


def test_unstorable_fields_are_skipped() -> None:
    fields: Fields = {"nan": float("nan"), "inf": float("inf"), "big": 2**64, "ok": 2}
    assert format_line("m", {}, fields, 1) == "m ok=2i 1"


@pytest.mark.parametrize(
    "fields", [{}, {"nan": float("nan")}, {"inf": float("-inf"), "big": -(2**70)}]
)
def test_a_point_without_fields_is_an_error(fields: Fields) -> None:
    with pytest.raises(ValueError, match="without any storable field"):
        format_line("m", {"t": "x"}, fields, 1)


def test_a_key_cannot_be_tag_and_field() -> None:
    with pytest.raises(ValueError, match="both a tag and a field"):
        format_line("m", {"state": "x"}, {"state": 1}, 1)


@pytest.mark.parametrize("ts", [MIN_TS_NS - 1, MAX_TS_NS + 1, 2**64])
def test_timestamp_out_of_range_is_an_error(ts: int) -> None:
    with pytest.raises(ValueError, match="range"):
        format_line("m", {}, {"v": 1}, ts)


def test_timestamp_must_be_an_int() -> None:
    with pytest.raises(TypeError):
        format_line("m", {}, {"v": 1}, 1.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        format_line("m", {}, {"v": 1}, True)


def test_extreme_timestamps() -> None:
    assert format_line("m", {}, {"v": 1}, MIN_TS_NS).endswith(" -9223372036854775806")
    assert format_line("m", {}, {"v": 1}, MAX_TS_NS).endswith(" 9223372036854775806")


def test_newlines_never_reach_the_output() -> None:
    line = format_line("m", {"t": "a\nb\r"}, {"s": "x\ny\r\nz"}, 7)
    assert "\n" not in line and "\r" not in line
    assert line == f'm,t=a{R}b{R} s="x{R}y{R}{R}z" 7'
    for bad in ("m\n", "m\r"):
        with pytest.raises(ValueError, match="control"):
            format_line(bad, {}, {"v": 1}, 7)
        with pytest.raises(ValueError, match="control"):
            format_line("m", {bad: "x"}, {"v": 1}, 7)
        with pytest.raises(ValueError, match="control"):
            format_line("m", {}, {bad: 1}, 7)


def test_unicode_round_trip() -> None:
    line = format_line(
        "carpark", {"site": "市民大厅"}, {"plate": "粤B12345", "name": "浙宁商厦 P2"}, 9
    )
    assert line == 'carpark,site=市民大厅 plate="粤B12345",name="浙宁商厦 P2" 9'
    assert parse_both(line) == (
        "carpark",
        {"site": "市民大厅"},
        {"plate": "粤B12345", "name": "浙宁商厦 P2"},
        9,
    )


# -- timestamps -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ts", "ns"),
    [
        (datetime(1970, 1, 1, tzinfo=UTC), 0),
        (datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC), 1_000),
        (datetime(2025, 3, 1, 8, 30, 15, 123456, tzinfo=UTC), 1_740_817_815_123_456_000),
        # the same instant in Asia/Shanghai
        (
            datetime(2025, 3, 1, 16, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8))),
            1_740_817_815_123_456_000,
        ),
        (datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), -1_000),
        # where float seconds would lose the last microsecond
        (datetime(2262, 4, 11, 23, 47, 16, 854775, tzinfo=UTC), 9_223_372_036_854_775_000),
    ],
)
def test_ts_ns(ts: datetime, ns: int) -> None:
    assert ts_ns(ts) == ns


def test_ts_ns_refuses_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        ts_ns(datetime(2025, 1, 1))


# any legal offset, down to the microsecond
_OFFSETS = st.builds(
    timezone, st.timedeltas(min_value=timedelta(hours=-23), max_value=timedelta(hours=23))
)


@given(st.datetimes(timezones=st.one_of(st.just(UTC), _OFFSETS)))
def test_ts_ns_is_exact(ts: datetime) -> None:
    # local wall-clock fields minus the offset, each part in integer nanoseconds
    offset = ts.utcoffset()
    assert offset is not None
    local_ns = calendar.timegm(ts.timetuple()) * 1_000_000_000 + ts.microsecond * 1_000
    offset_ns = offset // timedelta(microseconds=1) * 1_000
    expected = local_ns - offset_ns
    assert ts_ns(ts) == expected
    assert ts_ns(ts) % 1_000 == 0


# -- parse-back property --------------------------------------------------------------------------
_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="\\")
_names = st.text(_NAME_CHARS, min_size=1, max_size=12)
_measurements = _names.filter(lambda s: not s.startswith("#"))
_keys = _names.filter(lambda s: s != "time" and not s.startswith("_"))
# tag values: anything, including control characters, backslashes and lone surrogates
_ANY_CHARS = st.characters(blacklist_categories=())
_values = st.one_of(
    st.text(_ANY_CHARS, max_size=12), st.text(st.sampled_from(",= \\\n\"'a市"), max_size=8)
)
_field_values = st.one_of(
    st.booleans(),
    st.integers(min_value=-(2**65), max_value=2**65),
    st.floats(allow_nan=True, allow_infinity=True),
    _values,
)


def _expected_tag(value: str) -> str:
    out = []
    for i, c in enumerate(value):
        unwritable = ord(c) < 0x20 or c == "\x7f" or 0xD800 <= ord(c) <= 0xDFFF
        ambiguous = c == "\\" and (i == len(value) - 1 or value[i + 1] in ",= ")
        out.append(R if unwritable or ambiguous else c)
    return "".join(out)


def _expected_field(value: bool | int | float | str) -> bool | int | float | str | None:
    if isinstance(value, str):
        return "".join(R if c in "\r\n" or 0xD800 <= ord(c) <= 0xDFFF else c for c in value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        return None
    return value


@given(
    _measurements,
    st.dictionaries(_keys, _values, max_size=5),
    st.dictionaries(_keys, _field_values, max_size=5),
    st.integers(min_value=MIN_TS_NS, max_value=MAX_TS_NS),
)
def test_format_line_parses_back(
    measurement: str, tags: dict[str, str], fields: Fields, ts: int
) -> None:
    assume(not set(tags) & set(fields))
    expected_fields = {}
    for key, value in fields.items():
        expected = _expected_field(value)
        if expected is not None:
            expected_fields[key] = expected
    if not expected_fields:
        with pytest.raises(ValueError, match="without any storable field"):
            format_line(measurement, tags, fields, ts)
        return
    line = format_line(measurement, tags, fields, ts)
    m, t, f, parsed_ts = parse_both(line)
    assert m == measurement
    assert t == {k: _expected_tag(v) for k, v in tags.items() if v}
    assert f == expected_fields
    for key, value in f.items():  # types survive: 1 stays an int, 1.0 a float, True a bool
        assert type(value) is type(expected_fields[key])
    assert parsed_ts == ts
    # formatting what was parsed gives the very same line (the escaping is stable)
    assert format_line(m, t, f, parsed_ts) == line
