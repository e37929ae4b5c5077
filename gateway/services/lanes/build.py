"""The lanes and the plate cameras' read path, built from the settings (for ``wiring``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from gateway.config import Settings
from gateway.directory.devices import DeviceDirectory
from gateway.directory.town import Site
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.cameras.decider import RecordingDecider
from gateway.services.cameras.evidence import EvidenceStore
from gateway.services.cameras.store import CameraReads
from gateway.services.lanes.camera_decider import CameraDecider
from gateway.services.lanes.facts import Facts
from gateway.services.lanes.metrics import LaneMetrics
from gateway.services.lanes.modbus_gates import ModbusGates
from gateway.services.lanes.service import LaneService
from gateway.services.parking.payments import PaymentService
from gateway.services.parking.sessions import SessionStore


async def build_lanes(
    s: Settings,
    sessions: async_sessionmaker[Any],
    session_store: SessionStore,
    payments: PaymentService,
    metrics: Metrics,
    clock: Callable[[], datetime],
) -> LaneService:
    gates = (
        ModbusGates(
            clock, poll_interval_s=s.lanes.poll_interval_s, serial_ports=s.lanes.serial_ports
        )
        if s.lanes.gates == "modbus"
        else None
    )
    dedup = timedelta(seconds=s.sessions.plate_dedup_s)
    lanes = LaneService(
        sessions,
        Facts(session_store, sessions, dedup, s.sessions.min_plate_confidence),
        LaneMetrics(metrics.registry),
        clock,
        gates=gates,
        recheck_s=s.lanes.recheck_s,
    )
    await lanes.load()  # decisions a previous run left in flight are interrupted, not resent
    payments.on_paid(lanes.payment_recorded)
    return lanes


def build_cameras(
    s: Settings,
    sessions: async_sessionmaker[Any],
    session_store: SessionStore,
    lanes: LaneService,
    directory: DeviceDirectory,
    sites: Mapping[str, Site],
    bus: EventBus,
    metrics: Metrics,
    clock: Callable[[], datetime],
) -> tuple[CameraReads, CameraDecider]:
    c = s.cameras
    evidence = EvidenceStore(
        c.evidence_dir,
        max_total_bytes=c.max_total_bytes,
        max_age=timedelta(days=c.max_age_days),
        metrics=metrics,
    )
    recording = RecordingDecider(
        session_store, directory, sites, bus, s.sessions.min_plate_confidence
    )
    reads = CameraReads(sessions, evidence, c, metrics, clock)
    return reads, CameraDecider(lanes, recording, reads)
