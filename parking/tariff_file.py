"""Loading posted tariffs from TOML, with errors that name the offending entry.

The file format is documented in docs/tariffs.md; ``parking/data/sample_tariffs.toml`` is the
sample town's posted tariff. Every problem is reported as a ``TariffFileError`` whose message
says where it is, e.g. ``sample_tariffs.toml: version "2026-06" rates[2] (A/large): band
"day": rate_fen must be an integer``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from parking.tariffs import (
    CAP_MODES,
    DEFAULT_EXIT_GRACE_MINUTES,
    FREE_FIRST_MODES,
    VEHICLE_CLASSES,
    Band,
    Cap,
    FreeFirst,
    Rates,
    TariffBook,
    TariffVersion,
    VehicleClass,
)
from tariffcore import FieldReader, parse_book, read_file, read_toml


class TariffFileError(ValueError):
    """A tariff file that cannot be posted; the message names the entry at fault."""


_fields = FieldReader(TariffFileError)
_fail, _table, _list, _str, _clock = (
    _fields.fail,
    _fields.table,
    _fields.array,
    _fields.string,
    _fields.clock,
)


def _int(table: Mapping[str, Any], key: str, where: str, *, minimum: int) -> int:
    return _fields.integer(table.get(key), key, where, minimum=minimum)


def _bands(value: object, where: str) -> tuple[Band, ...]:
    bands: list[Band] = []
    for i, raw in enumerate(_list(value, where)):
        table, band_where, name, start, end = _fields.window(raw, f"{where}[{i}]")
        rate = _int(table, "rate_fen", band_where, minimum=0)
        unit = _int(table, "unit_minutes", band_where, minimum=1) if "unit_minutes" in table else 60
        try:
            bands.append(Band(name, start, end, rate, unit))
        except ValueError as exc:
            raise _fail(band_where, str(exc)) from None
    if not bands:
        raise _fail(where, "needs at least one band")
    return tuple(bands)


def _rates(raw: object, where: str) -> tuple[list[str], list[VehicleClass], Rates]:
    table = _table(raw, where)
    classes_raw = table.get("site_class")
    site_classes = [classes_raw] if isinstance(classes_raw, str) else classes_raw
    if not isinstance(site_classes, list) or not site_classes:
        raise _fail(where, "site_class must be a string or a non-empty array of strings")
    if not all(isinstance(c, str) and c for c in site_classes):
        raise _fail(where, "site_class must be a string or a non-empty array of strings")
    vehicles_raw = table.get("vehicle")
    vehicles_list = [vehicles_raw] if isinstance(vehicles_raw, str) else vehicles_raw
    if not isinstance(vehicles_list, list) or not vehicles_list:
        raise _fail(where, f"vehicle must be one of {VEHICLE_CLASSES} or an array of them")
    vehicles: list[VehicleClass] = []
    for v in vehicles_list:
        if v not in VEHICLE_CLASSES:
            raise _fail(where, f"unknown vehicle class {v!r}; expected one of {VEHICLE_CLASSES}")
        vehicles.append(v)
    where = f"{where} ({'/'.join(site_classes)} × {'/'.join(vehicles)})"
    bands = _bands(table.get("bands"), f"{where} bands")
    holiday_bands = (
        _bands(table["holiday_bands"], f"{where} holiday_bands")
        if "holiday_bands" in table
        else bands
    )
    cap: Cap | None = None
    if "cap_fen" in table or "cap_mode" in table:
        amount = _int(table, "cap_fen", where, minimum=0)
        mode = table.get("cap_mode")
        if mode not in CAP_MODES:
            raise _fail(where, f"cap_mode must be one of {CAP_MODES}, got {mode!r}")
        cap = Cap(amount, mode)
    for label, band_set in (("bands", bands), ("holiday_bands", holiday_bands)):
        try:
            Rates(band_set, band_set)
        except ValueError as exc:
            raise _fail(f"{where} {label}", f"must cover the day exactly once: {exc}") from None
    return list(site_classes), vehicles, Rates(bands, holiday_bands, cap)


def _version(raw: object, where: str, zone: ZoneInfo) -> TariffVersion:
    table = _table(raw, where)
    version_id = _str(table, "id", where)
    where = f'version "{version_id}"'
    effective_from = _fields.effective_from(table.get("effective_from"), where)
    holidays: set[dt.date] = set()
    for i, day in enumerate(_list(table.get("holidays", []), f"{where} holidays")):
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day)
            except ValueError:
                raise _fail(f"{where} holidays[{i}]", f"{day!r} is not a date YYYY-MM-DD") from None
        if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
            raise _fail(f"{where} holidays[{i}]", "must be a date YYYY-MM-DD")
        holidays.add(day)
    free_first: dict[str, FreeFirst] = {}
    site_names: dict[str, str] = {}
    for i, raw_site in enumerate(_list(table.get("free_first", []), f"{where} free_first")):
        site_where = f"{where} free_first[{i}]"
        site = _table(raw_site, site_where)
        site_id = _str(site, "site_id", site_where)
        site_where = f'{where} free_first "{site_id}"'
        if site_id in free_first:
            raise _fail(site_where, "site listed twice")
        minutes = _int(site, "minutes", site_where, minimum=1)
        mode = site.get("mode")
        if mode not in FREE_FIRST_MODES:
            raise _fail(site_where, f"mode must be one of {FREE_FIRST_MODES}, got {mode!r}")
        free_first[site_id] = FreeFirst(minutes, mode)
        if "name" in site:
            site_names[site_id] = _str(site, "name", site_where)
    rates: dict[tuple[str, VehicleClass], Rates] = {}
    for i, raw_rates in enumerate(_list(table.get("rates"), f"{where} rates")):
        rates_where = f"{where} rates[{i}]"
        site_classes, vehicles, entry = _rates(raw_rates, rates_where)
        for site_class in site_classes:
            for vehicle in vehicles:
                if (site_class, vehicle) in rates:
                    raise _fail(rates_where, f"{site_class}/{vehicle} is already priced")
                rates[(site_class, vehicle)] = entry
    if not rates:
        raise _fail(where, "needs at least one rates entry")
    note = table.get("note", "")
    if not isinstance(note, str):
        raise _fail(where, "note must be a string")
    exit_grace = (
        _int(table, "exit_grace_minutes", where, minimum=0)
        if "exit_grace_minutes" in table
        else DEFAULT_EXIT_GRACE_MINUTES
    )
    return TariffVersion(
        version=version_id,
        effective_from=effective_from,
        zone=zone,
        rates=rates,
        holidays=frozenset(holidays),
        free_first=free_first,
        site_names=site_names,
        note=note,
        exit_grace_minutes=exit_grace,
    )


def parse_tariffs(
    data: Mapping[str, Any], source: str = "<tariffs>", *, zone: ZoneInfo
) -> TariffBook:
    """Build a ``TariffBook`` from parsed TOML, read in the town's ``zone``; raises
    ``TariffFileError``."""
    return parse_book(data, source, zone=zone, fields=_fields, version=_version, book=TariffBook)


def loads_tariffs(text: str, source: str = "<tariffs>", *, zone: ZoneInfo) -> TariffBook:
    return parse_tariffs(read_toml(text, source, TariffFileError), source, zone=zone)


def load_tariffs(path: str | Path, zone: ZoneInfo) -> TariffBook:
    path = Path(path)
    return loads_tariffs(read_file(path, TariffFileError), path.name, zone=zone)


def load_sample_tariffs(zone: ZoneInfo) -> TariffBook:
    """The sample town's posted tariff, shipped as ``parking/data/sample_tariffs.toml``."""
    text = resources.files("parking.data").joinpath("sample_tariffs.toml").read_text("utf-8")
    return loads_tariffs(text, "sample_tariffs.toml", zone=zone)
