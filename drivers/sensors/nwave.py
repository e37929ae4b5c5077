"""Sans-I/O codec for the Nwave NPS405 LoRaWAN parking sensor.

Layout follows Nwave's public decoder in The Things Network device repository
(``TheThingsNetwork/lorawan-devices``, ``vendor/nwave/nps405.js`` and its examples in
``nps405-codec.yaml``); see docs/codecs.md for the byte tables and test vectors.

* port 1 parking status: bit0 occupied, bits 7..1 compressed previous-state duration
* port 2 heartbeat: b0 bit0 occupied (bits 7..1 hardware health), battery mV = 2500 + 4*b1,
  temperature degC = int8(b2)/2 + 10; trailing bytes are reserved and ignored
* port 3 startup: firmware b0.b1.b2, reset cause b3, b4 bit0 occupied
* port 10 tag registration: b0 as port 1 but only "occupied" is reported (bit0 clear means
  the frame does not say), b1..b4 the tag id, big-endian
"""

from __future__ import annotations

from typing import Final

from drivers.sensors.messages import (
    CodecError,
    Heartbeat,
    OccupancyStatus,
    SensorMessage,
    Startup,
    TagRegistration,
)

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "MODEL",
    "OVERFLOW_S",
    "compress_duration",
    "decode",
    "encode_heartbeat",
    "encode_startup",
    "encode_status",
    "encode_tag_registration",
    "expand_duration",
]

MODEL: Final = "nwave-nps405"
DEFAULT_HEARTBEAT_S: Final = 24 * 3600  # Nwave documents a heartbeat every 24 h by default

PORT_STATUS: Final = 1
PORT_HEARTBEAT: Final = 2
PORT_STARTUP: Final = 3
PORT_TAG: Final = 10

# The 7-bit duration is in minutes (an assumption, see docs/codecs.md): exact below 90 min,
# 5-min steps to 4 h, 1-h steps to 11 h, and 127 means "11 h or more".
OVERFLOW_S: Final = 660 * 60

_RESET_CAUSES: Final = {
    0: "rejoining_lorawan_network",
    1: "watchdog",
    2: "power_on",
    3: "user_request",
    6: "brownout",
    7: "other",
}
_RESET_CODES: Final = {name: code for code, name in _RESET_CAUSES.items()}

BATTERY_MIN_MV: Final = 2500
BATTERY_MAX_MV: Final = 2500 + 4 * 255
TEMPERATURE_MIN_C: Final = -128 / 2 + 10
TEMPERATURE_MAX_C: Final = 127 / 2 + 10


def expand_duration(code: int) -> int:
    """Seconds encoded by a 7-bit compressed duration (lower bound of its bucket)."""
    if not 0 <= code <= 127:
        raise ValueError(f"compressed duration must be 0..127, got {code}")
    if code < 90:
        minutes = code
    elif code < 120:
        minutes = 90 + (code - 90) * 5
    elif code < 127:
        minutes = 240 + (code - 120) * 60
    else:
        minutes = 660
    return minutes * 60


def compress_duration(seconds: int) -> int:
    """The 7-bit code whose bucket contains *seconds* (what the sensor would send)."""
    if seconds < 0:
        raise ValueError("duration cannot be negative")
    minutes = seconds // 60
    if minutes < 90:
        return minutes
    if minutes < 240:
        return 90 + (minutes - 90) // 5
    if minutes < 660:
        return 120 + (minutes - 240) // 60
    return 127


def _need(data: bytes, low: int, high: int, port: int) -> None:
    if len(data) < low:
        raise CodecError("short_frame", f"port {port}: {len(data)} bytes, need {low}")
    if len(data) > high:
        raise CodecError("bad_length", f"port {port}: {len(data)} bytes, at most {high}")


def decode(f_port: int | None, data: bytes) -> SensorMessage:
    """Decode one NPS405 uplink; raises :class:`CodecError` for anything else."""
    if f_port == PORT_STATUS:
        _need(data, 1, 1, f_port)
        return OccupancyStatus(
            occupied=bool(data[0] & 0x01), previous_state_s=expand_duration(data[0] >> 1)
        )
    if f_port == PORT_HEARTBEAT:
        # The TTN examples carry 6 bytes; only the first 3 are documented.
        _need(data, 3, 6, f_port)
        temp_raw = data[2] - 256 if data[2] > 127 else data[2]
        return Heartbeat(
            battery_mv=BATTERY_MIN_MV + 4 * data[1],
            temperature_c=temp_raw / 2 + 10,
            occupied=bool(data[0] & 0x01),
        )
    if f_port == PORT_STARTUP:
        _need(data, 5, 5, f_port)
        return Startup(
            firmware=f"{data[0]}.{data[1]}.{data[2]}",
            reset_cause=_RESET_CAUSES.get(data[3], "unknown"),
            occupied=bool(data[4] & 0x01),
        )
    if f_port == PORT_TAG:
        _need(data, 5, 5, f_port)
        tag_id = int.from_bytes(data[1:5], "big")
        if data[0] & 0x01:
            return TagRegistration(f"{tag_id:08X}", True, expand_duration(data[0] >> 1))
        return TagRegistration(f"{tag_id:08X}")
    raise CodecError("bad_port", f"{MODEL} has no decodable uplink on port {f_port}")


def encode_status(occupied: bool, previous_state_s: int = 0) -> tuple[int, bytes]:
    """Port-1 frame as the sensor sends it; the duration is quantised like the device does."""
    return PORT_STATUS, bytes([(compress_duration(previous_state_s) << 1) | int(occupied)])


def encode_heartbeat(
    occupied: bool = False,
    battery_mv: int = 3600,
    temperature_c: float = 20.0,
    health: int = 0,
) -> tuple[int, bytes]:
    """Port-2 frame. Battery and temperature saturate at the field's range and are rounded to
    its step (4 mV, 0.5 degC), so any simulator value yields a valid frame."""
    if not 0 <= health <= 0x7F:
        raise ValueError("health is a 7-bit field")
    b1 = min(255, max(0, round((battery_mv - BATTERY_MIN_MV) / 4)))
    b2 = min(127, max(-128, round((temperature_c - 10) * 2)))
    return PORT_HEARTBEAT, bytes([(health << 1) | int(occupied), b1, b2 & 0xFF])


def encode_startup(
    firmware: str = "2.4.9", reset_cause: str = "power_on", occupied: bool = False
) -> tuple[int, bytes]:
    """Port-3 frame; *firmware* is ``"major.minor.patch"`` with each part 0..255."""
    parts = firmware.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"firmware must be 'major.minor.patch' (0..255 each), got {firmware!r}")
    if reset_cause not in _RESET_CODES:
        raise ValueError(f"unknown reset cause {reset_cause!r}")
    major, minor, patch = (int(p) for p in parts)
    return PORT_STARTUP, bytes([major, minor, patch, _RESET_CODES[reset_cause], int(occupied)])


def encode_tag_registration(
    tag_id: str, occupied: bool | None = None, previous_state_s: int = 0
) -> tuple[int, bytes]:
    """Port-10 frame; *tag_id* is up to 8 hex digits. ``occupied=None`` (or ``False``, which
    the frame cannot say) sends no occupancy: byte 0 is then zero."""
    if not 1 <= len(tag_id) <= 8 or not all(c in "0123456789abcdefABCDEF" for c in tag_id):
        raise ValueError(f"tag id must be 1..8 hex digits, got {tag_id!r}")
    head = (compress_duration(previous_state_s) << 1) | 1 if occupied else 0
    return PORT_TAG, bytes([head]) + int(tag_id, 16).to_bytes(4, "big")
