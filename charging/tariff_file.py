"""Loading the posted charging tariff from TOML, with errors that name the offending entry.

The format is documented in docs/charging-bills.md; ``charging/data/sample_charging_tariffs.toml``
is the sample town's posted tariff. Every problem is a ``ChargingTariffFileError`` whose
message says where it is, e.g. ``bad.toml: version "2026-07" rates[1] (class A):
energy_fen_per_kwh "peak" must be an integer (money is integer fen)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from charging.billing import (
    ChargingRates,
    ChargingTariffBook,
    ChargingTariffVersion,
    IdleFee,
    ParkingWaiverRule,
    ToUWindow,
    check_windows_cover_day,
)
from tariffcore import FieldReader, parse_book, read_file, read_toml


class ChargingTariffFileError(ValueError):
    """A charging tariff file that cannot be posted; the message names the entry at fault."""


_fields = FieldReader(ChargingTariffFileError)
_fail, _table, _array, _str, _int, _clock = (
    _fields.fail,
    _fields.table,
    _fields.array,
    _fields.string,
    _fields.integer,
    _fields.clock,
)
_effective_from = _fields.effective_from


def _windows(value: object, where: str) -> tuple[ToUWindow, ...]:
    windows: list[ToUWindow] = []
    for i, raw in enumerate(_array(value, where)):
        _, window_where, name, start, end = _fields.window(raw, f"{where}[{i}]")
        try:
            windows.append(ToUWindow(name, start, end))
        except ValueError as exc:
            raise _fail(window_where, str(exc)) from None
    if not windows:
        raise _fail(where, "needs at least one window")
    try:
        check_windows_cover_day(windows)
    except ValueError as exc:
        raise _fail(where, f"must cover the day exactly once: {exc}") from None
    return tuple(windows)


def _per_band(value: object, key: str, where: str, bands: tuple[str, ...]) -> dict[str, int]:
    table = _table(value, f"{where} {key}")
    missing = [b for b in bands if b not in table]
    unknown = [b for b in table if b not in bands]
    if missing or unknown:
        raise _fail(
            where,
            f"{key} must give a rate for exactly the bands {list(bands)}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unknown {unknown}" if unknown else ""),
        )
    return {b: _int(table[b], f'{key} "{b}"', where, minimum=0) for b in bands}


def _rates(
    raw: object, where: str, bands: tuple[str, ...]
) -> tuple[list[str], list[str], ChargingRates]:
    table = _table(raw, where)
    has_class, has_sites = "site_class" in table, "site_ids" in table
    if has_class == has_sites:
        raise _fail(where, "give exactly one of site_class (string or array) and site_ids (array)")
    key = "site_class" if has_class else "site_ids"
    raw_keys = table[key]
    keys = [raw_keys] if isinstance(raw_keys, str) and has_class else raw_keys
    if not isinstance(keys, list) or not keys or not all(isinstance(k, str) and k for k in keys):
        what = "a string or a non-empty array of strings" if has_class else "a non-empty array"
        raise _fail(where, f"{key} must be {what}")
    where = f"{where} ({'class' if has_class else 'sites'} {'/'.join(keys)})"
    energy = _per_band(table.get("energy_fen_per_kwh"), "energy_fen_per_kwh", where, bands)
    raw_service = table.get("service_fen_per_kwh")
    service: int | dict[str, int]
    if isinstance(raw_service, dict):
        service = _per_band(raw_service, "service_fen_per_kwh", where, bands)
    else:
        service = _int(raw_service, "service_fen_per_kwh", where, minimum=0)
    idle: IdleFee | None = None
    idle_keys = ("idle_fen", "idle_unit_minutes", "idle_grace_minutes", "idle_cap_fen")
    if any(k in table for k in idle_keys):
        cap = table.get("idle_cap_fen")
        idle = IdleFee(
            fen=_int(table.get("idle_fen"), "idle_fen", where, minimum=0),
            unit_minutes=_int(
                table.get("idle_unit_minutes"), "idle_unit_minutes", where, minimum=1
            ),
            grace_minutes=_int(
                table.get("idle_grace_minutes"), "idle_grace_minutes", where, minimum=0
            ),
            cap_fen=None if cap is None else _int(cap, "idle_cap_fen", where, minimum=0),
        )
    label = table.get("label", "")
    if not isinstance(label, str):
        raise _fail(where, "label must be a string")
    rates = ChargingRates(energy, service, idle, label)
    return (keys, [], rates) if has_class else ([], keys, rates)


def _parking(value: object, where: str) -> tuple[dict[str, ParkingWaiverRule], dict[str, str]]:
    rules: dict[str, ParkingWaiverRule] = {}
    names: dict[str, str] = {}
    for i, raw in enumerate(_array(value, where)):
        site_where = f"{where}[{i}]"
        table = _table(raw, site_where)
        site_id = _str(table, "site_id", site_where)
        site_where = f'{where} "{site_id}"'
        if site_id in rules:
            raise _fail(site_where, "site listed twice")
        has_flag = "waive_parking_while_charging" in table
        has_minutes = "waive_parking_minutes" in table
        if has_flag == has_minutes:
            raise _fail(
                site_where,
                "give exactly one of waive_parking_while_charging and waive_parking_minutes",
            )
        if has_flag:
            flag = table["waive_parking_while_charging"]
            if flag is not True:
                raise _fail(
                    site_where,
                    "waive_parking_while_charging must be true (leave the site out for no waiver)",
                )
            rules[site_id] = ParkingWaiverRule(while_charging=True)
        else:
            minutes = _int(
                table["waive_parking_minutes"], "waive_parking_minutes", site_where, minimum=1
            )
            rules[site_id] = ParkingWaiverRule(minutes=minutes)
        if "name" in table:
            names[site_id] = _str(table, "name", site_where)
    return rules, names


def _version(raw: object, where: str, zone: ZoneInfo) -> ChargingTariffVersion:
    table = _table(raw, where)
    version_id = _str(table, "id", where)
    where = f'version "{version_id}"'
    effective_from = _effective_from(table.get("effective_from"), where)
    windows = _windows(table.get("bands"), f"{where} bands")
    band_names = tuple(dict.fromkeys(w.name for w in sorted(windows, key=lambda w: w.start_min)))
    parking, site_names = _parking(table.get("parking", []), f"{where} parking")
    raw_names = _table(table.get("site_names", {}), f"{where} site_names")
    for site_id, name in raw_names.items():
        if not isinstance(name, str) or not name.strip():
            raise _fail(f"{where} site_names", f"{site_id!r} must be a non-empty string")
        site_names.setdefault(site_id, name)
    class_rates: dict[str, ChargingRates] = {}
    site_rates: dict[str, ChargingRates] = {}
    for i, raw_rates in enumerate(_array(table.get("rates"), f"{where} rates")):
        rates_where = f"{where} rates[{i}]"
        classes, sites, rates = _rates(raw_rates, rates_where, band_names)
        for target, keys, what in ((class_rates, classes, "class"), (site_rates, sites, "site")):
            for key in keys:
                if key in target:
                    raise _fail(rates_where, f"{what} {key!r} is already priced")
                target[key] = rates
    if not class_rates and not site_rates:
        raise _fail(where, "needs at least one [[version.rates]]")
    note = table.get("note", "")
    if not isinstance(note, str):
        raise _fail(where, "note must be a string")
    try:
        return ChargingTariffVersion(
            version=version_id,
            effective_from=effective_from,
            zone=zone,
            windows=windows,
            class_rates=class_rates,
            site_rates=site_rates,
            parking=parking,
            site_names=site_names,
            note=note,
        )
    except ValueError as exc:
        raise _fail(where, str(exc)) from None


def parse_charging_tariffs(
    data: Mapping[str, Any], source: str = "<charging tariffs>", *, zone: ZoneInfo
) -> ChargingTariffBook:
    """Build a ``ChargingTariffBook`` from parsed TOML, read in the town's ``zone``; raises
    ``ChargingTariffFileError``."""
    return parse_book(
        data, source, zone=zone, fields=_fields, version=_version, book=ChargingTariffBook
    )


def loads_charging_tariffs(
    text: str, source: str = "<charging tariffs>", *, zone: ZoneInfo
) -> ChargingTariffBook:
    data = read_toml(text, source, ChargingTariffFileError)
    return parse_charging_tariffs(data, source, zone=zone)


def load_charging_tariffs(path: str | Path, zone: ZoneInfo) -> ChargingTariffBook:
    path = Path(path)
    return loads_charging_tariffs(read_file(path, ChargingTariffFileError), path.name, zone=zone)


def load_sample_charging_tariffs(zone: ZoneInfo) -> ChargingTariffBook:
    """The sample town's posted charging tariff (``charging/data/sample_charging_tariffs.toml``)."""
    # ``charging/data`` is package data of ``charging`` (no __init__.py needed).
    sample = resources.files("charging").joinpath("data", "sample_charging_tariffs.toml")
    text = sample.read_text("utf-8")
    return loads_charging_tariffs(text, "sample_charging_tariffs.toml", zone=zone)
