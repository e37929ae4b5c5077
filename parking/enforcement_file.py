"""Loading enforcement rules from TOML, with errors that name the offending entry.

The file format is documented in docs/enforcement.md; ``parking/data/sample_rules.toml`` is
the sample town's rules. Every problem is reported as a ``RulesFileError`` whose message says
where it is, e.g. ``rules.toml: rule "market-stall" allowed[0]: end '9:30' is not a time HH:MM
between 00:00 and 24:00``. Zone ids (and site ids, when the caller knows them) are checked
against the town, so a rule can never silently watch a zone that does not exist.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from collections.abc import Collection, Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from parking.enforcement import (
    DAY_NAMES,
    DETECTION_KINDS,
    KNOWN_ZONE_KINDS,
    MINUTES_PER_DAY,
    TRIGGERS,
    Rule,
    RuleBook,
    Window,
    ZoneShape,
)
from tariffcore import FieldReader
from tariffcore.zones import zone_named

SAMPLE_RULES = "sample_rules.toml"

_RULE_KEYS = frozenset(
    {
        "id",
        "category",
        "title",
        "trigger",
        "kinds",
        "min_confidence",
        "min_stay",
        "zones",
        "zone_kinds",
        "sites",
        "active",
        "allowed",
        "dedup",
        "note",
    }
)
_WINDOW_KEYS = frozenset({"start", "end", "days"})
_TOP_KEYS = frozenset({"zone", "rule"})
_IDENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$")
_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_FULL_DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DEFAULT_DEDUP = "1h"
# Column widths of the case store (migration 0002): longer values would fail at insert time.
_MAX_CATEGORY = 16
_MAX_TITLE = 200


class RulesFileError(ValueError):
    """A rules file that cannot be used; the message names the entry at fault."""


_fields = FieldReader(RulesFileError)
_fail, _table, _list, _clock = _fields.fail, _fields.table, _fields.array, _fields.clock


def _str(table: Mapping[str, Any], key: str, where: str, *, max_len: int = 200) -> str:
    return _fields.string(table, key, where, max_len=max_len)


def _strings(table: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = table.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _fail(where, f"{key} must be an array of non-empty strings")
    return value


def _unknown_keys(table: Mapping[str, Any], allowed: frozenset[str], where: str) -> None:
    extra = sorted(set(table) - allowed)
    if extra:
        raise _fail(
            where, f"unknown key(s) {', '.join(extra)}; expected {', '.join(sorted(allowed))}"
        )


def parse_duration(value: object, what: str, where: str) -> dt.timedelta:
    """``"7d"``, ``"1h30m"``, ``"45s"`` → timedelta; negative or malformed → RulesFileError."""
    if not isinstance(value, str):
        raise _fail(where, f"{what} must be a string such as '5m', '1h30m' or '7d'")
    text = value.strip()
    if text.startswith("-"):
        raise _fail(where, f"{what} {value!r} must not be negative")
    match = _DURATION.fullmatch(text)
    if not text or match is None:
        raise _fail(where, f"{what} {value!r} is not a duration such as '5m', '1h30m' or '7d'")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _days(value: object, where: str) -> frozenset[int]:
    names = _list(value, f"{where} days")
    if not names:
        raise _fail(where, "days must name at least one weekday (or be left out: every day)")
    days: set[int] = set()
    for name in names:
        key = name.lower() if isinstance(name, str) else ""
        if key in DAY_NAMES:
            days.add(DAY_NAMES.index(key))
        elif key in _FULL_DAY_NAMES:
            days.add(_FULL_DAY_NAMES.index(key))
        else:
            raise _fail(where, f"unknown weekday {name!r}; expected one of {', '.join(DAY_NAMES)}")
    return frozenset(days)


def _windows(table: Mapping[str, Any], key: str, where: str) -> tuple[Window, ...]:
    windows: list[Window] = []
    for i, raw in enumerate(_list(table.get(key, []), f"{where} {key}")):
        w_where = f"{where} {key}[{i}]"
        w = _table(raw, w_where)
        _unknown_keys(w, _WINDOW_KEYS, w_where)
        start = _clock(w, "start", w_where)
        end = _clock(w, "end", w_where)
        if start == MINUTES_PER_DAY:
            raise _fail(w_where, "start cannot be 24:00")
        if end == 0:
            end = MINUTES_PER_DAY  # "22:00"–"00:00" means until midnight
        if start == end:
            raise _fail(w_where, "start and end must differ (for all day use 00:00–24:00)")
        days = _days(w["days"], w_where) if "days" in w else None
        windows.append(Window(start, end) if days is None else Window(start, end, days))
    return tuple(windows)


def _rule(
    raw: object,
    where: str,
    zones: Sequence[ZoneShape],
    sites: Collection[str] | None,
) -> Rule:
    table = _table(raw, where)
    rule_id = _str(table, "id", where, max_len=64)
    if not _IDENT.match(rule_id):
        raise _fail(where, f"id {rule_id!r} must be letters, digits and _ . : - (at most 64)")
    where = f'rule "{rule_id}"'
    _unknown_keys(table, _RULE_KEYS, where)
    category = _str(table, "category", where, max_len=_MAX_CATEGORY)
    title = _str(table, "title", where, max_len=_MAX_TITLE)
    trigger = table.get("trigger")
    if trigger not in TRIGGERS:
        raise _fail(where, f"trigger must be one of {', '.join(TRIGGERS)}, got {trigger!r}")

    kinds: list[str] = []
    min_confidence = 0.0
    min_stay = dt.timedelta(0)
    if trigger == "detection":
        if "min_stay" in table:
            raise _fail(where, "min_stay is for stay rules; a detection rule uses min_confidence")
        kinds = _strings(table, "kinds", where)
        if not kinds:
            raise _fail(where, f"kinds must list detection kinds ({', '.join(DETECTION_KINDS)})")
        for kind in kinds:
            if kind not in DETECTION_KINDS:
                raise _fail(
                    where, f"unknown detection kind {kind!r}; expected {', '.join(DETECTION_KINDS)}"
                )
        value = table.get("min_confidence")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(where, "min_confidence must be a number within 0..1 (required)")
        if not 0.0 <= value <= 1.0:
            raise _fail(where, f"min_confidence must lie within 0..1, got {value}")
        min_confidence = float(value)
    else:
        for key in ("kinds", "min_confidence"):
            if key in table:
                raise _fail(where, f"{key} is for detection rules; a stay rule uses min_stay")
        if "min_stay" not in table:
            raise _fail(where, "a stay rule needs min_stay, e.g. '5m' or '7d'")
        min_stay = parse_duration(table["min_stay"], "min_stay", where)
        if min_stay <= dt.timedelta(0):
            raise _fail(where, "min_stay must be longer than 0")

    zone_ids = _strings(table, "zones", where)
    known_ids = {z.id for z in zones}
    if zones:
        for zone_id in zone_ids:
            if zone_id not in known_ids:
                raise _fail(
                    where, f"unknown zone {zone_id!r}; the town has {', '.join(sorted(known_ids))}"
                )
    zone_kinds = _strings(table, "zone_kinds", where)
    known_kinds = KNOWN_ZONE_KINDS | {z.kind for z in zones}
    for kind in zone_kinds:
        if kind not in known_kinds:
            raise _fail(
                where, f"unknown zone kind {kind!r}; expected {', '.join(sorted(known_kinds))}"
            )
    site_ids = _strings(table, "sites", where)
    if sites is not None:
        for site_id in site_ids:
            if site_id not in sites:
                raise _fail(where, f"unknown site {site_id!r}")

    active = _windows(table, "active", where)
    allowed = _windows(table, "allowed", where)
    dedup = parse_duration(table.get("dedup", DEFAULT_DEDUP), "dedup", where)
    if dedup < dt.timedelta(seconds=1):
        raise _fail(where, "dedup must be at least 1s (0 would report the same situation again)")
    if "note" in table and not isinstance(table["note"], str):
        raise _fail(where, "note must be a string")
    try:
        return Rule(
            id=rule_id,
            category=category,
            title=title,
            trigger=trigger,
            dedup=dedup,
            kinds=frozenset(kinds),
            min_confidence=min_confidence,
            min_stay=min_stay,
            zones=frozenset(zone_ids),
            zone_kinds=frozenset(zone_kinds),
            sites=frozenset(site_ids),
            active=active,
            allowed=allowed,
        )
    except ValueError as exc:
        raise _fail(where, str(exc)) from None


def parse_rules(
    data: Mapping[str, Any],
    zones: Sequence[ZoneShape],
    source: str = "<rules>",
    *,
    sites: Collection[str] | None = None,
) -> RuleBook:
    """Build a ``RuleBook`` from parsed TOML; raises ``RulesFileError``."""
    try:
        _unknown_keys(data, _TOP_KEYS, "(file)")
        zone_name = data.get("zone", "Asia/Shanghai")
        if not isinstance(zone_name, str):
            raise _fail("zone", "must be a string such as 'Asia/Shanghai'")
        try:
            tz = zone_named(zone_name)
        except ValueError as exc:
            raise _fail("zone", str(exc)) from None
        raw_rules = _list(data.get("rule", []), "rule")
        rules: list[Rule] = []
        seen: set[str] = set()
        for i, raw in enumerate(raw_rules):
            rule = _rule(raw, f"rule[{i}]", zones, sites)
            if rule.id in seen:
                raise _fail(f'rule[{i}] "{rule.id}"', "id is already used by an earlier rule")
            seen.add(rule.id)
            rules.append(rule)
        return RuleBook(zones=tuple(zones), rules=tuple(rules), zone=tz)
    except RulesFileError as exc:
        raise RulesFileError(f"{source}: {exc}") from None


def loads_rules(
    text: str,
    zones: Sequence[ZoneShape],
    source: str = "<rules>",
    *,
    sites: Collection[str] | None = None,
) -> RuleBook:
    """Parse rules TOML ``text``; ``sites``, if given, are the town's site ids to check."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesFileError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise RulesFileError(f"{source}: not valid TOML: nested too deeply") from None
    return parse_rules(data, zones, source, sites=sites)


def load_rules(
    path: str | Path, zones: Sequence[ZoneShape], *, sites: Collection[str] | None = None
) -> RuleBook:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesFileError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise RulesFileError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return loads_rules(text, zones, path.name, sites=sites)


def load_sample_rules(
    zones: Sequence[ZoneShape], *, sites: Collection[str] | None = None
) -> RuleBook:
    """The sample town's rules, shipped as ``parking/data/sample_rules.toml``; they name zone
    kinds, not ids, so they load with any town's zones."""
    text = resources.files("parking.data").joinpath(SAMPLE_RULES).read_text("utf-8")
    return loads_rules(text, zones, SAMPLE_RULES, sites=sites)
