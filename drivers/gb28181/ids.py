"""GB/T 28181 20-digit ids (Appendix D coding): area, industry, type, network, serial.

The decoded fields are information for the operator only: a device is never refused for an
unusual type or industry code (vendors put body cams under 131, 132 or 138 alike); only the
shape (exactly 20 ASCII digits) is enforced.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.gb28181.xmlsafe import ManscdpError

__all__ = ["INDUSTRIES", "NETWORKS", "TYPES", "DeviceId", "is_device_id", "parse_device_id"]

_ID = re.compile(r"[0-9]{20}")

INDUSTRIES: dict[str, str] = {
    "00": "public security road",
    "01": "public security community",
    "02": "public security internal",
    "03": "public security other",
    "04": "traffic road",
    "05": "traffic checkpoint",
    "06": "traffic internal",
    "07": "traffic other",
    "08": "urban management",
    "09": "health and environment",
    "10": "inspection and customs",
    "11": "education",
}
TYPES: dict[str, str] = {
    "111": "DVR",
    "112": "video server",
    "113": "encoder",
    "114": "decoder",
    "118": "NVR",
    "121": "alarm controller",
    "131": "camera",
    "132": "IPC",
    "133": "display",
    "134": "alarm input",
    "135": "alarm output",
    "136": "voice input",
    "137": "voice output",
    "138": "mobile transmission device",
    "139": "other peripheral",
    "200": "central signalling server",
    "201": "web application server",
    "202": "media distribution server",
    "203": "proxy server",
    "204": "security server",
    "205": "alarm server",
    "206": "database server",
    "207": "GIS server",
    "208": "management server",
    "209": "access gateway",
    "210": "media storage server",
    "211": "signalling security routing gateway",
    "215": "business group",
    "216": "virtual organisation",
    "300": "centre user",
    "400": "terminal user",
}
NETWORKS: dict[str, str] = {
    "0": "surveillance private network",
    "1": "surveillance private network",
    "2": "surveillance private network",
    "3": "surveillance private network",
    "4": "surveillance private network",
    "5": "public security information network",
    "6": "government network",
    "7": "internet",
    "8": "social resources network",
}


@dataclass(frozen=True)
class DeviceId:
    """A decoded id; the ``*_name`` fields are None for codes without a name here."""

    raw: str
    area: str  # digits 1-8: province (2), city (2), county (2), base unit (2)
    industry: str  # digits 9-10
    type_code: str  # digits 11-13
    network: str  # digit 14
    serial: str  # digits 15-20

    @property
    def province(self) -> str:
        return self.area[:2]

    @property
    def industry_name(self) -> str | None:
        return INDUSTRIES.get(self.industry)

    @property
    def type_name(self) -> str | None:
        return TYPES.get(self.type_code)

    @property
    def network_name(self) -> str | None:
        return NETWORKS.get(self.network)

    @property
    def is_urban_management(self) -> bool:
        return self.industry == "08"

    def __str__(self) -> str:
        return self.raw


def is_device_id(s: str) -> bool:
    """Exactly 20 ASCII digits (no surrounding whitespace)."""
    return _ID.fullmatch(s) is not None


def parse_device_id(s: str) -> DeviceId:
    """Decode *s* (surrounding whitespace tolerated); ``ManscdpError("bad_device_id")``
    unless it is exactly 20 ASCII digits."""
    if not isinstance(s, str):
        raise ManscdpError("bad_device_id", "not a string")
    t = s.strip()
    if not is_device_id(t):
        raise ManscdpError("bad_device_id", f"{t[:32]!r} is not 20 digits")
    return DeviceId(
        raw=t, area=t[:8], industry=t[8:10], type_code=t[10:13], network=t[13], serial=t[14:]
    )
