"""Cars through the sample town's lanes, for the demo, over the real protocols: each lane's
camera posts its vendor's push (Hikvision, Vzenith, Dahua) to the gateway's camera URL, the
gateway raises the gate over Modbus TCP (the gate simulator, ``gates.py``), and a car that
owes pays through the payments API as the parking app would, then its exit opens.

Only car parks whose gate buses are simulated get traffic (a lane whose gate cannot move
would only ask for an operator). The cameras are registered here (a new URL secret each run).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx

from drivers.aio import wait_for
from gateway.demo.cameras import DahuaCamera, HikvisionCamera, VzenithCamera
from gateway.directory.registry import Registry, RegistryError
from gateway.directory.tokens import Role, create_token

log = logging.getLogger(__name__)

VENDORS = ("hikvision", "vzenith", "dahua")
Camera = HikvisionCamera | VzenithCamera | DahuaCamera


@dataclass(frozen=True)
class DemoLane:
    lane_id: str
    site_id: str
    kind: str  # entry | exit
    camera_id: str
    bus: str


async def _camera(
    registry: Registry, lane: DemoLane, vendor: str, base: str, now: datetime
) -> Camera:
    try:
        _, secret = await registry.provision_camera(
            lane.camera_id, vendor, lane.site_id, now, lane_id=lane.lane_id,
            direction="in" if lane.kind == "entry" else "out",
        )  # fmt: skip
    except RegistryError:  # registered by an earlier demo: a new secret
        row, secret = await registry.rotate_camera_secret(lane.camera_id, now)
        vendor = row.vendor or vendor
    kind = {"hikvision": HikvisionCamera, "vzenith": VzenithCamera, "dahua": DahuaCamera}
    camera: Camera = kind[vendor](base, lane.camera_id.lower(), secret)
    return camera


async def run_lane_traffic(
    gw: Any,
    lanes: Iterable[DemoLane],
    simulated_buses: set[str],
    stop: asyncio.Event,
    clock: Callable[[], datetime],
    *,
    every_s: tuple[float, float] = (15.0, 45.0),
    stay_s: tuple[float, float] = (20.0, 120.0),
    rng: random.Random | None = None,
) -> None:
    """Until *stop*: at each car park with a simulated entry and exit, a car now and then."""
    rng = rng or random.Random()
    base = f"http://127.0.0.1:{gw.api_port}"
    registry = Registry(gw.services.sessions, gw.services.live.directory, gw.services.live.book)
    by_site: dict[str, dict[str, DemoLane]] = {}
    for lane in lanes:
        if lane.bus in simulated_buses:
            by_site.setdefault(lane.site_id, {}).setdefault(lane.kind, lane)
    parks = {site: pair for site, pair in by_site.items() if {"entry", "exit"} <= set(pair)}
    if not parks:
        return
    async with gw.services.sessions.begin() as db:
        _, token = await create_token(db, Role.PAYMENTS, clock(), "demo parking app")
    cameras: list[Camera] = []
    try:
        pairs = []
        for n, (_site, pair) in enumerate(sorted(parks.items())):
            vendor = VENDORS[n % len(VENDORS)]
            entry = await _camera(registry, pair["entry"], vendor, base, clock())
            out = await _camera(registry, pair["exit"], vendor, base, clock())
            cameras += [entry, out]
            pairs.append((entry, out))
        log.info("demo: cars through %d car parks' lanes", len(pairs))
        async with httpx.AsyncClient(base_url=base, timeout=10) as app, asyncio.TaskGroup() as tg:
            for entry, out in pairs:
                tg.create_task(_car_park(entry, out, app, token, stop, every_s, stay_s, rng))
    finally:
        for c in cameras:
            with contextlib.suppress(Exception):
                await c.aclose()


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep *seconds* unless stopped; True when stopped."""
    with contextlib.suppress(TimeoutError):
        await wait_for(stop.wait(), seconds)
    return stop.is_set()


async def _car_park(
    entry: Camera,
    out: Camera,
    app: httpx.AsyncClient,
    token: str,
    stop: asyncio.Event,
    every_s: tuple[float, float],
    stay_s: tuple[float, float],
    rng: random.Random,
) -> None:
    async with asyncio.TaskGroup() as tg:
        while not await _pause(stop, rng.uniform(*every_s)):
            plate = f"甘G{rng.randrange(10000, 99999)}"
            try:
                await entry.push(plate)
            except httpx.HTTPError:
                continue
            tg.create_task(_leave(out, plate, app, token, stop, stay_s, rng))


async def _leave(
    out: Camera,
    plate: str,
    app: httpx.AsyncClient,
    token: str,
    stop: asyncio.Event,
    stay_s: tuple[float, float],
    rng: random.Random,
) -> None:
    if await _pause(stop, rng.uniform(*stay_s)):
        return
    try:
        await out.push(plate)
    except httpx.HTTPError:
        return
    await _pause(stop, rng.uniform(3.0, 8.0))  # the driver scans the code and pays
    if stop.is_set():
        return
    # As the parking app does: look the car's stays up by plate and pay what is owed (the
    # lane that waits for it opens on the payment).
    auth = {"Authorization": f"Bearer {token}"}
    with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
        r = await app.get("/api/v1/sessions", params={"plate": plate}, headers=auth)
        for stay in r.json()["sessions"]:
            due = int(stay.get("due_fen") or 0)
            if due > 0:
                await app.post(
                    "/api/v1/payments",
                    json={"session_id": stay["id"], "amount_fen": due, "method": "wechat"},
                    headers={**auth, "Idempotency-Key": f"demo-{stay['id']}"},
                )
