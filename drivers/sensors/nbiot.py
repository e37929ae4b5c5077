"""Sans-I/O codec for the NB-IoT geomagnetic berth sensor (``nbiot-geomag``).

Chinese NB-IoT geomagnetic sensors each speak a vendor-private binary frame; this is the one
citygate defines for that class of device (our own design, documented byte by byte in
docs/codecs.md). Every field is big-endian; the frame has a fixed length of 31 bytes:

====== ==== =====================================================================
offset size field
====== ==== =====================================================================
0      2    magic ``A5 5A``
2      1    version, ``0x01``
3      8    device id (IMEI-derived), rendered as 16 lowercase hex chars
11     2    seq, uint16, wraps
13     1    flags: bits 1..0 occupancy (00 free, 01 occupied, 10 not reported,
            11 invalid); bit 2 event-triggered (1) vs periodic (0); bits 7..3 reserved
14     6    raw field X, Y, Z, int16
20     6    sensor baseline X, Y, Z, int16
26     2    battery, uint16 mV
28     1    RSSI, int8 dBm
29     2    CRC-16/MODBUS over bytes 0..28, low byte first (Modbus order)
====== ==== =====================================================================

The gateway keeps raw and baseline vectors for diagnosis and makes its own occupancy verdict
(drivers/sensors/detection.py); the device's own bit is passed along, flagged as unreliable.
"""

from __future__ import annotations

import re
import struct
from typing import Final

from drivers.sensors.messages import CodecError, MagnetometerFrame, SensorMessage

__all__ = [
    "DEFAULT_HEARTBEAT_S",
    "FRAME_LEN",
    "MAGIC",
    "MODEL",
    "VERSION",
    "crc16_modbus",
    "decode",
    "encode_frame",
]

MODEL: Final = "nbiot-geomag"
# Assumption: these devices are configured for an hourly heartbeat (configurable per device).
DEFAULT_HEARTBEAT_S: Final = 3600

MAGIC: Final = b"\xa5\x5a"
VERSION: Final = 0x01
_BODY = struct.Struct(">2sB8sHB3h3hHb")
FRAME_LEN: Final = _BODY.size + 2  # 31

FLAG_EVENT: Final = 0x04
_OCC_FREE, _OCC_OCCUPIED, _OCC_NOT_REPORTED = 0, 1, 2
_DEVICE_ID = re.compile(r"[0-9a-f]{16}")


def crc16_modbus(data: bytes) -> int:
    """CRC-16/MODBUS (poly 0x8005 reflected = 0xA001, init 0xFFFF, no final xor)."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def decode(f_port: int | None, data: bytes) -> SensorMessage:
    """Decode one frame. NB-IoT has no port, so *f_port* is ignored (``None`` is normal)."""
    del f_port
    if len(data) < FRAME_LEN:
        raise CodecError("short_frame", f"{len(data)} bytes, need {FRAME_LEN}")
    if len(data) > FRAME_LEN:
        raise CodecError("bad_length", f"{len(data)} bytes, expected {FRAME_LEN}")
    body = bytes(data[:-2])
    magic, version, dev_id, seq, flags, rx, ry, rz, bx, by, bz, battery, rssi = _BODY.unpack(body)
    if magic != MAGIC:
        raise CodecError("bad_header", f"magic {magic.hex()} != {MAGIC.hex()}")
    if version != VERSION:
        raise CodecError("bad_header", f"unsupported version {version}")
    crc = int.from_bytes(data[-2:], "little")
    if crc != crc16_modbus(body):
        raise CodecError("bad_checksum", f"crc {crc:04x} != {crc16_modbus(body):04x}")
    occupancy = flags & 0x03
    if occupancy == 0x03:
        raise CodecError("bad_value", "occupancy bits 11 are invalid")
    return MagnetometerFrame(
        device_id=dev_id.hex(),
        seq=seq,
        raw=(rx, ry, rz),
        baseline=(bx, by, bz),
        battery_mv=battery,
        rssi_dbm=rssi,
        sensor_occupied=None if occupancy == _OCC_NOT_REPORTED else occupancy == _OCC_OCCUPIED,
    )


def encode_frame(
    device_id: str,
    seq: int,
    raw: tuple[int, int, int],
    baseline: tuple[int, int, int],
    battery_mv: int = 3600,
    rssi_dbm: int = -80,
    sensor_occupied: bool | None = None,
    event: bool = False,
) -> bytes:
    """Build a frame as the device would send it (used by the simulator and the tests).
    Out-of-range values raise ``ValueError``; *seq* wraps modulo 65536 like the device."""
    if not _DEVICE_ID.fullmatch(device_id):
        raise ValueError("device_id must be 16 lowercase hex chars")
    for vec in (raw, baseline):
        if len(vec) != 3 or not all(-32768 <= v <= 32767 for v in vec):
            raise ValueError("vectors are three int16 components")
    if not 0 <= battery_mv <= 0xFFFF:
        raise ValueError("battery_mv must fit uint16")
    if not -128 <= rssi_dbm <= 127:
        raise ValueError("rssi_dbm must fit int8")
    if sensor_occupied is None:
        occupancy = _OCC_NOT_REPORTED
    else:
        occupancy = _OCC_OCCUPIED if sensor_occupied else _OCC_FREE
    flags = occupancy | (FLAG_EVENT if event else 0)
    body = _BODY.pack(
        MAGIC,
        VERSION,
        bytes.fromhex(device_id),
        seq & 0xFFFF,
        flags,
        *raw,
        *baseline,
        battery_mv,
        rssi_dbm,
    )
    return body + crc16_modbus(body).to_bytes(2, "little")
