"""Fuzzed MANSCDP: random bytes, mutated real bodies and random documents built from the
real vocabulary only ever give a typed message or a ``ManscdpError`` with a reason; the
Catalog assembler fed from them likewise."""

from __future__ import annotations

from datetime import UTC

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.gb28181.catalog import CatalogAssembler
from drivers.gb28181.manscdp import CatalogPart, parse_manscdp
from drivers.gb28181.xmlsafe import ManscdpError
from tests.test_gb28181_manscdp import (
    ALARM_INFO,
    ALARM_ROOT,
    CATALOG,
    CONTROL_ANSWER,
    DEVICE_INFO,
    DEVICE_STATUS,
    DEVICE_STATUS_VENDOR,
    KEEPALIVE,
    KEEPALIVE_LOWER,
    POSITION_FLAT,
    POSITION_LIST,
)

CORPUS = [
    KEEPALIVE,
    KEEPALIVE_LOWER,
    POSITION_FLAT,
    POSITION_LIST,
    ALARM_INFO,
    ALARM_ROOT,
    DEVICE_INFO,
    DEVICE_STATUS,
    DEVICE_STATUS_VENDOR,
    CATALOG,
    CONTROL_ANSWER,
]
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CHARSETS = st.sampled_from([None, "GB2312", "gbk", "GB18030", "UTF-8", "latin-1", "x-bogus", ""])


def parse_or_reason(body: bytes, charset: str | None = None) -> object:
    """The message, or the ManscdpError (anything else escapes and fails the test)."""
    try:
        out: object = parse_manscdp(body, charset, tz=UTC)
    except ManscdpError as e:
        out = e
    if isinstance(out, ManscdpError):
        assert out.reason and len(out.reason) < 40
    return out


@FAST
@given(st.binary(max_size=2048), CHARSETS)
def test_random_bytes(body: bytes, charset: str | None) -> None:
    parse_or_reason(body, charset)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    body = bytearray(draw(st.sampled_from(CORPUS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup", "token"]))
        i = draw(st.integers(0, max(len(body) - 1, 0)))
        if op == "flip" and body:
            body[i] = draw(st.integers(0, 255))
        elif op == "insert":
            body[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del body[i : i + draw(st.integers(1, 16))]
        elif op == "truncate":
            del body[i:]
        elif op == "dup":
            j = draw(st.integers(i, min(len(body), i + 200)))
            body[j:j] = body[i:j]
        else:
            token = draw(
                st.sampled_from(
                    [b"NaN", b"-1e309", b"<!DOCTYPE x>", b"&amp;", b"&x;", b"]]>", b"\x00",
                     b"<Item>", b"</DeviceList>", b"99999999999999999999", b"\xfe\xff", b"%", b"+-"]
                )
            )  # fmt: skip
            body[i:i] = token
    return bytes(body)


@FAST
@given(mutated(), CHARSETS)
def test_mutated_real_bodies(body: bytes, charset: str | None) -> None:
    parse_or_reason(body, charset)


NAMES = ["CmdType", "SN", "DeviceID", "TargetID", "Time", "CaptureTime", "Longitude"]
NAMES += ["Latitude", "Speed", "Direction", "Altitude", "SumNum", "DeviceList", "Item", "Info"]
NAMES += ["AlarmType", "AlarmTime", "AlarmPriority", "AlarmMethod", "Online", "Result"]
NAMES += ["Status", "DeviceTime", "Alarmstatus", "DutyStatus", "Battery", "Power", "FreeSpace"]
NAMES += ["StorageCapacity", "Channel", "Parental", "Name"]
VALUES = st.one_of(
    st.sampled_from(
        ["Keepalive", "MobilePosition", "Alarm", "DeviceInfo", "DeviceStatus", "Catalog",
         "62072500081381000001", "2026-12-02T14:05:09", "0", "-0", "1e400", "nan", "ONLINE",
         "38.78", "101.08", "64GB", "120%", "", " "]
    ),
    st.integers(-(10**20), 10**20).map(str),
    st.floats(allow_nan=True).map(str),
    st.text(max_size=12),
)  # fmt: skip


def _escape(s: str) -> str:
    s = "".join(c for c in s if c in "\t\n\r" or (ord(c) >= 0x20 and not 0xD800 <= ord(c) < 0xE000))
    return s.replace("&", "&amp;").replace("<", "&lt;")


docs = st.recursive(
    VALUES.map(_escape),
    lambda inner: st.lists(
        st.tuples(st.sampled_from(NAMES).map(lambda n: n if n[0] != "S" else n.lower()), inner),
        max_size=6,
    ).map(lambda kids: "".join(f"<{n}>{v}</{n}>" for n, v in kids)),
    max_leaves=30,
)


@FAST
@given(st.sampled_from(["Notify", "Response", "Query", "response"]), docs)
def test_random_documents_of_the_vocabulary(root: str, inner: str) -> None:
    body = f'<?xml version="1.0" encoding="GB2312"?><{root}>{inner}</{root}>'
    parse_or_reason(body.encode("gb18030"))


@settings(max_examples=100, deadline=None)
@given(st.lists(mutated(), max_size=12))
def test_assembler_fed_fuzzed_parts(bodies: list[bytes]) -> None:
    a = CatalogAssembler(max_in_flight=4, max_per_device=2, max_sum_num=50)
    reasons: list[str] = []
    for n, body in enumerate(bodies):
        m = parse_or_reason(body)
        if isinstance(m, CatalogPart):
            try:
                a.add(m, float(n))
            except ManscdpError as e:
                reasons.append(e.reason)
    assert a.in_flight <= 4
    assert set(reasons) <= {"too_many_items", "sum_num_mismatch", "catalog_busy"}


NUMBERS = st.one_of(
    st.sampled_from(["", "0", "-1", "1e999", "nan", ".5", "5.", "+7", "1e3"]),
    st.floats(allow_nan=True).map(str),
    st.integers(-(10**30), 10**30).map(str),
)
UNITS = st.sampled_from(["", "%", "b", "ib", "i", "kib", "KB", "M", "mb", "G", "GiB", "tb", "x"])
SIZES = st.tuples(NUMBERS, st.sampled_from(["", " "]), UNITS).map("".join)


@FAST
@given(SIZES, SIZES, SIZES)
def test_vendor_values_never_crash(battery: str, total: str, free: str) -> None:
    body = (
        "<Response><CmdType>DeviceStatus</CmdType><SN>1</SN>"
        "<DeviceID>62072500081381000001</DeviceID>"
        f"<Battery>{battery}</Battery><StorageCapacity>{total}</StorageCapacity>"
        f"<VendorInfo><FreeSpace>{free}</FreeSpace></VendorInfo></Response>"
    )
    m = parse_or_reason(body.encode())
    assert not isinstance(m, ManscdpError)  # vendor fields never refuse the message
