"""What every plate camera parser returns: a read, a heartbeat, or a typed refusal.

The parsers are pure (bytes in, these out; the time a camera reports is data, never the
clock). A read keeps the camera's own words next to the normalised ones (``raw_plate``), so a
plate the normaliser refuses is still on record, and says which images it dropped and why.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Literal

from events.plates import PlateError, normalise_plate

__all__ = [
    "COLOURS",
    "CameraError",
    "CameraHeartbeat",
    "CameraRead",
    "Direction",
    "Image",
    "Vendor",
    "as_utc",
    "clean",
    "is_jpeg",
    "plate_of",
]

Vendor = Literal["hikvision", "vzenith", "dahua"]
Direction = Literal["in", "out"]
COLOURS = ("blue", "yellow", "green", "yellow_green", "white", "black")
Image = tuple[str, bytes]  # (name, JPEG bytes)

# What cameras say for "no plate read" (compared case-insensitively, after stripping).
_UNREAD = {"", "unknown", "_无_", "无", "无牌", "无车牌", "none", "null", "noplate", "未识别"}
_EPOCH_MIN = datetime(2000, 1, 1, tzinfo=UTC)
_EPOCH_MAX = datetime(2200, 1, 1, tzinfo=UTC)


class CameraError(ValueError):
    """A push the parser cannot take. ``reason`` is a short metric label (malformed_xml,
    malformed_json, malformed_multipart, not_anpr, ...); the message says what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraRead:
    """One plate read as the camera pushed it.

    ``plate`` is normalised (province character kept) or None: unread (``raw_plate`` None or
    the camera's "no plate" word) or refused (``plate_error`` says why). ``ts`` is the
    camera's own time in UTC, None when it sent none the parser can read. ``offline``: the
    camera stored the read while it could not reach us and re-sends it now.
    """

    camera_id: str
    vendor: Vendor
    plate: str | None
    raw_plate: str | None
    confidence: float | None  # 0..1
    direction: Direction | None
    colour: str | None  # one of COLOURS, or None
    vehicle_type: str | None
    record_id: str | None
    offline: bool
    ts: datetime | None
    images: tuple[Image, ...] = ()
    dropped_images: tuple[str, ...] = ()  # "name: reason" of images not kept
    plate_error: str | None = None
    serial: str | None = None  # the camera's own serial / device id, as it says
    # Filled in by the edge, never by a parser: how the camera's clock was off (then ``ts``
    # is the receive time: "ahead", "old", "missing") and the stored read's id.
    clock_off: str | None = None
    read_id: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CameraHeartbeat:
    """A sign of life with nothing to record (Hikvision eventState inactive, Vzenith
    heartbeat, Dahua KeepAlive)."""

    camera_id: str
    vendor: Vendor
    ts: datetime | None = None
    serial: str | None = None


def json_object(body: bytes) -> dict[str, Any]:
    """A JSON push's top-level object (Vzenith, Dahua), or a ``malformed_json`` error."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise CameraError("malformed_json", f"not JSON: {exc}"[:200]) from None
    if not isinstance(doc, dict):
        raise CameraError("malformed_json", "the push is not a JSON object")
    return doc


def clean(text: str, limit: int = 64) -> str:
    """Camera text fit to store: no control characters or lone surrogates (JSON allows
    both; no database takes them), at most *limit* characters, stripped."""
    text = text[: limit * 2].encode("utf-8", "replace").decode("utf-8")
    return "".join(c for c in text if c.isprintable() or c == " ").strip()[:limit]


def plate_of(raw: str | None) -> tuple[str | None, str | None, str | None]:
    """``(plate, raw_plate, plate_error)`` of what the camera sent."""
    if raw is None:
        return None, None, None
    raw = clean(raw)
    if raw.lower() in _UNREAD:
        return None, raw or None, None
    try:
        return normalise_plate(raw), raw, None
    except PlateError as exc:
        return None, raw, str(exc)


def is_jpeg(data: bytes) -> bool:
    """JPEG by its magic bytes (SOI + a marker), whatever the part's declared type says."""
    return len(data) >= 4 and data[:3] == b"\xff\xd8\xff"


def as_utc(ts: datetime, zone: tzinfo) -> datetime | None:
    """Aware UTC; a naive camera time is read in *zone*; None outside 2000..2200."""
    if ts.tzinfo is None or ts.utcoffset() is None:
        ts = ts.replace(tzinfo=zone)
    try:
        out = ts.astimezone(UTC)
    except (OverflowError, ValueError):
        return None
    return out if _EPOCH_MIN <= out < _EPOCH_MAX else None


def epoch(sec: object, usec: object = 0) -> datetime | None:
    """A Unix time (seconds + microseconds) as aware UTC, None if not a sane number."""
    if isinstance(sec, bool) or not isinstance(sec, int | float):
        return None
    if isinstance(usec, bool) or not isinstance(usec, int | float):
        usec = 0
    if not 946_684_800 <= sec < 7_258_118_400 or not 0 <= usec < 1_000_000:
        return None
    return datetime.fromtimestamp(int(sec), UTC).replace(microsecond=int(usec))


def confidence_of(value: object, scale: float = 100.0) -> float | None:
    """A 0..scale number (int, float or numeric text) as 0..1; None when absent or absurd."""
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if not 0 <= value <= scale:
        return None
    return round(float(value) / scale, 4)


@dataclass(slots=True)
class ImageSink:
    """Collects a push's images with the bounds of the edge: JPEG only, at most
    ``max_bytes`` each, at most ``max_count``; what is not kept is named with a reason."""

    max_bytes: int
    max_count: int = 8
    kept: list[Image] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    def add(self, name: str, data: bytes) -> None:
        name = clean(name) or "image"
        if not data:
            return  # an empty picture part is normal (no plate crop): nothing to keep
        if not is_jpeg(data):
            self.dropped.append(f"{name}: not_jpeg")
        elif len(data) > self.max_bytes:
            self.dropped.append(f"{name}: too_large")
        elif len(self.kept) >= self.max_count:
            self.dropped.append(f"{name}: too_many")
        else:
            self.kept.append((name, data))
