"""Nwave NPS405 codec: documented vectors, length/port errors, round trips, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sensors import nwave
from drivers.sensors.messages import (
    CodecError,
    Heartbeat,
    OccupancyStatus,
    SensorMessage,
    Startup,
    TagRegistration,
)

DOC = (Path(__file__).resolve().parents[1] / "docs" / "codecs.md").read_text(encoding="utf-8")

# The same vectors as docs/codecs.md, section nwave-nps405.
VECTORS: list[tuple[int, str, SensorMessage]] = [
    (1, "95", OccupancyStatus(occupied=True, previous_state_s=4440)),
    (1, "d1", OccupancyStatus(occupied=True, previous_state_s=9600)),
    (1, "00", OccupancyStatus(occupied=False, previous_state_s=0)),
    (1, "ff", OccupancyStatus(occupied=True, previous_state_s=39600)),
    (2, "00d3d800590b", Heartbeat(battery_mv=3344, temperature_c=-10.0, occupied=False)),
    (2, "017d14", Heartbeat(battery_mv=3000, temperature_c=20.0, occupied=True)),
    (3, "0204090200", Startup(firmware="2.4.9", reset_cause="power_on", occupied=False)),
    (3, "0205000101", Startup(firmware="2.5.0", reset_cause="watchdog", occupied=True)),
    (10, "d11f345678", TagRegistration(tag_id="1F345678", occupied=True, previous_state_s=9600)),
    (10, "001f345678", TagRegistration(tag_id="1F345678", occupied=None, previous_state_s=None)),
    (10, "0b00000abc", TagRegistration(tag_id="00000ABC", occupied=True, previous_state_s=300)),
    (10, "94ffffffff", TagRegistration(tag_id="FFFFFFFF", occupied=None, previous_state_s=None)),
]


@pytest.mark.parametrize(("port", "hexdata", "expected"), VECTORS)
def test_documented_vectors(port: int, hexdata: str, expected: SensorMessage) -> None:
    assert nwave.decode(port, bytes.fromhex(hexdata)) == expected


@pytest.mark.parametrize(("port", "hexdata", "expected"), VECTORS)
def test_vectors_are_in_the_docs(port: int, hexdata: str, expected: SensorMessage) -> None:
    assert f"| {port} | `{hexdata}` | `{expected!r}`" in DOC


@pytest.mark.parametrize(
    ("port", "hexdata", "reason"),
    [
        (1, "", "short_frame"),
        (1, "0101", "bad_length"),
        (2, "0000", "short_frame"),
        (2, "00000000000000", "bad_length"),
        (3, "02040902", "short_frame"),
        (3, "020409020000", "bad_length"),
        (0, "01", "bad_port"),
        (6, "01", "bad_port"),
        (10, "d11f3456", "short_frame"),
        (10, "d11f34567800", "bad_length"),
        (9, "d11f345678", "bad_port"),
        (None, "01", "bad_port"),
    ],
)
def test_frame_errors(port: int | None, hexdata: str, reason: str) -> None:
    with pytest.raises(CodecError) as err:
        nwave.decode(port, bytes.fromhex(hexdata))
    assert err.value.reason == reason


def test_unknown_reset_cause_is_not_an_error() -> None:
    assert nwave.decode(3, bytes.fromhex("0204090400")) == Startup("2.4.9", "unknown", False)


@given(st.integers(0, 255))
def test_status_byte_round_trip(byte: int) -> None:
    """Every status byte decodes, and re-encoding the result gives the same byte back."""
    msg = nwave.decode(1, bytes([byte]))
    assert isinstance(msg, OccupancyStatus)
    assert msg.previous_state_s is not None
    assert nwave.encode_status(msg.occupied, msg.previous_state_s) == (1, bytes([byte]))


@given(st.booleans(), st.integers(0, 20 * 3600))
def test_status_duration_quantisation(occupied: bool, seconds: int) -> None:
    port, frame = nwave.encode_status(occupied, seconds)
    msg = nwave.decode(port, frame)
    assert isinstance(msg, OccupancyStatus)
    assert msg.occupied is occupied
    assert msg.previous_state_s is not None
    if seconds >= nwave.OVERFLOW_S:
        assert msg.previous_state_s == nwave.OVERFLOW_S
    else:
        step = 60 if seconds < 90 * 60 else 300 if seconds < 240 * 60 else 3600
        assert msg.previous_state_s <= seconds < msg.previous_state_s + step


@given(st.booleans(), st.integers(0, 255), st.integers(-128, 127), st.integers(0, 127))
def test_heartbeat_round_trip(occupied: bool, b1: int, b2: int, health: int) -> None:
    battery = 2500 + 4 * b1
    temperature = b2 / 2 + 10
    port, frame = nwave.encode_heartbeat(occupied, battery, temperature, health)
    assert nwave.decode(port, frame) == Heartbeat(battery, temperature, occupied)


def test_heartbeat_encoder_saturates() -> None:
    _, frame = nwave.encode_heartbeat(battery_mv=3700, temperature_c=-80.0)
    assert nwave.decode(2, frame) == Heartbeat(3520, -54.0, False)


@given(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.sampled_from(["rejoining_lorawan_network", "watchdog", "power_on", "brownout", "other"]),
    st.booleans(),
)
def test_startup_round_trip(version: tuple[int, int, int], cause: str, occupied: bool) -> None:
    firmware = ".".join(map(str, version))
    port, frame = nwave.encode_startup(firmware, cause, occupied)
    assert nwave.decode(port, frame) == Startup(firmware, cause, occupied)


@pytest.mark.parametrize("firmware", ["2.4", "2.4.256", "a.b.c", "2.4.9.1"])
def test_startup_encoder_rejects_bad_firmware(firmware: str) -> None:
    with pytest.raises(ValueError, match="firmware"):
        nwave.encode_startup(firmware)


@given(st.one_of(st.none(), st.integers(-(2**40), 2**40)), st.binary(max_size=64))
def test_arbitrary_frames_only_raise_codec_error(port: int | None, data: bytes) -> None:
    reason = None
    try:
        msg = nwave.decode(port, data)
    except CodecError as exc:
        reason = exc.reason
    else:
        assert isinstance(msg, OccupancyStatus | Heartbeat | Startup | TagRegistration)
    assert reason in {None, "short_frame", "bad_length", "bad_port"}


@given(
    st.integers(0, 2**32 - 1),
    st.one_of(st.none(), st.booleans()),
    st.integers(0, 12 * 3600),
)
def test_tag_registration_round_trip(tag: int, occupied: bool | None, seconds: int) -> None:
    port, frame = nwave.encode_tag_registration(f"{tag:x}", occupied, seconds)
    msg = nwave.decode(port, frame)
    assert isinstance(msg, TagRegistration)
    assert msg.tag_id == f"{tag:08X}"
    if occupied:
        assert msg.occupied is True
        assert msg.previous_state_s == nwave.expand_duration(nwave.compress_duration(seconds))
    else:
        assert msg.occupied is None and msg.previous_state_s is None


@pytest.mark.parametrize("tag", ["", "123456789", "xyz"])
def test_tag_encoder_rejects_bad_ids(tag: str) -> None:
    with pytest.raises(ValueError, match="tag id"):
        nwave.encode_tag_registration(tag)
