"""What the API handlers need from the running gateway, in one typed object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from fastapi import Request
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.directory.devices import DeviceDirectory
from gateway.directory.town import Berth, Site
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from parking.occupancy import OccupancyBook
from parking.tariffs import TariffBook

if TYPE_CHECKING:
    from gateway.cases import CasesRuntime
    from gateway.services.charging.runtime import ChargingRuntime
    from gateway.services.parking.enforcement import Enforcement
    from gateway.services.parking.payments import PaymentService
    from gateway.services.parking.sessions import SessionStore


@dataclass
class AppState:
    book: OccupancyBook
    directory: DeviceDirectory
    bus: EventBus
    metrics: Metrics
    sessions: async_sessionmaker[Any]
    sites: dict[str, Site]
    berths: dict[str, Berth]
    clock: Callable[[], datetime]
    sse_keepalive_s: float = 15.0
    ready_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    max_body_bytes: int = 1_048_576
    tariffs: TariffBook | None = None
    session_store: SessionStore | None = None
    payments: PaymentService | None = None
    min_plate_confidence: float = 0.0
    enforcement: Enforcement | None = None
    cases: CasesRuntime | None = None
    charging: ChargingRuntime | None = None


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.citygate
    return state
