"""Dahua ITSAPI push: ``POST /NotificationInfo/TollgateInfo`` (a read) and ``/KeepAlive``.

``SnapInfo.AccurateTime`` is the camera's local wall time without an offset: it is read in
the zone the caller passes (the town's). The reply to both is ``{"Result": true}``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime, tzinfo
from typing import Any

from drivers.cameras.reads import (
    CameraError,
    CameraHeartbeat,
    CameraRead,
    Direction,
    ImageSink,
    as_utc,
    clean,
    confidence_of,
    json_object,
    plate_of,
)

__all__ = ["REPLY", "parse_keepalive", "parse_tollgate"]

REPLY: dict[str, Any] = {"Result": True}
_COLOURS = {"blue": "blue", "yellow": "yellow", "white": "white", "black": "black"}
_COLOURS |= {"green": "green", "yellowgreen": "yellow_green", "yellow_green": "yellow_green"}
_COLOURS |= {"蓝": "blue", "黄": "yellow", "白": "white", "黑": "black", "绿": "green"}
_COLOURS |= {"黄绿": "yellow_green", "渐变绿": "green"}
_DIRECTIONS: dict[str, Direction] = {"approach": "in", "obverse": "in", "leave": "out"}
_DIRECTIONS |= {"reverse": "out"}


def _obj(value: Any, key: str) -> dict[str, Any]:
    v = value.get(key) if isinstance(value, dict) else None
    return v if isinstance(v, dict) else {}


def _str(value: Any, limit: int = 64) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    text = clean(str(value), limit)
    return text or None


def _time(value: Any, zone: tzinfo) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return as_utc(datetime.fromisoformat(value.strip()), zone)
    except ValueError:
        return None


def _image(sink: ImageSink, name: str, pic: dict[str, Any]) -> None:
    content = pic.get("Content")
    if not isinstance(content, str) or not content:
        return
    if len(content) * 3 // 4 > sink.max_bytes + 3:
        sink.dropped.append(f"{name}: too_large")
        return
    try:
        sink.add(name, base64.b64decode(content, validate=True))
    except (binascii.Error, ValueError):
        sink.dropped.append(f"{name}: bad_base64")


def _colour(value: Any) -> str | None:
    text = (_str(value, 16) or "").lower().removesuffix("色")
    return _COLOURS.get(text)


def parse_tollgate(
    body: bytes, camera_id: str, *, zone: tzinfo, max_image_bytes: int
) -> CameraRead:
    picture = json_object(body).get("Picture")
    if not isinstance(picture, dict):
        raise CameraError("malformed_json", "TollgateInfo without Picture")
    plate_info = _obj(picture, "Plate")
    snap = _obj(picture, "SnapInfo")
    raw = plate_info.get("PlateNumber")
    if raw is not None and not isinstance(raw, str):
        raise CameraError("malformed_json", "Plate.PlateNumber is not text")
    plate, raw_plate, error = plate_of(raw)
    images = ImageSink(max_image_bytes)
    _image(images, "NormalPic.jpg", _obj(picture, "NormalPic"))
    _image(images, "CutoutPic.jpg", _obj(picture, "CutoutPic"))
    vehicle = _obj(picture, "Vehicle")
    record = next(
        (r for r in (_str(snap.get(k)) for k in ("SnapID", "RecNo", "EventID")) if r), None
    )
    return CameraRead(
        camera_id=camera_id,
        vendor="dahua",
        plate=plate,
        raw_plate=raw_plate,
        plate_error=error,
        confidence=confidence_of(plate_info.get("Confidence")),
        direction=_DIRECTIONS.get((_str(snap.get("Direction"), 16) or "").lower()),
        colour=_colour(plate_info.get("PlateColor")),
        vehicle_type=_str(vehicle.get("VehicleType"), 32),
        record_id=record,
        offline=False,
        ts=_time(snap.get("AccurateTime"), zone),
        images=tuple(images.kept),
        dropped_images=tuple(images.dropped),
        serial=_str(snap.get("DeviceID")),
    )


def parse_keepalive(body: bytes, camera_id: str) -> CameraHeartbeat:
    """A KeepAlive: an empty body or any JSON object (its DeviceID, if any, is kept)."""
    if not body.strip():
        return CameraHeartbeat(camera_id=camera_id, vendor="dahua")
    doc = json_object(body)
    return CameraHeartbeat(camera_id=camera_id, vendor="dahua", serial=_str(doc.get("DeviceID")))
