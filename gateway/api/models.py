"""Response and request models of the HTTP API (the public contract, shown at /docs)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateway.directory.devices import Lifecycle


class SiteOut(BaseModel):
    id: str
    name: str
    kind: Literal["car_park", "on_street"]
    lat: float
    lon: float
    capacity: int
    free: int = Field(description="free spaces, clamped to 0..capacity")
    occupied: int
    unknown: int = Field(description="spaces whose state is not known (sensor silent, no data)")
    updated_at: datetime = Field(description="when these counts last changed or were confirmed")
    age_s: float = Field(description="seconds since updated_at: how fresh the counts are")
    stale: bool = Field(description="the source of the counts is silent (counts are unknown)")
    counting: Literal["berth_sensors", "entry_exit"]
    segment_class: str
    zone: str | None
    address: str


class SitesOut(BaseModel):
    sites: list[SiteOut]
    generated_at: datetime


class SensorOut(BaseModel):
    dev_eui: str
    model: str


class BerthOut(BaseModel):
    id: str
    number: str
    lat: float
    lon: float
    state: Literal["free", "occupied", "unknown"]
    since: datetime
    last_seen: datetime | None
    comms_lost: bool
    sensor: SensorOut | None


class BerthsOut(BaseModel):
    site_id: str
    berths: list[BerthOut]
    generated_at: datetime


class DeviceOut(BaseModel):
    id: str
    kind: str
    protocol: str
    model: str
    address: str
    berth_id: str | None
    site_id: str | None
    lifecycle: Lifecycle
    heartbeat_s: int | None
    last_seen: datetime | None
    battery_mv: int | None
    battery_pct: float | None = Field(
        None, description="battery level the LoRaWAN network server reports, 0..100"
    )
    rssi: float | None
    snr: float | None
    notes: str
    created_at: datetime
    updated_at: datetime
    vendor: str | None = Field(None, description="plate cameras: the push format")
    lane_id: str | None = Field(None, description="plate cameras: the lane it watches")
    direction: Literal["in", "out"] | None = Field(
        None, description="plate cameras: which way its lane goes (null: as the camera says)"
    )


class DevicesOut(BaseModel):
    devices: list[DeviceOut]


DevEui = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{16}$")]


class DeviceCreate(BaseModel):
    """Register a berth sensor (a technician's first step before installing it)."""

    model_config = ConfigDict(extra="forbid")
    dev_eui: DevEui
    model: str = Field(min_length=1, max_length=64)
    berth_id: str | None = Field(None, max_length=64)
    heartbeat_s: int | None = Field(None, gt=0, le=7 * 86400)
    notes: str = Field("", max_length=2000)


CameraId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9._-]{0,63}$")]


class CameraCreate(BaseModel):
    """Register a plate camera at a car park; the answer holds its push URL's secret, once."""

    model_config = ConfigDict(extra="forbid")
    id: CameraId
    vendor: Literal["hikvision", "vzenith", "dahua"]
    site_id: str = Field(min_length=1, max_length=64)
    lane_id: str | None = Field(None, min_length=1, max_length=64)
    direction: Literal["in", "out"] | None = None
    notes: str = Field("", max_length=2000)


class CameraCredentials(BaseModel):
    """A camera with its push path; ``secret`` is shown this once (only its hash is kept)."""

    device: DeviceOut
    secret: str
    push_path: str = Field(description="POST here (prefix with the gateway's base URL)")


class DevicePatch(BaseModel):
    """Bind/unbind (``berth_id``; null unbinds), move through the lifecycle, annotate."""

    model_config = ConfigDict(extra="forbid")
    berth_id: str | None = Field(None, max_length=64)
    lifecycle: Lifecycle | None = None
    heartbeat_s: int | None = Field(None, gt=0, le=7 * 86400)
    notes: str | None = Field(None, max_length=2000)
