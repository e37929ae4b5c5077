"""Typed messages the berth-sensor codecs decode to. Pure data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass


class CodecError(ValueError):
    """A frame that cannot be decoded. ``reason`` is a short, stable label used as a metric
    label (``short_frame``, ``bad_port``, ``bad_checksum``, ``unknown_model``, ...)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True, slots=True)
class OccupancyStatus:
    """The sensor's own occupancy verdict."""

    occupied: bool
    previous_state_s: int | None = None  # how long the previous state lasted, if the frame says


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """Periodic health frame."""

    battery_mv: int | None = None
    temperature_c: float | None = None
    occupied: bool | None = None


@dataclass(frozen=True, slots=True)
class Startup:
    """Boot frame."""

    firmware: str | None = None
    reset_cause: str | None = None
    occupied: bool | None = None


@dataclass(frozen=True, slots=True)
class TagRegistration:
    """A user tag (e.g. a permit fob) registered at the berth; it may report occupancy too.

    ``occupied`` is ``True`` with the previous state's duration when the frame says the berth
    is occupied, ``None`` when it does not say (never ``False``: the vendor's decoder has no
    "free" here)."""

    tag_id: str  # 8 uppercase hex digits
    occupied: bool | None = None
    previous_state_s: int | None = None


@dataclass(frozen=True, slots=True)
class MagnetometerFrame:
    """An NB-IoT geomagnetic sensor frame: raw + baseline field, battery, radio."""

    device_id: str
    seq: int
    raw: tuple[int, int, int]
    baseline: tuple[int, int, int]
    battery_mv: int
    rssi_dbm: int
    sensor_occupied: bool | None = None  # the device's own (often unreliable) verdict, if sent


SensorMessage = OccupancyStatus | Heartbeat | Startup | TagRegistration | MagnetometerFrame
