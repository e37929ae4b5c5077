"""The plate camera parsers on each vendor's real shapes, and fuzzed: a push either parses or
raises CameraError with a reason, never anything else."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cameras import (
    CameraError,
    CameraHeartbeat,
    CameraRead,
    build_response,
    parse_hikvision,
    parse_keepalive,
    parse_tollgate,
    parse_vzenith,
    serial_items,
)
from drivers.cameras.multipart import split_multipart
from gateway.demo.cameras import (
    NAMESPACES,
    dahua_body,
    hikvision_push,
    hikvision_xml,
    multipart,
    tiny_jpeg,
    vzenith_body,
)

ZONE = ZoneInfo("Asia/Shanghai")
T = datetime(2026, 12, 2, 1, 30, 5, 250000, tzinfo=UTC)
MAX = 200_000


def hik(body: bytes, ctype: str) -> CameraRead | CameraHeartbeat:
    return parse_hikvision(body, ctype, "cam-1", zone=ZONE, max_image_bytes=MAX)


def hik_read(body: bytes, ctype: str) -> CameraRead:
    read = hik(body, ctype)
    assert isinstance(read, CameraRead)
    return read


@pytest.mark.parametrize("namespace", NAMESPACES)
@pytest.mark.parametrize("prefix", [None, "ns0"])
def test_hikvision_multipart_any_namespace_or_prefix(namespace: str, prefix: str | None) -> None:
    body, ctype = hikvision_push("粤B12345", T, namespace=namespace, prefix=prefix)
    read = hik_read(body, ctype)
    assert (read.plate, read.raw_plate, read.vendor) == ("粤B12345", "粤B12345", "hikvision")
    assert read.ts == T  # dateTime in +08:00, read as UTC
    assert (read.confidence, read.direction, read.colour) == (0.92, "in", "blue")
    assert read.vehicle_type == "vehicle" and read.serial == "44:19:b6:00:00:01"
    # the empty licensePlatePicture part is skipped, the detection picture kept
    assert [name for name, _ in read.images] == ["detectionPicture.jpg"]
    assert read.images[0][1] == tiny_jpeg() and read.dropped_images == ()
    assert read.offline is False and read.plate_error is None


def test_hikvision_bare_xml_and_old_firmware_octet_stream() -> None:
    read = hik_read(*hikvision_push("甘G·12345", T, bare=True))
    assert read.plate == "甘G12345" and read.raw_plate == "甘G·12345" and read.images == ()
    read = hik_read(*hikvision_push("甘GD12345", T, old_firmware=True, direction="reverse"))
    assert read.plate == "甘GD12345" and read.direction == "out"
    assert [n for n, _ in read.images] == ["vehiclePicture.jpg"]


def test_hikvision_gb18030_declared_document() -> None:
    doc = hikvision_xml("粤B12345", T).decode().replace('encoding="UTF-8"', 'encoding="GB18030"')
    read = hik_read(doc.encode("gb18030"), "text/xml")
    assert read.plate == "粤B12345"
    with pytest.raises(CameraError, match="encoding"):
        hik(b'<?xml version="1.0" encoding="GBK"?><a>\xff\xff</a>', "text/xml")


def test_hikvision_lf_only_multipart_and_quoted_boundary() -> None:
    doc = hikvision_xml("京A12345", T)
    body, _ = multipart([("anpr.xml", "anpr.xml", "text/xml", doc)], boundary="b0und")
    lf = body.replace(b"\r\n", b"\n")
    assert hik_read(lf, 'multipart/form-data; boundary="b0und"').plate == "京A12345"


def test_hikvision_heartbeat_float_confidence_unread_and_impossible_plates() -> None:
    beat = hik(hikvision_xml("", T, state="inactive"), "text/xml")
    assert isinstance(beat, CameraHeartbeat) and beat.ts == T
    assert hik_read(*hikvision_push("苏E12345", T, confidence="87.5")).confidence == 0.875
    assert hik_read(*hikvision_push("苏E12345", T, confidence="900")).confidence is None
    unread = hik_read(*hikvision_push("unknown", T))
    assert (unread.plate, unread.raw_plate, unread.plate_error) == (None, "unknown", None)
    bad = hik_read(*hikvision_push("XX?12345", T))
    assert bad.plate is None and bad.raw_plate == "XX?12345"
    assert bad.plate_error is not None and "not a plate" in bad.plate_error


def test_hikvision_images_bounded_and_sniffed() -> None:
    big = tiny_jpeg(MAX + 1)
    read = hik_read(*hikvision_push("京A12345", T, image=big))
    assert read.images == () and read.dropped_images == ("detectionPicture.jpg: too_large",)
    read = hik_read(*hikvision_push("京A12345", T, image=b"GIF89a not a jpeg"))
    assert read.dropped_images == ("detectionPicture.jpg: not_jpeg",)


@pytest.mark.parametrize(
    ("body", "ctype", "reason"),
    [
        (b"<EventNotificationAlert><ANPR>", "text/xml", "malformed_xml"),
        (b"not xml at all", "application/xml", "malformed_xml"),
        (
            b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>',
            "text/xml",
            "malformed_xml",
        ),
        (b"<Other/>", "text/xml", "malformed_xml"),
        (b'<?xml version="1.0" encoding="U-F-8"?><a/>', "text/xml", "malformed_xml"),
        (hikvision_xml("京A12345", T).replace(b">ANPR<", b">VMD<"), "text/xml", "not_anpr"),
        (b"--x\r\nno headers here", "multipart/form-data; boundary=x", "malformed_multipart"),
        (b"whatever", "multipart/form-data", "malformed_multipart"),
        (multipart([("p", "p.jpg", "image/jpeg", b"\xff\xd8\xff")])[0], "", "malformed_xml"),
    ],
)
def test_hikvision_refusals_are_typed(body: bytes, ctype: str, reason: str) -> None:
    if reason == "malformed_xml" and body.startswith(b"--"):
        ctype = "text/plain"  # a multipart body declared as something else is not XML
    with pytest.raises(CameraError) as info:
        hik(body, ctype)
    assert info.value.reason == reason


def test_multipart_without_xml_part_and_too_many_parts() -> None:
    body, ctype = multipart([("p", "p.jpg", "image/jpeg", tiny_jpeg())])
    with pytest.raises(CameraError, match="no XML part"):
        hik(body, ctype)
    body, ctype = multipart([("p", "", "text/plain", b"x")] * 17)
    with pytest.raises(CameraError, match="more than 16"):
        split_multipart(body, ctype)


def vz(body: bytes) -> CameraRead | CameraHeartbeat:
    return parse_vzenith(body, "cam-2", max_image_bytes=MAX)


def test_vzenith_read_offline_and_no_plate() -> None:
    read = vz(vzenith_body("浙A·D12345", T, 77, offline=True))
    assert isinstance(read, CameraRead)
    assert (read.plate, read.record_id, read.offline) == ("浙AD12345", "77", True)
    assert read.ts == T and read.confidence == 0.95 and read.colour == "blue"
    assert read.serial == "e5a7c1d2-2f0a3b4c" and read.direction is None
    assert [n for n, _ in read.images] == ["imageFile.jpg", "imageFragmentFile.jpg"]
    nothing = vz(vzenith_body("_无_", T, 78))
    assert isinstance(nothing, CameraRead)
    assert (nothing.plate, nothing.raw_plate, nothing.plate_error) == (None, "_无_", None)


def test_vzenith_heartbeat_and_refusals() -> None:
    beat = vz(b'{"heartbeat": {"countid": 3, "serialno": "abc"}}')
    assert isinstance(beat, CameraHeartbeat) and beat.serial == "abc"
    for body in (
        b"{",
        b"[]",
        b'{"AlarmInfoPlate": {"result": {}}}',
        b'{"x": 1}',
        b'{"AlarmInfoPlate": {"result": {"PlateResult": {"license": 5}}}}',
    ):
        with pytest.raises(CameraError) as info:
            vz(body)
        assert info.value.reason == "malformed_json"


def test_vzenith_bad_images_are_dropped_not_fatal() -> None:
    doc = json.loads(vzenith_body("京A12345", T, 1))
    result = doc["AlarmInfoPlate"]["result"]["PlateResult"]
    result["imageFile"] = "!!!not base64"
    result["imageFragmentFile"] = base64.b64encode(tiny_jpeg(MAX + 10)).decode()
    read = vz(json.dumps(doc).encode())
    assert isinstance(read, CameraRead) and read.images == ()
    assert read.dropped_images == ("imageFile.jpg: bad_base64", "imageFragmentFile.jpg: too_large")


def test_vzenith_response_opens_shows_speaks_and_continues() -> None:
    items = serial_items(["粤B12345", "请缴费 5元"], "请缴费五元")
    reply = build_response(open_gate=True, channel=1, serial=items, continue_plateid="77")
    body = reply["Response_AlarmInfoPlate"]
    assert body["info"] == "ok" and body["channelNum"] == 1
    assert body["ContinuePushOffline"] == {"plateid": 77, "continue": 1}
    display, voice = body["serialData"]
    assert display["serialChannel"] == 0 and voice["serialChannel"] == 1
    text = base64.b64decode(display["data"])
    assert text.decode("gb18030") == "粤B12345\r\n请缴费 5元" and display["dataLen"] == len(text)
    assert base64.b64decode(voice["data"]).decode("gb18030") == "请缴费五元"
    plain = build_response(open_gate=False)["Response_AlarmInfoPlate"]
    assert plain == {"info": "no", "channelNum": 0}
    odd = build_response(open_gate=False, continue_plateid="a-7")
    assert odd["Response_AlarmInfoPlate"]["ContinuePushOffline"]["plateid"] == "a-7"


def test_dahua_tollgate_local_time_and_keepalive() -> None:
    read = parse_tollgate(dahua_body("川A12345", T, 1001), "cam-3", zone=ZONE, max_image_bytes=MAX)
    assert (read.plate, read.record_id, read.colour, read.direction) == (
        "川A12345",
        "1001",
        "blue",
        "in",
    )
    assert read.ts == T.replace(microsecond=250000) and read.confidence == 0.9
    assert [n for n, _ in read.images] == ["NormalPic.jpg", "CutoutPic.jpg"]
    assert parse_keepalive(b"", "cam-3").vendor == "dahua"
    assert parse_keepalive(b'{"DeviceID": "X"}', "cam-3").serial == "X"
    with pytest.raises(CameraError):
        parse_tollgate(b'{"Picture": 3}', "cam-3", zone=ZONE, max_image_bytes=MAX)
    with pytest.raises(CameraError):
        parse_keepalive(b"[", "cam-3")


def test_absurd_camera_times_are_none() -> None:
    old = vz(vzenith_body("京A12345", datetime(1999, 1, 1, tzinfo=UTC), 1))
    assert isinstance(old, CameraRead) and old.ts is None
    body = dahua_body("川A12345", T, 1).replace(b"2026-12-02", b"2026-13-45")
    assert parse_tollgate(body, "c", zone=ZONE, max_image_bytes=MAX).ts is None


def test_text_a_database_cannot_take_is_cleaned() -> None:
    body = b'{"AlarmInfoPlate": {"serialno": "s\\u0000n", "result": {"PlateResult": '
    body += b'{"license": "\\ud800\\u0000\\u7ca4B12345\\u0007", "plateid": "\\udfff7"}}}}'
    read = vz(body)
    assert isinstance(read, CameraRead)
    assert (read.plate, read.raw_plate, read.record_id, read.serial) == (
        None,
        "?粤B12345",
        "?7",
        "sn",
    )  # garbage around a plate is not a plate
    assert read.plate_error is not None


# -- fuzzing -------------------------------------------------------------------------------


def _all(body: bytes, ctype: str) -> None:
    reasons: list[str] = []
    for call in (
        lambda: hik(body, ctype),
        lambda: vz(body),
        lambda: parse_tollgate(body, "c", zone=ZONE, max_image_bytes=MAX),
        lambda: parse_keepalive(body, "c"),
    ):
        try:
            out = call()
        except CameraError as exc:
            reasons.append(exc.reason and exc.message and exc.reason)
            continue
        if isinstance(out, CameraRead):  # the widths of camera_reads
            assert len(out.raw_plate or "") <= 64 and len(out.record_id or "") <= 64
            assert len(out.vehicle_type or "") <= 32 and len(out.plate or "") <= 16
        texts = [v for v in vars_of(out) if isinstance(v, str)]
        texts += [n for n, _ in getattr(out, "images", ())] + list(
            getattr(out, "dropped_images", ())
        )
        for text in texts:  # storable: no control characters, no lone surrogates
            text.encode("utf-8")
            assert all(c.isprintable() or c == " " for c in text), repr(text)
    assert all(reasons)


def vars_of(obj: object) -> list[object]:
    return [getattr(obj, f) for f in getattr(obj, "__dataclass_fields__", {})]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from(["text/xml", "multipart/form-data; boundary=x"]))
def test_fuzz_random_bytes(body: bytes, ctype: str) -> None:
    _all(body, ctype)


SEEDS = [
    hikvision_push("粤B12345", T),
    hikvision_push("粤B12345", T, bare=True),
    (vzenith_body("粤B12345", T, 5), "application/json"),
    (dahua_body("粤B12345", T, 5), "application/json"),
]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(SEEDS),
    st.lists(st.tuples(st.integers(0, 10_000), st.binary(max_size=8)), max_size=6),
    st.integers(0, 10_000),
)
def test_fuzz_mutated_real_payloads(
    seed: tuple[bytes, str], edits: list[tuple[int, bytes]], cut: int
) -> None:
    body = bytearray(seed[0])
    for at, data in edits:
        at %= max(1, len(body))
        body[at : at + len(data)] = data
    _all(bytes(body[: max(cut, len(body) // 2)]), seed[1])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=12), kids, max_size=4)
    ),
    max_leaves=20,
)
KEYS = ["license", "plateid", "isoffline", "confidence", "colorType", "timeStamp", "imageFile"]


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(KEYS), json_values, max_size=7), json_values)
def test_fuzz_structured_vzenith_and_dahua(result: dict[str, object], other: object) -> None:
    doc = {"AlarmInfoPlate": {"serialno": other, "result": {"PlateResult": result}}}
    _all(json.dumps(doc).encode(), "application/json")
    pic = {
        "Picture": {
            "Plate": {"PlateNumber": other, "Confidence": other},
            "SnapInfo": {"AccurateTime": other, "SnapID": other},
        }
    }
    _all(json.dumps(pic).encode(), "application/json")
