"""What AI cameras and drones saw (device or operator token); the rules decide whether a
case report follows."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.api import problems
from gateway.api.auth import require
from gateway.api.state import AppState, get_state
from gateway.bounds import Instant
from gateway.directory.tokens import Role, TokenInfo
from parking.enforcement import Detection, DetectionKind
from parking.sessions import PlateError, normalise_plate

router = APIRouter(prefix="/api/v1", tags=["enforcement"])
StateDep = Annotated[AppState, Depends(get_state)]
Reporter = Annotated[TokenInfo, Depends(require(Role.DEVICE, Role.OPERATOR))]
KINDS = get_args(DetectionKind)


class DetectionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(min_length=1, max_length=64, description="camera or drone id")
    kind: DetectionKind
    observed_at: Instant = Field(description="ISO 8601 with offset")
    confidence: float = Field(ge=0, le=1, strict=True)
    image_ref: str = Field(min_length=1, max_length=500, description="evidence image URL or id")
    lat: float | None = Field(None, ge=-90, le=90, strict=True)
    lon: float | None = Field(None, ge=-180, le=180, strict=True)
    site_id: str | None = Field(None, max_length=64)
    berth_id: str | None = Field(None, max_length=64)
    plate: str | None = Field(None, max_length=16)
    detection_id: str | None = Field(
        None,
        min_length=8,
        max_length=32,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="the device's own id for this detection: a re-sent detection is kept once",
    )

    @model_validator(mode="after")
    def _place(self) -> DetectionRequest:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("give lat and lon together")
        if self.lat is None and self.site_id is None and self.berth_id is None:
            raise ValueError("a detection needs a place: lat/lon, site_id or berth_id")
        return self


@router.post(
    "/detections",
    summary="Report a detection (street vending, blocking, abandoned vehicle, ...)",
    description="Kinds: "
    + ", ".join(KINDS)
    + ". Answers whether a case report was filed. A place is required: `lat` with `lon`, "
    "`site_id` or `berth_id` (a berth in that site); otherwise a 422.",
)
async def post_detection(
    body: DetectionRequest, token: Reporter, state: StateDep
) -> dict[str, Any]:
    enforcement = state.enforcement
    site_id = body.site_id
    if body.berth_id is not None:
        berth = state.berths.get(body.berth_id)
        if berth is None:
            raise problems.invalid(
                f"unknown berth {body.berth_id!r}", "unknown_berth", ("body", "berth_id")
            )
        if site_id is not None and site_id != berth.site:
            raise problems.invalid(
                f"berth {body.berth_id!r} is not in site {site_id!r}",
                "berth_not_in_site",
                ("body", "berth_id"),
                ("body", "site_id"),
            )
        site_id = berth.site
    site = None
    if site_id is not None:
        site = state.sites.get(site_id)
        if site is None:
            raise problems.invalid(f"unknown site {site_id!r}", "unknown_site", ("body", "site_id"))
    plate = None
    if body.plate is not None:
        try:
            plate = normalise_plate(body.plate)
        except PlateError as exc:
            raise problems.invalid(str(exc), "bad_plate", ("body", "plate")) from None
    if body.observed_at > state.clock() + timedelta(minutes=5):
        state.metrics.detections.labels("future").inc()
        raise problems.invalid(
            "observed_at is in the future (check the device's clock)",
            "future",
            ("body", "observed_at"),
        )
    lat, lon = body.lat, body.lon
    if lat is None and site is not None:
        berth = state.berths.get(body.berth_id) if body.berth_id else None
        lat, lon = (berth.lat, berth.lon) if berth else (site.lat, site.lon)
    detection = Detection(
        device_id=body.device_id,
        kind=body.kind,
        observed_at=body.observed_at,
        confidence=body.confidence,
        image_ref=body.image_ref,
        lon=lon,
        lat=lat,
        site_id=site_id,
        berth_id=body.berth_id,
        site_zone=site.zone if site else None,
        plate=plate,
        detection_id=body.detection_id,
    )
    if body.detection_id is not None:
        known = await enforcement.known_detection(body.detection_id)
        if known is not None:
            return {**known, "replayed": True}
    result = await enforcement.detection(detection, token.id)
    return {
        "id": result.id,
        "outcome": result.outcome,
        "case_ids": list(result.case_ids),
        "duplicates": result.duplicates,
        "replayed": False,
    }
