"""Run the gateway, the demo (gateway + local broker + simulators) and the sensor simulator."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

from events import now_utc
from gateway.cli.common import (
    Settings,
    WithConfig,
    install_stop,
    settings_for,
)


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


async def _run(settings: Settings) -> int:
    from gateway.demo.broker import embedded_broker
    from gateway.supervisor import Gateway

    if not settings.demo.embedded_broker:
        gw = await Gateway.open(settings)
        install_stop(gw.request_stop)
        await gw.run()
        return 0
    async with embedded_broker() as (host, port, kind):
        gw = await Gateway.open(
            Settings.model_validate(_on_embedded_broker(settings, host, port, kind))
        )
        install_stop(gw.request_stop)
        await gw.run()
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return asyncio.run(_run(settings_for(args)))


async def _demo(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.demo.broker import embedded_broker
    from gateway.directory.town import load_town
    from gateway.supervisor import Gateway
    from gateway.wiring import mqtt_params

    base = settings_for(args)
    workdir = Path(args.workdir)
    async with embedded_broker() as (host, port, kind):
        data = _on_embedded_broker(base, host, port, kind)
        if base.database.url == Settings().database.url:
            data["database"]["url"] = f"sqlite+aiosqlite:///{workdir / 'citygate.db'}"
        if base.telemetry.spool_dir == Settings().telemetry.spool_dir:
            data["telemetry"]["spool_dir"] = workdir / "telemetry-spool"
        data["api"]["port"] = args.port
        if base.ocpp.port == Settings().ocpp.port:
            data["ocpp"]["port"] = 0  # any free port: printed below
        settings = Settings.model_validate(data)
        gw = await Gateway.open(settings)
        town = load_town(settings.town.file)
        sim_stop = asyncio.Event()
        options = SimulatorOptions(speed=args.speed, max_rate=args.rate)

        async def simulate() -> None:
            await gw.started.wait()
            await run_simulator(
                mqtt_params(settings, "citygate-sim", clean=True), town, options, stop=sim_stop
            )

        async def chargers() -> None:
            """The town's chargers, simulated over OCPP (demo passwords set here)."""
            from gateway.demo.chargers import run_chargers
            from gateway.directory.chargers import set_password

            await gw.started.wait()
            if gw.ocpp_server is None:
                return
            fleet = {}
            async with gw.services.sessions.begin() as session:
                for c in gw.services.charging.chargers.values():
                    fleet[c.id] = (await set_password(session, c.id, now_utc()), c.connectors)
            ocpp_url = f"ws://127.0.0.1:{gw.ocpp_port}/ocpp"
            await run_chargers(ocpp_url, fleet, sim_stop, speed=args.speed / 60)

        async def announce() -> None:
            await gw.started.wait()
            url = f"http://{settings.api.host}:{gw.api_port}"
            ocpp = (
                f"ws://{settings.ocpp.host}:{gw.ocpp_port}/ocpp/{{id}}" if gw.ocpp_server else "off"
            )
            print(
                f"\ncitygate demo is running ({kind} broker on {host}:{port}).\n"
                f"  vacancies: {url}/api/v1/sites\n  city map:  {url}/api/v1/map\n"
                f"  live:      {url}/api/v1/vacancies/stream\n"
                f"  chargers:  {url}/api/v1/charging/locations (OCPP: {ocpp})\n"
                f"  API docs:  {url}/docs\n"
                "Press Ctrl-C to stop.\n",
                flush=True,
            )
            if args.duration:
                await asyncio.sleep(args.duration)
                gw.request_stop()

        def stop() -> None:
            sim_stop.set()
            gw.request_stop()

        gw.extra_tasks += [simulate, chargers, announce]
        install_stop(stop)
        await gw.run()
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo.broker import port_is_free

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    if args.port and not port_is_free("127.0.0.1", args.port):
        print(f"port {args.port} is taken; the demo API takes a free port instead", file=sys.stderr)
        args.port = 0
    return asyncio.run(_demo(args))


async def _simulate(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.directory.town import load_town
    from gateway.wiring import mqtt_params

    settings = settings_for(args)
    town = load_town(settings.town.file)
    stop = asyncio.Event()
    install_stop(stop.set)
    options = SimulatorOptions(speed=args.speed, max_rate=args.rate, seed=args.seed)
    stats = await run_simulator(
        mqtt_params(settings, f"citygate-sim-{os.getpid()}", clean=True),
        town,
        options,
        stop=stop,
    )
    print(json.dumps(dataclasses.asdict(stats), default=str))
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    return asyncio.run(_simulate(args))


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
    demo.set_defaults(func=cmd_demo)

    sim = with_config(sub.add_parser("simulate", help="drive the town's sensors over MQTT"))
    sim.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    sim.add_argument("--rate", type=float, default=200.0, help="max messages per second")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=cmd_simulate)
