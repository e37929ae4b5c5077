"""MANSCDP bodies as body cams send them (GB2312 bytes, Chinese names, tags in any case, both
position forms, vendor battery fields) into typed messages; bad numbers refused by reason;
query and subscription bodies that the cams can read."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from drivers.gb28181.manscdp import (
    XML_DECLARATION,
    Alarm,
    CatalogPart,
    DeviceInfo,
    DeviceStatus,
    Keepalive,
    MobilePositions,
    QueryAnswerOther,
    encode_manscdp,
    parse_manscdp,
    query_body,
    subscribe_position_body,
)
from drivers.gb28181.xmlsafe import ManscdpError, child, parse_xml, text

CAM = "62072500081381000001"  # 山丹县 (620725), urban management (08), type 138
CAM2 = "62072500081381000002"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def gb(xml: str, encoding: str = "GB2312") -> bytes:
    return f'<?xml version="1.0" encoding="{encoding}"?>\r\n{xml}'.encode("gb18030")


def at(h: int, m: int, s: int) -> datetime:
    """2026-12-02 local h:m:s in Shanghai, as UTC (8 hours earlier)."""
    return datetime(2026, 12, 2, h, m, s, tzinfo=SHANGHAI).astimezone(UTC)


KEEPALIVE = gb(
    f"<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n<DeviceID>{CAM}</DeviceID>\r\n"
    "<Status>OK</Status>\r\n<Info>\r\n</Info>\r\n</Notify>\r\n"
)
KEEPALIVE_LOWER = (
    f"<notify><cmdtype>Keepalive</cmdtype><sn> 7 </sn><deviceid>{CAM}</deviceid>"
    "<status>ok</status></notify>"
).encode()
POSITION_FLAT = gb(
    f"<Notify><CmdType>MobilePosition</CmdType><SN>118</SN><TargetID>{CAM}</TargetID>"
    "<Time>2026-12-02T14:05:09</Time><Longitude>101.083127</Longitude>"
    "<Latitude>38.784215</Latitude><Speed>4.5</Speed><Direction>270.0</Direction>"
    "<Altitude>1765</Altitude></Notify>"
)
POSITION_LIST = gb(
    f"<Notify><CmdType>MobilePosition</CmdType><SN>9</SN><DeviceID>{CAM}</DeviceID>"
    '<SumNum>2</SumNum><DeviceList Num="2">'
    f"<Item><DeviceID>{CAM}</DeviceID><CaptureTime>2026-12-02 14:05:09</CaptureTime>"
    "<Longitude>101.0831</Longitude><Latitude>38.7842</Latitude><Speed>0</Speed>"
    "<Direction>0</Direction><Altitude>1765.5</Altitude></Item>"
    f"<item><deviceid>{CAM2}</deviceid><capturetime>2026-12-02 14:05:10.250</capturetime>"
    "<longitude>101.0790</longitude><latitude>38.7801</latitude></item>"
    "</DeviceList></Notify>"
)
POSITION_NO_FIX = gb(
    f"<Notify><CmdType>MobilePosition</CmdType><SN>10</SN><DeviceID>{CAM}</DeviceID>"
    "<Time>2026-12-02T14:05:09</Time><Longitude>0.0</Longitude><Latitude>0.0</Latitude>"
    "</Notify>"
)
ALARM_INFO = gb(
    f"<Notify><CmdType>Alarm</CmdType><SN>301</SN><DeviceID>{CAM}</DeviceID>"
    "<AlarmPriority>1</AlarmPriority><AlarmMethod>2</AlarmMethod>"
    "<AlarmTime>2026-12-02T21:30:00</AlarmTime><AlarmDescription>一键报警：文化街早市"
    "</AlarmDescription><Longitude>101.0862</Longitude><Latitude>38.7855</Latitude>"
    "<Info><AlarmType>1</AlarmType><AlarmTypeParam><EventType>1</EventType>"
    "</AlarmTypeParam></Info></Notify>"
)
ALARM_ROOT = gb(
    f"<Notify><CmdType>Alarm</CmdType><SN>302</SN><DeviceID>{CAM}</DeviceID>"
    "<AlarmPriority>2</AlarmPriority><AlarmMethod>5</AlarmMethod><AlarmType>2</AlarmType>"
    "<AlarmTime>2026-12-02T08:00:01</AlarmTime><Longitude>0</Longitude><Latitude>0</Latitude>"
    "</Notify>"
)
DEVICE_INFO = gb(
    f"<Response><CmdType>DeviceInfo</CmdType><SN>17430</SN><DeviceID>{CAM}</DeviceID>"
    "<DeviceName>执法记录仪-张伟</DeviceName><Result>OK</Result>"
    "<Manufacturer>Hikvision</Manufacturer><Model>DS-MH2311</Model>"
    "<Firmware>V2.1.0 build 210521</Firmware><Channel>1</Channel>"
    "<BatteryLevel>87</BatteryLevel><ImeiCode>861234567890123</ImeiCode></Response>"
)
DEVICE_STATUS = gb(
    f"<Response><CmdType>DeviceStatus</CmdType><SN>17431</SN><DeviceID>{CAM}</DeviceID>"
    "<Result>OK</Result><Online>ONLINE</Online><Status>OK</Status><Encode>ON</Encode>"
    "<Record>OFF</Record><DeviceTime>2026-12-02T14:05:09</DeviceTime>"
    f'<Alarmstatus Num="1"><Item><DeviceID>{CAM}</DeviceID><DutyStatus>OFFDUTY</DutyStatus>'
    "</Item></Alarmstatus><Battery>76</Battery><StorageCapacity>64GB</StorageCapacity>"
    "<FreeSpace>20480</FreeSpace><SDCard>ok</SDCard><Temperature>31</Temperature></Response>"
)
DEVICE_STATUS_VENDOR = gb(  # another firmware: lower case, percent sign, nested vendor block
    f"<response><cmdtype>DeviceStatus</cmdtype><sn>5</sn><deviceid>{CAM}</deviceid>"
    "<result>ok</result><online>offline</online><status>ERROR</status>"
    "<reason>存储卡异常</reason><VendorInfo><Power>45%</Power>"
    "<TotalSpace>32 G</TotalSpace><RemainSpace>1.5GB</RemainSpace>"
    "<StorageStatus>ERROR</StorageStatus></VendorInfo></response>"
)
CATALOG = gb(
    f"<Response><CmdType>Catalog</CmdType><SN>17432</SN><DeviceID>{CAM}</DeviceID>"
    '<SumNum>2</SumNum><DeviceList Num="2">'
    f"<Item><DeviceID>{CAM}</DeviceID><Name>城管一中队执法记录仪01</Name>"
    "<Manufacturer>Hikvision</Manufacturer><Model>DS-MH2311</Model><Owner>Owner</Owner>"
    "<CivilCode>620725</CivilCode><Address>山丹县清泉镇</Address><Parental>0</Parental>"
    "<ParentID>62072500082001000001</ParentID><SafetyWay>0</SafetyWay>"
    "<RegisterWay>1</RegisterWay><Secrecy>0</Secrecy><Status>ON</Status>"
    "<Longitude>101.0831</Longitude><Latitude>38.7842</Latitude></Item>"
    "<Item><DeviceID>62072500081321000001</DeviceID><Name>镕-音频通道</Name>"
    "<Status>OFF</Status><Longitude>0</Longitude><Latitude>0</Latitude></Item>"
    "<Item><Name>no id</Name></Item>"
    "</DeviceList></Response>",
    encoding="GB18030",
)
CONTROL_ANSWER = gb(
    f"<Response><CmdType>DeviceControl</CmdType><SN>12</SN><DeviceID>{CAM}</DeviceID>"
    "<Result>OK</Result></Response>"
)


def test_keepalive() -> None:
    assert parse_manscdp(KEEPALIVE) == Keepalive(43, CAM, "OK")
    assert parse_manscdp(KEEPALIVE_LOWER) == Keepalive(7, CAM, "OK")


def test_flat_position_local_time_to_utc() -> None:
    m = parse_manscdp(POSITION_FLAT, "GB2312", tz=SHANGHAI)
    assert isinstance(m, MobilePositions)
    assert (m.device_id, m.sn) == (CAM, 118)
    (p,) = m.positions
    assert p.time == datetime(2026, 12, 2, 6, 5, 9, tzinfo=UTC)
    assert (p.longitude, p.latitude) == (101.083127, 38.784215)
    assert (p.speed_kmh, p.direction_deg, p.altitude_m) == (4.5, 270.0, 1765.0)


def test_the_zone_passed_is_the_one_used() -> None:
    m = parse_manscdp(POSITION_FLAT, tz=UTC)
    assert isinstance(m, MobilePositions)
    assert m.positions[0].time == datetime(2026, 12, 2, 14, 5, 9, tzinfo=UTC)


def test_list_position_form() -> None:
    m = parse_manscdp(POSITION_LIST)
    assert isinstance(m, MobilePositions)
    assert [p.device_id for p in m.positions] == [CAM, CAM2]
    assert m.positions[0].time == at(14, 5, 9)
    assert m.positions[1].time == at(14, 5, 10).replace(microsecond=250_000)
    assert m.positions[1].speed_kmh is None
    assert m.positions[0].altitude_m == 1765.5


def test_no_fix_is_no_position() -> None:
    m = parse_manscdp(POSITION_NO_FIX)
    assert isinstance(m, MobilePositions)
    assert m.positions == ()


def test_alarm_type_under_info() -> None:
    a = parse_manscdp(ALARM_INFO)
    assert a == Alarm(
        device_id=CAM,
        sn=301,
        priority=1,
        method=2,
        time=at(21, 30, 0),
        description="一键报警：文化街早市",
        longitude=101.0862,
        latitude=38.7855,
        alarm_type=1,
    )


def test_alarm_type_at_root_without_fix() -> None:
    a = parse_manscdp(ALARM_ROOT)
    assert isinstance(a, Alarm)
    assert (a.alarm_type, a.priority, a.method) == (2, 2, 5)
    assert (a.longitude, a.latitude) == (None, None)
    assert a.time == at(8, 0, 1)


def test_device_info_with_chinese_name_and_battery() -> None:
    i = parse_manscdp(DEVICE_INFO)
    assert isinstance(i, DeviceInfo)
    assert i.name == "执法记录仪-张伟"
    assert (i.manufacturer, i.model, i.firmware, i.channels) == (
        "Hikvision",
        "DS-MH2311",
        "V2.1.0 build 210521",
        1,
    )
    assert i.power.battery_percent == 87
    assert i.extras == {"batterylevel": "87", "imeicode": "861234567890123"}  # raw, bounded


def test_device_status_with_vendor_fields() -> None:
    s = parse_manscdp(DEVICE_STATUS)
    assert isinstance(s, DeviceStatus)
    assert (s.result, s.online, s.status, s.encode, s.record) == ("OK", True, "OK", "ON", "OFF")
    assert s.device_time == at(14, 5, 9)
    assert [(a.device_id, a.duty_status) for a in s.alarm_status] == [(CAM, "OFFDUTY")]
    assert s.power.battery_percent == 76
    assert s.power.storage_total_mb == 64 * 1024
    assert s.power.storage_free_mb == 20480
    assert s.power.storage_status == "OK"
    assert s.extras["temperature"] == "31"


def test_device_status_other_vendor_layout() -> None:
    s = parse_manscdp(DEVICE_STATUS_VENDOR)
    assert isinstance(s, DeviceStatus)
    assert (s.online, s.status, s.reason) == (False, "ERROR", "存储卡异常")
    assert s.power.battery_percent == 45
    assert s.power.storage_total_mb == 32 * 1024
    assert s.power.storage_free_mb == 1.5 * 1024
    assert s.power.storage_status == "ERROR"


def test_device_status_absurd_battery_is_left_out_not_refused() -> None:
    body = DEVICE_STATUS.replace(b"<Battery>76</Battery>", b"<Battery>250</Battery>")
    s = parse_manscdp(body)
    assert isinstance(s, DeviceStatus)
    assert s.power.battery_percent is None
    assert s.extras["battery"] == "250"  # kept raw for diagnosis


def test_catalog_part() -> None:
    c = parse_manscdp(CATALOG, "GB18030")
    assert isinstance(c, CatalogPart)
    assert (c.device_id, c.sn, c.sum_num, c.skipped) == (CAM, 17432, 2, 1)
    first, second = c.items
    assert first.name == "城管一中队执法记录仪01"
    assert first.address == "山丹县清泉镇"
    assert (first.parent_id, first.parental, first.status) == (
        "62072500082001000001",
        False,
        "ON",
    )
    assert (first.longitude, first.latitude) == (101.0831, 38.7842)
    assert second.name == "镕-音频通道"
    assert (second.status, second.longitude) == ("OFF", None)


def test_other_answers_are_typed_for_sn_matching() -> None:
    assert parse_manscdp(CONTROL_ANSWER) == QueryAnswerOther(
        "Response", "DeviceControl", 12, CAM, "OK"
    )


def _swap(body: bytes, old: str, new: str) -> bytes:
    assert old.encode() in body, old
    return body.replace(old.encode(), new.encode(), 1)


BAD = [
    ("no device id", _swap(KEEPALIVE, f"<DeviceID>{CAM}</DeviceID>", ""), "missing:DeviceID"),
    ("short id", _swap(KEEPALIVE, CAM, "1234"), "bad_device_id"),
    ("no sn", _swap(KEEPALIVE, "<SN>43</SN>", ""), "missing:SN"),
    ("negative sn", _swap(KEEPALIVE, "<SN>43</SN>", "<SN>-1</SN>"), "bad:SN"),
    ("no cmdtype", _swap(KEEPALIVE, "<CmdType>Keepalive</CmdType>", ""), "missing:CmdType"),
    ("unknown notify", _swap(KEEPALIVE, "Keepalive", "MediaStatus"), "unknown_cmd"),
    ("unknown root", KEEPALIVE.replace(b"Notify>", b"Bogus>"), "unknown_root"),
    ("latitude > 90", _swap(POSITION_FLAT, "38.784215", "91.5"), "bad:Latitude"),
    ("longitude NaN", _swap(POSITION_FLAT, "101.083127", "NaN"), "bad:Longitude"),
    ("longitude inf", _swap(POSITION_FLAT, "101.083127", "inf"), "bad:Longitude"),
    ("longitude text", _swap(POSITION_FLAT, "101.083127", "E101"), "bad:Longitude"),
    ("negative speed", _swap(POSITION_FLAT, "<Speed>4.5", "<Speed>-3"), "bad:Speed"),
    ("direction 400", _swap(POSITION_FLAT, "270.0", "400"), "bad:Direction"),
    ("no latitude", _swap(POSITION_FLAT, "<Latitude>38.784215</Latitude>", ""), "missing:Latitude"),
    ("bad time", _swap(POSITION_FLAT, "2026-12-02T14:05:09", "yesterday"), "bad:Time"),
    ("time 1970", _swap(POSITION_FLAT, "2026-12-02T14:05:09", "1970-01-01T08:00:00"), "bad:Time"),
    ("list item latitude", _swap(POSITION_LIST, "38.7801", "-95"), "bad:Latitude"),
    ("alarm priority 9", _swap(ALARM_INFO, "Priority>1", "Priority>9"), "bad:AlarmPriority"),
    ("alarm priority +-1", _swap(ALARM_INFO, "Priority>1", "Priority>+-1"), "bad:AlarmPriority"),
    ("channel huge", _swap(DEVICE_INFO, "<Channel>1", "<Channel>1" + "0" * 20), "bad:Channel"),
    ("online maybe", _swap(DEVICE_STATUS, "<Online>ONLINE", "<Online>MAYBE"), "bad:Online"),
    ("catalog no sum", _swap(CATALOG, "<SumNum>2</SumNum>", ""), "missing:SumNum"),
    ("not xml", b"\x00\x01garbage", "bad_xml"),
]  # fmt: skip


@pytest.mark.parametrize(("body", "reason"), [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_refused_with_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ManscdpError) as err:
        parse_manscdp(body)
    assert err.value.reason == reason


@pytest.mark.parametrize("cmd", ["DeviceInfo", "DeviceStatus", "Catalog"])
def test_query_body(cmd: str) -> None:
    body = query_body(cmd, 17430, CAM)  # type: ignore[arg-type]
    assert body.startswith(XML_DECLARATION.encode() + b"\r\n")
    assert XML_DECLARATION == '<?xml version="1.0" encoding="GB2312"?>'
    root = parse_xml(body)
    assert root.tag == "Query"
    assert (text(root, "CmdType"), text(root, "SN"), text(root, "DeviceID")) == (
        cmd,
        "17430",
        CAM,
    )


def test_subscribe_position_body() -> None:
    root = parse_xml(subscribe_position_body(3, CAM, 5))
    assert (root.tag, text(root, "CmdType"), text(root, "Interval")) == (
        "Query",
        "MobilePosition",
        "5",
    )
    assert child(root, "DeviceID") is not None


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda: query_body("Reboot", 1, CAM), "unknown_cmd"),  # type: ignore[arg-type]
        (lambda: query_body("Catalog", -1, CAM), "bad:SN"),
        (lambda: query_body("Catalog", 1, "12345"), "bad_device_id"),
        (lambda: subscribe_position_body(1, CAM, 0), "bad:Interval"),
        (lambda: subscribe_position_body(1, CAM, 86400), "bad:Interval"),
    ],
)
def test_builders_refuse_bad_arguments(call: object, reason: str) -> None:
    with pytest.raises(ManscdpError) as err:
        call()  # type: ignore[operator]
    assert err.value.reason == reason


def test_encode_falls_back_to_gb18030_and_says_so() -> None:
    plain = encode_manscdp("<Notify><Name>张伟</Name></Notify>")
    assert b'encoding="GB2312"' in plain
    assert "张伟".encode("gb2312") in plain
    rare = encode_manscdp("<Notify><Name>朱镕</Name></Notify>")  # 镕 is not in GB2312
    assert b'encoding="GB18030"' in rare
    assert text(parse_xml(rare), "Name") == "朱镕"
