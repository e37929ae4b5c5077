"""Vzenith / 臻识 (AlphaDigi family) HTTP push: ``AlarmInfoPlate`` JSON, its heartbeat, and
the reply that is the camera's command channel.

The reply opens the gate (``info`` ok; ``channelNum`` picks the relay), drives the lane's
LED display and voice module through the camera's RS-485 port (``serialData``), and, for a
read the camera stored while offline (``isoffline`` 1), asks for the next stored one with
``ContinuePushOffline {plateid, continue: 1}``. ``plateid`` is the camera's record id.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any

from drivers.cameras.framing import Framing, display_model, frame_text
from drivers.cameras.reads import (
    CameraError,
    CameraHeartbeat,
    CameraRead,
    ImageSink,
    clean,
    confidence_of,
    epoch,
    json_object,
    plate_of,
)

__all__ = [
    "DISPLAY_CHANNEL",
    "VOICE_CHANNEL",
    "build_response",
    "parse_vzenith",
    "serial_items",
]

# colorType of PlateResult (the SDK's plate colours); unknown codes give no colour.
_COLOURS = {1: "blue", 2: "yellow", 3: "white", 4: "black", 5: "green"}
DISPLAY_CHANNEL = 0  # RS-485 port 0: the LED display (the usual wiring; lanes may differ)
VOICE_CHANNEL = 1  # port 1: the voice module


def _obj(value: Any, key: str) -> dict[str, Any]:
    v = value.get(key) if isinstance(value, dict) else None
    return v if isinstance(v, dict) else {}


def _str(value: Any, limit: int = 64) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = clean(str(value), limit)
        return text or None
    return None


def _image(sink: ImageSink, name: str, value: Any) -> None:
    if not isinstance(value, str) or not value:
        return
    if len(value) * 3 // 4 > sink.max_bytes + 3:
        sink.dropped.append(f"{name}: too_large")
        return
    try:
        data = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        sink.dropped.append(f"{name}: bad_base64")
        return
    sink.add(name, data)


def parse_vzenith(
    body: bytes, camera_id: str, *, max_image_bytes: int
) -> CameraRead | CameraHeartbeat:
    doc = json_object(body)
    beat = next((v for k, v in doc.items() if k.lower() == "heartbeat"), None)
    if isinstance(beat, dict):
        ts = epoch(*_timeval(beat))
        return CameraHeartbeat(
            camera_id=camera_id, vendor="vzenith", ts=ts, serial=_str(beat.get("serialno"))
        )
    alarm = doc.get("AlarmInfoPlate")
    if not isinstance(alarm, dict):
        raise CameraError("malformed_json", "neither AlarmInfoPlate nor heartbeat")
    result = _obj(_obj(alarm, "result"), "PlateResult")
    if not result:
        raise CameraError("malformed_json", "AlarmInfoPlate without result.PlateResult")
    raw = result.get("license")
    if raw is not None and not isinstance(raw, str):
        raise CameraError("malformed_json", "PlateResult.license is not text")
    plate, raw_plate, error = plate_of(raw)
    images = ImageSink(max_image_bytes)
    _image(images, "imageFile.jpg", result.get("imageFile"))
    _image(images, "imageFragmentFile.jpg", result.get("imageFragmentFile"))
    colour = result.get("colorType")
    kind = result.get("type")
    return CameraRead(
        camera_id=camera_id,
        vendor="vzenith",
        plate=plate,
        raw_plate=raw_plate,
        plate_error=error,
        confidence=confidence_of(result.get("confidence")),
        direction=None,  # PlateResult.direction is the motion in the picture, not in/out
        colour=_COLOURS.get(colour) if isinstance(colour, int) else None,
        vehicle_type=None if kind is None else _str(kind, 32),
        record_id=_str(result.get("plateid")),
        offline=result.get("isoffline") in (1, "1", True),
        ts=epoch(*_timeval(result)),
        images=tuple(images.kept),
        dropped_images=tuple(images.dropped),
        serial=_str(alarm.get("serialno")),
    )


def _timeval(obj: dict[str, Any]) -> tuple[object, object]:
    tv = _obj(_obj(obj, "timeStamp"), "Timeval")
    return tv.get("sec"), tv.get("usec", 0)


def serial_items(
    display: Sequence[str] = (),
    voice: str | None = None,
    *,
    framing: Framing | None = None,
    display_channel: int = DISPLAY_CHANNEL,
    voice_channel: int = VOICE_CHANNEL,
) -> list[tuple[int, bytes]]:
    """The RS-485 payloads of a reply: display lines and voice text framed for the lane's
    display module (``drivers.cameras.framing``; text-mode ``text-crlf`` by default)."""
    shown, said = frame_text(framing or display_model("text-crlf"), display, voice)
    out: list[tuple[int, bytes]] = []
    if shown:
        out.append((display_channel, shown))
    if said:
        out.append((voice_channel, said))
    return out


def build_response(
    *,
    open_gate: bool,
    channel: int = 0,
    serial: Sequence[tuple[int, bytes]] = (),
    continue_plateid: str | None = None,
) -> dict[str, Any]:
    """``Response_AlarmInfoPlate``: open (``info`` ok) or not (no) on relay *channel*, the
    serial payloads, and ``ContinuePushOffline`` for an offline resend's ``plateid``."""
    reply: dict[str, Any] = {"info": "ok" if open_gate else "no", "channelNum": channel}
    if serial:
        reply["serialData"] = [
            {
                "serialChannel": ch,
                "data": base64.b64encode(data).decode("ascii"),
                "dataLen": len(data),
            }
            for ch, data in serial
        ]
    if continue_plateid is not None:
        pid: int | str = int(continue_plateid) if _digits(continue_plateid) else continue_plateid
        reply["ContinuePushOffline"] = {"plateid": pid, "continue": 1}
    return {"Response_AlarmInfoPlate": reply}


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18
