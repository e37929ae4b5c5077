"""Sans-I/O parsers for LoRaWAN network-server MQTT envelopes (ChirpStack v4, The Things Stack v3).

The network server wraps each device frame in a JSON envelope; these functions turn one MQTT
(topic, payload) pair into a typed record or raise :class:`EnvelopeError` with a short, stable
``reason`` that the transport counts as a metric label. Everything here is hostile-input safe:
whatever the broker delivers, the only exception that escapes is ``EnvelopeError``.

Both servers emit protobuf-JSON, where a field equal to its default is omitted. So an absent
``fCnt``/``f_cnt`` means 0 (the first uplink after a join), while an absent ``fPort`` means the
frame had no application payload (port 0 / empty) and is reported as ``None``.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

import orjson

__all__ = [
    "MAX_PAYLOAD_BYTES",
    "EnvelopeError",
    "JoinNotice",
    "StatusReport",
    "Uplink",
    "parse_chirpstack",
    "parse_tts",
]

MAX_PAYLOAD_BYTES: Final = 65536

_HEX16 = re.compile(r"[0-9a-fA-F]{16}")
_HEX8 = re.compile(r"[0-9a-fA-F]{8}")
_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,12}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
# Plausibility bounds for radio metadata: anything outside is garbage, not a measurement.
_RSSI_RANGE = (-300.0, 100.0)
_SNR_RANGE = (-100.0, 100.0)
_TOPIC = re.compile(r"[^/#+\x00]+(?:/[^/#+\x00]+)*")  # non-empty levels, no wildcards


class EnvelopeError(ValueError):
    """An envelope that cannot be turned into a record. ``reason`` is a stable metric label
    (``oversized``, ``bad_json``, ``not_object``, ``missing_field``, ``bad_field``,
    ``bad_base64``, ``bad_topic``, ``unsupported_event``, ``encrypted``); ``detail`` is for
    humans."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class Uplink:
    """One application uplink as the network server saw it."""

    network: str  # "chirpstack" | "tts"
    dev_eui: str  # lowercase hex, 16 chars
    f_port: int | None  # None: no application payload (port 0 / empty frame)
    f_cnt: int | None
    data: bytes  # b"" when absent
    time: datetime | None  # aware UTC, from the envelope
    rssi: float | None  # best (max) RSSI over all receiving gateways
    snr: float | None  # SNR reported by that best gateway
    dedup_id: str | None  # ChirpStack deduplicationId / TTS correlation id


@dataclass(frozen=True, slots=True)
class StatusReport:
    """ChirpStack ``event/status``: the device's answer to DevStatusReq."""

    dev_eui: str
    time: datetime | None
    battery_level: float | None  # percent; None when unavailable or externally powered
    margin: int | None  # demodulation margin, dB
    external_power: bool


@dataclass(frozen=True, slots=True)
class JoinNotice:
    """ChirpStack ``event/join``: the device (re)joined; its counters restarted."""

    dev_eui: str
    time: datetime | None
    dev_addr: str | None


# --------------------------------------------------------------------------- helpers


def _load_object(payload: bytes) -> Mapping[str, Any]:
    if not isinstance(payload, bytes | bytearray | memoryview):
        raise EnvelopeError("bad_json", f"payload must be bytes, got {type(payload).__name__}")
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise EnvelopeError("oversized", f"{len(payload)} bytes > {MAX_PAYLOAD_BYTES}")
    try:
        # orjson: several times faster than json, and strict: NaN/Infinity, invalid UTF-8 and
        # nesting deeper than 1024 are all JSONDecodeError (a ValueError).
        doc = orjson.loads(payload)
    except (ValueError, RecursionError) as exc:
        raise EnvelopeError("bad_json", str(exc)[:200]) from None
    if not isinstance(doc, dict):
        raise EnvelopeError("not_object", f"top level is {type(doc).__name__}")
    return doc


def _obj(doc: Mapping[str, Any], key: str) -> Mapping[str, Any] | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise EnvelopeError("bad_field", f"{key} must be an object")
    return value


def _str(doc: Mapping[str, Any], key: str) -> str | None:
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise EnvelopeError("bad_field", f"{key} must be a string")
    return value


def _bool(doc: Mapping[str, Any], key: str) -> bool:
    value = doc.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise EnvelopeError("bad_field", f"{key} must be a boolean")
    return value


def _int(doc: Mapping[str, Any], key: str, lo: int, hi: int) -> int | None:
    """An integer field; protobuf-JSON may send 64-bit ints as strings, so accept digits."""
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, str) and value.isascii() and value.lstrip("-").isdigit():
        value = int(value) if len(value) <= 20 else hi + 1
    if isinstance(value, float) and value.is_integer() and lo <= value <= hi:
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise EnvelopeError("bad_field", f"{key} must be an integer in {lo}..{hi}")
    return value


def _num(doc: Mapping[str, Any], key: str, bounds: tuple[float, float]) -> float | None:
    value = doc.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EnvelopeError("bad_field", f"{key} must be a number")
    lo, hi = bounds
    # Compare before float(): a 4000-digit int would overflow the conversion.
    if not lo <= value <= hi or (isinstance(value, float) and not math.isfinite(value)):
        raise EnvelopeError("bad_field", f"{key} out of range {lo}..{hi}")
    return float(value)


def _b64(doc: Mapping[str, Any], key: str) -> bytes:
    text = _str(doc, key)
    if not text:
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise EnvelopeError("bad_base64", f"{key} is not valid base64") from None


def _time(doc: Mapping[str, Any], key: str) -> datetime | None:
    """RFC 3339 with any number of fractional digits (Go emits nanoseconds; Python keeps µs)."""
    text = _str(doc, key)
    if text is None:
        return None
    match = _RFC3339.fullmatch(text)
    if match is None:
        raise EnvelopeError("bad_field", f"{key} is not an RFC 3339 timestamp")
    year, month, day, hour, minute, second, frac, zulu, sign, off_h, off_m = match.groups()
    micros = int((frac or "0")[:6].ljust(6, "0"))
    try:
        if zulu:
            tz: timezone = UTC
        else:
            offset = timedelta(hours=int(off_h), minutes=int(off_m))
            tz = timezone(-offset if sign == "-" else offset)
        parsed = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            micros,
            tzinfo=tz,
        )
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError):
        raise EnvelopeError("bad_field", f"{key} is not a valid date/time") from None


def _eui(text: str | None, what: str, reason: str) -> str | None:
    if text is None:
        return None
    if not _HEX16.fullmatch(text):
        raise EnvelopeError(reason, f"{what} must be 16 hex digits")
    return text.lower()


def _pick_dev_eui(body_eui: str | None, topic_eui: str | None) -> str:
    """The body wins, but a body that contradicts its own topic is refused, not guessed."""
    body = _eui(body_eui, "devEui", "bad_field")
    if body is not None and topic_eui is not None and body != topic_eui:
        raise EnvelopeError("bad_field", f"devEui {body} does not match topic {topic_eui}")
    eui = body or topic_eui
    if eui is None:
        raise EnvelopeError("missing_field", "dev_eui")
    return eui


def _best_radio(
    items: Any, rssi_keys: tuple[str, ...], where: str
) -> tuple[float | None, float | None]:
    """Max RSSI over all gateways and the SNR of that gateway; gateways without RSSI skipped."""
    if items is None:
        return None, None
    if not isinstance(items, list):
        raise EnvelopeError("bad_field", f"{where} must be a list")
    best: tuple[float, float | None] | None = None
    for item in items:
        if not isinstance(item, dict):
            raise EnvelopeError("bad_field", f"{where}[] must be objects")
        rssi = None
        for key in rssi_keys:
            rssi = _num(item, key, _RSSI_RANGE)
            if rssi is not None:
                break
        snr = _num(item, "snr", _SNR_RANGE)
        if rssi is not None and (best is None or rssi > best[0]):
            best = (rssi, snr)
    return (None, None) if best is None else best


def _topic_parts(topic: str) -> list[str]:
    if not isinstance(topic, str) or len(topic) > 1024:
        raise EnvelopeError("bad_topic", "topic must be a string of at most 1024 chars")
    if not _TOPIC.fullmatch(topic):
        raise EnvelopeError("bad_topic", f"empty or wildcard level in {topic!r}")
    return topic.split("/")


# --------------------------------------------------------------------------- ChirpStack v4


def parse_chirpstack(topic: str, payload: bytes) -> Uplink | StatusReport | JoinNotice:
    """Parse a ChirpStack v4 MQTT integration event.

    Topic ``application/{app_id}/device/{dev_eui}/event/{up|status|join}``; other event types
    (``ack``, ``txack``, ``log``, ``location``, ``integration``) raise ``unsupported_event``.
    An uplink carrying ``joinServerContext`` (end-to-end encrypted: the Join Server kept the
    AppSKey, so ``data`` is ciphertext) raises ``encrypted``.
    """
    parts = _topic_parts(topic)
    if len(parts) != 6 or parts[0] != "application" or parts[2] != "device" or parts[4] != "event":
        raise EnvelopeError("bad_topic", f"not a ChirpStack event topic: {topic!r}")
    topic_eui = _eui(parts[3], "topic dev_eui", "bad_topic")
    event = parts[5]
    if event not in ("up", "status", "join"):
        raise EnvelopeError("unsupported_event", event)

    doc = _load_object(payload)
    device_info = _obj(doc, "deviceInfo") or {}
    dev_eui = _pick_dev_eui(_str(device_info, "devEui"), topic_eui)
    time = _time(doc, "time")

    if event == "status":
        external = _bool(doc, "externalPowerSource")
        unavailable = _bool(doc, "batteryLevelUnavailable")
        level = _num(doc, "batteryLevel", (0.0, 100.0))
        return StatusReport(
            dev_eui=dev_eui,
            time=time,
            battery_level=None if external or unavailable else (level or 0.0),
            margin=_int(doc, "margin", -128, 127) or 0,
            external_power=external,
        )

    if event == "join":
        dev_addr = _str(doc, "devAddr")
        if dev_addr is not None and not _HEX8.fullmatch(dev_addr):
            raise EnvelopeError("bad_field", "devAddr must be 8 hex digits")
        return JoinNotice(
            dev_eui=dev_eui,
            time=time,
            dev_addr=None if dev_addr is None else dev_addr.lower(),
        )

    if doc.get("joinServerContext") is not None:
        # End-to-end encryption: ChirpStack holds no AppSKey, so ``data`` is still ciphertext.
        # Decoding it would apply noise to a berth; refuse it instead.
        _obj(doc, "joinServerContext")
        raise EnvelopeError("encrypted", f"{dev_eui}: payload still encrypted (joinServerContext)")
    rssi, snr = _best_radio(doc.get("rxInfo"), ("rssi",), "rxInfo")
    return Uplink(
        network="chirpstack",
        dev_eui=dev_eui,
        f_port=_int(doc, "fPort", 0, 255),
        f_cnt=_int(doc, "fCnt", 0, 2**32 - 1) or 0,
        data=_b64(doc, "data"),
        time=time,
        rssi=rssi,
        snr=snr,
        dedup_id=_str(doc, "deduplicationId") or None,
    )


# --------------------------------------------------------------------------- The Things Stack v3


def _tts_correlation_id(doc: Mapping[str, Any]) -> str | None:
    """Prefer the network server's uplink id (stable across AS redeliveries)."""
    ids = doc.get("correlation_ids")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise EnvelopeError("bad_field", "correlation_ids must be a list of strings")
    for prefix in ("ns:uplink:", "as:up:"):
        for cid in ids:
            if cid.startswith(prefix):
                return str(cid)
    return str(ids[0]) if ids else None


def parse_tts(topic: str, payload: bytes) -> Uplink:
    """Parse a The Things Stack v3 MQTT uplink.

    Topic ``v3/{app}@{tenant}/devices/{device_id}/up`` (``@tenant`` is absent on a
    single-tenant open-source deployment). Other message types raise ``unsupported_event``.
    The DevEUI comes from ``end_device_ids.dev_eui``; the topic only names the device id.
    """
    parts = _topic_parts(topic)
    if len(parts) < 5 or parts[0] != "v3" or parts[2] != "devices":
        raise EnvelopeError("bad_topic", f"not a TTS v3 device topic: {topic!r}")
    if parts[4:] != ["up"]:
        raise EnvelopeError("unsupported_event", "/".join(parts[4:]))
    topic_device = parts[3]

    doc = _load_object(payload)
    ids = _obj(doc, "end_device_ids")
    if ids is None:
        raise EnvelopeError("missing_field", "end_device_ids")
    device_id = _str(ids, "device_id")
    if device_id is not None and device_id != topic_device:
        raise EnvelopeError("bad_field", f"device_id {device_id!r} does not match topic")
    dev_eui = _pick_dev_eui(_str(ids, "dev_eui"), None)

    up = _obj(doc, "uplink_message")
    if up is None:
        raise EnvelopeError("missing_field", "uplink_message")
    rssi, snr = _best_radio(up.get("rx_metadata"), ("rssi", "channel_rssi"), "rx_metadata")
    time = _time(up, "received_at")
    if time is None:
        time = _time(doc, "received_at")
    return Uplink(
        network="tts",
        dev_eui=dev_eui,
        f_port=_int(up, "f_port", 0, 255),
        f_cnt=_int(up, "f_cnt", 0, 2**32 - 1) or 0,
        data=_b64(up, "frm_payload"),
        time=time,
        rssi=rssi,
        snr=snr,
        dedup_id=_tts_correlation_id(doc),
    )
