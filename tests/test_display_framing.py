"""A lane's LED display and voice bytes, framed per display module model: the plain-text
default keeps what text-mode modules take, a framed model's length and checksum are right
for any text, bad model files are refused naming the field, and the Vzenith reply carries
the lane's framing."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.cameras.framing import (
    DisplayModelError,
    checksum,
    display_model,
    display_model_names,
    frame_text,
    load_display_model,
)
from gateway.api.cameras import _vzenith
from gateway.services.lanes.contract import LaneAnswer

FRAMED = display_model("example-framed")


def frames(data: bytes) -> list[tuple[bytes, bytes]]:
    """Split example-framed output into (header, body) per frame, checking each frame's
    prefix, length, checksum and suffix as a module would."""
    out = []
    while data:
        assert data[:2] == b"\xaa\x55"
        n = int.from_bytes(data[2:4], "big")
        covered = data[2 : 4 + n]
        assert data[4 + n : 5 + n] == checksum("xor8", covered)
        assert data[5 + n : 6 + n] == b"\r"
        header_len = 2 if data[4] == 0x01 else 1
        out.append((data[4 : 4 + header_len], data[4 + header_len : 4 + n]))
        data = data[6 + n :]
    return out


def test_checksums_match_known_vectors() -> None:
    assert checksum("crc16_modbus", b"123456789") == bytes.fromhex("374B")  # 0x4B37, LE
    assert checksum("sum8", b"\xff\x02") == b"\x01"
    assert checksum("xor8", b"\x0f\xf0\x01") == b"\xfe"
    assert checksum("none", b"abc") == b""


def test_text_mode_joins_lines_with_crlf_in_gb18030() -> None:
    shown, said = frame_text(display_model("text-crlf"), ["甘G12345", "请缴费 5.00元"], "请缴费")
    assert shown == "甘G12345\r\n请缴费 5.00元".encode("gb18030")
    assert said == "请缴费".encode("gb18030")
    assert frame_text(display_model("text-crlf"), [], None) == (b"", b"")


def test_a_framed_module_gets_one_checked_frame_per_line_and_one_for_the_voice() -> None:
    shown, said = frame_text(FRAMED, ["甘G12345", "请缴费 5元"], "请缴费五元")
    assert frames(shown) == [
        (b"\x01\x01", "甘G12345".encode("gb2312")),
        (b"\x01\x02", "请缴费 5元".encode("gb2312")),
    ]
    assert frames(said) == [(b"\x30", "请缴费五元".encode("gb2312"))]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=100), max_size=12), st.one_of(st.none(), st.text(max_size=100)))
def test_any_text_frames_without_error_and_every_frame_checks(
    lines: list[str], voice: str | None
) -> None:
    shown, said = frame_text(FRAMED, lines, voice)
    assert len(frames(shown)) == len([x for x in lines[:8] if x])
    assert len(frames(said)) == (1 if voice else 0)


def test_the_shipped_models_load() -> None:
    assert {"text-crlf", "example-framed"} <= set(display_model_names())
    for name in display_model_names():
        assert display_model(name).model == name
    with pytest.raises(DisplayModelError, match="unknown display model"):
        display_model("nope")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('model = "m"\n[display]\nprefix = "ZZ"\n', "display.prefix"),
        ('model = "m"\n[display]\nchecksum = "md5"\n', "display.checksum"),
        ('model = "m"\nlines = "sideways"\n', "lines"),
        ('model = "m"\n[voice]\nheader = "0G"\n', "header"),
        ('model = "m"\ncolour = "red"\n', "colour"),
        ("model = \n", "m.toml"),
    ],
)
def test_a_bad_model_file_is_refused_naming_the_field(
    tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "m.toml"
    path.write_text(text, "utf-8")
    with pytest.raises(DisplayModelError, match=expected.replace(".", r"\.")):
        load_display_model(path)


def test_the_vzenith_reply_carries_the_lanes_framing() -> None:
    answer = LaneAnswer(False, ["甘G12345", "请缴费 5元"], "请缴费五元", "owed", "example-framed")
    reply = _vzenith(None, answer)["Response_AlarmInfoPlate"]
    assert reply["info"] == "no"
    display, voice = reply["serialData"]
    data = base64.b64decode(display["data"])
    assert display["dataLen"] == len(data)
    assert next(body for _, body in frames(data)) == "甘G12345".encode("gb2312")
    assert frames(base64.b64decode(voice["data"])) == [(b"\x30", "请缴费五元".encode("gb2312"))]
    plain = _vzenith(None, LaneAnswer(False, ["甘G12345"], None, "owed"))["Response_AlarmInfoPlate"]
    assert base64.b64decode(plain["serialData"][0]["data"]) == "甘G12345".encode("gb18030")
