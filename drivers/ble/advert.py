"""What a berth sensor's BLE advertisement says (sans-I/O): is it a citygate-configurable
sensor, which model, and its battery if it advertises one.

A configurable sensor lists ``CONFIG_SERVICE_UUID`` in its service UUIDs and carries
manufacturer-specific data under company id ``0xFFFF`` (the Bluetooth SIG's id for internal
use and tests: these sensors' configuration firmware is citygate's own profile):

====== ==== ==============================================================
offset size field
====== ==== ==============================================================
0      1    profile version, ``0x01``
1      1    model code (``drivers.ble.charmap.MODELS``: 1 nwave, 2 bosch, 3 nbiot)
2      1    battery percent 0..100; ``0xFF`` not advertised
3..    any  reserved (ignored, for later versions)
====== ==== ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from drivers.ble.charmap import CONFIG_SERVICE_UUID, model_by_code

__all__ = ["COMPANY_ID", "PROFILE_VERSION", "Advert", "encode_manufacturer_data", "parse"]

COMPANY_ID: Final = 0xFFFF
PROFILE_VERSION: Final = 0x01
NO_BATTERY: Final = 0xFF


@dataclass(frozen=True, slots=True)
class Advert:
    """A configurable sensor's advertisement. ``model`` is None when it does not say (or says
    something this gateway does not know: ``problem`` tells which)."""

    model: str | None
    battery_percent: int | None
    problem: str | None = None


def parse(service_uuids: Sequence[str], manufacturer_data: Mapping[int, bytes]) -> Advert | None:
    """The advertisement of a configurable sensor, or None for any other device."""
    if CONFIG_SERVICE_UUID not in (u.lower() for u in service_uuids):
        return None
    data = manufacturer_data.get(COMPANY_ID)
    if data is None:
        return Advert(None, None, "no manufacturer data")
    if len(data) < 3:
        return Advert(None, None, f"manufacturer data too short ({len(data)} bytes)")
    if data[0] != PROFILE_VERSION:
        return Advert(None, None, f"profile version {data[0]} (this gateway knows 1)")
    battery = None if data[2] == NO_BATTERY or data[2] > 100 else data[2]
    problem = "battery byte out of range" if data[2] != NO_BATTERY and data[2] > 100 else None
    found = model_by_code(data[1])
    if found is None:
        return Advert(None, battery, f"unknown model code 0x{data[1]:02x}")
    return Advert(found.model, battery, problem)


def encode_manufacturer_data(model_code: int, battery_percent: int | None) -> bytes:
    """The manufacturer data a sensor of *model_code* advertises (for simulators and tests)."""
    if not 0 <= model_code <= 0xFF:
        raise ValueError(f"model code {model_code} does not fit a byte")
    if battery_percent is not None and not 0 <= battery_percent <= 100:
        raise ValueError(f"battery {battery_percent} is not a percentage")
    battery = NO_BATTERY if battery_percent is None else battery_percent
    return bytes((PROFILE_VERSION, model_code, battery))
