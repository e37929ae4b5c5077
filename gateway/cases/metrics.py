"""The case figures on the gateway's metrics registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Gauge

from gateway.metrics import FastCounter


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
