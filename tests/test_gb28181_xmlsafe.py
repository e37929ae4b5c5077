"""The MANSCDP XML edge: bombs refused before parsing, sizes bounded, the encodings devices
really declare decoded, names matched in any case."""

from __future__ import annotations

import time

import pytest

from drivers.gb28181.xmlsafe import (
    ManscdpError,
    XmlLimits,
    child,
    decode_body,
    find,
    parse_xml,
    text,
)

BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol9 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
]>
<Notify><CmdType>Keepalive</CmdType><SN>&lol9;</SN></Notify>"""
EXTERNAL_ENTITY = b"""<?xml version="1.0" encoding="GB2312"?>
<!DOCTYPE Notify [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Notify><CmdType>Keepalive</CmdType><DeviceID>&xxe;</DeviceID></Notify>"""
PARAMETER_ENTITY = b"""<!doctype x [<!ENTITY % p SYSTEM "http://203.0.113.9/x.dtd"> %p;]><x/>"""
ENTITY_ONLY = b"<Notify><!ENTITY a 'b'></Notify>"


@pytest.mark.parametrize(
    "body",
    [BILLION_LAUGHS, EXTERNAL_ENTITY, PARAMETER_ENTITY, ENTITY_ONLY],
    ids=["billion_laughs", "external_entity", "parameter_entity", "bare_entity"],
)
def test_dtds_refused_before_parsing(body: bytes) -> None:
    t0 = time.perf_counter()
    with pytest.raises(ManscdpError) as err:
        parse_xml(body)
    assert err.value.reason == "dtd_refused"
    assert time.perf_counter() - t0 < 0.5  # no expansion attempted


def test_dtd_in_gb18030_text_still_seen() -> None:
    body = '<?xml version="1.0" encoding="GB18030"?><!DOCTYPE 通知 []><通知/>'.encode("gb18030")
    with pytest.raises(ManscdpError) as err:
        parse_xml(body)
    assert err.value.reason == "dtd_refused"


def test_undefined_entity_is_bad_xml() -> None:
    with pytest.raises(ManscdpError) as err:
        parse_xml(b"<Notify>&xxe;</Notify>")
    assert err.value.reason == "bad_xml"


def test_predefined_entities_and_char_refs_still_work() -> None:
    root = parse_xml(b"<Notify><Name>A&amp;B &#x5F20;</Name></Notify>")
    assert text(root, "Name") == "A&B 张"


def test_deep_nesting_stopped() -> None:
    body = b"<a>" * 100_000 + b"</a>" * 100_000
    with pytest.raises(ManscdpError) as err:
        parse_xml(body, limits=XmlLimits(max_bytes=10**6))
    assert err.value.reason == "too_deep"


def test_depth_within_limit_passes() -> None:
    body = b"<a>" * 16 + b"</a>" * 16
    assert parse_xml(body).tag == "a"
    with pytest.raises(ManscdpError):
        parse_xml(b"<a>" * 17 + b"</a>" * 17)


def test_oversize_refused_before_decoding() -> None:
    body = b"<Notify>" + b" " * 64 * 1024 + b"</Notify>"
    with pytest.raises(ManscdpError) as err:
        parse_xml(body)
    assert err.value.reason == "too_large"
    assert parse_xml(body, limits=XmlLimits(max_bytes=70_000)).tag == "Notify"


def test_element_count_bounded() -> None:
    body = b"<Response>" + b"<i/>" * 9000 + b"</Response>"
    with pytest.raises(ManscdpError) as err:
        parse_xml(body)
    assert err.value.reason == "too_many_elements"


def test_declared_gb2312_with_gb18030_only_chars() -> None:
    # 镕 is outside GB2312 (a GBK/GB18030 char); 𠀀 needs GB18030's four-byte form.
    xml = '<?xml version="1.0" encoding="GB2312"?><Notify><Name>朱镕 𠀀</Name></Notify>'
    body = xml.encode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        body.decode("gb2312")  # what a strict GB2312 decoder would do
    assert text(parse_xml(body), "Name") == "朱镕 𠀀"


@pytest.mark.parametrize("declared", ["GB2312", "gbk", "GB18030", "gb_2312-80", "CP936"])
def test_gb_family_all_decoded_as_gb18030(declared: str) -> None:
    body = f'<?xml version="1.0" encoding="{declared}"?><a>城管执法</a>'.encode("gb18030")
    assert parse_xml(body).text == "城管执法"


def test_header_charset_wins_and_declaration_is_stripped() -> None:
    body = '<?xml version="1.0" encoding="UTF-8"?><a>山丹县</a>'.encode("gb18030")
    assert parse_xml(body, "GB2312").text == "山丹县"
    assert parse_xml(body, 'application/MANSCDP+xml; charset="gbk"').text == "山丹县"


def test_utf8_declared_and_undeclared() -> None:
    assert parse_xml('<?xml version="1.0" encoding="UTF-8"?><a>张</a>'.encode()).text == "张"
    assert parse_xml("<a>张</a>".encode()).text == "张"
    assert parse_xml("<a>张</a>".encode("gbk")).text == "张"  # undeclared GBK firmware
    assert parse_xml("\ufeff<a>张</a>".encode()).text == "张"  # BOM


def test_undecodable_bytes() -> None:
    with pytest.raises(ManscdpError) as err:
        decode_body(b"<a>\xff\xff\x80</a>")
    assert err.value.reason == "bad_encoding"


def test_declaration_in_the_middle_is_bad_xml() -> None:
    with pytest.raises(ManscdpError) as err:
        parse_xml(b'<a/><?xml version="1.0"?>')
    assert err.value.reason == "bad_xml"


def test_names_in_any_case() -> None:
    root = parse_xml(
        b"<Notify><info><ALARMTYPE> 2 </ALARMTYPE></info><deviceid>x</deviceid></Notify>"
    )
    assert text(root, "DeviceID") == "x"
    assert text(child(root, "Info"), "AlarmType") == "2"
    assert find(root, "Info/AlarmType") is not None
    assert find(root, "Info/Missing") is None
    assert text(root, "Absent") is None


def test_text_is_bounded() -> None:
    root = parse_xml(b"<a><b>" + b"x" * 1000 + b"</b></a>")
    assert text(root, "b", limit=10) == "x" * 10
