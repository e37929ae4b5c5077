"""OCPP field values turned into event values: charger timestamps and sampled meter values.

Pure functions. OCPP 1.6 sends meter values as decimal *strings* with a unit; 2.0.1 as numbers
with a unit and a power-of-ten multiplier. Both may split a measurand per phase. What cannot be
used is returned as a problem (a counter reason), never raised: one bad value must not cost
the rest of the message.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from events import MeterSample

__all__ = [
    "MAX_WH",
    "Reading",
    "energy_wh",
    "meter_samples",
    "parse_timestamp",
    "read_sampled_values",
]

ENERGY = "Energy.Active.Import.Register"  # OCPP's default measurand
# A meter register beyond this (a terawatt-hour) is a broken meter or a wrapped counter, not
# energy: it would poison every session, bill and day's total it entered.
MAX_WH = 1e12
# Any other sampled value beyond this (in W, A, V or %) is equally absurd.
_MAX_VALUE = 1e12

# measurand -> (MeterSample field, {unit (lower case): factor to the field's unit})
_MEASURANDS: dict[str, tuple[str, dict[str, float]]] = {
    ENERGY: ("energy_wh", {"wh": 1.0, "kwh": 1000.0}),
    "Power.Active.Import": ("power_w", {"w": 1.0, "kw": 1000.0}),
    "Current.Import": ("current_a", {"a": 1.0}),
    "Voltage": ("voltage_v", {"v": 1.0}),
    "SoC": ("soc_pct", {"percent": 1.0, "%": 1.0}),
}
# OCPP 1.6 defaults every unit to Wh; a power, current or voltage without a unit is taken in
# its natural unit instead of being refused.
_DEFAULT_UNIT = {
    "energy_wh": "wh",
    "power_w": "w",
    "current_a": "a",
    "voltage_v": "v",
    "soc_pct": "percent",
}
# Values measured at the charger's outlet (the billing side, OCPP's default) or in the car
# (SoC); the grid inlet, the body and the cable are other meters.
_LOCATIONS = {None, "Outlet", "EV"}
_PHASES = {"L1", "L2", "L3", "L1-N", "L2-N", "L3-N"}


def parse_timestamp(value: object) -> datetime | None:
    """A charger's timestamp as aware UTC, or ``None`` if it is not one.

    OCPP times are UTC: a timestamp without an offset is read as UTC rather than refused.
    Old timestamps are fine (queued messages arrive late and back-dated).
    """
    if not isinstance(value, str):
        return None
    try:
        ts = datetime.fromisoformat(value.strip())
    except ValueError:
        return None
    if ts.tzinfo is None or ts.utcoffset() is None:
        ts = ts.replace(tzinfo=UTC)
    return ts.astimezone(UTC)


class Reading:
    """The usable values of one OCPP MeterValue (one timestamp, several sampled values)."""

    __slots__ = ("context", "problems", "values")

    def __init__(self, values: dict[str, float], context: str | None, problems: list[str]):
        self.values = values
        self.context = context
        self.problems = problems


def _items(value: object) -> Sequence[object]:
    """A JSON array's items; nothing for anything else (a string is not a list of values)."""
    return value if isinstance(value, list | tuple) else ()


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if math.isfinite(number) else None


def _scale(sampled: Mapping[str, Any], field: str, factors: Mapping[str, float]) -> float | None:
    """The factor to the field's unit: 1.6 ``unit``, 2.0.1 ``unit_of_measure`` with a
    multiplier (10^multiplier); ``None`` for a unit we do not know."""
    unit: object = sampled.get("unit")
    multiplier: object = 0
    uom = sampled.get("unit_of_measure")
    if isinstance(uom, Mapping):
        unit = uom.get("unit")
        multiplier = uom.get("multiplier", 0)
    if not isinstance(multiplier, int) or isinstance(multiplier, bool) or abs(multiplier) > 9:
        return None
    key = unit.lower() if isinstance(unit, str) else _DEFAULT_UNIT[field]
    factor = factors.get(key)
    return None if factor is None else factor * 10.0**multiplier


def _combine(field: str, values: list[float]) -> float:
    """One value from per-phase values: energy and power add up, the highest phase current
    is the one that matters, voltages are averaged."""
    if field in ("energy_wh", "power_w"):
        return sum(values)
    if field == "current_a":
        return max(values)
    if field == "voltage_v":
        return sum(values) / len(values)
    return values[0]


def read_sampled_values(sampled: object) -> Reading:
    """The energy (Wh), power (W), current (A), voltage (V) and SoC (%) in *sampled*.

    A value without a phase wins over per-phase values of the same measurand. Measurands we
    do not keep (temperature, reactive power...) and signed data are skipped quietly; values
    that cannot be read (not a number, unknown unit) are reported as problems.
    """
    totals: dict[str, float] = {}
    phased: dict[str, list[float]] = {}
    problems: list[str] = []
    context: str | None = None
    for sv in _items(sampled):
        if not isinstance(sv, Mapping):
            problems.append("bad_meter_value")
            continue
        if context is None and isinstance(sv.get("context"), str):
            context = sv["context"]
        spec = _MEASURANDS.get(sv.get("measurand") or ENERGY)
        if spec is None or sv.get("location") not in _LOCATIONS:
            continue
        if sv.get("format") == "SignedData":
            continue  # 1.6: the value is a signature blob; the charger sends Raw alongside
        field, factors = spec
        factor = _scale(sv, field, factors)
        if factor is None:
            problems.append("bad_meter_unit")
            continue
        value = _number(sv.get("value"))
        if value is None:
            problems.append("bad_meter_value")
            continue
        scaled = value * factor
        if not -_MAX_VALUE < scaled < _MAX_VALUE or (field == "energy_wh" and scaled < 0):
            problems.append("meter_out_of_range")
            continue
        phase = sv.get("phase")
        if phase is None:
            totals.setdefault(field, value * factor)
        elif phase in _PHASES:
            phased.setdefault(field, []).append(value * factor)
    for field, values in phased.items():
        totals.setdefault(field, _combine(field, values))
    return Reading(totals, context or "Sample.Periodic", problems)


def meter_samples(
    charger_id: str,
    connector_id: int,
    transaction_id: str | None,
    meter_values: object,
    received: datetime,
    window: tuple[datetime, datetime] | None = None,
) -> tuple[list[MeterSample], list[str]]:
    """One :class:`MeterSample` per OCPP MeterValue that carries something we keep, stamped
    with the charger's timestamp (*received* if it has none we can read), and the problems.
    A sample stamped outside *window* is dropped (counted): the others are kept."""
    samples: list[MeterSample] = []
    problems: list[str] = []
    for mv in _items(meter_values):
        if not isinstance(mv, Mapping):
            problems.append("bad_meter_value")
            continue
        reading = read_sampled_values(mv.get("sampled_value"))
        problems.extend(reading.problems)
        if not reading.values:
            continue
        ts = parse_timestamp(mv.get("timestamp"))
        if ts is None:
            problems.append("bad_timestamp")
            ts = received
        elif window is not None and not window[0] <= ts <= window[1]:
            problems.append("timestamp_out_of_range")
            continue
        samples.append(
            MeterSample(
                device_id=charger_id,
                ts=ts,
                connector_id=connector_id,
                transaction_id=transaction_id,
                context=reading.context,
                energy_wh=reading.values.get("energy_wh"),
                power_w=reading.values.get("power_w"),
                current_a=reading.values.get("current_a"),
                voltage_v=reading.values.get("voltage_v"),
                soc_pct=reading.values.get("soc_pct"),
            )
        )
    return samples, problems


def energy_wh(meter_values: object, prefer_context: str) -> float | None:
    """The energy register in *meter_values*: from the sample with *prefer_context* (e.g.
    ``Transaction.Begin``) if there is one, else the last sample that has it."""
    found: float | None = None
    for mv in _items(meter_values):
        if not isinstance(mv, Mapping):
            continue
        reading = read_sampled_values(mv.get("sampled_value"))
        if "energy_wh" in reading.values:
            if reading.context == prefer_context:
                return reading.values["energy_wh"]
            found = reading.values["energy_wh"]
    return found
