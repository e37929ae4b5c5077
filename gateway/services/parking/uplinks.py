"""The sensor uplinks' path as the gateway runs it: the MQTT transport, the ingest, and the
write-behind persister that holds each uplink's PUBACK until its state is committed; with
several instances sharing the berths (``Settings.shared_berths``), the shared variants that
decide each uplink under its berth row's lock (``shared_berths``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from drivers.mqtt.transport import MqttTransport, shared
from gateway.config import Settings
from gateway.directory.devices import DeviceDirectory
from gateway.infra.bus import EventBus
from gateway.infra.mqtt import mqtt_params
from gateway.metrics import Metrics
from gateway.services.parking.ingest import SensorIngest, Source
from gateway.services.parking.persist import Persister
from gateway.services.parking.sessions import SessionStore
from gateway.services.parking.shared_berths import SharedBerths
from gateway.services.parking.shared_persist import SharedPersister
from parking.occupancy import OccupancyBook

Uplinks = tuple[SharedBerths | None, SensorIngest, Persister, MqttTransport]


def build_uplinks(
    s: Settings,
    engine: AsyncEngine,
    sessions: async_sessionmaker[Any],
    book: OccupancyBook,
    directory: DeviceDirectory,
    controllers: dict[str, str],
    bus: EventBus,
    metrics: Metrics,
    clock: Callable[[], datetime],
    session_store: SessionStore,
    instance: str,
) -> Uplinks:
    m = s.mqtt
    topics: dict[Source, str] = {
        "chirpstack": m.chirpstack_topic,
        "tts": m.tts_topic,
        "nbiot": m.nbiot_topic,
        "carpark": m.carpark_topic,
    }
    shared_berths = (
        SharedBerths(engine, sessions, book, directory, bus, instance) if s.shared_berths else None
    )
    ingest = SensorIngest(
        shared=shared_berths,
        book=book,
        directory=directory,
        bus=bus,
        metrics=metrics,
        topics=topics,
        clock=clock,
        max_payload=m.max_payload_bytes,
        controllers=controllers,
    )

    def mqtt_state(up: bool) -> None:
        metrics.connected.labels("mqtt").set(1 if up else 0)
        if not up:
            metrics.reconnects.labels("mqtt").inc()

    o = s.occupancy
    persister = (
        Persister(
            sessions, book, directory, metrics, o.persist_interval_s,
            session_store=session_store, commit_delay_s=o.commit_delay_s,
        )
        if shared_berths is None
        else SharedPersister(
            sessions, book, directory, metrics, o.persist_interval_s,
            shared=shared_berths, settle=ingest.settle, publish=bus.publish,
            session_store=session_store, commit_delay_s=o.commit_delay_s,
        )
    )  # fmt: skip
    # With shared berths, every instance hears every NB-IoT frame (no ``$share``): the
    # gateway's magnetometer detector must see a sensor's whole series to judge it, so each
    # instance runs it on every frame, and the one decision under the row's lock takes the
    # frame once (the others find it a duplicate).
    filters = [
        t if source == "nbiot" and shared_berths is not None else shared(t, m.shared_group)
        for source, t in topics.items()
    ]
    transport = MqttTransport(
        mqtt_params(s),
        filters,
        ingest.handle,
        on_state=mqtt_state,
        hold_ack=persister.hold,  # an uplink is acknowledged once its state is committed
        receive_maximum=m.receive_maximum,
        backoff_cap=m.reconnect_max_s,
    )
    return shared_berths, ingest, persister, transport
