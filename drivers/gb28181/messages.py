"""The typed MANSCDP messages ``parse_manscdp`` returns (frozen; times aware UTC; positions
WGS-84 degrees as the devices send them). Re-exported by ``drivers.gb28181.manscdp``."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from drivers.gb28181.fields import Power

__all__ = [
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
    "RootName",
]

RootName = Literal["Notify", "Response", "Query"]


@dataclass(frozen=True)
class Keepalive:
    sn: int
    device_id: str
    status: str | None  # "OK" normally; upper-cased


@dataclass(frozen=True)
class Position:
    device_id: str  # the item's (or TargetID's) id, else the sender's
    time: datetime  # aware UTC
    longitude: float  # WGS-84 degrees
    latitude: float
    speed_kmh: float | None = None
    direction_deg: float | None = None  # clockwise from north
    altitude_m: float | None = None


@dataclass(frozen=True)
class MobilePositions:
    device_id: str
    sn: int
    positions: tuple[Position, ...]  # empty when the cam had no fix


@dataclass(frozen=True)
class Alarm:
    device_id: str
    sn: int
    priority: int | None  # 1 (highest) .. 4
    method: int | None  # 1 phone, 2 device, 3 SMS, 4 GPS, 5 video, 6 fault, 7 other
    time: datetime | None
    description: str | None
    longitude: float | None
    latitude: float | None
    alarm_type: int | None  # from the root or from Info/AlarmType


@dataclass(frozen=True)
class DeviceInfo:
    device_id: str
    sn: int
    result: str | None
    name: str | None
    manufacturer: str | None
    model: str | None
    firmware: str | None
    channels: int | None
    power: Power
    extras: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class AlarmStatus:
    device_id: str
    duty_status: str  # ONDUTY, OFFDUTY, ALARM


@dataclass(frozen=True)
class DeviceStatus:
    device_id: str
    sn: int
    result: str | None  # OK | ERROR
    online: bool | None
    status: str | None  # OK | ERROR
    reason: str | None
    encode: str | None  # ON | OFF
    record: str | None  # ON | OFF
    device_time: datetime | None
    alarm_status: tuple[AlarmStatus, ...]
    power: Power
    extras: dict[str, str] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class CatalogItem:
    device_id: str
    name: str | None = None
    manufacturer: str | None = None
    model: str | None = None
    owner: str | None = None
    civil_code: str | None = None
    address: str | None = None
    parental: bool | None = None
    parent_id: str | None = None
    status: str | None = None  # ON | OFF (some send ONLINE | OFFLINE)
    longitude: float | None = None
    latitude: float | None = None


@dataclass(frozen=True)
class CatalogPart:
    device_id: str
    sn: int
    sum_num: int
    items: tuple[CatalogItem, ...]
    skipped: int = 0  # items without a usable DeviceID (counted as arrived)


@dataclass(frozen=True)
class QueryAnswerOther:
    root: RootName
    cmd_type: str
    sn: int
    device_id: str
    result: str | None


Manscdp = (
    Keepalive | MobilePositions | Alarm | DeviceInfo | DeviceStatus | CatalogPart | QueryAnswerOther
)
