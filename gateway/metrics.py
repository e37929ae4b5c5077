"""Prometheus metrics of one gateway instance (own registry, so tests can run several)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = Counter(
            "citygate_messages_in", "Messages received, by source", ["source"], registry=r
        )
        self.decoded = Counter(
            "citygate_messages_decoded",
            "Messages decoded, by source and model",
            ["source", "model"],
            registry=r,
        )
        self.rejected = Counter(
            "citygate_messages_rejected",
            "Messages rejected, by source and reason",
            ["source", "reason"],
            registry=r,
        )
        self.uplink_verdicts = Counter(
            "citygate_uplinks",
            "Sensor uplinks by verdict (applied, duplicate, stale, unbound)",
            ["verdict"],
            registry=r,
        )
        self.events = Counter(
            "citygate_events", "Events published on the bus, by kind", ["kind"], registry=r
        )
        self.bus_dropped = Counter(
            "citygate_bus_dropped",
            "Events dropped because a subscriber's queue was full",
            ["subscriber"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "citygate_queue_depth", "Current depth of a queue", ["queue"], registry=r
        )
        self.connected = Gauge(
            "citygate_transport_connected",
            "1 while a transport is connected",
            ["transport"],
            registry=r,
        )
        self.reconnects = Counter(
            "citygate_transport_reconnects", "Reconnect attempts", ["transport"], registry=r
        )
        self.persist_seconds = Histogram(
            "citygate_persist_seconds", "Write-behind flush duration", registry=r
        )
        self.api_auth_failures = Counter(
            "citygate_api_auth_failures",
            "Rejected API credentials, by reason",
            ["reason"],
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
