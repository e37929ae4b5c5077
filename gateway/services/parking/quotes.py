"""Quotes for the app and the CLI: request validation and the JSON shape, shared by both."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, model_validator

from gateway.bounds import Instant
from gateway.directory.town import Site
from parking.sessions import vehicle_class
from parking.tariff_file import load_sample_tariffs, load_tariffs
from parking.tariffs import (
    DEFAULT_MAX_STAY_DAYS,
    Quote,
    TariffBook,
    TariffVersion,
    quote,
    summary,
)

VehicleClassName = Literal["small", "large", "new_energy"]
PlateColour = Literal["blue", "yellow", "green", "yellow_green", "white", "black"]


def load_book(path: Path | None, zone: ZoneInfo) -> TariffBook:
    """The posted parking tariff, read in the town's ``zone``."""
    return load_sample_tariffs(zone) if path is None else load_tariffs(path, zone)


def vehicle_from_plate(plate: str, colour: str | None = None) -> VehicleClassName:
    """The vehicle class of a plate (by its colour when known; see parking.sessions)."""
    return vehicle_class(plate.strip(), colour)


class QuoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    site_id: str = Field(min_length=1, max_length=64)
    vehicle_class: VehicleClassName | None = None
    plate: str | None = Field(None, min_length=7, max_length=8)
    plate_colour: PlateColour | None = Field(
        None, description="with plate: its colour (yellow = large, green = new energy)"
    )
    entry: Instant = Field(description="ISO 8601 with offset")
    exit: Instant = Field(description="ISO 8601 with offset")

    @model_validator(mode="after")
    def _check(self) -> QuoteRequest:
        if (self.vehicle_class is None) == (self.plate is None):
            raise ValueError("give exactly one of vehicle_class or plate")
        if self.plate_colour is not None and self.plate is None:
            raise ValueError("plate_colour goes with plate")
        if self.exit < self.entry:
            raise ValueError("exit is before entry")
        return self

    @property
    def vehicle(self) -> VehicleClassName:
        if self.vehicle_class is not None:
            return self.vehicle_class
        assert self.plate is not None
        return vehicle_from_plate(self.plate, self.plate_colour)


def quote_json(q: Quote, vehicle: str) -> dict[str, Any]:
    return {
        "site_id": q.site_id,
        "tariff_version": q.tariff_version,
        "vehicle_class": vehicle,
        "total_fen": q.total_fen,
        "lines": [
            {
                "start": ln.start.isoformat(),
                "end": ln.end.isoformat(),
                "rule": ln.rule,
                "units": ln.units,
                "amount_fen": ln.amount_fen,
            }
            for ln in q.lines
        ],
    }


def make_quote(
    book: TariffBook, site: Site, req: QuoteRequest, max_days: int = DEFAULT_MAX_STAY_DAYS
) -> dict[str, Any]:
    """ValueError (with a message for the user) when the tariff cannot price it, or when the
    stay is longer than ``max_days`` (``tariffs.max_stay_days``: the work grows with it)."""
    q = quote(
        book, site.id, site.segment_class, req.vehicle, req.entry, req.exit, max_days=max_days
    )
    return quote_json(q, req.vehicle)


def version_json(v: TariffVersion) -> dict[str, Any]:
    def bands(bs: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": b.name,
                "start": f"{b.start_min // 60:02d}:{b.start_min % 60:02d}",
                "end": f"{b.end_min // 60:02d}:{b.end_min % 60:02d}",
                "rate_fen": b.rate_fen,
                "unit_minutes": b.unit_minutes,
            }
            for b in bs
        ]

    return {
        "version": v.version,
        "effective_from": v.effective_from.isoformat(),
        "timezone": str(v.zone),
        "note": v.note,
        "exit_grace_minutes": v.exit_grace_minutes,
        "summary_zh": summary(v, "zh"),
        "summary_en": summary(v, "en"),
        "holidays": sorted(d.isoformat() for d in v.holidays),
        "free_first": {
            site: {"minutes": f.minutes, "mode": f.mode} for site, f in v.free_first.items()
        },
        "rates": [
            {
                "site_class": sc,
                "vehicle_class": vc,
                "bands": bands(r.bands),
                "holiday_bands": bands(r.holiday_bands),
                "cap": None
                if r.cap is None
                else {"amount_fen": r.cap.amount_fen, "mode": r.cap.mode},
            }
            for (sc, vc), r in sorted(v.rates.items())
        ],
    }


def current_version(book: TariffBook, now: datetime) -> TariffVersion:
    try:
        return book.version_at(now)
    except ValueError:
        return book.versions[0]
