"""MANSCDP, the XML of GB/T 28181 MESSAGE bodies: ``parse_manscdp`` (the general way, with
the Content-Type's charset) and ``quick_manscdp`` (the quick lane: ``None`` means "take the
general way", counted as the rejection ``general_way``)."""

from __future__ import annotations

from hypothesis import strategies as st

from drivers.gb28181.manscdp import CHINA, parse_manscdp
from drivers.gb28181.quick import quick_manscdp
from drivers.gb28181.xmlsafe import ManscdpError
from fuzz.core import Reasons, Target
from fuzz.mutate import BYTE_TOKENS, XML_TOKENS, hostile_bytes

CAM = "34020000001320000001"
_DECL = '<?xml version="1.0" encoding="GB2312"?>\r\n'
KEEPALIVE = (
    f"{_DECL}<Notify>\r\n<CmdType>Keepalive</CmdType>\r\n<SN>43</SN>\r\n"
    f"<DeviceID>{CAM}</DeviceID>\r\n<Status>OK</Status>\r\n</Notify>\r\n"
).encode("gb2312")
POSITION = (
    f"{_DECL}<Notify>\n<CmdType>MobilePosition</CmdType>\n<SN>5</SN>\n<DeviceID>{CAM}</DeviceID>\n"
    "<Time>2026-12-02T14:00:05</Time>\n<Longitude>101.0812</Longitude>\n"
    "<Latitude>38.7810</Latitude>\n<Speed>3.2</Speed>\n<Direction>90</Direction>\n"
    "<Altitude>1500</Altitude>\n</Notify>\n"
).encode()
POSITIONS = (
    f"<Notify><CmdType>MobilePosition</CmdType><SN>6</SN><DeviceID>{CAM}</DeviceID>"
    '<SumNum>2</SumNum><DeviceList Num="2">'
    f"<Item><TargetID>{CAM}</TargetID><CaptureTime>2026-12-02T14:00:05</CaptureTime>"
    "<Longitude>101.08</Longitude><Latitude>38.78</Latitude></Item>"
    "<Item><CaptureTime>2026-12-02T14:00:10</CaptureTime><Longitude>0</Longitude>"
    "<Latitude>0</Latitude></Item></DeviceList></Notify>"
).encode()
CATALOG = (
    f"{_DECL}<Response>\n<CmdType>Catalog</CmdType>\n<SN>7</SN>\n<DeviceID>{CAM}</DeviceID>\n"
    '<SumNum>2</SumNum>\n<DeviceList Num="1">\n'
    f"<Item><DeviceID>{CAM[:-1]}2</DeviceID><Name>执法记录仪-城管一中队</Name>"
    "<Manufacturer>海康威视</Manufacturer><Status>ON</Status><Longitude>101.1</Longitude>"
    "<Latitude>38.7</Latitude></Item>\n</DeviceList>\n</Response>\n"
).encode("gb2312")
ALARM = (
    f"<Notify><CmdType>Alarm</CmdType><SN>9</SN><DeviceID>{CAM}</DeviceID>"
    "<AlarmPriority>1</AlarmPriority><AlarmMethod>2</AlarmMethod>"
    "<AlarmTime>2026-12-02T14:00:05</AlarmTime><AlarmDescription>SOS</AlarmDescription>"
    "<Longitude>101.08</Longitude><Latitude>38.78</Latitude></Notify>"
).encode()
INFO = (
    f"<Response><CmdType>DeviceInfo</CmdType><SN>11</SN><DeviceID>{CAM}</DeviceID>"
    "<DeviceName>DSJ</DeviceName><Result>OK</Result><Manufacturer>Hikvision</Manufacturer>"
    "<Model>DSJ-A7</Model><Firmware>V5.5</Firmware></Response>"
).encode()
STATUS = (
    f"<Response><CmdType>DeviceStatus</CmdType><SN>12</SN><DeviceID>{CAM}</DeviceID>"
    "<Result>OK</Result><Online>ONLINE</Online><Status>OK</Status>"
    '<DeviceTime>2026-12-02T14:00:05</DeviceTime><Alarmstatus Num="0"></Alarmstatus>'
    "</Response>"
).encode()
OTHER = f"<Response><CmdType>RecordInfo</CmdType><SN>13</SN><DeviceID>{CAM}</DeviceID></Response>"
BODIES = [KEEPALIVE, POSITION, POSITIONS, CATALOG, ALARM, INFO, STATUS, OTHER.encode()]
CHARSETS = [None, None, "GB2312", "gbk", "UTF-8", "utf-16", "latin-1", "bogus", ""]

_bodies = hostile_bytes(BODIES, BYTE_TOKENS + XML_TOKENS)


def check_manscdp(case: tuple[bytes, str | None]) -> Reasons:
    body, charset = case
    try:
        parse_manscdp(body, charset, tz=CHINA)
    except ManscdpError as exc:
        return (exc.reason.split(":")[0],)  # "missing:SN" -> "missing", as the service counts
    return ()


def check_quick(body: bytes) -> Reasons:
    return ("general_way",) if quick_manscdp(body, CHINA) is None else ()


TARGETS = (
    Target(
        "gb28181.manscdp",
        "drivers.gb28181.manscdp.parse_manscdp",
        st.tuples(_bodies, st.sampled_from(CHARSETS) | st.text(max_size=12)),
        check_manscdp,
    ),
    Target("gb28181.quick", "drivers.gb28181.quick.quick_manscdp", _bodies, check_quick),
)
