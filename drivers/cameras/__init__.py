"""Plate cameras pushing reads over HTTP: pure parsers per vendor (Hikvision ISAPI, Vzenith,
Dahua ITSAPI) and the Vzenith reply builder. No I/O and no clock: the HTTP edge
(``gateway/api/cameras.py``) authenticates, bounds, stores and answers."""

from drivers.cameras.dahua import REPLY as DAHUA_REPLY
from drivers.cameras.dahua import parse_keepalive, parse_tollgate
from drivers.cameras.hikvision import parse_hikvision
from drivers.cameras.reads import (
    COLOURS,
    CameraError,
    CameraHeartbeat,
    CameraRead,
    Direction,
    Image,
    Vendor,
)
from drivers.cameras.vzenith import build_response, parse_vzenith, serial_items

__all__ = [
    "COLOURS",
    "DAHUA_REPLY",
    "CameraError",
    "CameraHeartbeat",
    "CameraRead",
    "Direction",
    "Image",
    "Vendor",
    "build_response",
    "parse_hikvision",
    "parse_keepalive",
    "parse_tollgate",
    "parse_vzenith",
    "serial_items",
]
