"""Model registry: lookup, unknown models, dispatch, fuzzing across all codecs."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.sensors import bosch, nbiot, nwave, registry
from drivers.sensors.messages import CodecError, Heartbeat, OccupancyStatus


def test_all_models_registered() -> None:
    assert set(registry.CODECS) == {"nwave-nps405", "bosch-tps110", "nbiot-geomag"}
    assert registry.get_codec("nwave-nps405").transport == "lorawan"
    assert registry.get_codec("bosch-tps110").transport == "lorawan"
    assert registry.get_codec("nbiot-geomag").transport == "nbiot"
    for module in (nwave, bosch, nbiot):
        codec = registry.get_codec(module.MODEL)
        assert codec.model == module.MODEL
        assert codec.default_heartbeat_s == module.DEFAULT_HEARTBEAT_S > 0


def test_registry_is_read_only() -> None:
    with pytest.raises(TypeError):
        registry.CODECS["x"] = registry.CODECS["nwave-nps405"]  # type: ignore[index]


@pytest.mark.parametrize("model", ["", "nwave", "NWAVE-NPS405", "acme-9000"])
def test_unknown_model(model: str) -> None:
    with pytest.raises(CodecError) as err:
        registry.get_codec(model)
    assert err.value.reason == "unknown_model"
    with pytest.raises(CodecError) as err:
        registry.decode(model, 1, b"\x01")
    assert err.value.reason == "unknown_model"


def test_decode_dispatches_to_the_model() -> None:
    assert registry.decode("nwave-nps405", 1, bytes.fromhex("95")) == OccupancyStatus(True, 4440)
    assert registry.decode("bosch-tps110", 2, bytes.fromhex("01ff")) == Heartbeat(None, -1.0, True)
    frame = nbiot.encode_frame("0868330012345678", 7, (1, 2, 3), (1, 2, 3))
    assert registry.decode("nbiot-geomag", None, frame).seq == 7  # type: ignore[union-attr]


@given(
    st.sampled_from(sorted(registry.CODECS)),
    st.one_of(st.none(), st.integers(-300, 300)),
    st.binary(max_size=48),
)
def test_any_input_only_raises_codec_error(model: str, port: int | None, data: bytes) -> None:
    with contextlib.suppress(CodecError):
        registry.decode(model, port, data)
