"""NB-IoT geomagnetic frame: documented vectors, header/CRC/length errors, round trips, fuzzing."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sensors import nbiot
from drivers.sensors.messages import CodecError, MagnetometerFrame

DOC = (Path(__file__).resolve().parents[1] / "docs" / "codecs.md").read_text(encoding="utf-8")

# The same vectors as docs/codecs.md, section nbiot-geomag.
VECTORS: list[tuple[str, MagnetometerFrame]] = [
    (
        "a55a0108683300123456780001020078feac019a0064fea201900e10b5b7fe",
        MagnetometerFrame(
            device_id="0868330012345678",
            seq=1,
            raw=(120, -340, 410),
            baseline=(100, -350, 400),
            battery_mv=3600,
            rssi_dbm=-75,
            sensor_occupied=None,
        ),
    ),
    (
        "a55a01086833001234567800020500b4ff0602120064fea201900e0eb3504c",
        MagnetometerFrame(
            device_id="0868330012345678",
            seq=2,
            raw=(180, -250, 530),
            baseline=(100, -350, 400),
            battery_mv=3598,
            rssi_dbm=-77,
            sensor_occupied=True,
        ),
    ),
    (
        "a55a0186a1b2c3d4e5f601ffff00fff40005fc18fff60003fc1a0b86926751",
        MagnetometerFrame(
            device_id="86a1b2c3d4e5f601",
            seq=65535,
            raw=(-12, 5, -1000),
            baseline=(-10, 3, -998),
            battery_mv=2950,
            rssi_dbm=-110,
            sensor_occupied=False,
        ),
    ),
]
GOOD = bytes.fromhex(VECTORS[0][0])


def _with_crc(body: bytes) -> bytes:
    return body + nbiot.crc16_modbus(body).to_bytes(2, "little")


@pytest.mark.parametrize(("hexdata", "expected"), VECTORS)
@pytest.mark.parametrize("port", [None, 0, 1])
def test_documented_vectors(hexdata: str, expected: MagnetometerFrame, port: int | None) -> None:
    assert nbiot.decode(port, bytes.fromhex(hexdata)) == expected


@pytest.mark.parametrize(("hexdata", "expected"), VECTORS)
def test_vectors_are_in_the_docs(hexdata: str, expected: MagnetometerFrame) -> None:
    assert f"| `{hexdata}` | `{expected!r}`" in DOC


def test_crc16_modbus_check_value() -> None:
    assert nbiot.crc16_modbus(b"123456789") == 0x4B37
    assert nbiot.FRAME_LEN == 31


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "short_frame"),
        (GOOD[:-1], "short_frame"),
        (GOOD + b"\x00", "bad_length"),
        (_with_crc(b"\x5a\xa5" + GOOD[2:29]), "bad_header"),
        (_with_crc(GOOD[:2] + b"\x02" + GOOD[3:29]), "bad_header"),
        (GOOD[:29] + bytes([GOOD[29] ^ 0xFF, GOOD[30]]), "bad_checksum"),
        (GOOD[:20] + bytes([GOOD[20] ^ 0x01]) + GOOD[21:], "bad_checksum"),
        (_with_crc(GOOD[:13] + b"\x03" + GOOD[14:29]), "bad_value"),
    ],
)
def test_frame_errors(data: bytes, reason: str) -> None:
    with pytest.raises(CodecError) as err:
        nbiot.decode(None, data)
    assert err.value.reason == reason


def test_reserved_flag_bits_are_ignored() -> None:
    frame = nbiot.decode(None, _with_crc(GOOD[:13] + b"\xf9" + GOOD[14:29]))
    assert isinstance(frame, MagnetometerFrame)
    assert frame.sensor_occupied is True


int16 = st.integers(-32768, 32767)
vec = st.tuples(int16, int16, int16)


@given(
    st.binary(min_size=8, max_size=8).map(bytes.hex),
    st.integers(0, 2**20),
    vec,
    vec,
    st.integers(0, 0xFFFF),
    st.integers(-128, 127),
    st.one_of(st.none(), st.booleans()),
    st.booleans(),
)
def test_round_trip(
    device_id: str,
    seq: int,
    raw: tuple[int, int, int],
    baseline: tuple[int, int, int],
    battery: int,
    rssi: int,
    occupied: bool | None,
    event: bool,
) -> None:
    data = nbiot.encode_frame(device_id, seq, raw, baseline, battery, rssi, occupied, event)
    assert len(data) == nbiot.FRAME_LEN
    assert nbiot.decode(None, data) == MagnetometerFrame(
        device_id, seq % 65536, raw, baseline, battery, rssi, occupied
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"device_id": "0868330012345"},
        {"device_id": "086833001234567G"},
        {"raw": (0, 0, 40000)},
        {"baseline": (0, 0)},
        {"battery_mv": 70000},
        {"rssi_dbm": -129},
    ],
)
def test_encoder_rejects_out_of_range(kwargs: dict[str, object]) -> None:
    args: dict[str, object] = {
        "device_id": "0868330012345678",
        "seq": 1,
        "raw": (0, 0, 0),
        "baseline": (0, 0, 0),
    }
    args.update(kwargs)
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        nbiot.encode_frame(**args)  # type: ignore[arg-type]


@given(st.one_of(st.none(), st.integers()), st.binary(max_size=80))
def test_arbitrary_bytes_only_raise_codec_error(port: int | None, data: bytes) -> None:
    reason = None
    try:
        nbiot.decode(port, data)
    except CodecError as exc:
        reason = exc.reason
    assert reason in {None, "short_frame", "bad_length", "bad_header", "bad_checksum", "bad_value"}


@given(st.binary(min_size=29, max_size=29))
def test_any_body_with_valid_crc_and_header_decodes_or_bad_value(tail: bytes) -> None:
    data = _with_crc(nbiot.MAGIC + bytes([nbiot.VERSION]) + tail[3:])
    reason = None
    try:
        frame = nbiot.decode(None, data)
    except CodecError as exc:
        reason = exc.reason
    else:
        assert isinstance(frame, MagnetometerFrame)
        assert len(frame.device_id) == 16
    assert reason in {None, "bad_value"}
