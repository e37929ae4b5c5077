"""20-digit GB/T 28181 ids: shape enforced, fields decoded as information only."""

from __future__ import annotations

import pytest

from drivers.gb28181.ids import DeviceId, is_device_id, parse_device_id
from drivers.gb28181.xmlsafe import ManscdpError


def test_body_cam_of_the_town() -> None:
    d = parse_device_id("62072500081381000001")
    assert d == DeviceId(
        raw="62072500081381000001",
        area="62072500",
        industry="08",
        type_code="138",
        network="1",
        serial="000001",
    )
    assert d.province == "62"  # Gansu
    assert d.industry_name == "urban management"
    assert d.is_urban_management
    assert d.type_name == "mobile transmission device"
    assert d.network_name == "surveillance private network"
    assert str(d) == "62072500081381000001"


@pytest.mark.parametrize(
    ("code", "name"),
    [
        ("111", "DVR"),
        ("118", "NVR"),
        ("131", "camera"),
        ("132", "IPC"),
        ("137", "voice output"),
        ("200", "central signalling server"),
        ("215", "business group"),
        ("216", "virtual organisation"),
    ],
)
def test_type_names(code: str, name: str) -> None:
    assert parse_device_id(f"3401000000{code}0000001").type_name == name


def test_unusual_codes_are_accepted_without_names() -> None:
    d = parse_device_id("62072500995999000001")
    assert (d.industry, d.type_code, d.network) == ("99", "599", "9")
    assert (d.industry_name, d.type_name, d.network_name) == (None, None, None)
    assert not d.is_urban_management


def test_surrounding_whitespace_tolerated() -> None:
    assert parse_device_id(" 62072500081381000001\r\n").raw == "62072500081381000001"


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "6207250008138100000",  # 19
        "620725000813810000011",  # 21
        "6207250008138100000x",
        "62072500081381 00001",
        "٦٢٠٧٢٥٠٠٠٨١٣٨١٠٠٠٠٠١",  # Arabic-Indic digits: isdigit() but not ASCII
        "-2072500081381000001",
    ],
)
def test_bad_ids_refused(bad: str) -> None:
    with pytest.raises(ManscdpError) as err:
        parse_device_id(bad)
    assert err.value.reason == "bad_device_id"
    assert not is_device_id(bad)


def test_not_a_string() -> None:
    with pytest.raises(ManscdpError):
        parse_device_id(62072500081381000001)  # type: ignore[arg-type]
