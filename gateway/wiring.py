"""Builds the services object once at start: every service the gateway runs, none optional.

``build_services`` opens the database (running migrations), imports the town on first start,
restores live state and builds every book and service from settings. What it returns is
complete: no attribute waits for a second step, and the API needs no guard for a service
that might not exist. Only *listening* (API socket, OCPP server) and *running* (tasks) are
left to the supervisor. What can be its own builder is (``build_uplinks``, ``build_lanes``,
``build_bodycams``, ``load_charging``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from charging.tariff_file import load_charging_tariffs, load_sample_charging_tariffs
from drivers.mqtt.transport import MqttTransport
from events import now_utc
from gateway.cases.delivery import CaseDelivery, DeliverySettings
from gateway.cases.metrics import CaseMetrics
from gateway.cases.runtime import CasesRuntime
from gateway.config import Settings
from gateway.directory import documents
from gateway.directory.audit import STARTUP
from gateway.directory.devices import DeviceDirectory
from gateway.directory.live import LiveApplier, berth_from_row, site_from_row, site_info
from gateway.directory.registry import binding_for, entry_from_row
from gateway.directory.town import (
    Berth,
    Site,
    TownFileError,
    configured_zone,
    load_town,
)
from gateway.directory.town_import import import_town
from gateway.errors import StartupError
from gateway.infra.bus import EventBus
from gateway.infra.changes import ChangeFollower, head_seq
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import BerthRow, DeviceRow, SiteRow
from gateway.metrics import Metrics
from gateway.services.bodycams import BodycamService, build_bodycams
from gateway.services.bodycams.shared import SharedCams
from gateway.services.cameras.store import CameraReads
from gateway.services.charging.backend import ChargingRuntime
from gateway.services.charging.cluster import ChargerCluster, load_charging
from gateway.services.charging.cluster_link import default_instance_id
from gateway.services.drones import DroneService, build_drones
from gateway.services.lanes.build import build_cameras, build_lanes
from gateway.services.lanes.cluster_gates import ClusterGates
from gateway.services.lanes.contract import LaneDecider
from gateway.services.lanes.modbus_gates import ModbusGates
from gateway.services.lanes.service import LaneService
from gateway.services.lifecycle import Activator
from gateway.services.lifecycle import wire as wire_lifecycle
from gateway.services.parking.enforcement import Enforcement
from gateway.services.parking.ingest import SensorIngest
from gateway.services.parking.payments import PaymentService
from gateway.services.parking.persist import Persister, restore
from gateway.services.parking.providers import ExternalProvider, FakeProvider, PaymentProvider
from gateway.services.parking.sessions import SessionStore
from gateway.services.parking.shared_berths import SharedBerths
from gateway.services.parking.uplinks import build_uplinks
from gateway.services.telemetry import Telemetry
from parking.occupancy import BerthInfo, OccupancyBook, OccupancyConfig, SensorBinding
from parking.tariffs import TariffBook
from telemetry.mapping import DeviceTags

log = logging.getLogger(__name__)


async def ensure_town(sessions: async_sessionmaker[Any], town_file: Any, now: datetime) -> bool:
    """Import the configured town on first start (an empty database). Returns True if it did."""
    async with sessions() as session:
        n = (await session.execute(select(func.count()).select_from(SiteRow))).scalar_one()
    if n:
        return False
    town = load_town(town_file)
    async with sessions.begin() as session:
        await import_town(session, town, now, actor=STARTUP)
    log.info(
        "imported town %r: %d sites, %d berths, %d sensors",
        town.town.name,
        len(town.sites),
        len(town.berths),
        len(town.sensors),
    )
    return True


@dataclass
class LiveState:
    """The town as the running gateway holds it: sites, berths, occupancy, devices."""

    sites: dict[str, Site]
    berths: dict[str, Berth]
    book: OccupancyBook
    directory: DeviceDirectory
    controllers: dict[str, str]


async def load_live_state(
    sessions: async_sessionmaker[Any], settings: Settings, now: datetime
) -> LiveState:
    async with sessions() as session:
        site_rows = list((await session.execute(select(SiteRow).order_by(SiteRow.id))).scalars())
        berth_rows = list(
            (
                await session.execute(select(BerthRow).order_by(BerthRow.site_id, BerthRow.id))
            ).scalars()
        )
        device_rows = list((await session.execute(select(DeviceRow))).scalars())
    sites = {r.id: site_from_row(r) for r in site_rows}
    berths = {r.id: berth_from_row(r) for r in berth_rows}
    directory = DeviceDirectory()
    bindings: list[SensorBinding] = []
    for row in device_rows:
        directory.put(entry_from_row(row))
        b = binding_for(row)
        if b is not None:
            bindings.append(b)
    o = settings.occupancy
    book = OccupancyBook(
        [site_info(s) for s in sites.values()],
        [BerthInfo(b.id, b.site) for b in berths.values()],
        bindings,
        start=now,
        config=OccupancyConfig(
            silence_factor=o.silence_factor, controller_timeout_s=o.controller_timeout_s
        ),
    )
    restored = await restore(sessions, book)
    log.info(
        "live state: %d sites, %d berths (%d restored), %d devices",
        len(sites),
        len(berths),
        restored,
        len(directory),
    )
    controllers = {s.id: s.controller_id for s in sites.values() if s.controller_id}
    return LiveState(sites, berths, book, directory, controllers)


@dataclass(frozen=True, slots=True)
class Services:
    """Everything the gateway runs, built once (``build_services``)."""

    settings: Settings
    clock: Callable[[], datetime]
    zone: ZoneInfo  # the town's: every book that says "22:00" reads it in this zone
    metrics: Metrics
    bus: EventBus
    engine: AsyncEngine
    sessions: async_sessionmaker[Any]
    live: LiveState
    provider: PaymentProvider
    session_store: SessionStore
    payments: PaymentService
    lanes: LaneService
    enforcement: Enforcement
    case_delivery: CaseDelivery
    cases: CasesRuntime
    charging: ChargingRuntime
    charger_cluster: ChargerCluster | None  # PostgreSQL: chargers across instances
    charger_tags: dict[str, DeviceTags]
    ingest: SensorIngest
    transport: MqttTransport
    persister: Persister
    shared_berths: SharedBerths | None  # several instances decide uplinks under row locks
    telemetry: Telemetry
    follower: ChangeFollower
    camera_reads: CameraReads
    lane_decider: LaneDecider  # a lane's camera: its lane; any other: the books only
    bodycams: BodycamService
    shared_cams: SharedCams | None  # PostgreSQL: the cams other instances hold, mirrored
    drones: DroneService  # runs with [drones] enabled (the links: services/drones/links.py)
    activator: Activator  # a commissioned device's first good message, made durable

    @property
    def tariffs(self) -> TariffBook:
        """The posted tariff in force (replaced live when new tariffs are imported)."""
        return self.session_store.tariffs

    async def close(self) -> None:
        """Release what building opened (the chargers' locks, the spool, the database pool)."""
        if self.charger_cluster is not None:
            await self.charger_cluster.close()
        await self.telemetry.close()
        await self.engine.dispose()


async def open_database(settings: Settings) -> AsyncEngine:
    """The engine, migrated; a clear start-up error when the database cannot be opened."""
    engine = create_engine(settings.database.url, settings.database.echo)
    try:
        await migrate(engine)
    except (OSError, SQLAlchemyError) as exc:
        await engine.dispose()
        shown = make_url(settings.database.url).render_as_string(hide_password=True)
        raise StartupError(f"[database] cannot open {shown}: {exc}") from exc
    return engine


def _provider(settings: Settings, given: PaymentProvider | None) -> PaymentProvider:
    """The payment provider is outside the gateway: by default the app's payment backend
    records what it collected ([payments] provider); a deployment may pass its own."""
    if given is not None:
        return given
    return FakeProvider() if settings.payments.provider == "fake" else ExternalProvider()


async def build_services(
    settings: Settings,
    clock: Callable[[], datetime] = now_utc,
    provider: PaymentProvider | None = None,
) -> Services:
    """Open the database and build every service; on a start-up error nothing stays open."""
    engine = await open_database(settings)
    try:
        return await _build(settings, clock, _provider(settings, provider), engine)
    except BaseException:
        await engine.dispose()
        raise


async def _build(
    s: Settings, clock: Callable[[], datetime], provider: PaymentProvider, engine: AsyncEngine
) -> Services:
    metrics = Metrics()
    bus = EventBus(metrics, s.bus.queue_size)
    sessions = sessionmaker_for(engine)
    await ensure_town(sessions, s.town.file, clock())
    try:
        zone = configured_zone(s.town)
    except TownFileError as exc:
        raise StartupError(f"[town] {exc}") from exc
    # Whatever is committed after this seq is applied from the change feed (again, harmlessly,
    # if the load below already saw it).
    after_seq = await head_seq(sessions)
    live = await load_live_state(sessions, s, clock())
    try:
        doc = await documents.ensure_document(
            sessions, "tariffs", s.tariffs.file, clock(), zone, actor=STARTUP
        )
        tariffs = documents.parse_tariffs(doc.content, doc.source, zone)
    except ValueError as exc:
        raise StartupError(f"[tariffs] {exc}") from exc
    try:
        doc = await documents.ensure_document(
            sessions, "rules", s.enforcement.file, clock(), zone, actor=STARTUP
        )
        async with sessions() as db:
            zones = await documents.town_zones(db)
        rules = documents.parse_rules(doc.content, doc.source, zones, set(live.sites))
        delivery_settings = DeliverySettings.from_config(s.cases)
    except (OSError, ValueError) as exc:
        raise StartupError(f"[enforcement] / [cases] {exc}") from exc
    try:
        o = s.ocpp
        charging_tariffs = (
            load_sample_charging_tariffs(zone)
            if o.tariff_file is None
            else load_charging_tariffs(o.tariff_file, zone)
        )
    except (OSError, ValueError) as exc:
        raise StartupError(f"[ocpp] tariff_file: {exc}") from exc
    session_store = SessionStore(
        sessions,
        live.sites,
        live.berths,
        tariffs,
        metrics,
        clock,
        timedelta(seconds=s.sessions.plate_dedup_s),
    )
    payments = PaymentService(sessions, session_store, provider, metrics, clock)
    lanes = await build_lanes(s, sessions, session_store, payments, metrics, clock)
    case_metrics = CaseMetrics(metrics.registry)
    case_delivery = CaseDelivery(delivery_settings, sessions, clock, case_metrics)
    enforcement = Enforcement(
        sessions,
        rules,
        live.sites,
        live.berths,
        live.book,
        bus,
        metrics,
        clock,
        on_recorded=case_delivery.kick,
    )
    cases = CasesRuntime(
        secret=delivery_settings.secret,
        tolerance_s=s.cases.callback_tolerance_s,
        metrics=case_metrics,
        delivery=case_delivery,
    )
    charging = ChargingRuntime(
        s.ocpp, sessions, bus, metrics, clock, charging_tariffs, zone, case_delivery.kick
    )
    cluster = await load_charging(engine, sessions, charging, clock, serves=s.ocpp.enabled)
    charger_tags = {
        c.id: DeviceTags(site=c.location, kind="charger", model=c.model)
        for c in charging.chargers.values()
    }
    reconciled = await session_store.reconcile(live.book)
    if reconciled:
        log.info("sessions: %d opened or closed to match the berths' occupancy", reconciled)
    instance = cluster.instance if cluster is not None else default_instance_id()
    postgres = s.database.url.startswith("postgresql")
    if postgres:  # several instances: one drives each gate bus, the others relay to it
        local = lanes.gates if isinstance(lanes.gates, ModbusGates) else None
        cluster_gates = ClusterGates(engine, sessions, instance, clock, local)
        cluster_gates.lane_of = lambda lane_id: (
            rt.config if (rt := lanes.lanes.get(lane_id)) is not None else None
        )
        lanes.gates = cluster_gates
    shared_berths, ingest, persister, transport = build_uplinks(
        s, engine, sessions, live.book, live.directory, live.controllers, bus, metrics, clock,
        session_store, instance,
    )  # fmt: skip
    telemetry = await Telemetry.start(
        s.telemetry, bus, live.directory, metrics, clock, charger_tags
    )
    bodycams = await build_bodycams(s.bodycams, sessions, bus, metrics, clock, zone,
                                    case_delivery.kick, lambda: enforcement.rules)  # fmt: skip
    # PostgreSQL: several instances may each hold some cams; each mirrors the others' rows
    shared_cams = SharedCams(engine, bodycams, instance) if postgres else None
    drones = await build_drones(s, sessions, bus, metrics, clock)
    applier = LiveApplier(
        sessions, live.book, live.directory, live.sites, live.berths, live.controllers,
        bus, clock, zone, session_store, enforcement, charging, charger_tags, lanes, bodycams,
        drones,
    )  # fmt: skip
    follower = ChangeFollower(engine, sessions, applier.apply, metrics, after=after_seq)
    activator = Activator(sessions, clock, on_committed=follower.kick)
    wire_lifecycle(activator, live.directory, charging, bodycams, drones)
    camera_reads, lane_decider = build_cameras(
        s, sessions, session_store, lanes, live.directory, live.sites, bus, metrics, clock
    )
    return Services(
        settings=s,
        clock=clock,
        zone=zone,
        metrics=metrics,
        bus=bus,
        engine=engine,
        sessions=sessions,
        live=live,
        provider=provider,
        session_store=session_store,
        payments=payments,
        lanes=lanes,
        enforcement=enforcement,
        case_delivery=case_delivery,
        cases=cases,
        charging=charging,
        charger_cluster=cluster,
        charger_tags=charger_tags,
        ingest=ingest,
        transport=transport,
        persister=persister,
        shared_berths=shared_berths,
        telemetry=telemetry,
        follower=follower,
        camera_reads=camera_reads,
        lane_decider=lane_decider,
        bodycams=bodycams,
        shared_cams=shared_cams,
        drones=drones,
        activator=activator,
    )
