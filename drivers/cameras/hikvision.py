"""Hikvision ISAPI ANPR push: ``EventNotificationAlert`` as bare XML or multipart/form-data.

Firmware differs in the namespace (``isapi.org/ver20``, ``hikvision.com/ver20``, older
``std-cgi.com/ver10``) and an NVR may forward the document with a prefix, so elements are
matched by local name only. ``eventState`` inactive is a heartbeat. Pictures are recognised
as JPEG by their magic bytes (old firmware labels them application/octet-stream); an empty
picture part is normal. Documents with a DTD are refused outright (no entity expansion).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from datetime import datetime, tzinfo

from drivers.cameras.multipart import split_multipart
from drivers.cameras.reads import (
    CameraError,
    CameraHeartbeat,
    CameraRead,
    Direction,
    ImageSink,
    as_utc,
    clean,
    confidence_of,
    plate_of,
)

__all__ = ["parse_hikvision"]

_DECL = re.compile(
    rb"""\s*<\?xml[^>]{0,200}?encoding=["']([A-Za-z0-9._-]{1,40})["'][^>]{0,200}\?>"""
)
_EXPAT_ENCODINGS = {b"utf-8", b"utf8", b"us-ascii", b"ascii", b"iso-8859-1", b"latin-1", b"utf-16"}
_DIRECTIONS: dict[str, Direction] = {"forward": "in", "reverse": "out"}
_COLOURS = {"blue": "blue", "yellow": "yellow", "white": "white", "black": "black"}
_COLOURS |= {"green": "green", "yellowgreen": "yellow_green", "yellow_green": "yellow_green"}


def _local(tag: object) -> str:
    return tag.rsplit("}", 1)[-1].rsplit(":", 1)[-1] if isinstance(tag, str) else ""


def _child(el: ET.Element | None, name: str) -> ET.Element | None:
    if el is None:
        return None
    for c in el:
        if _local(c.tag) == name:
            return c
    return None


def _text(el: ET.Element | None, name: str, limit: int = 64) -> str | None:
    c = _child(el, name)
    if c is None or c.text is None:
        return None
    t = clean(c.text, limit)
    return t or None


def _document(body: bytes, content_type: str, images: ImageSink) -> bytes:
    """The XML of the push; the pictures go to *images*."""
    if "multipart/" not in content_type.lower():
        return body
    xml: bytes | None = None
    for part in split_multipart(body, content_type):
        label = (part.filename or part.name).lower()
        looks_xml = "xml" in part.content_type or label.endswith(".xml")
        if xml is None and (looks_xml or part.data.lstrip()[:1] == b"<"):
            xml = part.data
        else:
            images.add(part.filename or part.name, part.data)
    if xml is None:
        raise CameraError("malformed_multipart", "no XML part in the multipart push")
    return xml


def _decoded(xml: bytes) -> bytes | str:
    """The document as expat can read it: a declared multi-byte encoding it cannot decode
    itself (GB2312, GBK, GB18030 on some Chinese firmware) is decoded here."""
    m = _DECL.match(xml)
    if m is None or m.group(1).lower() in _EXPAT_ENCODINGS:
        return xml
    try:
        return xml[m.end() :].decode(m.group(1).decode("ascii"))
    except (LookupError, UnicodeDecodeError):
        raise CameraError("malformed_xml", "XML in an unknown or wrong encoding") from None


def _root(xml: bytes) -> ET.Element:
    head = xml[:4096].lower()
    if b"<!doctype" in head or b"<!entity" in xml.lower():
        raise CameraError("malformed_xml", "XML with a DTD or entities is refused")
    try:
        root = ET.fromstring(_decoded(xml))  # noqa: S314 - no DTD (checked above), expat fetches nothing
    except (ET.ParseError, ValueError, LookupError, RecursionError) as exc:  # LookupError: encoding
        raise CameraError("malformed_xml", f"not well-formed XML: {exc}"[:200]) from None
    if _local(root.tag) != "EventNotificationAlert":
        found = next((e for e in root.iter() if _local(e.tag) == "EventNotificationAlert"), None)
        if found is None:
            raise CameraError(
                "malformed_xml",
                f"root is {_local(root.tag)[:40]!r}, expected EventNotificationAlert",
            )
        root = found
    return root


def _time(text: str | None, zone: tzinfo) -> datetime | None:
    if text is None:
        return None
    try:
        return as_utc(datetime.fromisoformat(text.strip()), zone)
    except ValueError:
        return None


def parse_hikvision(
    body: bytes,
    content_type: str,
    camera_id: str,
    *,
    zone: tzinfo,
    max_image_bytes: int,
) -> CameraRead | CameraHeartbeat:
    """Parse one push; *zone* reads a dateTime without offset (it should carry one)."""
    images = ImageSink(max_image_bytes)
    root = _root(_document(body, content_type, images))
    ts = _time(_text(root, "dateTime"), zone)
    serial = _text(root, "macAddress") or _text(root, "ipAddress")
    state = (_text(root, "eventState") or "active").lower()
    if state == "inactive":
        return CameraHeartbeat(camera_id=camera_id, vendor="hikvision", ts=ts, serial=serial)
    kind = _text(root, "eventType") or ""
    anpr = _child(root, "ANPR")
    if kind.upper() != "ANPR" or anpr is None:
        raise CameraError("not_anpr", f"event {kind[:32]!r} is not an ANPR read")
    plate, raw, error = plate_of(_text(anpr, "licensePlate") or _text(anpr, "originalLicensePlate"))
    colour = (_text(anpr, "plateColor") or "").lower()
    vehicle = _text(anpr, "vehicleType", 32) or _text(
        _child(anpr, "vehicleInfo"), "vehicleType", 32
    )
    return CameraRead(
        camera_id=camera_id,
        vendor="hikvision",
        plate=plate,
        raw_plate=raw,
        plate_error=error,
        confidence=confidence_of(_text(anpr, "confidenceLevel")),
        direction=_DIRECTIONS.get((_text(anpr, "direction") or "").lower()),
        colour=_COLOURS.get(colour),
        vehicle_type=vehicle,
        record_id=_text(root, "UUID") or _text(anpr, "plateSerialNo"),
        offline=False,
        ts=ts,
        images=tuple(images.kept),
        dropped_images=tuple(images.dropped),
        serial=serial,
    )
