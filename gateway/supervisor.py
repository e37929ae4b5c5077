"""Wiring: builds the gateway from settings and runs it under one TaskGroup.

Start-up order: database (migrations), town (imported on first start), live state (devices,
occupancy restored from the database), then the tasks: MQTT ingest, silence sweeper,
write-behind persister and the HTTP API. Shutdown (SIGTERM) stops the API, cancels the rest,
flushes state and closes the database, well within 10 s.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import uvicorn
from sqlalchemy import func, make_url, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from drivers.mqtt.transport import MqttParams, MqttTransport, shared
from events import now_utc
from gateway.api.app import create_app
from gateway.api.state import AppState
from gateway.cases import CaseMetrics, CasesRuntime
from gateway.cases.delivery import CaseDelivery, DeliverySettings
from gateway.config import Settings
from gateway.directory.devices import DeviceDirectory
from gateway.directory.registry import binding_for, entry_from_row
from gateway.directory.town import Berth, Counting, Site, SiteKind, load_town
from gateway.directory.town_import import import_town
from gateway.errors import StartupError
from gateway.infra.bus import EventBus
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import BerthRow, DeviceRow, SiteRow
from gateway.metrics import Metrics
from gateway.services.charging.runtime import ChargingRuntime
from gateway.services.parking.enforcement import Enforcement, load_rule_book, load_zones
from gateway.services.parking.ingest import SensorIngest, Source
from gateway.services.parking.payments import (
    ExternalProvider,
    FakeProvider,
    PaymentProvider,
    PaymentService,
)
from gateway.services.parking.persist import Persister, restore
from gateway.services.parking.quotes import load_book
from gateway.services.parking.sessions import SessionStore
from gateway.services.telemetry import Telemetry
from parking.occupancy import BerthInfo, OccupancyBook, OccupancyConfig, SensorBinding, SiteInfo
from telemetry.mapping import DeviceTags

log = logging.getLogger(__name__)

GC_FULL_EVERY = 1000  # younger collections between full ones (CPython's default: 10)


def mqtt_params(
    settings: Settings, client_id: str | None = None, clean: bool = False
) -> MqttParams:
    m = settings.mqtt
    return MqttParams(
        host=m.host,
        port=m.port,
        client_id=client_id or m.client_id,
        username=m.username,
        password=m.password.get_secret_value() if m.password else None,
        tls=m.tls,
        ca_file=m.ca_file,
        cert_file=m.cert_file,
        key_file=m.key_file,
        protocol=m.protocol,
        keepalive_s=m.keepalive_s,
        session_expiry_s=m.session_expiry_s,
        clean=clean,
    )


async def ensure_town(sessions: async_sessionmaker[Any], town_file: Any, now: datetime) -> bool:
    """Import the configured town on first start (an empty database). Returns True if it did."""
    async with sessions() as session:
        n = (await session.execute(select(func.count()).select_from(SiteRow))).scalar_one()
    if n:
        return False
    town = load_town(town_file)
    async with sessions.begin() as session:
        await import_town(session, town, now)
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
    sites = {
        r.id: Site(
            id=r.id,
            name=r.name,
            kind=SiteKind(r.kind),
            lat=r.lat,
            lon=r.lon,
            capacity=r.capacity,
            counting=Counting(r.counting),
            segment_class=r.segment_class,
            zone=r.zone_id,
            address=r.address,
            controller_id=r.controller_id,
        )
        for r in site_rows
    }
    berths = {
        r.id: Berth(id=r.id, site=r.site_id, number=r.number, lat=r.lat, lon=r.lon)
        for r in berth_rows
    }
    directory = DeviceDirectory()
    bindings: list[SensorBinding] = []
    for row in device_rows:
        directory.put(entry_from_row(row))
        b = binding_for(row)
        if b is not None:
            bindings.append(b)
    o = settings.occupancy
    book = OccupancyBook(
        [SiteInfo(s.id, s.capacity, s.counting.value, s.controller_id) for s in sites.values()],
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


def bind_api_socket(host: str, port: int) -> socket.socket:
    """Bind the API's listening socket up front, so a taken port is a clear start-up error
    instead of a server task dying later."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(addr)
        except OSError:
            sock.close()
            raise
    except OSError as exc:
        raise StartupError(f"[api] cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers: the gateway owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Gateway:
    def __init__(
        self,
        settings: Settings,
        clock: Callable[[], datetime] = now_utc,
        provider: PaymentProvider | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        # The payment provider is outside the gateway: by default the app's payment backend
        # records what it collected ([payments] provider); a deployment may pass its own.
        self.provider: PaymentProvider = provider or (
            FakeProvider() if settings.payments.provider == "fake" else ExternalProvider()
        )
        self.session_store: SessionStore | None = None
        self.payments: PaymentService | None = None
        self.enforcement: Enforcement | None = None
        self.case_delivery: CaseDelivery | None = None
        self.charging: ChargingRuntime | None = None
        self.charger_tags: dict[str, DeviceTags] = {}  # telemetry tags of the chargers
        self.ocpp_server: Any = None
        self.metrics = Metrics()
        self.bus = EventBus(self.metrics, settings.bus.queue_size)
        self.engine: AsyncEngine | None = None
        self.live: LiveState | None = None
        self.ingest: SensorIngest | None = None
        self.transport: MqttTransport | None = None
        self.persister: Persister | None = None
        self.server: _Server | None = None
        self._sock: socket.socket | None = None
        self.telemetry: Telemetry | None = None
        self.started = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.extra_tasks: list[Callable[[], Any]] = []

    @property
    def api_port(self) -> int:
        assert self._sock is not None
        port: int = self._sock.getsockname()[1]
        return port

    async def setup(self) -> None:
        s = self.settings
        self._sock = bind_api_socket(s.api.host, s.api.port)
        self.engine = create_engine(s.database.url, s.database.echo)
        try:
            await migrate(self.engine)
        except (OSError, SQLAlchemyError) as exc:
            self._sock.close()
            shown = make_url(s.database.url).render_as_string(hide_password=True)
            raise StartupError(f"[database] cannot open {shown}: {exc}") from exc
        sessions = sessionmaker_for(self.engine)
        await ensure_town(sessions, s.town.file, self.clock())
        self.live = live = await load_live_state(sessions, s, self.clock())
        try:
            book = load_book(s.tariffs.file)
        except (OSError, ValueError) as exc:
            self._sock.close()
            raise StartupError(f"[tariffs] {exc}") from exc
        self.session_store = SessionStore(
            sessions,
            live.sites,
            live.berths,
            book,
            self.metrics,
            self.clock,
            timedelta(seconds=s.sessions.plate_dedup_s),
        )
        self.payments = PaymentService(
            sessions, self.session_store, self.provider, self.metrics, self.clock
        )
        try:
            rules = load_rule_book(s.enforcement.file, await load_zones(sessions), set(live.sites))
            delivery_settings = DeliverySettings.from_config(s.cases)
        except (OSError, ValueError) as exc:
            self._sock.close()
            raise StartupError(f"[enforcement] / [cases] {exc}") from exc
        case_metrics = CaseMetrics(self.metrics.registry)
        self.case_delivery = CaseDelivery(delivery_settings, sessions, self.clock, case_metrics)
        self.enforcement = Enforcement(
            sessions,
            rules,
            live.sites,
            live.berths,
            live.book,
            self.bus,
            self.metrics,
            self.clock,
            on_recorded=self.case_delivery.kick,
        )
        cases_runtime = CasesRuntime(
            secret=delivery_settings.secret,
            tolerance_s=s.cases.callback_tolerance_s,
            metrics=case_metrics,
            delivery=self.case_delivery,
        )
        if s.ocpp.enabled:
            await self._setup_charging(sessions)
        reconciled = await self.session_store.reconcile(live.book)
        if reconciled:
            log.info("sessions: %d opened or closed to match the berths' occupancy", reconciled)
        m = s.mqtt
        topics: dict[Source, str] = {
            "chirpstack": m.chirpstack_topic,
            "tts": m.tts_topic,
            "nbiot": m.nbiot_topic,
            "carpark": m.carpark_topic,
        }
        self.ingest = SensorIngest(
            book=live.book,
            directory=live.directory,
            bus=self.bus,
            metrics=self.metrics,
            topics=topics,
            clock=self.clock,
            max_payload=m.max_payload_bytes,
            controllers=live.controllers,
        )
        self.transport = MqttTransport(
            mqtt_params(s),
            [shared(t, m.shared_group) for t in topics.values()],
            self.ingest.handle,
            on_state=self._mqtt_state,
        )
        self.persister = Persister(
            sessions, live.book, live.directory, self.metrics, s.occupancy.persist_interval_s
        )
        self.telemetry = await Telemetry.start(
            s.telemetry, self.bus, live.directory, self.metrics, self.clock, self.charger_tags
        )
        state = AppState(
            book=live.book,
            directory=live.directory,
            bus=self.bus,
            metrics=self.metrics,
            sessions=sessions,
            sites=live.sites,
            berths=live.berths,
            clock=self.clock,
            sse_keepalive_s=s.api.sse_keepalive_s,
            max_body_bytes=s.api.max_body_bytes,
            tariffs=book,
            session_store=self.session_store,
            payments=self.payments,
            min_plate_confidence=s.sessions.min_plate_confidence,
            enforcement=self.enforcement,
            cases=cases_runtime,
            charging=self.charging,
            ready_checks={
                "mqtt": self.transport.connected.is_set,
                "database": lambda: self.persister is not None and not self.persister.failing,
                "started": self.started.is_set,
            },
        )
        app = create_app(state)
        config = uvicorn.Config(
            app,
            host=s.api.host,
            port=s.api.port,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=3,
            ssl_certfile=str(s.api.tls_cert) if s.api.tls_cert else None,
            ssl_keyfile=str(s.api.tls_key) if s.api.tls_key else None,
        )
        self.server = _Server(config)

    async def _setup_charging(self, sessions: async_sessionmaker[Any]) -> None:
        """The OCPP central system: tariff, registry and state, and the listening server
        (bound now, so a taken port is a clear start-up error)."""
        import ssl

        from charging.ocpp.server import serve_ocpp
        from charging.tariff_file import load_charging_tariffs, load_sample_charging_tariffs

        o = self.settings.ocpp
        assert self._sock is not None and self.case_delivery is not None
        try:
            tariffs = (
                load_sample_charging_tariffs()
                if o.tariff_file is None
                else load_charging_tariffs(o.tariff_file)
            )
        except (OSError, ValueError) as exc:
            self._sock.close()
            raise StartupError(f"[ocpp] tariff_file: {exc}") from exc
        self.charging = ChargingRuntime(
            o, sessions, self.bus, self.metrics, self.clock, tariffs, self.case_delivery.kick
        )
        await self.charging.load()
        for c in self.charging.chargers.values():
            self.charger_tags[c.id] = DeviceTags(site=c.location, kind="charger", model=c.model)
        context = None
        if o.tls_cert is not None and o.tls_key is not None:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                context.load_cert_chain(o.tls_cert, o.tls_key)
            except (OSError, ssl.SSLError) as exc:
                self._sock.close()
                raise StartupError(f"[ocpp] tls_cert/tls_key: {exc}") from exc
        try:
            self.ocpp_server = await serve_ocpp(self.charging, o.host, o.port, ssl_context=context)
        except OSError as exc:
            self._sock.close()
            raise StartupError(
                f"[ocpp] cannot listen on {o.host}:{o.port}: {exc.strerror or exc}"
            ) from exc

    @property
    def ocpp_port(self) -> int:
        assert self.ocpp_server is not None
        port: int = next(iter(self.ocpp_server.sockets)).getsockname()[1]
        return port

    def _mqtt_state(self, up: bool) -> None:
        self.metrics.connected.labels("mqtt").set(1 if up else 0)
        if not up:
            self.metrics.reconnects.labels("mqtt").inc()

    async def _sweeper(self) -> None:
        assert self.live is not None
        while True:
            await asyncio.sleep(self.settings.occupancy.sweep_interval_s)
            for event in self.live.book.sweep(self.clock()):
                self.bus.publish(event)

    async def _reconciler(self) -> None:
        """Sessions follow berth events; this catches what an event lost on the way missed."""
        assert self.live is not None and self.session_store is not None
        while True:
            await asyncio.sleep(self.settings.enforcement.sweep_interval_s)
            try:
                await self.session_store.reconcile(self.live.book)
            except SQLAlchemyError as exc:
                log.warning("session reconciliation failed: %s", exc)

    async def run(self) -> None:
        """Run until ``stop_requested`` is set (or a task fails)."""
        if self.server is None:
            await self.setup()
        assert self.server and self.transport and self.persister and self.engine and self._sock
        assert self.telemetry is not None and self.session_store is not None
        assert self.enforcement is not None and self.case_delivery is not None
        try:
            async with asyncio.TaskGroup() as tg:
                serve = tg.create_task(self.server.serve(sockets=[self._sock]), name="api")
                others = [
                    tg.create_task(self.transport.run(), name="mqtt"),
                    tg.create_task(self._sweeper(), name="sweeper"),
                    tg.create_task(self.session_store.consume(self.bus), name="sessions"),
                    tg.create_task(self._reconciler(), name="sessions-reconcile"),
                    tg.create_task(
                        self.enforcement.run(self.settings.enforcement.sweep_interval_s),
                        name="enforcement",
                    ),
                    tg.create_task(self.case_delivery.run(), name="case-delivery"),
                    *(
                        [
                            tg.create_task(self.charging.record(), name="charger-recorder"),
                            tg.create_task(self.charging.watch(), name="charger-watch"),
                        ]
                        if self.charging is not None
                        else []
                    ),
                    tg.create_task(self.persister.run(), name="persister"),
                    tg.create_task(self.telemetry.pipeline.run(), name="telemetry"),
                    tg.create_task(
                        self.telemetry.health(self.clock, self.metrics.totals), name="health"
                    ),
                    *(tg.create_task(f(), name="extra") for f in self.extra_tasks),
                ]
                while not self.server.started:
                    if serve.done():
                        break
                    await asyncio.sleep(0.02)
                if self.server.started:
                    scheme = "https" if self.settings.api.tls_cert else "http"
                    log.info(
                        "API listening on %s://%s:%d/ (docs at /docs)",
                        scheme,
                        self.settings.api.host,
                        self.api_port,
                    )
                    self.started.set()
                    # Start-up made a heap of long-lived objects (town, book, app); moving them
                    # out of the collector's view keeps full collections from stalling
                    # requests (p99 of quotes under load: 61 ms -> ~21 ms).
                    gc.collect()
                    gc.freeze()
                    # Charger and berth state lives for seconds, long enough to reach the
                    # oldest generation; full collections (330 ms with 5,000 chargers) then ran
                    # every ~20 s. Only reference cycles wait for them: run them rarely.
                    gen0, gen1, _ = gc.get_threshold()
                    gc.set_threshold(gen0, gen1, GC_FULL_EVERY)
                await self.stop_requested.wait()
                log.info("shutting down")
                self.server.should_exit = True
                for t in others:
                    t.cancel()
        finally:
            self._sock.close()
            if self.ocpp_server is not None:
                self.ocpp_server.close()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self.ocpp_server.wait_closed(), 5)
            if self.telemetry is not None:
                await self.telemetry.close()
            await self.engine.dispose()
            log.info("stopped")

    def metrics_value(self, name: str, **labels: str) -> float:
        """Current value of one metric sample (0 when never set): for tests and the CLI."""
        value = self.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def request_stop(self) -> None:
        self.stop_requested.set()
