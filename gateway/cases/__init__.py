"""Case reports to the town's digital urban-management case system, and its status mirror.

- ``signing``: HMAC-SHA256 signatures, the same both ways (pure).
- ``report``: the exact JSON bytes of a report (pure).
- ``outbox``: reports recorded atomically with the state change that raised them (DB).
- ``delivery``: the task that sends them, at least once, with an idempotency key.
- ``mirror``: the seven-step status fed back by the case system's signed callbacks (DB).

This module holds what the runtime hands to the API: :class:`CasesRuntime` and the metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Gauge

from gateway.metrics import FastCounter

if TYPE_CHECKING:
    from gateway.cases.delivery import CaseDelivery

__all__ = ["CaseMetrics", "CasesRuntime"]


class CaseMetrics:
    """The case figures, declared on the gateway's registry (one instance per registry)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.delivered = FastCounter(
            "citygate_cases_delivered",
            "Case reports confirmed by the case system, by answer (accepted, duplicate)",
            ["answer"],
            registry,
        )
        self.retries = FastCounter(
            "citygate_cases_retries",
            "Failed case report deliveries that will be retried, by reason",
            ["reason"],
            registry,
        )
        self.rejected = FastCounter(
            "citygate_cases_rejected",
            "Case reports refused by the case system (kept, not retried), by HTTP status",
            ["status"],
            registry,
        )
        self.callbacks = FastCounter(
            "citygate_cases_callbacks",
            "Status callbacks from the case system, by result (advanced, recorded, duplicate, "
            "unknown_case, invalid, signature_<reason>, unconfigured)",
            ["result"],
            registry,
        )
        self.pending = Gauge(
            "citygate_cases_pending", "Case reports waiting for delivery", registry=registry
        )
        self.oldest_pending_age = Gauge(
            "citygate_cases_oldest_pending_seconds",
            "Age of the oldest case report waiting for delivery (0 when none)",
            registry=registry,
        )


@dataclass
class CasesRuntime:
    """What the cases API needs from the running gateway. ``secret`` is the [cases] secret
    (``None``: callbacks are refused with 503); ``delivery`` is woken after a redelivery."""

    secret: bytes | None = field(repr=False)
    tolerance_s: int
    metrics: CaseMetrics
    delivery: CaseDelivery | None = None
