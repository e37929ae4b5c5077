"""The sans-I/O BLE core: the per-model characteristic map (encode, decode, limits), the
advertisement parser and the configuration plan with its read-back checks."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.ble import advert
from drivers.ble.charmap import (
    CONFIG_SERVICE_UUID,
    MODELS,
    BleValueError,
    CharSpec,
    Format,
    decode_firmware,
    get_model,
    model_by_code,
)
from drivers.ble.plan import Request, check_any_model, plan, recalibrated, verify
from drivers.sensors.registry import CODECS
from tests import ble_fake

SPECS = [(m.model, getattr(m, n)) for m in MODELS.values() for n in ("heartbeat", "sensitivity")]


def test_every_known_sensor_model_has_a_map_and_the_codes_are_distinct() -> None:
    assert set(MODELS) == set(CODECS)
    assert len({m.code for m in MODELS.values()}) == len(MODELS)
    for m in MODELS.values():
        assert model_by_code(m.code) is m
        # the model's factory default heartbeat is a value it accepts
        m.heartbeat.check(CODECS[m.model].default_heartbeat_s)


def test_the_map_matches_the_documented_wire_table() -> None:
    """drivers.ble and the simulated firmware (written from docs/ble.md) agree byte for byte."""
    for name, (
        code,
        hb_struct,
        unit,
        (lo, hi),
        (s_lo, s_hi),
        command,
        gatt_battery,
        _,
    ) in ble_fake.FIRMWARE_TABLE.items():
        m = get_model(name)
        assert (m.code, m.recalibrate_command, m.gatt_battery) == (code, command, gatt_battery)
        assert m.heartbeat.fmt.struct == hb_struct and m.heartbeat.scale == unit
        assert (m.heartbeat.low, m.heartbeat.high) == (lo * unit, hi * unit)
        assert (m.sensitivity.low, m.sensitivity.high) == (s_lo, s_hi)
    assert ble_fake.SERVICE == CONFIG_SERVICE_UUID


@pytest.mark.parametrize(("model", "spec"), SPECS, ids=[f"{m}-{s.name}" for m, s in SPECS])
def test_bounds_are_inclusive_and_one_past_is_refused(model: str, spec: CharSpec) -> None:
    for ok in (spec.low, spec.high):
        assert spec.decode(spec.encode(ok)) == ok
    for bad in (spec.low - spec.scale, spec.high + spec.scale, -1):
        with pytest.raises(BleValueError, match="out of range"):
            spec.encode(bad)


@given(st.sampled_from(SPECS), st.integers(min_value=-(2**40), max_value=2**40))
def test_encode_accepts_exactly_the_documented_range(pair: tuple[str, CharSpec], v: int) -> None:
    _, spec = pair
    valid = spec.low <= v <= spec.high and v % spec.scale == 0
    if valid:
        data = spec.encode(v)
        assert len(data) == spec.fmt.size
        assert struct.unpack(spec.fmt.struct, data)[0] * spec.scale == v
        assert spec.decode(data) == v
    else:
        with pytest.raises(BleValueError):
            spec.encode(v)


@given(st.sampled_from(SPECS), st.binary(max_size=8))
def test_decode_takes_exactly_its_size_and_never_crashes(
    pair: tuple[str, CharSpec], data: bytes
) -> None:
    _, spec = pair
    if len(data) == spec.fmt.size:
        assert spec.decode(data) == struct.unpack(spec.fmt.struct, data)[0] * spec.scale
    else:
        with pytest.raises(BleValueError, match=f"expected {spec.fmt.size}"):
            spec.decode(data)


def test_bosch_heartbeat_is_whole_minutes_on_a_uint16() -> None:
    hb = get_model("bosch-tps110").heartbeat
    assert hb.encode(600) == struct.pack("<H", 10)
    assert hb.encode(86_400) == struct.pack("<H", 1440)
    with pytest.raises(BleValueError, match="steps of 60"):
        hb.encode(630)
    assert get_model("nwave-nps405").heartbeat.encode(600) == struct.pack("<I", 600)


@pytest.mark.parametrize("bad", [True, 1.5, "600", None])
def test_non_integers_are_refused(bad: object) -> None:
    with pytest.raises(BleValueError, match="whole number"):
        get_model("nwave-nps405").sensitivity.encode(bad)  # type: ignore[arg-type]


def test_unknown_model_names_the_known_ones() -> None:
    with pytest.raises(BleValueError, match="known: nwave-nps405"):
        get_model("acme-1")
    assert model_by_code(0x77) is None


def test_bounds_that_do_not_fit_the_format_are_a_programming_error() -> None:
    with pytest.raises(ValueError, match="do not fit"):
        CharSpec("x", "u", Format.U8, 0, 256)


def test_firmware_string() -> None:
    assert decode_firmware(b"2.3.1\x00\x00") == "2.3.1"
    assert decode_firmware(b"\xff\xfe1") == "\ufffd\ufffd1"
    assert len(decode_firmware(b"x" * 200)) == 64


# --- advertisements


def test_advert_of_each_model_with_and_without_battery() -> None:
    for m in MODELS.values():
        data = advert.encode_manufacturer_data(m.code, 42)
        assert advert.parse([CONFIG_SERVICE_UUID.upper()], {0xFFFF: data}) == advert.Advert(
            m.model, 42
        )
        none = advert.encode_manufacturer_data(m.code, None)
        assert advert.parse([CONFIG_SERVICE_UUID], {0xFFFF: none}) == advert.Advert(m.model, None)


def test_other_devices_are_not_sensors() -> None:
    assert advert.parse([], {}) is None
    assert advert.parse(["0000180f-0000-1000-8000-00805f9b34fb"], {0xFFFF: b"\x01\x01\x10"}) is None


@pytest.mark.parametrize(
    ("data", "problem", "model", "battery"),
    [
        (None, "no manufacturer data", None, None),
        (b"\x01\x01", "too short", None, None),
        (b"\x02\x01\x10", "profile version 2", None, None),
        (b"\x01\x09\x10", "unknown model code 0x09", None, 16),  # the battery still shows
        (b"\x01\x01\x65", "battery byte out of range", "nwave-nps405", None),
    ],
)
def test_bad_manufacturer_data_is_reported_not_raised(
    data: bytes | None, problem: str, model: str | None, battery: int | None
) -> None:
    parsed = advert.parse([CONFIG_SERVICE_UUID], {} if data is None else {0xFFFF: data})
    assert parsed is not None and parsed.problem is not None
    assert problem in parsed.problem
    assert (parsed.model, parsed.battery_percent) == (model, battery)


@given(st.binary(max_size=12))
def test_any_manufacturer_data_parses_without_crashing(data: bytes) -> None:
    parsed = advert.parse([CONFIG_SERVICE_UUID], {0xFFFF: data})
    assert parsed is not None
    assert parsed.model is None or parsed.model in MODELS
    assert parsed.battery_percent is None or 0 <= parsed.battery_percent <= 100
    assert (parsed.model is not None) or parsed.problem


def test_encode_manufacturer_data_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="percentage"):
        advert.encode_manufacturer_data(1, 101)
    with pytest.raises(ValueError, match="byte"):
        advert.encode_manufacturer_data(256, 1)


# --- plan and read-back


def test_plan_writes_only_what_was_asked() -> None:
    m = get_model("nwave-nps405")
    assert plan(m, Request()) == []
    assert Request().empty and not Request(recalibrate=True).empty
    writes = plan(m, Request(heartbeat_s=600, sensitivity=7))
    assert [(w.spec.name, w.value, w.data) for w in writes] == [
        ("heartbeat", 600, struct.pack("<I", 600)),
        ("sensitivity", 7, b"\x07"),
    ]
    with pytest.raises(BleValueError, match="sensitivity 11 is out of range"):
        plan(m, Request(heartbeat_s=600, sensitivity=11))


def test_check_any_model() -> None:
    check_any_model(Request(heartbeat_s=60, sensitivity=100))  # nwave / nbiot take these
    with pytest.raises(BleValueError, match="every model"):
        check_any_model(Request(heartbeat_s=59))
    with pytest.raises(BleValueError, match="sensitivity 0"):
        check_any_model(Request(sensitivity=0))


def test_verify_compares_the_value_read_back() -> None:
    (w,) = plan(get_model("bosch-tps110"), Request(heartbeat_s=1200))
    assert verify(w, struct.pack("<H", 20)).ok
    bad = verify(w, struct.pack("<H", 1440))
    assert (bad.ok, bad.read_back, bad.detail) == (False, 86_400, "wrote 1200, read back 86400")
    short = verify(w, b"\x14")
    assert (short.ok, short.read_back) == (False, None) and "expected 2" in short.detail


def test_recalibrated_counts_across_the_wrap() -> None:
    assert recalibrated(0, 1) and recalibrated(0xFFFF, 0)
    assert not recalibrated(5, 5)
