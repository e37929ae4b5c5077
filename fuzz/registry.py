"""Every fuzz target, by name."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from fuzz.core import Target
from fuzz.targets import cameras, dji, files, gb28181, lorawan, mavlink, ocpp, sensors, sip

__all__ = ["TARGETS"]

TARGETS: Mapping[str, Target] = MappingProxyType(
    {
        t.name: t
        for module in (lorawan, sensors, cameras, sip, gb28181, dji, mavlink, ocpp, files)
        for t in module.TARGETS
    }
)
