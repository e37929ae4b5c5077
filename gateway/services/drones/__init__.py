"""The patrol drones: ``service`` (reports, alerts, commands), ``store`` (state written behind,
commands written through), ``live`` (a drone as the service holds it), ``views`` (what the API
and CLI show) and ``links`` (the DJI and MAVLink links it flies them over)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from gateway.config import Settings
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.drones.links import build_links, start_links
from gateway.services.drones.service import DroneService
from gateway.services.drones.store import DroneStore

__all__ = ["DroneService", "build_drones", "start_links"]


async def build_drones(
    settings: Settings,
    sessions: Any,
    bus: EventBus,
    metrics: Metrics,
    clock: Callable[[], datetime],
) -> DroneService:
    """The service with the town's drones and their restored state, and its links (none with
    ``[drones] enabled = false``: then the service is not run and the API sends no command)."""
    links: dict[str, Any] = {}
    service = DroneService(settings.drones, DroneStore(sessions), bus, metrics, clock, links)
    if settings.drones.enabled:
        links.update(build_links(settings, service.on_report, service.on_dock,
                                 service.on_progress, clock, service.knows_sn,
                                 metrics))  # fmt: skip
    await service.load()
    return service
