"""Run the gateway and the demo (gateway + local broker + simulators).

``citygate run`` with no config file found runs on built-in defaults but says so, loudly, on
stderr (sample town, broker, absolute data paths): it does not refuse, because defaults are
what a first try wants and nothing existing is overwritten (the sample town is imported only
into an empty database). The demo reads only the file given with ``--config`` and writes the
config it runs with to ``<workdir>/citygate.toml``, one demo per workdir (a lock).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Exit,
    Settings,
    WithConfig,
    config_source,
    install_stop,
    settings_for,
)
from gateway.config import DEMO_CONFIG, ENV_PREFIX, LOCAL_CONFIG, SEARCH_ORDER, SQLITE_PREFIX

SIM_GRACE_S = 5.0  # how long the simulators get to hang up before the gateway stops


def _on_embedded_broker(settings: Settings, host: str, port: int, kind: str) -> dict[str, Any]:
    """Settings data pointed at the local broker (plain, anonymous; amqtt speaks 3.1.1 only)."""
    data = settings.model_dump()
    data["mqtt"].update(
        host=host,
        port=port,
        tls=False,
        username=None,
        password=None,
        protocol="5" if kind == "mosquitto" else "3.1.1",
    )
    return data


def defaults_warning(settings: Settings, environ: dict[str, str]) -> str:
    """The block ``citygate run`` prints when no config file was found: what it will use."""
    db = settings.database.url
    if db.startswith(SQLITE_PREFIX):
        db = f"SQLite file {Path(db[len(SQLITE_PREFIX) :].partition('?')[0]).resolve()}"
    else:
        from sqlalchemy import make_url

        db = make_url(db).render_as_string(hide_password=True)
    town = settings.town.file
    m = settings.mqtt
    broker = (
        "an embedded broker on a free port"
        if settings.demo.embedded_broker
        else f"mqtt{'s' if m.tls else ''}://{m.host}:{m.port} (whatever broker answers there)"
    )
    overrides = sorted(
        k for k in environ if k.startswith(ENV_PREFIX) and "__" in k[len(ENV_PREFIX) :]
    )
    lines = [
        "!" * 78,
        f"citygate run: NO CONFIG FILE found (searched {SEARCH_ORDER}).",
        "Running on built-in defaults"
        + (f" + environment {', '.join(overrides)}" if overrides else "")
        + ":",
        "  town:     "
        + (str(town) if town else "the shipped SAMPLE town (demo data), if the database is empty"),
        f"  broker:   {broker}",
        f"  database: {db}",
        f"  spool:    {settings.telemetry.spool_dir.resolve()}",
        f"  API:      {settings.api.host}:{settings.api.port}",
        "For a deployment, write a config file (docs/configuration.md) and pass --config FILE.",
        "!" * 78,
    ]
    return "\n".join(lines)


async def _run(settings: Settings) -> int:
    from gateway.demo.broker import embedded_broker
    from gateway.supervisor import Gateway

    if not settings.demo.embedded_broker:
        gw = await Gateway.open(settings)
        install_stop(gw.request_stop)
        await gw.run()
        return 0
    async with embedded_broker(kind=settings.demo.broker) as (host, port, kind):
        gw = await Gateway.open(
            Settings.model_validate(_on_embedded_broker(settings, host, port, kind))
        )
        install_stop(gw.request_stop)
        await gw.run()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    settings = settings_for(args)
    if config_source(args).path is None:
        print(defaults_warning(settings, dict(os.environ)), file=sys.stderr, flush=True)
    return asyncio.run(_run(settings))


async def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.demo.broker import embedded_broker
    from gateway.demo.lanes import DemoLane, run_lane_traffic
    from gateway.demo.town_gates import simulate_town_gates
    from gateway.demo.workdir import write_config
    from gateway.directory.town import load_town
    from gateway.infra.mqtt import mqtt_params
    from gateway.supervisor import Gateway

    base = settings_for(args)
    source = config_source(args).path
    base_config = str(source) if source else "built-in defaults"
    workdir = Path(args.workdir)
    sim_stop = asyncio.Event()
    stop_now = asyncio.Event()  # a signal before the gateway exists

    gw: Gateway | None = None
    sims_done: list[asyncio.Event] = []

    async def finish() -> None:
        """Simulators hang up first (no charger cut off mid-handshake), then the gateway."""
        waits = [asyncio.create_task(e.wait()) for e in sims_done]
        if waits:
            await asyncio.wait(waits, timeout=SIM_GRACE_S)
            for w in waits:
                w.cancel()
        if gw is not None:
            gw.request_stop()

    finishing: set[asyncio.Task[None]] = set()

    def stop() -> None:
        stop_now.set()
        if gw is None:
            return
        if sim_stop.is_set() or not gw.started.is_set():
            gw.request_stop()  # a second Ctrl-C, or still starting: stop at once
            return
        sim_stop.set()
        task = asyncio.get_running_loop().create_task(finish())
        finishing.add(task)
        task.add_done_callback(finishing.discard)

    install_stop(stop)
    async with (
        contextlib.AsyncExitStack() as pairs,
        embedded_broker(kind=base.demo.broker) as (host, port, kind),
    ):
        data = _on_embedded_broker(base, host, port, kind)
        if base.database.url == Settings().database.url:
            data["database"]["url"] = f"{SQLITE_PREFIX}{workdir / 'citygate.db'}"
        if base.telemetry.spool_dir == Settings().telemetry.spool_dir:
            data["telemetry"]["spool_dir"] = workdir / "telemetry-spool"
        if base.cameras.evidence_dir == Settings().cameras.evidence_dir:
            data.setdefault("cameras", {})["evidence_dir"] = workdir / "camera-evidence"
        data["api"]["port"] = args.port
        if base.ocpp.port == Settings().ocpp.port:
            data["ocpp"]["port"] = 0  # any free port: printed below
        if base.bodycams.sip_port == Settings().bodycams.sip_port:
            data["bodycams"]["sip_port"] = 0  # likewise (the demo's cams are told it)
        if base.drones.mavlink_port == Settings().drones.mavlink_port:
            data.setdefault("drones", {})["mavlink_port"] = 0  # likewise (the vehicle is told)
        settings = Settings.model_validate(data)
        town = load_town(settings.town.file)
        town_gates = await simulate_town_gates(
            ((lane.gate.bus, lane.gate.unit, lane.gate.model) for lane in town.lanes),
            pairs,
            workdir,
        )
        gate_sims = town_gates.sims
        not_simulated = town_gates.skipped
        if town_gates.serial_ports and not settings.lanes.serial_ports:
            # The gateway opens the pairs' ends in the town's serial ports' place.
            data["lanes"] = {**data.get("lanes", {}), "serial_ports": town_gates.serial_ports}
            settings = Settings.model_validate(data)
        sim_buses = {lane.gate.bus for lane in town.lanes} - {
            w.split(" ", 1)[0] for w in not_simulated
        }
        for what in not_simulated:
            print(f"demo: gate bus {what} is not simulated: its lanes' gates stay offline",
                  file=sys.stderr)  # fmt: skip
        gw = await Gateway.open(settings)
        if stop_now.is_set():
            gw.request_stop()
        options = SimulatorOptions(speed=args.speed, max_rate=args.rate)

        def tracked(work: Any) -> Any:
            done = asyncio.Event()
            sims_done.append(done)

            async def run() -> None:
                try:
                    await work()
                finally:
                    done.set()

            return run

        async def simulate() -> None:
            assert gw is not None
            await gw.started.wait()
            await run_simulator(
                mqtt_params(settings, "citygate-sim", clean=True), town, options, stop=sim_stop
            )

        async def chargers() -> None:
            """The town's chargers, simulated over OCPP (demo passwords set here)."""
            from gateway.demo.chargers import run_chargers
            from gateway.directory.chargers import set_password

            assert gw is not None
            await gw.started.wait()
            if gw.ocpp_server is None:
                return
            fleet = {}
            async with gw.services.sessions.begin() as session:
                for c in gw.services.charging.chargers.values():
                    fleet[c.id] = (await set_password(session, c.id, now_utc()), c.connectors)
            ocpp_url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
            await run_chargers(ocpp_url, fleet, sim_stop, speed=args.speed / 60)

        async def cars() -> None:
            """Cars through the lanes whose gates are simulated (cameras push over HTTP)."""
            assert gw is not None
            await gw.started.wait()
            demo_lanes = [
                DemoLane(lane.id, lane.site, lane.kind, lane.camera, lane.gate.bus)
                for lane in town.lanes
            ]
            simulated = {lane.gate.bus for lane in town.lanes if lane.gate.bus in sim_buses}
            await run_lane_traffic(gw, demo_lanes, simulated, sim_stop, now_utc)

        async def bodycams() -> None:
            """The officers' body cams over GB/T 28181 SIP (demo passwords set here)."""
            from gateway.demo.bodycam_town import simulate_town_bodycams

            assert gw is not None
            await gw.started.wait()
            if settings.bodycams.enabled:
                await simulate_town_bodycams(gw, town, sim_stop)

        async def drones() -> None:
            """The town's patrol drones: a DJI dock over the demo broker, a MAVLink vehicle."""
            from gateway.demo.drone_town import simulate_town_drones

            assert gw is not None
            await gw.started.wait()
            if settings.drones.enabled:
                await simulate_town_drones(town.drones, (host, port), gw.mavlink_port, sim_stop)

        async def announce() -> None:
            assert gw is not None
            await gw.started.wait()
            written = _as_running(
                settings,
                gw.api_port,
                gw.ocpp_port if gw.ocpp_server else None,
                gw.sip_port if settings.bodycams.enabled else None,
                gw.mavlink_port if settings.drones.enabled else None,
            )
            config_file = workdir / DEMO_CONFIG.name
            write_config(
                config_file,
                written,
                f"Written by `citygate demo` (pid {os.getpid()}) at {now_utc():%Y-%m-%d %H:%M}Z:\n"
                "the config the demo runs with. Every citygate command run from the demo's\n"
                f"parent directory finds it ({SEARCH_ORDER}).\n"
                "Rewritten by the next demo; no secrets in it.",
            )
            url = f"http://{settings.api.host}:{gw.api_port}"
            ocpp = (
                f"ws://{settings.ocpp.host}:{gw.ocpp_port}/ocpp/{{id}}" if gw.ocpp_server else "off"
            )
            b = settings.bodycams
            sip = (
                f"udp+tcp {b.host}:{gw.sip_port}, platform {b.platform_id}" if b.enabled else "off"
            )
            d = settings.drones
            mav = f"udp {d.mavlink_host}:{gw.mavlink_port}" if d.enabled else "off"
            print(
                f"\ncitygate demo is running ({kind} broker on {host}:{port}).\n"
                f"  vacancies: {url}/api/v1/sites\n  city map:  {url}/api/v1/map\n"
                f"  live:      {url}/api/v1/vacancies/stream\n"
                f"  chargers:  {url}/api/v1/charging/locations (OCPP: {ocpp})\n"
                f"  body cams: {url}/api/v1/field (operator token; GB/T 28181 SIP: {sip})\n"
                f"  drones:    {url}/api/v1/drones (operator token; DJI over the broker, "
                f"MAVLink: {mav})\n"
                f"  lanes:     {url}/api/v1/lanes (inspector token to read, operator to open: "
                "citygate token create --role operator)\n"
                f"  web page:  {url}/web/ (log in with a token)\n"
                f"  API docs:  {url}/docs\n"
                f"  config:    {config_file} (on {base_config}; the CLI finds it)\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
            if args.duration:
                await asyncio.sleep(args.duration)
                stop()

        gw.extra_tasks += [
            tracked(simulate), tracked(chargers), tracked(cars), tracked(bodycams),
            tracked(drones), announce,
        ]  # fmt: skip
        try:
            await gw.run()
        finally:
            for sim in gate_sims:
                await sim.stop()
    return 0


def _as_running(
    settings: Settings,
    api_port: int,
    ocpp_port: int | None,
    sip_port: int | None = None,
    mavlink_port: int | None = None,
) -> Settings:
    """The demo's settings with the ports it actually bound, for the file the CLI reads."""
    data = settings.model_dump()
    data["api"]["port"] = api_port
    if ocpp_port is not None:
        data["ocpp"]["port"] = ocpp_port
    if sip_port is not None:
        data["bodycams"]["sip_port"] = sip_port
    if mavlink_port is not None:
        data["drones"]["mavlink_port"] = mavlink_port
    data["demo"] = {}  # the broker runs already: readers connect to it, they start none
    return Settings.model_validate(data)


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.broker import port_is_free
    from gateway.demo.workdir import WorkdirBusy, WorkdirLock

    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lock = WorkdirLock(workdir)
    try:
        lock.acquire()
    except WorkdirBusy as exc:
        print(f"citygate demo: {exc}", file=sys.stderr)
        return int(Exit.REFUSED)
    try:
        if args.port and not port_is_free("127.0.0.1", args.port):
            print(
                f"port {args.port} is taken; the demo API takes a free port instead",
                file=sys.stderr,
            )
            args.port = 0
        return asyncio.run(_demo(args))
    finally:
        lock.release()


def register(sub: Any, with_config: WithConfig) -> None:
    """Add this group's commands to the parser."""
    run = with_config(sub.add_parser("run", help="run the gateway"))
    run.set_defaults(func=cmd_run)

    demo = with_config(
        sub.add_parser("demo", help="gateway + local broker + simulator on embedded defaults")
    )
    demo.add_argument("--port", type=int, default=8080, help="API port (0 = any free port)")
    demo.add_argument("--workdir", default=".demo", help="where the demo keeps its database")
    demo.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    demo.add_argument("--rate", type=float, default=100.0, help="max simulated msgs/s")
    demo.add_argument("--duration", type=float, default=0.0, help="stop after N s (0 = never)")
    # The demo reads only --config (never a deployment's ./citygate.toml or $CITYGATE_CONFIG,
    # nor the file it writes itself).
    # It names its base config in its banner (a second demo's refusal stays one line).
    demo.set_defaults(
        func=cmd_demo,
        config_skip=(LOCAL_CONFIG, DEMO_CONFIG),
        config_use_env=False,
        announce_config=False,
    )
