"""The one table from a sensor model name to its codec, so transports and the device registry
never import a vendor module by hand."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Literal

from drivers.sensors import bosch, nbiot, nwave
from drivers.sensors.messages import CodecError, SensorMessage

__all__ = ["CODECS", "SensorCodec", "decode", "get_codec"]


@dataclass(frozen=True)
class SensorCodec:
    """What the gateway needs to know about a sensor model."""

    model: str
    decode: Callable[[int | None, bytes], SensorMessage]
    default_heartbeat_s: int
    transport: Literal["lorawan", "nbiot"]


CODECS: Mapping[str, SensorCodec] = MappingProxyType(
    {
        c.model: c
        for c in (
            SensorCodec(nwave.MODEL, nwave.decode, nwave.DEFAULT_HEARTBEAT_S, "lorawan"),
            SensorCodec(bosch.MODEL, bosch.decode, bosch.DEFAULT_HEARTBEAT_S, "lorawan"),
            SensorCodec(nbiot.MODEL, nbiot.decode, nbiot.DEFAULT_HEARTBEAT_S, "nbiot"),
        )
    }
)


def get_codec(model: str) -> SensorCodec:
    """The codec for *model*; an unknown model is a ``CodecError("unknown_model")``."""
    try:
        return CODECS[model]
    except (KeyError, TypeError):
        raise CodecError("unknown_model", repr(model)[:100]) from None


def decode(model: str, f_port: int | None, data: bytes) -> SensorMessage:
    """Decode *data* with *model*'s codec."""
    return get_codec(model).decode(f_port, data)
