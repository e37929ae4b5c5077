"""Sans-I/O codec for the Bosch Parking Lot Sensor (PLS, TPS110) over LoRaWAN.

Layout follows Bosch's decoder in The Things Network device repository
(``TheThingsNetwork/lorawan-devices``, ``vendor/bosch/tpl110-0292.js`` with the examples in
``tps110-0292-codec.yaml``, firmware 0.29.2); the full reset-cause table comes from the
community decoder ``simonarnell/bosch-parking-lot-sensor-decoder`` (``decoder.js``, an extension
of Sensational Systems' decoder). See docs/codecs.md for byte tables and test vectors.

* port 1 parking status: b0 bit0 occupied
* port 2 heartbeat: b0 bit0 occupied, optional b1 int8 temperature degC (newer firmware)
* port 3 startup (17 bytes): b0..b11 three 4-byte debug records, b12.b13.b14 firmware,
  b15 reset cause, b16 bit0 occupied
"""

from __future__ import annotations

from typing import Final

from drivers.sensors.messages import CodecError, Heartbeat, OccupancyStatus, SensorMessage, Startup

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "MODEL",
    "decode",
    "encode_heartbeat",
    "encode_startup",
    "encode_status",
]

MODEL: Final = "bosch-tps110"
# Assumption: the PLS default heartbeat period is 24 h (configurable by downlink on port 53).
DEFAULT_HEARTBEAT_S: Final = 24 * 3600

PORT_STATUS: Final = 1
PORT_HEARTBEAT: Final = 2
PORT_STARTUP: Final = 3
STARTUP_LEN: Final = 17

_RESET_CAUSES: Final = {
    1: "watchdog",
    2: "power_on",
    3: "system_request",
    4: "external_pin",
    5: "lockup",
    6: "brownout",
    7: "other",
}
_RESET_CODES: Final = {name: code for code, name in _RESET_CAUSES.items()}


def _need(data: bytes, low: int, high: int, port: int) -> None:
    if len(data) < low:
        raise CodecError("short_frame", f"port {port}: {len(data)} bytes, need {low}")
    if len(data) > high:
        raise CodecError("bad_length", f"port {port}: {len(data)} bytes, at most {high}")


def decode(f_port: int | None, data: bytes) -> SensorMessage:
    """Decode one PLS uplink. Ports 4-6 (device info, usage, debug) carry nothing the gateway
    uses and are refused as ``bad_port`` like any other port."""
    if f_port == PORT_STATUS:
        _need(data, 1, 1, f_port)
        return OccupancyStatus(occupied=bool(data[0] & 0x01))
    if f_port == PORT_HEARTBEAT:
        _need(data, 1, 2, f_port)
        temperature = None
        if len(data) == 2:
            temperature = float(data[1] - 256 if data[1] > 127 else data[1])
        return Heartbeat(occupied=bool(data[0] & 0x01), temperature_c=temperature)
    if f_port == PORT_STARTUP:
        _need(data, STARTUP_LEN, STARTUP_LEN, f_port)
        return Startup(
            firmware=f"{data[12]}.{data[13]}.{data[14]}",
            reset_cause=_RESET_CAUSES.get(data[15], "unknown"),
            occupied=bool(data[16] & 0x01),
        )
    raise CodecError("bad_port", f"{MODEL} has no decodable uplink on port {f_port}")


def encode_status(occupied: bool, previous_state_s: int = 0) -> tuple[int, bytes]:
    """Port-1 frame. The PLS does not report the previous state's duration, so
    *previous_state_s* is accepted (same signature as the other LoRaWAN codecs) and dropped."""
    del previous_state_s
    return PORT_STATUS, bytes([int(occupied)])


def encode_heartbeat(occupied: bool = False, temperature_c: float | None = 20) -> tuple[int, bytes]:
    """Port-2 frame; ``temperature_c=None`` mimics older firmware that sends one byte.
    The temperature is rounded to whole degrees and saturates at the int8 range."""
    if temperature_c is None:
        return PORT_HEARTBEAT, bytes([int(occupied)])
    t = min(127, max(-128, round(temperature_c)))
    return PORT_HEARTBEAT, bytes([int(occupied), t & 0xFF])


def encode_startup(
    firmware: str = "0.29.2",
    reset_cause: str = "power_on",
    occupied: bool = False,
    debug: bytes = bytes(12),
) -> tuple[int, bytes]:
    """Port-3 frame; *firmware* is ``"major.minor.patch"`` (0..255 each), *debug* the 12 raw
    debug bytes the device prepends (zeros when there is nothing to report)."""
    parts = firmware.split(".")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() and int(p) <= 255 for p in parts):
        raise ValueError(f"firmware must be 'major.minor.patch' (0..255 each), got {firmware!r}")
    if reset_cause not in _RESET_CODES:
        raise ValueError(f"unknown reset cause {reset_cause!r}")
    if len(debug) != 12:
        raise ValueError("debug must be exactly 12 bytes")
    version = bytes(int(p) for p in parts)
    return PORT_STARTUP, debug + version + bytes([_RESET_CODES[reset_cause], int(occupied)])
