"""Plate-camera HTTP push bodies, one target per vendor format of ``drivers.cameras``
(Hikvision ISAPI XML or multipart, Vzenith JSON, Dahua ITSAPI TollgateInfo and KeepAlive),
called as ``gateway/api/cameras.py`` calls them."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

from drivers.cameras import (
    CameraError,
    parse_hikvision,
    parse_keepalive,
    parse_tollgate,
    parse_vzenith,
)
from fuzz.core import Reasons, Target
from fuzz.mutate import BYTE_TOKENS, XML_TOKENS, hostile_bytes, hostile_json
from gateway.demo.cameras import (
    NAMESPACES,
    dahua_body,
    hikvision_push,
    hikvision_xml,
    tiny_jpeg,
    vzenith_body,
)

ZONE = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 12, 2, 1, 30, 5, 250000, tzinfo=UTC)
MAX_IMAGE = 200_000  # the edge's default bound is of this order
CAMERA = "cam-1"

HIK: list[tuple[bytes, str]] = [
    hikvision_push("粤B12345", T),
    hikvision_push("甘G·12345", T, bare=True),
    hikvision_push("甘GD12345", T, old_firmware=True, direction="reverse"),
    hikvision_push("无车牌", T, namespace=NAMESPACES[-1], prefix="ns0"),
    (hikvision_xml("甘G12345", T, state="inactive"), "text/xml"),
    (hikvision_xml("甘G12345", T).replace(b"UTF-8", b"GB18030"), "application/xml"),
]
_CTYPES = [c for _, c in HIK] + [
    "multipart/form-data", "multipart/form-data; boundary=", "multipart/mixed; boundary=x",
    "text/xml; charset=gb2312", "application/octet-stream", "", "image/jpeg",
]  # fmt: skip
_PIC = base64.b64encode(tiny_jpeg()).decode()
VZ = [
    json.loads(vzenith_body("甘G12345", T, 42)),
    json.loads(vzenith_body("_无_", T, 43, offline=True, confidence=0, colour=9)),
    {"heartbeat": {"countid": 1, "timeStamp": {"Timeval": {"sec": 1764639005, "usec": 5}},
                   "serialno": "e5a7c1d2-2f0a3b4c"}},
]  # fmt: skip
DAHUA = [
    json.loads(dahua_body("甘G12345", T, 7)),
    {"Picture": {"Plate": {"PlateNumber": ""}, "NormalPic": {"Content": _PIC}}},
]
KEEPALIVE = [{"DeviceID": "6J0A1B2C"}, {}]


def _hik_case() -> st.SearchStrategy[tuple[bytes, str]]:
    bodies = hostile_bytes([b for b, _ in HIK], BYTE_TOKENS + XML_TOKENS)
    ctype = st.sampled_from(_CTYPES) | st.text(max_size=60)
    return st.sampled_from(HIK) | st.tuples(bodies, ctype)


def check_hikvision(case: tuple[bytes, str]) -> Reasons:
    body, ctype = case
    try:
        parse_hikvision(body, ctype, CAMERA, zone=ZONE, max_image_bytes=MAX_IMAGE)
    except CameraError as exc:
        return (exc.reason,)
    return ()


def check_vzenith(body: bytes) -> Reasons:
    try:
        parse_vzenith(body, CAMERA, max_image_bytes=MAX_IMAGE)
    except CameraError as exc:
        return (exc.reason,)
    return ()


def check_dahua(body: bytes) -> Reasons:
    try:
        parse_tollgate(body, CAMERA, zone=ZONE, max_image_bytes=MAX_IMAGE)
    except CameraError as exc:
        return (exc.reason,)
    return ()


def check_dahua_keepalive(body: bytes) -> Reasons:
    try:
        parse_keepalive(body, CAMERA)
    except CameraError as exc:
        return (exc.reason,)
    return ()


TARGETS = (
    Target("camera.hikvision", "drivers.cameras.parse_hikvision", _hik_case(), check_hikvision),
    Target("camera.vzenith", "drivers.cameras.parse_vzenith", hostile_json(VZ), check_vzenith),
    Target("camera.dahua", "drivers.cameras.parse_tollgate", hostile_json(DAHUA), check_dahua),
    Target(
        "camera.dahua.keepalive",
        "drivers.cameras.parse_keepalive",
        hostile_json(KEEPALIVE) | st.sampled_from([b"", b" \r\n"]),
        check_dahua_keepalive,
    ),
)
