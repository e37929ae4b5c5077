"""``citygate simulate``: the town's sensors over MQTT against a running gateway's broker (the
demo's simulator on its own, for load and for a gateway started with ``citygate run``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
from typing import Any

from gateway.cli.common import WithConfig, install_stop, settings_for

__all__ = ["register"]


async def _simulate(args: argparse.Namespace) -> int:
    from gateway.demo import SimulatorOptions, run_simulator
    from gateway.directory.town import load_town
    from gateway.infra.mqtt import mqtt_params

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
    sim = with_config(sub.add_parser("simulate", help="drive the town's sensors over MQTT"))
    sim.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    sim.add_argument("--rate", type=float, default=200.0, help="max messages per second")
    sim.add_argument("--seed", type=int, default=1)
    sim.set_defaults(func=cmd_simulate)
