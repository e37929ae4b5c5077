"""What the runtime hands to the cases API."""

from __future__ import annotations

from dataclasses import dataclass, field

from gateway.cases.delivery import CaseDelivery
from gateway.cases.metrics import CaseMetrics


@dataclass
class CasesRuntime:
    """What the cases API needs from the running gateway. ``secret`` is the [cases] secret
    (``None``: callbacks are refused with 503); ``delivery`` is woken after a redelivery."""

    secret: bytes | None = field(repr=False)
    tolerance_s: int
    metrics: CaseMetrics
    delivery: CaseDelivery | None = None
