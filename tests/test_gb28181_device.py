"""The bodies a simulated body cam sends read back by the platform's own parser exactly as
meant: local times in the town's zone, both position forms, alarm with its position, vendor
battery/storage, a Catalog split by SumNum and reassembled; GB2312 bytes (GB18030 when a
name needs it); the platform's queries read by the cam."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.device import (
    CatalogEntry,
    Fix,
    PowerReport,
    alarm_body,
    catalog_bodies,
    device_info_body,
    device_status_body,
    keepalive_body,
    local_stamp,
    mobile_position_body,
    mobile_position_list_body,
    parse_query,
)
from drivers.gb28181.manscdp import (
    Alarm,
    CatalogPart,
    DeviceInfo,
    DeviceStatus,
    Keepalive,
    MobilePositions,
    parse_manscdp,
    query_body,
    subscribe_position_body,
)
from drivers.gb28181.xmlsafe import ManscdpError

CAM = "62072500" + "08" + "138" + "0" + "000001"
SHANGHAI = ZoneInfo("Asia/Shanghai")
AT = datetime(2026, 12, 2, 6, 5, 9, tzinfo=UTC)  # 14:05:09 in Shandan


def test_keepalive_round_trip_and_declaration() -> None:
    body = keepalive_body(7, CAM)
    assert body.startswith(b'<?xml version="1.0" encoding="GB2312"?>')
    assert parse_manscdp(body) == Keepalive(7, CAM, "OK")


def test_flat_position_writes_local_time_without_zone() -> None:
    fix = Fix(AT, 101.083127, 38.784215, 4.5, 270.0, 1765)
    body = mobile_position_body(118, CAM, fix, SHANGHAI)
    assert b"<Time>2026-12-02T14:05:09</Time>" in body
    assert b"<DeviceList" not in body
    got = parse_manscdp(body, tz=SHANGHAI)
    assert isinstance(got, MobilePositions)
    (p,) = got.positions
    assert (p.device_id, p.time, p.longitude, p.latitude) == (CAM, AT, 101.083127, 38.784215)
    assert (p.speed_kmh, p.direction_deg, p.altitude_m) == (4.5, 270.0, 1765)


def test_list_position_form_with_capture_time() -> None:
    later = datetime(2026, 12, 2, 6, 5, 14, tzinfo=UTC)
    fixes = [(CAM, Fix(AT, 101.08, 38.78)), (CAM, Fix(later, 101.0801, 38.7801, 5.0, 90.0))]
    body = mobile_position_list_body(9, CAM, fixes, SHANGHAI)
    assert b"<SumNum>2</SumNum>" in body and b'<DeviceList Num="2">' in body
    assert b"<CaptureTime>2026-12-02T14:05:14</CaptureTime>" in body
    got = parse_manscdp(body, tz=SHANGHAI)
    assert isinstance(got, MobilePositions)
    assert [p.time for p in got.positions] == [AT, later]
    assert got.positions[1].direction_deg == 90.0


def test_alarm_with_type_under_info_and_position() -> None:
    fix = Fix(AT, 101.0812, 38.7799)
    body = alarm_body(
        3, CAM, time=AT, tz=SHANGHAI, priority=1, method=2, alarm_type=1,
        description="一键报警", fix=fix,
    )  # fmt: skip
    got = parse_manscdp(body, tz=SHANGHAI)
    assert got == Alarm(CAM, 3, 1, 2, AT, "一键报警", 101.0812, 38.7799, 1)


def test_device_info_and_status_carry_battery_and_storage() -> None:
    power = PowerReport(battery_percent=83, storage_total_mb=65536, storage_free_mb=40960)
    info = parse_manscdp(
        device_info_body(
            11, CAM, name="执法记录仪 1", manufacturer="citygate", model="BWC-sim",
            firmware="1.0", power=power,
        )
    )  # fmt: skip
    assert isinstance(info, DeviceInfo)
    assert (info.result, info.name, info.model, info.channels) == (
        "OK",
        "执法记录仪 1",
        "BWC-sim",
        1,
    )
    assert info.power.battery_percent == 83
    assert (info.power.storage_total_mb, info.power.storage_free_mb) == (65536, 40960)
    status = parse_manscdp(device_status_body(12, CAM, device_time=AT, tz=SHANGHAI, power=power))
    assert isinstance(status, DeviceStatus)
    assert (status.result, status.online, status.status, status.device_time) == (
        "OK", True, "OK", AT,
    )  # fmt: skip
    assert status.power.battery_percent == 83 and status.power.storage_free_mb == 40960


def test_catalog_split_by_sumnum_reassembles() -> None:
    entries = [
        CatalogEntry("62072500081310000001", "视频通道", "citygate", "BWC-sim", CAM),
        CatalogEntry("62072500081340000001", "报警输入", "citygate", "BWC-sim", CAM),
        CatalogEntry("62072500081370000001", "语音输出", "citygate", "BWC-sim", CAM),
    ]
    bodies = catalog_bodies(21, CAM, entries, per_part=2)
    assert len(bodies) == 2
    parts = [parse_manscdp(b) for b in bodies]
    assert all(isinstance(p, CatalogPart) and p.sum_num == 3 and p.sn == 21 for p in parts)
    asm = CatalogAssembler()
    done = [asm.add(p, 0.0) for p in parts if isinstance(p, CatalogPart)]
    complete = done[-1]
    assert complete is not None
    assert [i.device_id for i in complete.items] == [e.device_id for e in entries]
    assert catalog_bodies(22, CAM, [], per_part=5)[0].count(b"<SumNum>0</SumNum>") == 1


def test_name_outside_gb2312_declared_gb18030() -> None:
    body = device_info_body(1, CAM, name="朱镕基路", manufacturer="m", model="x", firmware="1")
    assert body.startswith(b'<?xml version="1.0" encoding="GB18030"?>')
    got = parse_manscdp(body)
    assert isinstance(got, DeviceInfo) and got.name == "朱镕基路"


def test_platform_queries_read_by_the_cam() -> None:
    q = parse_query(query_body("Catalog", 5, CAM))
    assert (q.cmd_type, q.sn, q.device_id, q.interval_s) == ("Catalog", 5, CAM, None)
    s = parse_query(subscribe_position_body(6, CAM, 5))
    assert (s.cmd_type, s.interval_s) == ("MobilePosition", 5)
    with pytest.raises(ManscdpError):
        parse_query(keepalive_body(1, CAM))


def test_bad_arguments_are_typed_errors() -> None:
    with pytest.raises(ManscdpError):
        keepalive_body(1, "123")
    with pytest.raises(ValueError, match="aware"):
        Fix(datetime(2026, 1, 1), 101.0, 38.0)
    with pytest.raises(ValueError, match="latitude"):
        Fix(AT, 101.0, 95.0)
    with pytest.raises(ManscdpError):
        alarm_body(1, CAM, time=AT, tz=SHANGHAI, priority=9)


@given(
    lon=st.floats(73, 135),
    lat=st.floats(18, 54),
    speed=st.floats(0, 200),
    direction=st.floats(0, 360),
    seconds=st.integers(0, 10**8),
)
def test_any_fix_round_trips_within_rounding(
    lon: float, lat: float, speed: float, direction: float, seconds: int
) -> None:
    at = datetime.fromtimestamp(1.7e9 + seconds, UTC)
    got = parse_manscdp(
        mobile_position_body(1, CAM, Fix(at, lon, lat, speed, direction), SHANGHAI), tz=SHANGHAI
    )
    assert isinstance(got, MobilePositions)
    (p,) = got.positions
    assert p.time == at
    assert abs(p.longitude - lon) <= 5e-7 and abs(p.latitude - lat) <= 5e-7
    assert (
        local_stamp(at, SHANGHAI)
        in mobile_position_body(1, CAM, Fix(at, lon, lat), SHANGHAI).decode()
    )
