"""Body cams over GB/T 28181: the signalling platform (registrar, MANSCDP messages, presence,
the platform's queries and position subscription), its store and the field view."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from gateway.config import BodycamsConfig
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.bodycams.service import BodycamService
from gateway.services.bodycams.store import BodycamStore
from parking.enforcement import RuleBook

__all__ = ["BodycamService", "build_bodycams"]


async def build_bodycams(
    config: BodycamsConfig,
    sessions: Any,
    bus: EventBus,
    metrics: Metrics,
    clock: Callable[[], datetime],
    zone: ZoneInfo,
    on_case: Callable[[], None],
    rules: Callable[[], RuleBook | None] = lambda: None,
) -> BodycamService:
    """The platform with its credentials and restored state loaded (not yet listening);
    *rules* gives the enforcement rules as they are now (they follow the change feed)."""
    service = BodycamService(
        config, BodycamStore(sessions), bus, metrics, clock, zone, on_case, rules
    )
    await service.load()
    return service
