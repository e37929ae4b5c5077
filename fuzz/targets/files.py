"""Tariff, rules and town files through their loaders, as the CLI and the gateway read them:
the file's bytes are written to a path and ``load_tariffs`` / ``load_charging_tariffs`` /
``load_rules`` / ``load_town`` read it (so non-UTF-8 and unreadable text go the real way).
Typed rejections: ``TariffFileError``, ``ChargingTariffFileError``, ``RulesFileError``,
``TownFileError``; their reason is the kind of problem read off the message."""

from __future__ import annotations

import atexit
import json
import re
import shutil
import tempfile
import tomllib
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from charging.tariff_file import ChargingTariffFileError, load_charging_tariffs
from fuzz.core import Reasons, Target
from fuzz.mutate import BYTE_TOKENS, TOML_TOKENS, hostile_bytes, mutated_lines
from gateway.directory.town import TownFileError, load_town
from parking.enforcement import ZoneShape
from parking.enforcement_file import RulesFileError, load_rules
from parking.tariff_file import TariffFileError, load_tariffs

ZONE = ZoneInfo("Asia/Shanghai")
_TYPED = (TariffFileError, ChargingTariffFileError, RulesFileError, TownFileError)
_DIR = Path(tempfile.mkdtemp(prefix="citygate-fuzz-"))  # one file per target, rewritten
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)


def _text(package: str, *parts: str) -> str:
    return resources.files(package).joinpath(*parts).read_text("utf-8")


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    assert isinstance(value, dict)
    return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"


def small_town() -> str:
    """The shipped sample town cut to a few of each kind (the whole one takes ~25 ms a
    parse): the first two lanes' site, its berths and their sensors, a charger there, two
    officers, a drone; written back as TOML."""
    town = tomllib.loads(_text("gateway.data", "sample_town.toml"))
    lanes = town["lanes"][:2]
    sites = {ln["site"] for ln in lanes}
    berths = [b for b in town["berths"] if b["site"] in sites][:4]
    numbers = {b["id"] for b in berths}
    small = {
        "zones": town["zones"],
        "sites": [s for s in town["sites"] if s["id"] in sites],
        "berths": berths,
        "sensors": [s for s in town["sensors"] if s.get("berth") in numbers],
        "chargers": [c for c in town["chargers"] if c.get("site") in sites][:1],
        "lanes": lanes,
        "officers": town["officers"][:2],
        "drones": town["drones"][:1],
    }
    out = ["[town]", *(f"{k} = {_toml_value(v)}" for k, v in town["town"].items())]
    for table, rows in small.items():
        for row in rows:
            out += ["", f"[[{table}]]", *(f"{k} = {_toml_value(v)}" for k, v in row.items())]
    return "\n".join(out) + "\n"


TARIFFS = _text("parking.data", "sample_tariffs.toml")
CHARGING = _text("charging", "data", "sample_charging_tariffs.toml")
RULES = _text("parking.data", "sample_rules.toml")
TOWN = small_town()
_ZONES = tuple(
    ZoneShape(z["id"], z["kind"], z["name"], tuple((p[0], p[1]) for p in z["polygon"]))
    for z in tomllib.loads(TOWN)["zones"]
)

_DIGITS = re.compile(r"\d+")
_QUOTED = re.compile(r'"[^"]*"')
_LOCATION = re.compile(r"^\s+([^:]+):", re.MULTILINE)


def _reason(exc: Exception) -> str:
    """A short label for a loader's message: the kind of problem and where (indices out)."""
    text = str(exc)
    if "not valid TOML" in text:
        return "not_toml"
    if "cannot read" in text:
        return "unreadable"
    if "not UTF-8" in text:
        return "not_utf8"
    if "nested" in text:
        return "too_deep"
    found = _LOCATION.search(text)  # pydantic's "  sites.0.lat: ..." lines (the town)
    if found:
        return "invalid:" + _DIGITS.sub("#", found.group(1))[:40]
    where = text.split(": ")[1] if text.count(": ") >= 2 else ""
    return "invalid:" + " ".join(_QUOTED.sub("", _DIGITS.sub("#", where)).split())[:40]


def _file_check(name: str, load: Callable[[Path], object]) -> Callable[[bytes], Reasons]:
    path = _DIR / name

    def check(data: bytes) -> Reasons:
        path.write_bytes(data)
        try:
            load(path)
        except _TYPED as exc:
            return (_reason(exc),)
        return ()

    return check


def _utf8(data: bytes) -> bytes:
    return data.decode("utf-8", "ignore").encode()


def _strategy(sample: str) -> st.SearchStrategy[bytes]:
    """Damaged bytes (half of them made UTF-8 again), and line edits that keep it TOML-ish."""
    damaged = hostile_bytes([sample.encode()], BYTE_TOKENS + TOML_TOKENS)
    lines = mutated_lines([sample.encode()])
    return st.one_of(damaged, damaged.map(_utf8), lines, lines)


TARGETS = (
    Target(
        "file.tariffs",
        "parking.tariff_file.load_tariffs",
        _strategy(TARIFFS),
        _file_check("tariffs.toml", lambda p: load_tariffs(p, ZONE)),
    ),
    Target(
        "file.charging_tariffs",
        "charging.tariff_file.load_charging_tariffs",
        _strategy(CHARGING),
        _file_check("charging.toml", lambda p: load_charging_tariffs(p, ZONE)),
    ),
    Target(
        "file.rules",
        "parking.enforcement_file.load_rules",
        _strategy(RULES),
        _file_check("rules.toml", lambda p: load_rules(p, _ZONES)),
    ),
    Target(
        "file.town",
        "gateway.directory.town.load_town",
        _strategy(TOWN),
        _file_check("town.toml", load_town),
    ),
)
