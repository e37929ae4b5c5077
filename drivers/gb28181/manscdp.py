"""MANSCDP (the XML in GB/T 28181 MESSAGE bodies): typed messages in, query bodies out.

``parse_manscdp`` reads Keepalive, MobilePosition (the 2016 flat form and the vendors' list
form), Alarm, and the answers to the platform's DeviceInfo, DeviceStatus and Catalog queries;
any other Response or Query becomes ``QueryAnswerOther`` (so an answer can still be matched
by SN), an unknown Notify is refused (``unknown_cmd``). Device times carry no zone: they are
read in the zone passed (the town's; China has one, hence the default) and returned as
aware UTC. Positions are WGS-84 as the devices send them. A position or alarm at exactly
(0, 0) is a cam without a fix: no position. Builders encode GB2312, or GB18030 (declared so)
when a character is outside GB2312.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import tzinfo
from typing import Literal
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

from drivers.gb28181.fields import (
    MAX_SUM,
    Power,
    device_id_of,
    extras,
    integer,
    local_time,
    number,
    power_of,
    sn_of,
)
from drivers.gb28181.ids import is_device_id
from drivers.gb28181.messages import (
    Alarm,
    AlarmStatus,
    CatalogItem,
    CatalogPart,
    DeviceInfo,
    DeviceStatus,
    Keepalive,
    Manscdp,
    MobilePositions,
    Position,
    QueryAnswerOther,
    RootName,
)
from drivers.gb28181.xmlsafe import (
    DEFAULT_LIMITS,
    ManscdpError,
    XmlLimits,
    child,
    children,
    local,
    parse_xml,
    text,
)

__all__ = [
    "CHINA",
    "XML_DECLARATION",
    "Alarm",
    "AlarmStatus",
    "CatalogItem",
    "CatalogPart",
    "DeviceInfo",
    "DeviceStatus",
    "Keepalive",
    "Manscdp",
    "MobilePositions",
    "Position",
    "Power",
    "QueryAnswerOther",
    "QueryCmd",
    "encode_manscdp",
    "parse_manscdp",
    "query_body",
    "subscribe_position_body",
]

CHINA = ZoneInfo("Asia/Shanghai")
XML_DECLARATION = '<?xml version="1.0" encoding="GB2312"?>'
QueryCmd = Literal["DeviceInfo", "DeviceStatus", "Catalog"]
_ROOTS: dict[str, RootName] = {"notify": "Notify", "response": "Response", "query": "Query"}


def _upper(el: ET.Element | None, *names: str) -> str | None:
    t = text(el, *names, limit=32)
    return t.upper() if t else None


def _lon_lat(el: ET.Element, required: bool) -> tuple[float, float] | None:
    lon = number(el, "Longitude", -180, 180, required=required)
    lat = number(el, "Latitude", -90, 90, required=required)
    if lon is None or lat is None or (lon == 0 and lat == 0):
        return None
    return lon, lat


def _position(
    el: ET.Element, default_id: str, tz: tzinfo, time_names: tuple[str, ...]
) -> Position | None:
    dev = device_id_of(el, "TargetID", "DeviceID", required=False) or default_id
    name = next((n for n in time_names if child(el, n) is not None), time_names[0])
    ts = local_time(el, name, tz, required=True)
    ll = _lon_lat(el, required=True)
    if ll is None or ts is None:
        return None
    return Position(
        device_id=dev,
        time=ts,
        longitude=ll[0],
        latitude=ll[1],
        speed_kmh=number(el, "Speed", 0, 1000),
        direction_deg=number(el, "Direction", 0, 360),
        altitude_m=number(el, "Altitude", -1000, 20000),
    )


def _mobile_position(root: ET.Element, sn: int, tz: tzinfo) -> MobilePositions:
    dev = device_id_of(root, "DeviceID", "TargetID")
    assert dev is not None
    items = list(children(child(root, "DeviceList"), "Item"))
    if child(root, "DeviceList") is None:
        one = _position(root, dev, tz, ("Time", "CaptureTime"))
        return MobilePositions(dev, sn, (one,) if one else ())
    integer(root, "SumNum", 0, MAX_SUM)  # validated, informational
    found = (_position(i, dev, tz, ("CaptureTime", "Time")) for i in items)
    return MobilePositions(dev, sn, tuple(p for p in found if p is not None))


def _alarm(root: ET.Element, sn: int, tz: tzinfo) -> Alarm:
    dev = device_id_of(root)
    assert dev is not None
    info = child(root, "Info")
    kind = integer(root, "AlarmType", 0, 99)
    if kind is None:
        kind = integer(info, "AlarmType", 0, 99)
    ll = _lon_lat(root, required=False)
    return Alarm(
        device_id=dev,
        sn=sn,
        priority=integer(root, "AlarmPriority", 0, 4),
        method=integer(root, "AlarmMethod", 0, 9),
        time=local_time(root, "AlarmTime", tz),
        description=text(root, "AlarmDescription", limit=256),
        longitude=ll[0] if ll else None,
        latitude=ll[1] if ll else None,
        alarm_type=kind,
    )


_INFO_KNOWN = {"cmdtype", "sn", "deviceid", "result", "devicename", "manufacturer", "model"}
_INFO_KNOWN |= {"firmware", "channel"}
_STATUS_KNOWN = {"cmdtype", "sn", "deviceid", "result", "online", "status", "reason"}
_STATUS_KNOWN |= {"encode", "record", "devicetime"}


def _device_info(root: ET.Element, sn: int) -> DeviceInfo:
    dev = device_id_of(root)
    assert dev is not None
    return DeviceInfo(
        device_id=dev,
        sn=sn,
        result=_upper(root, "Result"),
        name=text(root, "DeviceName", limit=128),
        manufacturer=text(root, "Manufacturer", limit=128),
        model=text(root, "Model", limit=128),
        firmware=text(root, "Firmware", limit=128),
        channels=integer(root, "Channel", 0, 100_000),
        power=power_of(root),
        extras=extras(root, _INFO_KNOWN),
    )


def _online(root: ET.Element) -> bool | None:
    t = _upper(root, "Online")
    if t is None:
        return None
    if t in {"ONLINE", "ON"}:
        return True
    if t in {"OFFLINE", "OFF"}:
        return False
    raise ManscdpError("bad:Online", t[:16])


def _device_status(root: ET.Element, sn: int, tz: tzinfo) -> DeviceStatus:
    dev = device_id_of(root)
    assert dev is not None
    duty: list[AlarmStatus] = []
    for item in children(child(root, "Alarmstatus"), "Item"):
        d = text(item, "DeviceID", limit=40)
        s = _upper(item, "DutyStatus")
        if d and s and is_device_id(d):
            duty.append(AlarmStatus(d, s))
    return DeviceStatus(
        device_id=dev,
        sn=sn,
        result=_upper(root, "Result"),
        online=_online(root),
        status=_upper(root, "Status"),
        reason=text(root, "Reason", limit=256),
        encode=_upper(root, "Encode"),
        record=_upper(root, "Record"),
        device_time=local_time(root, "DeviceTime", tz),
        alarm_status=tuple(duty[:256]),
        power=power_of(root),
        extras=extras(root, _STATUS_KNOWN),
    )


def _lenient_lon_lat(item: ET.Element) -> tuple[float, float] | None:
    try:
        return _lon_lat(item, required=False)
    except ManscdpError:
        return None  # an item's coordinates are information; a bad pair is dropped


def _catalog_item(item: ET.Element) -> CatalogItem | None:
    dev = text(item, "DeviceID", limit=40)
    if dev is None or not is_device_id(dev):
        return None
    parental = text(item, "Parental", limit=4)
    ll = _lenient_lon_lat(item)
    return CatalogItem(
        device_id=dev,
        name=text(item, "Name", limit=128),
        manufacturer=text(item, "Manufacturer", limit=128),
        model=text(item, "Model", limit=128),
        owner=text(item, "Owner", limit=64),
        civil_code=text(item, "CivilCode", limit=32),
        address=text(item, "Address", limit=256),
        parental=None if parental is None else parental == "1",
        parent_id=text(item, "ParentID", limit=64),
        status=_upper(item, "Status"),
        longitude=ll[0] if ll else None,
        latitude=ll[1] if ll else None,
    )


def _catalog(root: ET.Element, sn: int) -> CatalogPart:
    dev = device_id_of(root)
    assert dev is not None
    total = integer(root, "SumNum", 0, MAX_SUM)
    if total is None:
        raise ManscdpError("missing:SumNum")
    items: list[CatalogItem] = []
    skipped = 0
    for el in children(child(root, "DeviceList"), "Item"):
        got = _catalog_item(el)
        if got is None:
            skipped += 1
        else:
            items.append(got)
    return CatalogPart(dev, sn, total, tuple(items), skipped)


def parse_manscdp(
    body: bytes,
    charset: str | None = None,
    *,
    tz: tzinfo = CHINA,
    limits: XmlLimits = DEFAULT_LIMITS,
) -> Manscdp:
    """One MESSAGE body, typed; ``ManscdpError(reason)`` for anything refused.
    *charset* is the Content-Type's, if any; *tz* the zone device times are read in."""
    root = parse_xml(body, charset, limits=limits)
    kind = _ROOTS.get(local(root.tag))
    if kind is None:
        raise ManscdpError("unknown_root", local(root.tag)[:32])
    cmd = text(root, "CmdType", limit=40)
    if cmd is None:
        raise ManscdpError("missing:CmdType")
    c = cmd.lower()
    sn = sn_of(root)
    if c == "keepalive":
        dev = device_id_of(root)
        assert dev is not None
        return Keepalive(sn, dev, _upper(root, "Status"))
    if c == "mobileposition" and kind != "Query":
        return _mobile_position(root, sn, tz)
    if c == "alarm" and kind == "Notify":
        return _alarm(root, sn, tz)
    if kind == "Response" and c == "deviceinfo":
        return _device_info(root, sn)
    if kind == "Response" and c == "devicestatus":
        return _device_status(root, sn, tz)
    if kind == "Response" and c == "catalog":
        return _catalog(root, sn)
    if kind == "Notify":
        raise ManscdpError("unknown_cmd", cmd)
    dev = device_id_of(root)
    assert dev is not None
    return QueryAnswerOther(kind, cmd, sn, dev, _upper(root, "Result"))


def encode_manscdp(xml: str) -> bytes:
    """*xml* (without declaration) as GB2312 bytes with its declaration, or as GB18030
    declared GB18030 when it holds a character GB2312 lacks (镕, rare names)."""
    try:
        return f"{XML_DECLARATION}\r\n{xml}".encode("gb2312")
    except UnicodeEncodeError:
        decl = XML_DECLARATION.replace("GB2312", "GB18030")
        return f"{decl}\r\n{xml}".encode("gb18030")


def _document(root: str, fields: list[tuple[str, str]]) -> bytes:
    inner = "".join(f"<{k}>{escape(v)}</{k}>\r\n" for k, v in fields)
    return encode_manscdp(f"<{root}>\r\n{inner}</{root}>\r\n")


def _check(sn: int, device_id: str) -> None:
    if isinstance(sn, bool) or not isinstance(sn, int) or not 0 <= sn <= 10**18:
        raise ManscdpError("bad:SN", repr(sn)[:24])
    if not isinstance(device_id, str) or not is_device_id(device_id):
        raise ManscdpError("bad_device_id", repr(device_id)[:32])


def query_body(cmd: QueryCmd, sn: int, device_id: str) -> bytes:
    """The body of a platform query (MESSAGE) for DeviceInfo, DeviceStatus or Catalog."""
    if cmd not in ("DeviceInfo", "DeviceStatus", "Catalog"):
        raise ManscdpError("unknown_cmd", repr(cmd)[:32])
    _check(sn, device_id)
    return _document("Query", [("CmdType", cmd), ("SN", str(sn)), ("DeviceID", device_id)])


def subscribe_position_body(sn: int, device_id: str, interval_s: int) -> bytes:
    """The body of the MobilePosition SUBSCRIBE (``Event: presence``): report every
    *interval_s* seconds (1..3600)."""
    _check(sn, device_id)
    if isinstance(interval_s, bool) or not isinstance(interval_s, int):
        raise ManscdpError("bad:Interval", repr(interval_s)[:24])
    if not 1 <= interval_s <= 3600:
        raise ManscdpError("bad:Interval", f"{interval_s} outside 1..3600")
    fields = [("CmdType", "MobilePosition"), ("SN", str(sn)), ("DeviceID", device_id)]
    return _document("Query", [*fields, ("Interval", str(interval_s))])
