"""The supervisor: binds the listeners, then runs every task of the gateway in one TaskGroup.

``Gateway.open`` binds the API socket first (a taken port is a clear start-up error, not a
server task dying later), builds the services (``gateway.wiring``) and starts the OCPP listener
and the body cams' SIP listeners.
``run`` starts the tasks — MQTT ingest, silence sweeper, sessions, enforcement, case delivery,
the charger recorder and watch, the write-behind persister, the change-feed follower, the lanes'
payment recheck, the drones' timers, telemetry and the HTTP API — and on ``request_stop``
(SIGTERM) stops the API, cancels the rest, flushes state and closes the database, well within
10 s. A little over 400 lines, long because start, the task list and the ordered stop share
the listeners and services they bind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import uvicorn
from sqlalchemy.exc import SQLAlchemyError

from drivers.aio import wait_for
from dronelink.mavlink.link import MavlinkLink
from events import now_utc
from gateway.api.app import create_app
from gateway.api.slowclients import deadline_protocol
from gateway.api.state import AppState
from gateway.config import OcppConfig, Settings
from gateway.errors import StartupError
from gateway.infra.retention import Retention
from gateway.services.drones import start_links
from gateway.services.lanes.cluster_gates import ClusterGates
from gateway.services.lanes.modbus_gates import ModbusGates
from gateway.services.parking.providers import PaymentProvider
from gateway.wiring import Services, build_services

log = logging.getLogger(__name__)

GC_FULL_EVERY = 1000  # younger collections between full ones (CPython's default: 10)


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


def ocpp_tls(o: OcppConfig) -> ssl.SSLContext | None:
    """wss:// when a certificate is configured; a bad one is a start-up error, never plain."""
    if o.tls_cert is None or o.tls_key is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(o.tls_cert, o.tls_key)
    except (OSError, ssl.SSLError) as exc:
        raise StartupError(f"[ocpp] tls_cert/tls_key: {exc}") from exc
    return context


async def start_ocpp(services: Services) -> Any:
    """The OCPP central system's listener (bound now: a taken port is a start-up error)."""
    from drivers.ocpp.server import serve_ocpp

    o = services.settings.ocpp
    context = ocpp_tls(o)
    try:
        return await serve_ocpp(
            services.charging,
            o.host,
            o.port,
            ssl_context=context,
            tls_handshake_timeout_s=o.tls_handshake_timeout_s,
            on_tls=lambda outcome: services.metrics.tls_handshakes.labels("ocpp", outcome).inc(),
            clock=services.clock,
        )
    except OSError as exc:
        raise StartupError(
            f"[ocpp] cannot listen on {o.host}:{o.port}: {exc.strerror or exc}"
        ) from exc


async def start_drone_links(services: Services) -> None:
    """The drone links that listen (MAVLink's UDP port; a taken port: a start-up error)."""
    d = services.settings.drones
    try:
        await start_links(services.drones.links)
    except OSError as exc:
        raise StartupError(
            f"[drones] cannot listen for MAVLink on {d.mavlink_host}:{d.mavlink_port}: "
            f"{exc.strerror or exc}"
        ) from exc


async def start_sip(services: Services) -> int:
    """The body cams' SIP listeners, UDP and TCP on one port (a taken port: a start-up error)."""
    b = services.settings.bodycams
    try:
        return await services.bodycams.start()
    except OSError as exc:
        raise StartupError(
            f"[bodycams] cannot listen on {b.host}:{b.sip_port}: {exc.strerror or exc}"
        ) from exc


class _Server(uvicorn.Server):
    """uvicorn without its own signal handlers (the gateway owns SIGTERM), and with a TLS
    handshake deadline: uvicorn passes none to ``create_server``, so asyncio's default (60 s)
    would let a client that never finishes its handshake hold a connection that long."""

    tls_handshake_timeout_s: float = 10.0
    on_tls_started: Callable[[], None] = staticmethod(lambda: None)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's startup for the sockets the gateway bound (its only use here), with
        ``ssl_handshake_timeout`` when TLS is on."""
        config = self.config
        if sockets is None or config.ssl is None:
            await super().startup(sockets)
            return
        await self.lifespan.startup()
        started = self.on_tls_started

        def create_protocol(_loop: asyncio.AbstractEventLoop | None = None) -> asyncio.Protocol:
            started()  # accepted: the handshake starts now; connection_made follows it
            protocol: asyncio.Protocol = config.http_protocol_class(  # type: ignore[call-arg]
                config=config,
                server_state=self.server_state,
                app_state=self.lifespan.state,
                _loop=_loop,
            )
            return protocol

        loop = asyncio.get_running_loop()
        self.servers = [
            await loop.create_server(
                create_protocol,
                sock=sock,
                ssl=config.ssl,
                backlog=config.backlog,
                ssl_handshake_timeout=self.tls_handshake_timeout_s,
                ssl_shutdown_timeout=self.tls_handshake_timeout_s,  # asyncio's default: 30 s
            )
            for sock in sockets
        ]
        self.started = True


def _uvicorn(services: Services) -> tuple[_Server, AppState]:
    s = services.settings
    checks: dict[str, Callable[[], bool]] = {
        "mqtt": services.transport.connected.is_set,
        "database": lambda: not services.persister.failing,
        "changes": lambda: not services.follower.stale,  # pruned changes it never applied
    }
    state = AppState.of(services, checks)
    rejected = services.metrics.api_rejected
    tls = services.metrics.tls_handshakes
    tls_completed = tls.labels("api", "completed").inc
    config = uvicorn.Config(
        create_app(state),
        http=deadline_protocol(
            s.api.header_timeout_s,
            s.api.body_timeout_s,
            lambda reason: rejected.labels(reason).inc(),
            on_connect=tls_completed if s.api.tls_cert else None,
        ),
        host=s.api.host,
        port=s.api.port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
        ssl_certfile=str(s.api.tls_cert) if s.api.tls_cert else None,
        ssl_keyfile=str(s.api.tls_key) if s.api.tls_key else None,
    )
    server = _Server(config)
    server.tls_handshake_timeout_s = s.api.tls_handshake_timeout_s
    server.on_tls_started = tls.labels("api", "started").inc
    return server, state


class Gateway:
    """A gateway that is bound and built (``Gateway.open``) and runs until asked to stop."""

    def __init__(self, services: Services, sock: socket.socket, ocpp_server: Any) -> None:
        self.services = services
        self.settings = services.settings
        self._sock = sock
        self.ocpp_server = ocpp_server  # None when [ocpp] enabled = false
        self.server, self.state = _uvicorn(services)
        self.state.ready_checks["started"] = self.started_is_set
        self.state.degraded_checks["telemetry"] = self.telemetry_ok
        self.started = asyncio.Event()
        self.stop_requested = asyncio.Event()
        self.extra_tasks: list[Callable[[], Any]] = []

    @classmethod
    async def open(
        cls,
        settings: Settings,
        clock: Callable[[], datetime] = now_utc,
        provider: PaymentProvider | None = None,
    ) -> Gateway:
        sock = bind_api_socket(settings.api.host, settings.api.port)
        try:
            services = await build_services(settings, clock, provider)
        except BaseException:
            sock.close()
            raise
        try:
            ocpp_server = await start_ocpp(services) if settings.ocpp.enabled else None
            if settings.bodycams.enabled:
                await start_sip(services)
            if settings.drones.enabled:
                await start_drone_links(services)
        except BaseException:
            services.bodycams.close()
            for link in services.drones.links.values():
                getattr(link, "close", lambda: None)()
            sock.close()
            await services.close()
            raise
        return cls(services, sock, ocpp_server)

    def started_is_set(self) -> bool:
        return self.started.is_set()

    def telemetry_ok(self) -> bool:
        """False while telemetry is degraded (disk full under the spool): reported, not fatal."""
        return not self.services.telemetry.pipeline.degraded

    @property
    def api_port(self) -> int:
        port: int = self._sock.getsockname()[1]
        return port

    @property
    def ocpp_port(self) -> int:
        assert self.ocpp_server is not None, "[ocpp] enabled = false"
        port: int = next(iter(self.ocpp_server.sockets)).getsockname()[1]
        return port

    @property
    def mavlink_port(self) -> int:
        """The UDP port MAVLink vehicles send to."""
        link = self.services.drones.links["mavlink"]
        assert isinstance(link, MavlinkLink), "[drones] enabled = false"
        return link.port

    @property
    def sip_port(self) -> int:
        """The body cams' SIP port (UDP and TCP)."""
        assert self.settings.bodycams.enabled, "[bodycams] enabled = false"
        return self.services.bodycams.port

    async def _sweeper(self) -> None:
        live, bus, shared = self.services.live, self.services.bus, self.services.shared_berths
        sweep = live.book.sweep if shared is None else shared.sweep  # shared: under row locks
        while True:
            await asyncio.sleep(self.settings.occupancy.sweep_interval_s)
            for event in sweep(self.services.clock()):
                bus.publish(event)

    async def _reconciler(self) -> None:
        """Sessions follow the book's berth changes (the persister); this catches what a change
        that could not be applied missed."""
        while True:
            await asyncio.sleep(self.settings.enforcement.sweep_interval_s)
            try:
                await self.services.session_store.reconcile(self.services.live.book)
            except SQLAlchemyError as exc:
                log.warning("session reconciliation failed: %s", exc)

    async def _gates(self) -> None:
        """Poll the lanes' gate controllers (over Modbus; nothing with ``[lanes] gates = none``)."""
        lanes = self.services.lanes
        if isinstance(lanes.gates, ModbusGates | ClusterGates):  # ClusterGates: PostgreSQL
            await lanes.gates.run(lambda: [rt.config for rt in lanes.lanes.values()])

    def _tasks(self, tg: asyncio.TaskGroup) -> list[asyncio.Task[Any]]:
        sv = self.services
        tasks = [
            tg.create_task(sv.transport.run(), name="mqtt"),
            tg.create_task(self._sweeper(), name="sweeper"),
            tg.create_task(self._reconciler(), name="sessions-reconcile"),
            tg.create_task(
                sv.enforcement.run(self.settings.enforcement.sweep_interval_s), name="enforcement"
            ),
            tg.create_task(sv.case_delivery.run(), name="case-delivery"),
            tg.create_task(sv.persister.run(), name="persister"),
            tg.create_task(sv.follower.run(), name="changes"),
            tg.create_task(
                Retention(sv.engine, self.settings.retention, sv.metrics, sv.clock).run(),
                name="retention",
            ),
            tg.create_task(sv.activator.run(), name="lifecycle"),
            tg.create_task(sv.lanes.run(), name="lanes"),
            tg.create_task(self._gates(), name="gates"),
            tg.create_task(sv.telemetry.pipeline.run(), name="telemetry"),
            tg.create_task(sv.telemetry.health(sv.clock, sv.metrics.totals), name="health"),
            tg.create_task(
                sv.camera_reads.evidence.run(self.settings.cameras.prune_interval_s, sv.clock),
                name="camera-evidence",
            ),
        ]
        if self.settings.bodycams.enabled:  # this instance is the body cams' SIP platform
            tasks.append(tg.create_task(sv.bodycams.run(), name="bodycams"))
            if sv.shared_cams is not None:  # PostgreSQL: the cams other instances hold
                tasks.append(tg.create_task(sv.shared_cams.run(), name="shared-cams"))
        if self.settings.drones.enabled:  # the drones' timers and write-behind, and links
            tasks.append(tg.create_task(sv.drones.run(), name="drones"))
            for source, link in sv.drones.links.items():
                run = getattr(link, "run", None)
                if run is not None:
                    tasks.append(tg.create_task(run(), name=f"drone-link-{source}"))
        if sv.charger_cluster is not None:  # PostgreSQL: the other instances' chargers
            tasks.append(tg.create_task(sv.charger_cluster.run(), name="charger-cluster"))
        if self.ocpp_server is not None:  # this instance serves chargers
            tasks.append(tg.create_task(sv.charging.record(), name="charger-recorder"))
            tasks.append(tg.create_task(sv.charging.watch(), name="charger-watch"))
        tasks.extend(tg.create_task(f(), name="extra") for f in self.extra_tasks)
        return tasks

    async def run(self) -> None:
        """Run until ``stop_requested`` is set (or a task fails)."""
        try:
            async with asyncio.TaskGroup() as tg:
                serve = tg.create_task(self.server.serve(sockets=[self._sock]), name="api")
                others = self._tasks(tg)
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
                    _tune_gc()
                await self.stop_requested.wait()
                log.info("shutting down")
                self.server.should_exit = True
                for t in others:
                    t.cancel()
        finally:
            self._sock.close()
            self.services.bodycams.close()
            with contextlib.suppress(Exception):
                await wait_for(self.services.bodycams.flush(), 5)
            with contextlib.suppress(Exception):
                await wait_for(self.services.drones.close(), 5)
            if self.ocpp_server is not None:
                self.ocpp_server.close()
                with contextlib.suppress(Exception):
                    await wait_for(self.ocpp_server.wait_closed(), 5)
            await self.services.close()
            log.info("stopped")

    def metrics_value(self, name: str, **labels: str) -> float:
        """Current value of one metric sample (0 when never set): for tests and the CLI."""
        value = self.services.metrics.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value

    def request_stop(self) -> None:
        self.stop_requested.set()


def _tune_gc() -> None:
    """Start-up made a heap of long-lived objects (town, book, app); moving them out of the
    collector's view keeps full collections from stalling requests (p99 of quotes under load:
    61 ms -> ~21 ms). Charger and berth state lives for seconds, long enough to reach the
    oldest generation; full collections (330 ms with 5,000 chargers) then ran every ~20 s.
    Only reference cycles wait for them: run them rarely."""
    gc.collect()
    gc.freeze()
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, GC_FULL_EVERY)
