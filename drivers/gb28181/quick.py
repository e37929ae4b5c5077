"""The quick lane for MANSCDP: a Keepalive or a flat MobilePosition in the one shape cams send,
read without building an element tree.

A body qualifies when it is ASCII (every charset a cam declares reads ASCII the same way),
has no control characters, no entity or CDATA (no ``&``, no ``<!``), at most the XML
declaration, a ``Notify`` root and only the fields below, each once, without attributes or
children. Anything else gives ``None`` and goes to ``parse_manscdp``, which reads the rest
and says why it refuses. The values are read by the same field readers (``number_text`` and
kin) with the same bounds, so a body read here means what ``parse_manscdp`` makes of it; the
tests compare the two over generated bodies.
"""

from __future__ import annotations

import re
from datetime import tzinfo

from drivers.gb28181.canonical import canonical_manscdp
from drivers.gb28181.fields import (
    MAX_SUM,
    device_id_text,
    integer_text,
    number_text,
    sn_text,
    time_text,
)
from drivers.gb28181.messages import Keepalive, MobilePositions, Position
from drivers.gb28181.xmlsafe import DEFAULT_LIMITS, ManscdpError, XmlLimits

__all__ = ["quick_manscdp"]

_ROOT_FIELDS = {
    "CmdType", "SN", "DeviceID", "Status", "Time", "Longitude", "Latitude", "Speed",
    "Direction", "Altitude", "SumNum",
}  # fmt: skip
_ITEM_FIELDS = {
    "DeviceID", "TargetID", "Time", "CaptureTime", "Longitude", "Latitude", "Speed",
    "Direction", "Altitude",
}  # fmt: skip
_CONTROL = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_F = r"<[A-Za-z]{1,20}>[^<>&\r\n]{0,64}</[A-Za-z]{1,20}>\s*"
_DOC = re.compile(
    r'(?:<\?xml version="1\.0" encoding="[A-Za-z0-9\-]{1,20}"\?>)?\s*<Notify>\s*'
    rf"((?:{_F}){{1,16}})"
    rf'(?:<DeviceList(?: Num="[0-9]{{1,4}}")?>\s*((?:<Item>\s*(?:{_F}){{1,12}}</Item>\s*){{0,8}})'
    rf"</DeviceList>\s*((?:{_F}){{0,8}}))?</Notify>\s*"
)
_FIELD = re.compile(r"<([A-Za-z]+)>([^<]*)</([A-Za-z]+)>")
_ITEM = re.compile(r"<Item>(.*?)</Item>", re.DOTALL)


def _fields(text: str, allowed: set[str], into: dict[str, str]) -> bool:
    for start, value, end in _FIELD.findall(text):
        if start != end or start not in allowed or start in into:
            return False
        into[start] = value
    return True


def _text(fields: dict[str, str], name: str, limit: int = 40) -> str | None:
    value = fields.get(name)
    if value is None:
        return None
    t = value.strip()
    return t[:limit] if t else None


def quick_manscdp(
    body: bytes, tz: tzinfo, limits: XmlLimits = DEFAULT_LIMITS
) -> Keepalive | MobilePositions | None:
    """*body* as a Keepalive or one flat position, or None (take ``parse_manscdp``)."""
    canonical = canonical_manscdp(body, tz, limits)
    if canonical is not None:
        return canonical  # the one shape cams send, read by one pattern
    if len(body) > limits.max_bytes or not body.isascii() or _CONTROL.search(body):
        return None
    m = _DOC.fullmatch(body.decode("ascii"))
    if m is None:
        return None
    root: dict[str, str] = {}
    items: list[dict[str, str]] | None = None
    before, listed, after = m.groups()
    if not _fields(before, _ROOT_FIELDS, root) or not _fields(after or "", _ROOT_FIELDS, root):
        return None
    if listed is not None:
        items = []
        for block in _ITEM.findall(listed):
            item: dict[str, str] = {}
            if not _fields(block, _ITEM_FIELDS, item):
                return None
            items.append(item)
    try:
        return _typed(root, items, tz)
    except ManscdpError:
        return None  # the general way refuses it too, and counts why


def _typed(
    f: dict[str, str], items: list[dict[str, str]] | None, tz: tzinfo
) -> Keepalive | MobilePositions | None:
    cmd = _text(f, "CmdType")
    if cmd is None:
        return None
    sn = sn_text(_text(f, "SN"))
    kind = cmd.lower()
    dev = device_id_text(_text(f, "DeviceID"), "DeviceID")
    assert dev is not None
    if kind == "keepalive" and items is None:
        status = _text(f, "Status", 32)
        return Keepalive(sn, dev, status.upper() if status else None)
    if kind != "mobileposition":
        return None
    if items is None:
        one = _position(f, dev, tz, "Time", "CaptureTime")
        return MobilePositions(dev, sn, (one,) if one else ())
    integer_text(_text(f, "SumNum"), "SumNum", 0, MAX_SUM)  # validated, informational
    found = (_position(i, dev, tz, "CaptureTime", "Time") for i in items)
    return MobilePositions(dev, sn, tuple(p for p in found if p is not None))


def _position(f: dict[str, str], default_id: str, tz: tzinfo, *time_names: str) -> Position | None:
    """As ``manscdp._position``: TargetID, else DeviceID, else the sender's id; the first
    time field present."""
    named = _text(f, "TargetID") if "TargetID" in f else _text(f, "DeviceID")
    dev = device_id_text(named, "TargetID", required=False)
    name = next((n for n in time_names if n in f), time_names[0])
    ts = time_text(_text(f, name), name, tz, required=True)
    lon = number_text(_text(f, "Longitude"), "Longitude", -180, 180, required=True)
    lat = number_text(_text(f, "Latitude"), "Latitude", -90, 90, required=True)
    if ts is None or lon is None or lat is None or (lon == 0 and lat == 0):
        return None
    return Position(
        dev or default_id,
        ts,
        lon,
        lat,
        number_text(_text(f, "Speed"), "Speed", 0, 1000),
        number_text(_text(f, "Direction"), "Direction", 0, 360),
        number_text(_text(f, "Altitude"), "Altitude", -1000, 20000),
    )
