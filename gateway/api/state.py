"""What the API handlers need from the running gateway, in one typed object.

Every service is there: the services object is built whole at start (``gateway.wiring``),
so no route guards against a service that might not exist.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from fastapi import Request
from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.api.site_json import SiteJson
from gateway.cases.runtime import CasesRuntime
from gateway.config import (
    ApiConfig,
    BodycamsConfig,
    BulkImportConfig,
    CommissioningConfig,
    DronesConfig,
    TelemetryConfig,
)
from gateway.directory.devices import DeviceDirectory
from gateway.directory.town import Berth, Site
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.cameras.store import CameraReads
from gateway.services.charging.backend import ChargingRuntime
from gateway.services.lanes.contract import LaneDecider
from gateway.services.lanes.service import LaneService
from gateway.services.parking.enforcement import Enforcement
from gateway.services.parking.payments import PaymentService
from gateway.services.parking.sessions import SessionStore
from parking.occupancy import OccupancyBook
from parking.tariffs import TariffBook

if TYPE_CHECKING:
    from gateway.services.bodycams import BodycamService
    from gateway.services.drones import DroneService
    from gateway.wiring import Services


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
    session_store: SessionStore
    payments: PaymentService
    lanes: LaneService
    enforcement: Enforcement
    cases: CasesRuntime
    charging: ChargingRuntime
    telemetry: TelemetryConfig  # where the status view reads the spool
    camera_reads: CameraReads
    lane_decider: LaneDecider
    zone: ZoneInfo  # the town's: camera times without an offset are read in it
    sse_keepalive_s: float = 15.0
    ready_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    # shown in /readyz's checks, false = degraded, but never make the gateway not-ready
    degraded_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)
    max_body_bytes: int = 1_048_576
    camera_body_bytes: int = 4_194_304  # [cameras] max_body_bytes, on /cameras/ only
    camera_image_bytes: int = 1_048_576
    min_plate_confidence: float = 0.0
    max_stay_days: int = 366  # tariffs.max_stay_days: longer quotes are refused
    changed: Callable[[], None] = lambda: None  # a change was recorded: follow the feed now
    api: ApiConfig = field(default_factory=ApiConfig)  # the admission limits (gateway.api.limits)
    bodycams: BodycamService | None = None  # the body cams' SIP platform (flushed before a view)
    bodycams_config: BodycamsConfig = field(default_factory=BodycamsConfig)
    # the drone service (flushed before a view; None with [drones] enabled = false: the views
    # read the database, commands answer 503)
    drones: DroneService | None = None
    drones_config: DronesConfig = field(default_factory=DronesConfig)
    bulk_import: BulkImportConfig = field(default_factory=BulkImportConfig)
    commissioning: CommissioningConfig = field(default_factory=CommissioningConfig)
    serial_ports: dict[str, str] = field(default_factory=dict)  # [lanes] serial_ports
    site_json: SiteJson = field(default_factory=SiteJson)  # /sites and /map bodies, per site

    @property
    def tariffs(self) -> TariffBook:
        """The posted tariff in force (replaced live when new tariffs are imported)."""
        return self.session_store.tariffs

    @classmethod
    def of(
        cls, services: Services, ready_checks: dict[str, Callable[[], bool]] | None = None
    ) -> AppState:
        s = services.settings
        return cls(
            book=services.live.book,
            directory=services.live.directory,
            bus=services.bus,
            metrics=services.metrics,
            sessions=services.sessions,
            sites=services.live.sites,
            berths=services.live.berths,
            clock=services.clock,
            session_store=services.session_store,
            payments=services.payments,
            lanes=services.lanes,
            enforcement=services.enforcement,
            cases=services.cases,
            charging=services.charging,
            telemetry=s.telemetry,
            camera_reads=services.camera_reads,
            lane_decider=services.lane_decider,
            zone=services.zone,
            sse_keepalive_s=s.api.sse_keepalive_s,
            ready_checks=dict(ready_checks or {}),
            max_body_bytes=s.api.max_body_bytes,
            camera_body_bytes=s.cameras.max_body_bytes,
            camera_image_bytes=s.cameras.max_image_bytes,
            min_plate_confidence=s.sessions.min_plate_confidence,
            max_stay_days=s.tariffs.max_stay_days,
            changed=services.follower.kick,
            api=s.api,
            bodycams=services.bodycams,
            bodycams_config=s.bodycams,
            drones=services.drones if s.drones.enabled else None,
            drones_config=s.drones,
            bulk_import=s.bulk_import,
            commissioning=s.commissioning,
            serial_ports=dict(s.lanes.serial_ports),
        )


def app_state(request: Request) -> AppState:
    """The app's state, read in a route: what ``get_state`` gives as a dependency, without
    the cost of solving one (the busiest public routes take the request instead)."""
    state: AppState = request.app.state.citygate
    return state


async def get_state(request: Request) -> AppState:
    """The app's state (async: FastAPI runs a plain ``def`` dependency in a worker thread,
    a thread hop on every request for an attribute read)."""
    return app_state(request)
