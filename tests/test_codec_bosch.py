"""Bosch PLS (TPS110) codec: documented vectors, length/port errors, round trips, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sensors import bosch
from drivers.sensors.messages import CodecError, Heartbeat, OccupancyStatus, SensorMessage, Startup

DOC = (Path(__file__).resolve().parents[1] / "docs" / "codecs.md").read_text(encoding="utf-8")

# The same vectors as docs/codecs.md, section bosch-tps110.
VECTORS: list[tuple[int, str, SensorMessage]] = [
    (1, "01", OccupancyStatus(occupied=True, previous_state_s=None)),
    (1, "00", OccupancyStatus(occupied=False, previous_state_s=None)),
    (2, "01ff", Heartbeat(battery_mv=None, temperature_c=-1.0, occupied=True)),
    (2, "0019", Heartbeat(battery_mv=None, temperature_c=25.0, occupied=False)),
    (2, "00", Heartbeat(battery_mv=None, temperature_c=None, occupied=False)),
    (
        3,
        "240300007503000000000000001d020301",
        Startup(firmware="0.29.2", reset_cause="system_request", occupied=True),
    ),
    (
        3,
        "0000000000000000000000000021040601",
        Startup(firmware="0.33.4", reset_cause="brownout", occupied=True),
    ),
]


@pytest.mark.parametrize(("port", "hexdata", "expected"), VECTORS)
def test_documented_vectors(port: int, hexdata: str, expected: SensorMessage) -> None:
    assert bosch.decode(port, bytes.fromhex(hexdata)) == expected


@pytest.mark.parametrize(("port", "hexdata", "expected"), VECTORS)
def test_vectors_are_in_the_docs(port: int, hexdata: str, expected: SensorMessage) -> None:
    assert f"| {port} | `{hexdata}` | `{expected!r}`" in DOC


@pytest.mark.parametrize(
    ("port", "hexdata", "reason"),
    [
        (1, "", "short_frame"),
        (1, "0100", "bad_length"),
        (2, "", "short_frame"),
        (2, "011900", "bad_length"),
        (3, "00" * 16, "short_frame"),
        (3, "00" * 18, "bad_length"),
        (4, "000102", "bad_port"),
        (6, "00" * 10, "bad_port"),
        (None, "01", "bad_port"),
        (-1, "01", "bad_port"),
    ],
)
def test_frame_errors(port: int | None, hexdata: str, reason: str) -> None:
    with pytest.raises(CodecError) as err:
        bosch.decode(port, bytes.fromhex(hexdata))
    assert err.value.reason == reason


def test_reserved_status_bits_are_ignored() -> None:
    assert bosch.decode(1, b"\xfe") == OccupancyStatus(occupied=False)


@given(st.booleans(), st.integers(0, 86400))
def test_status_round_trip(occupied: bool, previous_state_s: int) -> None:
    port, frame = bosch.encode_status(occupied, previous_state_s)
    assert bosch.decode(port, frame) == OccupancyStatus(occupied=occupied)


@given(st.booleans(), st.one_of(st.none(), st.integers(-128, 127)))
def test_heartbeat_round_trip(occupied: bool, temperature: int | None) -> None:
    port, frame = bosch.encode_heartbeat(occupied, temperature)
    expected = None if temperature is None else float(temperature)
    assert bosch.decode(port, frame) == Heartbeat(temperature_c=expected, occupied=occupied)


@given(
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255)),
    st.sampled_from(
        ["watchdog", "power_on", "system_request", "external_pin", "lockup", "brownout", "other"]
    ),
    st.booleans(),
    st.binary(min_size=12, max_size=12),
)
def test_startup_round_trip(
    version: tuple[int, int, int], cause: str, occupied: bool, debug: bytes
) -> None:
    firmware = ".".join(map(str, version))
    port, frame = bosch.encode_startup(firmware, cause, occupied, debug)
    assert bosch.decode(port, frame) == Startup(firmware, cause, occupied)


def test_startup_encoder_validates() -> None:
    with pytest.raises(ValueError, match="reset cause"):
        bosch.encode_startup(reset_cause="meteor")
    with pytest.raises(ValueError, match="12 bytes"):
        bosch.encode_startup(debug=b"\x00")


@given(st.one_of(st.none(), st.integers(-(2**40), 2**40)), st.binary(max_size=64))
def test_arbitrary_frames_only_raise_codec_error(port: int | None, data: bytes) -> None:
    reason = None
    try:
        msg = bosch.decode(port, data)
    except CodecError as exc:
        reason = exc.reason
    else:
        assert isinstance(msg, OccupancyStatus | Heartbeat | Startup)
    assert reason in {None, "short_frame", "bad_length", "bad_port"}
