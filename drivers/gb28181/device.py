"""MANSCDP bodies as a body cam writes them, and the platform's queries as a cam reads them.

The device side of :mod:`drivers.gb28181.manscdp` (which is the platform side): Keepalive,
MobilePosition in the 2016 flat form and the vendors' list form, Alarm, and the answers to
DeviceInfo, DeviceStatus and Catalog (split into parts that each repeat ``SumNum``). Bodies
are bytes declared GB2312, or GB18030 when a name needs it (``encode_manscdp``). Times are
written as devices write them: local wall time without a zone, in the zone passed. Battery
and storage use the vendor names ``manscdp`` reads first (``Battery``, ``Storage`` as the
total, ``FreeSpace``; sizes in MB). Pure: no I/O, no clock (times are arguments).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from xml.sax.saxutils import escape

from drivers.gb28181.fields import integer, sn_of
from drivers.gb28181.ids import is_device_id
from drivers.gb28181.manscdp import encode_manscdp
from drivers.gb28181.xmlsafe import ManscdpError, local, parse_xml, text

__all__ = [
    "CatalogEntry",
    "DeviceQuery",
    "Fix",
    "PowerReport",
    "alarm_body",
    "catalog_bodies",
    "device_info_body",
    "device_status_body",
    "keepalive_body",
    "local_stamp",
    "mobile_position_body",
    "mobile_position_list_body",
    "parse_query",
]

MAX_CATALOG_PART = 64  # items per MESSAGE; vendors send 1..20 to stay under the UDP MTU
_Field = tuple[str, "str | list[_Field]"]


@dataclass(frozen=True)
class Fix:
    """One GPS fix as the cam has it: WGS-84 degrees, an aware time."""

    time: datetime
    longitude: float
    latitude: float
    speed_kmh: float = 0.0
    direction_deg: float = 0.0  # clockwise from north, 0..360
    altitude_m: float = 0.0

    def __post_init__(self) -> None:
        if self.time.utcoffset() is None:
            raise ValueError("a fix's time must be timezone-aware")
        for name, v, lo, hi in (
            ("longitude", self.longitude, -180.0, 180.0),
            ("latitude", self.latitude, -90.0, 90.0),
            ("speed_kmh", self.speed_kmh, 0.0, 1000.0),
            ("direction_deg", self.direction_deg, 0.0, 360.0),
            ("altitude_m", self.altitude_m, -1000.0, 20000.0),
        ):
            if not (math.isfinite(v) and lo <= v <= hi):
                raise ValueError(f"{name} {v} outside {lo}..{hi}")


@dataclass(frozen=True)
class PowerReport:
    """The vendor fields a cam adds to DeviceInfo / DeviceStatus (None: not sent)."""

    battery_percent: int | None = None
    storage_total_mb: float | None = None
    storage_free_mb: float | None = None


@dataclass(frozen=True)
class CatalogEntry:
    """One channel of the cam's catalog (a body cam has a video channel, often an alarm in)."""

    device_id: str
    name: str
    manufacturer: str = ""
    model: str = ""
    parent_id: str = ""
    status: str = "ON"
    longitude: float | None = None
    latitude: float | None = None


@dataclass(frozen=True)
class DeviceQuery:
    """A platform's ``<Query>`` as the cam reads it (MESSAGE or SUBSCRIBE body)."""

    cmd_type: str  # as sent (DeviceInfo, DeviceStatus, Catalog, MobilePosition, ...)
    sn: int
    device_id: str
    interval_s: int | None = None  # MobilePosition subscriptions: the report interval


def local_stamp(at: datetime, tz: tzinfo) -> str:
    """``2026-12-02T14:05:09``: *at* as wall time in *tz*, without a zone (GB/T 28181)."""
    if at.utcoffset() is None:
        raise ValueError("time must be timezone-aware")
    return at.astimezone(tz).strftime("%Y-%m-%dT%H:%M:%S")


def _check(sn: int, device_id: str) -> None:
    if isinstance(sn, bool) or not isinstance(sn, int) or not 0 <= sn <= 10**18:
        raise ManscdpError("bad:SN", repr(sn)[:24])
    if not isinstance(device_id, str) or not is_device_id(device_id):
        raise ManscdpError("bad_device_id", repr(device_id)[:32])


def _xml(fields: Sequence[_Field]) -> str:
    out: list[str] = []
    for name, value in fields:
        if isinstance(value, list):
            tag = name.partition(" ")[0]
            out.append(f"<{name}>\r\n{_xml(value)}</{tag}>\r\n")
        else:
            out.append(f"<{name}>{escape(value)}</{name}>\r\n")
    return "".join(out)


def _document(root: str, fields: Sequence[_Field]) -> bytes:
    return encode_manscdp(f"<{root}>\r\n{_xml(fields)}</{root}>\r\n")


def _num(v: float, places: int) -> str:
    return f"{v:.{places}f}"


def _fix_fields(fix: Fix, tz: tzinfo, time_name: str) -> list[_Field]:
    return [
        (time_name, local_stamp(fix.time, tz)),
        ("Longitude", _num(fix.longitude, 6)),
        ("Latitude", _num(fix.latitude, 6)),
        ("Speed", _num(fix.speed_kmh, 1)),
        ("Direction", _num(fix.direction_deg, 1)),
        ("Altitude", _num(fix.altitude_m, 0)),
    ]


def _head(sn: int, device_id: str, cmd: str) -> list[_Field]:
    _check(sn, device_id)
    return [("CmdType", cmd), ("SN", str(sn)), ("DeviceID", device_id)]


def keepalive_body(sn: int, device_id: str, *, status: str = "OK") -> bytes:
    return _document("Notify", [*_head(sn, device_id, "Keepalive"), ("Status", status)])


def mobile_position_body(sn: int, device_id: str, fix: Fix, tz: tzinfo) -> bytes:
    """The 2016 flat form: the fix's fields at the root, ``Time`` local without a zone."""
    return _document(
        "Notify", [*_head(sn, device_id, "MobilePosition"), *_fix_fields(fix, tz, "Time")]
    )


def mobile_position_list_body(
    sn: int, device_id: str, fixes: Sequence[tuple[str, Fix]], tz: tzinfo
) -> bytes:
    """The vendors' list form: ``SumNum`` and ``DeviceList/Item`` with ``CaptureTime``, one
    item per (channel or target id, fix)."""
    items: list[_Field] = []
    for target, fix in fixes:
        if not is_device_id(target):
            raise ManscdpError("bad_device_id", repr(target)[:32])
        items.append(("Item", [("DeviceID", target), *_fix_fields(fix, tz, "CaptureTime")]))
    return _document(
        "Notify",
        [
            *_head(sn, device_id, "MobilePosition"),
            ("SumNum", str(len(fixes))),
            (f'DeviceList Num="{len(fixes)}"', items),
        ],
    )


def alarm_body(
    sn: int,
    device_id: str,
    *,
    time: datetime,
    tz: tzinfo,
    priority: int = 1,
    method: int = 2,
    alarm_type: int | None = None,
    description: str = "",
    fix: Fix | None = None,
) -> bytes:
    """An Alarm Notify: priority 1 (highest)..4, method 1..7 (2 = the device's own button),
    the alarm type under ``Info`` as the 2016 edition places it, the position if the cam has a
    fix."""
    if not 1 <= priority <= 4 or not 1 <= method <= 7:
        raise ManscdpError("bad:AlarmPriority", f"{priority}/{method}")
    fields: list[_Field] = [
        *_head(sn, device_id, "Alarm"),
        ("AlarmPriority", str(priority)),
        ("AlarmMethod", str(method)),
        ("AlarmTime", local_stamp(time, tz)),
    ]
    if description:
        fields.append(("AlarmDescription", description))
    if fix is not None:
        fields += [("Longitude", _num(fix.longitude, 6)), ("Latitude", _num(fix.latitude, 6))]
    if alarm_type is not None:
        fields.append(("Info", [("AlarmType", str(alarm_type))]))
    return _document("Notify", fields)


def _power(p: PowerReport) -> list[_Field]:
    out: list[_Field] = []
    if p.battery_percent is not None:
        if not 0 <= p.battery_percent <= 100:
            raise ManscdpError("bad:Battery", str(p.battery_percent))
        out.append(("Battery", str(p.battery_percent)))
    if p.storage_total_mb is not None:
        out.append(("Storage", _num(p.storage_total_mb, 0)))
    if p.storage_free_mb is not None:
        out.append(("FreeSpace", _num(p.storage_free_mb, 0)))
    return out


def device_info_body(
    sn: int,
    device_id: str,
    *,
    name: str,
    manufacturer: str,
    model: str,
    firmware: str,
    channels: int = 1,
    power: PowerReport = PowerReport(),
) -> bytes:
    return _document(
        "Response",
        [
            *_head(sn, device_id, "DeviceInfo"),
            ("DeviceName", name),
            ("Result", "OK"),
            ("Manufacturer", manufacturer),
            ("Model", model),
            ("Firmware", firmware),
            ("Channel", str(channels)),
            *_power(power),
        ],
    )


def device_status_body(
    sn: int,
    device_id: str,
    *,
    device_time: datetime,
    tz: tzinfo,
    online: bool = True,
    ok: bool = True,
    recording: bool = False,
    power: PowerReport = PowerReport(),
) -> bytes:
    return _document(
        "Response",
        [
            *_head(sn, device_id, "DeviceStatus"),
            ("Result", "OK"),
            ("Online", "ONLINE" if online else "OFFLINE"),
            ("Status", "OK" if ok else "ERROR"),
            ("Encode", "ON"),
            ("Record", "ON" if recording else "OFF"),
            ("DeviceTime", local_stamp(device_time, tz)),
            ('Alarmstatus Num="0"', []),
            *_power(power),
        ],
    )


def _catalog_item(e: CatalogEntry) -> _Field:
    if not is_device_id(e.device_id):
        raise ManscdpError("bad_device_id", repr(e.device_id)[:32])
    fields: list[_Field] = [
        ("DeviceID", e.device_id),
        ("Name", e.name),
        ("Manufacturer", e.manufacturer),
        ("Model", e.model),
        ("Owner", "0"),
        ("CivilCode", e.device_id[:6]),
        ("Parental", "0"),
        ("ParentID", e.parent_id),
        ("SafetyWay", "0"),
        ("RegisterWay", "1"),
        ("Secrecy", "0"),
        ("Status", e.status),
    ]
    if e.longitude is not None and e.latitude is not None:
        fields += [("Longitude", _num(e.longitude, 6)), ("Latitude", _num(e.latitude, 6))]
    return ("Item", fields)


def catalog_bodies(
    sn: int, device_id: str, entries: Sequence[CatalogEntry], *, per_part: int = 1
) -> list[bytes]:
    """The Catalog answer as ``ceil(n / per_part)`` MESSAGE bodies, each with the same SN and
    ``SumNum`` = n (how the platform knows when it has them all); one body when n is 0."""
    if not 1 <= per_part <= MAX_CATALOG_PART:
        raise ValueError(f"per_part {per_part} outside 1..{MAX_CATALOG_PART}")
    head = [*_head(sn, device_id, "Catalog"), ("SumNum", str(len(entries)))]
    parts = [entries[i : i + per_part] for i in range(0, len(entries), per_part)] or [[]]
    return [
        _document(
            "Response",
            [*head, (f'DeviceList Num="{len(part)}"', [_catalog_item(e) for e in part])],
        )
        for part in parts
    ]


def parse_query(body: bytes, charset: str | None = None) -> DeviceQuery:
    """A platform ``<Query>`` body, as the cam must read it; ``ManscdpError`` otherwise."""
    root = parse_xml(body, charset)
    if local(root.tag) != "query":
        raise ManscdpError("not_a_query", local(root.tag)[:32])
    cmd = text(root, "CmdType", limit=40)
    if cmd is None:
        raise ManscdpError("missing:CmdType")
    sn = sn_of(root)
    dev = text(root, "DeviceID", limit=40)
    if dev is None or not is_device_id(dev):
        raise ManscdpError("bad_device_id", repr(dev)[:32])
    return DeviceQuery(cmd, sn, dev, integer(root, "Interval", 1, 3600))
