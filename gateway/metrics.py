"""Prometheus metrics of one gateway instance (own registry, so tests can run several).

The per-message counters sit on the ingest hot path, where prometheus_client's locked
counters would cost several microseconds per increment; they are plain integers here, read
by a collector only when /metrics is scraped.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector


class _Child:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount


class FastCounter(Collector):
    """A labelled counter for a single-threaded event loop: ``labels(...).inc()``."""

    def __init__(
        self, name: str, doc: str, labelnames: list[str], registry: CollectorRegistry
    ) -> None:
        self.name = name
        self.doc = doc
        self.labelnames = labelnames
        self._children: dict[tuple[str, ...], _Child] = {}
        registry.register(self)

    def labels(self, *values: str) -> _Child:
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}")
            child = self._children[values] = _Child()
        return child

    def total(self) -> float:
        return sum(c.value for c in self._children.values())

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(self.name, self.doc, labels=self.labelnames)
        for values, child in list(self._children.items()):
            family.add_metric(list(values), child.value)
        yield family


class CallbackCounters(Collector):
    """Counters owned by another component, read when /metrics is scraped."""

    def __init__(
        self,
        prefix: str,
        doc: str,
        read: Callable[[], Mapping[str, float]],
        registry: CollectorRegistry,
    ) -> None:
        self._prefix = prefix
        self._doc = doc
        self._read = read
        registry.register(self)

    def collect(self) -> Iterator[CounterMetricFamily]:
        for name, value in self._read().items():
            yield CounterMetricFamily(f"{self._prefix}_{name}", f"{self._doc}: {name}", value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.messages_in = FastCounter(
            "citygate_messages_in", "Messages received, by source", ["source"], r
        )
        self.decoded = FastCounter(
            "citygate_messages_decoded",
            "Messages decoded, by source and model",
            ["source", "model"],
            r,
        )
        self.rejected = FastCounter(
            "citygate_messages_rejected",
            "Messages rejected, by source and reason",
            ["source", "reason"],
            r,
        )
        self.uplink_verdicts = FastCounter(
            "citygate_uplinks",
            "Sensor uplinks by verdict (applied, duplicate, stale, unbound)",
            ["verdict"],
            r,
        )
        self.events = FastCounter(
            "citygate_events", "Events published on the bus, by kind", ["kind"], r
        )
        self.bus_dropped = FastCounter(
            "citygate_bus_dropped",
            "Events dropped because a subscriber's queue was full",
            ["subscriber"],
            r,
        )
        self.reconnects = FastCounter(
            "citygate_transport_reconnects", "Reconnect attempts", ["transport"], r
        )
        self.api_auth_failures = FastCounter(
            "citygate_api_auth_failures", "Rejected API credentials, by reason", ["reason"], r
        )
        self.api_rejected = FastCounter(
            "citygate_api_rejected", "API requests refused by validation, by reason", ["reason"], r
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
        self.telemetry_write_seconds = Histogram(
            "citygate_telemetry_write_seconds", "Duration of one telemetry write", registry=r
        )
        self.telemetry_lag = Gauge(
            "citygate_telemetry_lag_seconds",
            "Age of the oldest point not yet delivered (0 when nothing is pending)",
            registry=r,
        )
        self.telemetry_pending = Gauge(
            "citygate_telemetry_spool_points", "Points waiting in the telemetry spool", registry=r
        )
        self.telemetry_degraded = Gauge(
            "citygate_telemetry_degraded",
            "1 while the telemetry spool or its status file cannot be written (disk full)",
            registry=r,
        )
        self.telemetry_held = Gauge(
            "citygate_telemetry_held_points",
            "Telemetry points held in memory because the spool cannot store them",
            registry=r,
        )
        self.sessions = FastCounter(
            "citygate_parking_sessions",
            "Parking session decisions, by source (berth, plate) and outcome",
            ["source", "outcome"],
            r,
        )
        self.payments = FastCounter(
            "citygate_payments",
            "Payment requests, by kind (payment, refund) and outcome",
            ["kind", "outcome"],
            r,
        )
        self.detections = FastCounter(
            "citygate_detections", "Detections received, by outcome", ["outcome"], r
        )
        self.cases_raised = FastCounter(
            "citygate_cases_raised",
            "Case reports raised by rules, by category and outcome (recorded, duplicate)",
            ["category", "outcome"],
            r,
        )
        self.ocpp_rejected = FastCounter(
            "citygate_ocpp_rejected",
            "OCPP refusals and losses, by what (connection, message, recorder, billing) and reason",
            ["what", "reason"],
            r,
        )
        self.ocpp_probes = FastCounter(
            "citygate_ocpp_probes",
            "TriggerMessage probes of silent chargers, by result",
            ["result"],
            r,
        )
        self.chargers_connected = Gauge(
            "citygate_chargers_connected", "Chargers with an open OCPP connection", registry=r
        )
        self.changes_applied_seq = Gauge(
            "citygate_changes_applied_seq",
            "Seq of the last provisioning change this instance applied (the change feed)",
            registry=r,
        )
        self.changes_lag = Gauge(
            "citygate_changes_lag_seconds",
            "From commit to applied, of the last change applied from the feed",
            registry=r,
        )
        self.changes_stale = Gauge(
            "citygate_changes_stale",
            "1 once this instance found changes it had not applied pruned by retention "
            "(its view may be stale: restart it)",
            registry=r,
        )
        self.retention_pruned = FastCounter(
            "citygate_retention_pruned",
            "Rows pruned by retention, by table (audit, changes)",
            ["table"],
            r,
        )
        self.changes_skipped = FastCounter(
            "citygate_changes_skipped",
            "Changes from the feed that could not be applied (logged with their seq), by kind",
            ["kind"],
            r,
        )
        self.persist_seconds = Histogram(
            "citygate_persist_seconds", "Write-behind flush duration", registry=r
        )
        self.acks_held = Gauge(
            "citygate_mqtt_acks_held",
            "Uplinks handled whose PUBACK waits for the commit of their state",
            registry=r,
        )
        self.persist_failed = FastCounter(
            "citygate_persist_failed",
            "Write-behind commits that failed (their work and PUBACKs are kept), by kind",
            ["kind"],
            r,
        )

        self.camera_refused = FastCounter(
            "citygate_camera_refused",
            "Camera pushes refused before parsing, by reason (unknown camera, secret, vendor)",
            ["reason"],
            r,
        )
        self.camera_pushes = FastCounter(
            "citygate_camera_pushes",
            "Camera pushes by vendor and outcome (read, unread, bad_plate, duplicate, heartbeat, "
            "or the reason it was rejected)",
            ["vendor", "outcome"],
            r,
        )
        self.camera_clock_off = FastCounter(
            "citygate_camera_clock_off",
            "Reads kept with their receive time because the camera's was ahead, too old or missing",
            ["vendor", "how"],
            r,
        )
        self.camera_images = FastCounter(
            "citygate_camera_images",
            "Camera pictures by outcome (stored, pruned, or why one was not kept)",
            ["outcome"],
            r,
        )
        self.tls_handshakes = FastCounter(
            "citygate_tls_handshakes",
            "TLS connections to a listener (api, ocpp) by outcome: started (accepted), completed; "
            "started minus completed were refused, timed out or are in progress",
            ["listener", "outcome"],
            r,
        )
        self.camera_evidence_bytes = Gauge(
            "citygate_camera_evidence_bytes", "Bytes of camera evidence kept on disk", registry=r
        )

    def totals(self) -> dict[str, float]:
        """The gateway's own health figures, as points for telemetry."""
        return {
            "messages_in": self.messages_in.total(),
            "messages_rejected": self.rejected.total(),
            "uplinks": self.uplink_verdicts.total(),
            "events": self.events.total(),
            "bus_dropped": self.bus_dropped.total(),
            "reconnects": self.reconnects.total(),
        }

    def render(self) -> bytes:
        return generate_latest(self.registry)
