"""The lane figures, declared on the gateway's registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from gateway.metrics import FastCounter


class LaneMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.verdicts = FastCounter(
            "citygate_lane_verdicts",
            "Lane decisions, by lane kind and verdict (entry_opened, exit_owes, exit_paid, "
            "repeat_read, needs_operator, gate_failed, operator_open, ...)",
            ["kind", "verdict"],
            registry,
        )
        self.gate_outcomes = FastCounter(
            "citygate_lane_gate_outcomes",
            "Gate commands by outcome (confirmed, unconfirmed, failed, not_recorded)",
            ["outcome"],
            registry,
        )
        self.reads = FastCounter(
            "citygate_lane_reads",
            "Camera reads given to the lanes, by result (decided, late, unknown_camera)",
            ["result"],
            registry,
        )
