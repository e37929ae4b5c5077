"""Simulated plate cameras: each vendor's real push shapes over HTTP (httpx), for the tests,
the demo and the lane bench.

- ``HikvisionCamera``: ISAPI ``EventNotificationAlert`` as multipart/form-data (XML part +
  JPEG parts, an empty picture part, the firmware's namespace, an NVR's prefix) or bare XML;
  heartbeats are the same document with ``eventState`` inactive.
- ``VzenithCamera``: ``AlarmInfoPlate`` JSON with base64 images, heartbeats, and offline
  storage: reads made while "offline" are re-sent with ``isoffline`` 1, the next one only
  when the reply says ``ContinuePushOffline`` for the last (a duplicate can be injected).
- ``DahuaCamera``: ITSAPI ``TollgateInfo`` and ``KeepAlive``.

``tiny_jpeg`` makes a valid 8x8 grey baseline JPEG (padded with a comment to any size).
"""

from __future__ import annotations

import base64
import itertools
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx

CST = timezone(timedelta(hours=8))
NAMESPACES = (
    "http://www.isapi.org/ver20/XMLSchema",
    "http://www.hikvision.com/ver20/XMLSchema",
    "http://www.std-cgi.com/ver10/XMLSchema",
)


def tiny_jpeg(size: int = 0) -> bytes:
    """A decodable 8x8 mid-grey baseline JPEG; *size* > its natural length pads it with
    COM segments to exactly that many bytes (for oversized-image tests)."""
    dqt = b"\xff\xdb\x00\x43\x00" + b"\x01" * 64
    sof = b"\xff\xc0\x00\x0b\x08\x00\x08\x00\x08\x01\x01\x11\x00"
    # One-symbol Huffman tables: DC category 0 -> code '0', AC EOB -> code '0'.
    dht = b"\xff\xc4\x00\x14\x00" + b"\x01" + b"\x00" * 15 + b"\x00"
    dht += b"\xff\xc4\x00\x14\x10" + b"\x01" + b"\x00" * 15 + b"\x00"
    sos = b"\xff\xda\x00\x08\x01\x01\x00\x00\x3f\x00"
    body = b"\xff\xd8" + dqt + sof + dht + sos + b"\x3f" + b"\xff\xd9"
    pad = size - len(body)
    coms = b""
    while pad > 0:
        n = min(max(pad, 4), 65535 + 2)
        if pad - n in (1, 2, 3):  # keep the rest a whole segment
            n = pad - 4
        coms += b"\xff\xfe" + (n - 2).to_bytes(2, "big") + b"c" * (n - 4)
        pad -= n
    return body[:2] + coms + body[2:]


def hikvision_xml(
    plate: str,
    ts: datetime,
    *,
    namespace: str = NAMESPACES[0],
    prefix: str | None = None,
    state: str = "active",
    direction: str = "forward",
    confidence: str = "92",
    colour: str = "blue",
    mac: str = "44:19:b6:00:00:01",
) -> bytes:
    p = f"{prefix}:" if prefix else ""
    xmlns = f'xmlns:{prefix}="{namespace}"' if prefix else f'xmlns="{namespace}"'
    anpr = (
        f"<{p}ANPR><{p}country>CN</{p}country><{p}licensePlate>{plate}</{p}licensePlate>"
        f"<{p}line>1</{p}line><{p}direction>{direction}</{p}direction>"
        f"<{p}confidenceLevel>{confidence}</{p}confidenceLevel><{p}plateType>92TypeCivil"
        f"</{p}plateType><{p}plateColor>{colour}</{p}plateColor><{p}licenseBright>0"
        f"</{p}licenseBright><{p}vehicleType>vehicle</{p}vehicleType><{p}vehicleInfo>"
        f"<{p}index>1</{p}index><{p}color>white</{p}color></{p}vehicleInfo>"
        f"<{p}originalLicensePlate>{plate}</{p}originalLicensePlate></{p}ANPR>"
    )
    doc = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<{p}EventNotificationAlert version="2.0" '
        f"{xmlns}><{p}ipAddress>192.168.1.64</{p}ipAddress><{p}portNo>80</{p}portNo>"
        f"<{p}protocol>HTTP</{p}protocol><{p}macAddress>{mac}</{p}macAddress>"
        f"<{p}channelID>1</{p}channelID><{p}dateTime>{ts.astimezone(CST).isoformat()}"
        f"</{p}dateTime><{p}activePostCount>1</{p}activePostCount><{p}eventType>ANPR"
        f"</{p}eventType><{p}eventState>{state}</{p}eventState><{p}eventDescription>ANPR"
        f"</{p}eventDescription>{anpr if state == 'active' else ''}</{p}EventNotificationAlert>"
    )
    return doc.encode()


def multipart(
    parts: list[tuple[str, str, str, bytes]], boundary: str | None = None
) -> tuple[bytes, str]:
    """``(name, filename, content type, data)`` parts as a multipart/form-data body."""
    b = boundary or f"----cg{uuid.uuid4().hex}"
    out = bytearray()
    for name, filename, ctype, data in parts:
        out += f'--{b}\r\nContent-Disposition: form-data; name="{name}"'.encode()
        if filename:
            out += f'; filename="{filename}"'.encode()
        out += f"\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n\r\n".encode()
        out += data + b"\r\n"
    out += f"--{b}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={b}"


def hikvision_push(
    plate: str,
    ts: datetime,
    *,
    bare: bool = False,
    old_firmware: bool = False,
    image: bytes | None = None,
    **xml: Any,
) -> tuple[bytes, str]:
    """``(body, content type)`` of one ANPR push."""
    doc = hikvision_xml(plate, ts, **xml)
    if bare:
        return doc, "application/xml"
    pic = tiny_jpeg() if image is None else image
    if old_firmware:  # vehiclePicture.jpg as octet-stream, no plate crop
        return multipart(
            [
                ("anpr.xml", "anpr.xml", "text/xml", doc),
                ("vehiclePicture.jpg", "vehiclePicture.jpg", "application/octet-stream", pic),
            ]
        )
    return multipart(
        [
            ("anpr.xml", "anpr.xml", "application/xml", doc),
            ("licensePlatePicture.jpg", "licensePlatePicture.jpg", "image/jpeg", b""),
            ("detectionPicture.jpg", "detectionPicture.jpg", "image/jpeg", pic),
        ]
    )


def vzenith_body(
    plate: str,
    ts: datetime,
    plateid: int,
    *,
    offline: bool = False,
    serial: str = "e5a7c1d2-2f0a3b4c",
    image: bytes | None = None,
    confidence: int = 95,
    colour: int = 1,
) -> bytes:
    pic = tiny_jpeg() if image is None else image
    result = {
        "license": plate,
        "colorType": colour,
        "type": 1,
        "confidence": confidence,
        "bright": 0,
        "direction": 4,
        "location": {"RECT": {"left": 600, "top": 720, "right": 780, "bottom": 770}},
        "timeUsed": 32,
        "carBright": 0,
        "carColor": 255,
        "timeStamp": {"Timeval": {"sec": int(ts.timestamp()), "usec": ts.microsecond}},
        "triggerType": 8,
        "plateid": plateid,
        "isoffline": 1 if offline else 0,
        "imageFile": base64.b64encode(pic).decode(),
        "imageFileLen": len(pic),
        "imageFragmentFile": base64.b64encode(tiny_jpeg()).decode(),
    }
    doc = {
        "AlarmInfoPlate": {
            "channel": 0,
            "deviceName": "IVS",
            "ipaddr": "192.168.1.100",
            "serialno": serial,
            "result": {"PlateResult": result},
        }
    }
    return json.dumps(doc, ensure_ascii=False).encode()


def dahua_body(plate: str, ts: datetime, snap_id: int, *, image: bytes | None = None) -> bytes:
    pic = tiny_jpeg() if image is None else image
    local = ts.astimezone(CST).replace(tzinfo=None).isoformat(sep=" ", timespec="milliseconds")
    doc = {
        "Picture": {
            "Plate": {
                "PlateNumber": plate,
                "PlateColor": "Blue",
                "PlateType": "Normal",
                "Confidence": 90,
                "BoundingBox": [600, 700, 780, 760],
            },
            "Vehicle": {"VehicleType": "Motor", "VehicleColor": "White", "VehicleSeries": ""},
            "SnapInfo": {
                "AccurateTime": local,
                "Direction": "Obverse",
                "DeviceID": "6J0A1B2C",
                "SnapID": snap_id,
                "AllowUser": True,
                "BlockUser": False,
            },
            "NormalPic": {"Content": base64.b64encode(pic).decode(), "PicName": "normal.jpg"},
            "CutoutPic": {"Content": base64.b64encode(tiny_jpeg()).decode()},
        }
    }
    return json.dumps(doc, ensure_ascii=False).encode()


@dataclass
class _Camera:
    base_url: str  # the gateway, e.g. http://127.0.0.1:8080
    camera_id: str
    secret: str
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=10))

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/cameras/{self.camera_id}/{self.secret}"

    async def aclose(self) -> None:
        await self.client.aclose()


class HikvisionCamera(_Camera):
    async def push(self, plate: str, ts: datetime | None = None, **kw: Any) -> httpx.Response:
        body, ctype = hikvision_push(plate, ts or datetime.now(UTC), **kw)
        return await self.client.post(
            f"{self.url}/hikvision", content=body, headers={"Content-Type": ctype}
        )

    async def heartbeat(self, ts: datetime | None = None) -> httpx.Response:
        body = hikvision_xml("", ts or datetime.now(UTC), state="inactive")
        return await self.client.post(
            f"{self.url}/hikvision", content=body, headers={"Content-Type": "application/xml"}
        )


class VzenithCamera(_Camera):
    """Keeps the reads it made while "offline" and re-sends them one by one."""

    def __init__(self, base_url: str, camera_id: str, secret: str) -> None:
        super().__init__(base_url, camera_id, secret)
        self._ids = itertools.count(1)
        self.stored: list[tuple[str, datetime, int]] = []

    def next_id(self) -> int:
        return next(self._ids)

    async def push(
        self, plate: str, ts: datetime | None = None, *, plateid: int | None = None, **kw: Any
    ) -> httpx.Response:
        pid = self.next_id() if plateid is None else plateid
        body = vzenith_body(plate, ts or datetime.now(UTC), pid, **kw)
        return await self.client.post(
            f"{self.url}/vzenith", content=body, headers={"Content-Type": "application/json"}
        )

    def read_offline(self, plate: str, ts: datetime) -> None:
        self.stored.append((plate, ts, self.next_id()))

    async def resend_offline(self, duplicate_every: int = 0) -> list[httpx.Response]:
        """Re-send the stored reads; each goes only after ContinuePushOffline for the one
        before. *duplicate_every* n > 0 sends every n-th read twice (the duplicates seen in
        the field). Returns the replies; stops at the first that does not continue."""
        replies = []
        for n, (plate, ts, pid) in enumerate(list(self.stored), 1):
            for _ in range(2 if duplicate_every and n % duplicate_every == 0 else 1):
                r = await self.push(plate, ts, plateid=pid, offline=True)
                replies.append(r)
                cont = {}
                if r.status_code == 200:
                    cont = (
                        r.json().get("Response_AlarmInfoPlate", {}).get("ContinuePushOffline", {})
                    )
                if cont.get("plateid") != pid or cont.get("continue") != 1:
                    return replies
            self.stored.remove((plate, ts, pid))
        return replies

    async def heartbeat(self) -> httpx.Response:
        body = json.dumps({"heartbeat": {"countid": 1, "serialno": "e5a7c1d2-2f0a3b4c"}})
        return await self.client.post(
            f"{self.url}/vzenith",
            content=body.encode(),
            headers={"Content-Type": "application/json"},
        )


class DahuaCamera(_Camera):
    def __init__(self, base_url: str, camera_id: str, secret: str) -> None:
        super().__init__(base_url, camera_id, secret)
        self._ids = itertools.count(1000)

    async def push(self, plate: str, ts: datetime | None = None, **kw: Any) -> httpx.Response:
        body = dahua_body(plate, ts or datetime.now(UTC), next(self._ids), **kw)
        return await self.client.post(
            f"{self.url}/NotificationInfo/TollgateInfo",
            content=body,
            headers={"Content-Type": "application/json"},
        )

    async def keepalive(self) -> httpx.Response:
        body = json.dumps({"DeviceID": "6J0A1B2C"}).encode()
        return await self.client.post(
            f"{self.url}/NotificationInfo/KeepAlive",
            content=body,
            headers={"Content-Type": "application/json"},
        )
