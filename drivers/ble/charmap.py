"""The GATT characteristic map of citygate-configurable berth sensors, per model (sans-I/O).

citygate defines one custom 128-bit service for the configuration of a berth sensor over BLE
(the sensor models of ``drivers.sensors``: their firmware exposes this profile to a field
technician's laptop). Every model has the same characteristics in that service, but each says
how it encodes them and which values it accepts. docs/ble.md has the same table for people.

========================= ====== ============================================================
characteristic            access value
========================= ====== ============================================================
``heartbeat``             rw     heartbeat period; uint32 LE seconds, or uint16 LE minutes
``sensitivity``           rw     detection sensitivity, uint8, per-model range
``recalibrate``           w      command: one byte, the model's command code
``calibrations``          r      uint16 LE, +1 on every finished recalibration (wraps)
``battery`` (0x2A19)      r      standard Battery Level, uint8 percent (some models only)
``firmware`` (0x2A26)     r      standard Firmware Revision String, UTF-8
========================= ====== ============================================================
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from drivers.sensors import bosch, nbiot, nwave

__all__ = [
    "BATTERY_LEVEL_UUID",
    "BATTERY_SERVICE_UUID",
    "CALIBRATIONS_UUID",
    "CONFIG_SERVICE_UUID",
    "DEVICE_INFO_SERVICE_UUID",
    "FIRMWARE_UUID",
    "HEARTBEAT_UUID",
    "MODELS",
    "RECALIBRATE_UUID",
    "SENSITIVITY_UUID",
    "BleValueError",
    "CharSpec",
    "Format",
    "ModelMap",
    "decode_firmware",
    "get_model",
    "model_by_code",
]


def _custom(slot: int) -> str:
    """A UUID of citygate's configuration profile: the base with *slot* in bytes 2..3."""
    return f"c17e{slot:04x}-6a1d-4b2e-9f3c-8d5e2a7b1c40"


CONFIG_SERVICE_UUID: Final = _custom(0x0001)
HEARTBEAT_UUID: Final = _custom(0x0101)
SENSITIVITY_UUID: Final = _custom(0x0102)
RECALIBRATE_UUID: Final = _custom(0x0103)
CALIBRATIONS_UUID: Final = _custom(0x0104)
# Bluetooth SIG assigned numbers, in bleak's normalised 128-bit form.
BATTERY_SERVICE_UUID: Final = "0000180f-0000-1000-8000-00805f9b34fb"
BATTERY_LEVEL_UUID: Final = "00002a19-0000-1000-8000-00805f9b34fb"
DEVICE_INFO_SERVICE_UUID: Final = "0000180a-0000-1000-8000-00805f9b34fb"
FIRMWARE_UUID: Final = "00002a26-0000-1000-8000-00805f9b34fb"


class BleValueError(ValueError):
    """A value that a model does not accept, or bytes that do not decode: says which and why."""


class Format(enum.Enum):
    U8 = ("<B", 0xFF)
    U16LE = ("<H", 0xFFFF)
    U32LE = ("<I", 0xFFFF_FFFF)

    @property
    def struct(self) -> str:
        return self.value[0]

    @property
    def size(self) -> int:
        return struct.calcsize(self.value[0])

    @property
    def max(self) -> int:
        return self.value[1]


@dataclass(frozen=True, slots=True)
class CharSpec:
    """One numeric characteristic: the value a person gives (in ``unit``) is ``raw * scale``;
    ``low``..``high`` bound it (inclusive) and it must be a multiple of ``scale``."""

    name: str
    uuid: str
    fmt: Format
    low: int
    high: int
    unit: str = ""
    scale: int = 1

    def __post_init__(self) -> None:
        if not (0 <= self.low <= self.high <= self.fmt.max * self.scale):
            raise ValueError(f"{self.name}: bounds {self.low}..{self.high} do not fit {self.fmt}")

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        step = f" in steps of {self.scale}" if self.scale > 1 else ""
        return f"{self.low}..{self.high}{unit}{step}"

    def check(self, value: int) -> None:
        """Refuse a value this model does not accept (before anything is sent)."""
        if isinstance(value, bool) or not isinstance(value, int):
            raise BleValueError(f"{self.name} must be a whole number, not {value!r}")
        if not self.low <= value <= self.high or value % self.scale:
            raise BleValueError(f"{self.name} {value} is out of range: this model takes "
                                f"{self.describe()}")  # fmt: skip

    def encode(self, value: int) -> bytes:
        self.check(value)
        return struct.pack(self.fmt.struct, value // self.scale)

    def decode(self, data: bytes | bytearray) -> int:
        """The value a read returned, in ``unit``; a wrong length is a ``BleValueError``."""
        if len(data) != self.fmt.size:
            raise BleValueError(
                f"{self.name}: read {len(data)} bytes ({bytes(data).hex() or 'empty'}), "
                f"expected {self.fmt.size}"
            )
        raw: int = struct.unpack(self.fmt.struct, bytes(data))[0]
        return raw * self.scale


@dataclass(frozen=True, slots=True)
class ModelMap:
    """What a configuring client needs to know about one model's GATT profile."""

    model: str
    code: int  # the model byte in the advertisement's manufacturer data
    heartbeat: CharSpec
    sensitivity: CharSpec
    recalibrate_command: int  # the byte written to ``recalibrate``
    calibrations: CharSpec
    gatt_battery: bool  # has the standard Battery Service (0x180F / 0x2A19)
    note: str = ""

    def limits(self) -> dict[str, str]:
        return {"heartbeat": self.heartbeat.describe(), "sensitivity": self.sensitivity.describe()}


def _heartbeat_u32(low: int, high: int) -> CharSpec:
    return CharSpec("heartbeat", HEARTBEAT_UUID, Format.U32LE, low, high, "s")


def _calibrations() -> CharSpec:
    return CharSpec("calibrations", CALIBRATIONS_UUID, Format.U16LE, 0, 0xFFFF)


MODELS: Mapping[str, ModelMap] = MappingProxyType(
    {
        m.model: m
        for m in (
            ModelMap(
                model=nwave.MODEL,
                code=0x01,
                heartbeat=_heartbeat_u32(60, 172_800),
                sensitivity=CharSpec("sensitivity", SENSITIVITY_UUID, Format.U8, 1, 10),
                recalibrate_command=0x01,
                calibrations=_calibrations(),
                gatt_battery=True,
                note="battery in the advertisement and over GATT",
            ),
            ModelMap(
                model=bosch.MODEL,
                code=0x02,
                # uint16 minutes on the wire: 10 min .. 48 h, whole minutes only
                heartbeat=CharSpec(
                    "heartbeat", HEARTBEAT_UUID, Format.U16LE, 600, 172_800, "s", scale=60
                ),
                sensitivity=CharSpec("sensitivity", SENSITIVITY_UUID, Format.U8, 1, 5),
                recalibrate_command=0xA5,
                calibrations=_calibrations(),
                gatt_battery=True,
                note="battery over GATT only (not advertised)",
            ),
            ModelMap(
                model=nbiot.MODEL,
                code=0x03,
                heartbeat=_heartbeat_u32(300, 604_800),
                sensitivity=CharSpec("sensitivity", SENSITIVITY_UUID, Format.U8, 1, 100),
                recalibrate_command=0x5A,
                calibrations=_calibrations(),
                gatt_battery=False,
                note="battery in the advertisement only (no Battery Service)",
            ),
        )
    }
)
_BY_CODE: Final = MappingProxyType({m.code: m for m in MODELS.values()})


def get_model(model: str) -> ModelMap:
    """The map of *model*; an unknown one is a ``BleValueError`` naming the known ones."""
    try:
        return MODELS[model]
    except (KeyError, TypeError):
        known = ", ".join(MODELS)
        raise BleValueError(f"unknown sensor model {model!r} (known: {known})") from None


def model_by_code(code: int) -> ModelMap | None:
    return _BY_CODE.get(code)


def decode_firmware(data: bytes | bytearray) -> str:
    """A Firmware Revision String: UTF-8, trailing NULs dropped, undecodable bytes replaced."""
    return bytes(data).rstrip(b"\x00").decode("utf-8", "replace")[:64]
