"""The town's patrol drones for ``citygate demo``: each DJI drone as a simulated dock with its
aircraft over the demo broker (``gateway.demo.dji_dock``), each MAVLink drone as a pymavlink
vehicle over UDP to the gateway's MAVLink port (``gateway.demo.mav_vehicle``). Both fly a loop
inside their patrol area (the area's corners pulled a fifth of the way to its centre, so the
loop stays inside) and answer the loudspeaker and return-home. Nothing runs when ``[drones]
enabled = false``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from typing import Any

from gateway.demo.dji_dock import DockFleet, DockOptions, DockSpec
from gateway.demo.mav_vehicle import MavVehicle
from gateway.directory.drones import Drone

__all__ = ["patrol_loop", "simulate_town_drones"]


def patrol_loop(area: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """(lat, lon) waypoints inside the (lon, lat) ring *area*."""
    cx = sum(p[0] for p in area) / len(area)
    cy = sum(p[1] for p in area) / len(area)
    return [(y + (cy - y) * 0.2, x + (cx - x) * 0.2) for x, y in area]


async def simulate_town_drones(
    drones: Sequence[Drone], broker: tuple[str, int], mavlink_port: int, stop: asyncio.Event
) -> None:
    """Fly the town's *drones* until *stop* is set."""
    specs = [
        DockSpec(d.dock_sn, d.aircraft_sn, (d.home[1], d.home[0]), patrol_loop(d.patrol_area))
        for d in drones
        if d.kind == "dji" and d.dock_sn and d.aircraft_sn
    ]
    vehicles = [
        MavVehicle(
            ("127.0.0.1", mavlink_port),
            patrol_loop(d.patrol_area),
            system_id=d.system_id,
            launch=(d.home[1], d.home[0]),
        )
        for d in drones
        if d.kind == "mavlink" and d.system_id is not None
    ]
    async with asyncio.TaskGroup() as tg:
        if specs:
            fleet = DockFleet(broker[0], broker[1], specs, DockOptions(), client_id="cg-docks")
            tg.create_task(fleet.run(stop))
        runs: list[asyncio.Task[Any]] = []
        for v in vehicles:
            await v.start()
            runs.append(tg.create_task(v.run()))
        await stop.wait()
        for task in runs:
            task.cancel()
        for v in vehicles:
            with contextlib.suppress(Exception):
                v.close()
