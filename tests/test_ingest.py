"""Ingest without sockets: every message ends decoded-with-a-verdict or rejected-with-a-reason,
whatever it contains; nothing raises, nothing disappears uncounted."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.sensors import bosch, nbiot, nwave
from drivers.sensors.registry import get_codec
from gateway.directory.devices import DeviceDirectory, DeviceEntry, Lifecycle
from gateway.directory.town import load_town
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from gateway.services.parking.ingest import SensorIngest
from parking.occupancy import BerthInfo, OccupancyBook, SensorBinding, SiteInfo

TOWN = load_town(None)
T0 = datetime(2026, 11, 28, 8, 0, tzinfo=UTC)
TOPICS = {
    "chirpstack": "application/+/device/+/event/+",
    "tts": "v3/+/devices/+/up",
    "nbiot": "nbiot/+/up",
    "carpark": "citygate/carpark/+/counts",
}


def make_ingest(clock: list[datetime] | None = None) -> tuple[SensorIngest, Metrics]:
    now = clock or [T0]
    berth_site = {b.id: b.site for b in TOWN.berths}
    directory = DeviceDirectory()
    for s in TOWN.sensors:
        directory.put(
            DeviceEntry(
                id=s.dev_eui.lower(),
                kind="berth_sensor",
                model=s.model,
                lifecycle=Lifecycle.ACTIVE,
                berth_id=s.berth,
                site_id=berth_site[s.berth],
            )
        )
    controllers = {s.id: s.controller_id for s in TOWN.sites if s.controller_id}
    for site_id, ctl in controllers.items():
        directory.put(
            DeviceEntry(
                id=ctl,
                kind="carpark_controller",
                model="entry-exit-counter",
                lifecycle=Lifecycle.ACTIVE,
                site_id=site_id,
            )
        )
    book = OccupancyBook(
        [SiteInfo(s.id, s.capacity, s.counting.value, s.controller_id) for s in TOWN.sites],
        [BerthInfo(b.id, b.site) for b in TOWN.berths],
        [
            SensorBinding(
                s.dev_eui.lower(),
                s.berth,
                s.model,
                s.heartbeat_s or get_codec(s.model).default_heartbeat_s,
            )
            for s in TOWN.sensors
        ],
        start=T0,
    )
    metrics = Metrics()
    ingest = SensorIngest(
        book=book,
        directory=directory,
        bus=EventBus(metrics),
        metrics=metrics,
        topics=TOPICS,
        clock=lambda: now[0],
        max_payload=4096,
        controllers=controllers,
    )
    return ingest, metrics


def total(metrics: Metrics, name: str) -> float:
    return sum(
        s.value
        for m in metrics.registry.collect()
        if m.name == name
        for s in m.samples
        if s.name.endswith("_total")
    )


def accounted(metrics: Metrics) -> float:
    return total(metrics, "citygate_uplinks") + total(metrics, "citygate_messages_rejected")


SENSOR = next(s for s in TOWN.sensors if s.model == "nwave-nps405")
DEV = SENSOR.dev_eui.lower()
topics = st.sampled_from(
    [
        f"application/a/device/{DEV}/event/up",
        f"application/a/device/{DEV}/event/join",
        f"application/a/device/{DEV}/event/status",
        "application/a/device/zz/event/up",
        "v3/app@t/devices/d/up",
        "nbiot/1/up",
        f"citygate/carpark/{TOWN.sites[0].id}/counts",
        "citygate/carpark/nope/counts",
        "something/else",
    ]
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda kids: (
        st.lists(kids, max_size=4) | st.dictionaries(st.text(max_size=8), kids, max_size=4)
    ),
    max_leaves=20,
)
payloads = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.fixed_dictionaries(
        {
            "deviceInfo": st.fixed_dictionaries({"devEui": st.sampled_from([DEV, "x", 5])}),
            "fCnt": st.one_of(st.integers(-5, 2**33), st.text(max_size=5)),
            "fPort": st.integers(-1, 300),
            "data": st.one_of(
                st.binary(max_size=20).map(lambda b: base64.b64encode(b).decode()),
                st.text(max_size=10),
            ),
        }
    ).map(lambda d: json.dumps(d).encode()),
    st.builds(lambda n: b"x" * n, st.integers(4000, 5000)),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(topics, payloads), max_size=30))
def test_every_message_is_accounted_for(messages: list[tuple[str, bytes]]) -> None:
    ingest, metrics = make_ingest()
    for topic, payload in messages:
        ingest.handle(topic, payload)  # must never raise
    assert accounted(metrics) == len(messages)
    for view in ingest.book.sites():
        assert view.free + view.occupied + view.unknown == view.capacity


def test_known_good_messages_are_applied() -> None:
    clock = [T0]
    ingest, metrics = make_ingest(clock)
    port, data = nwave.encode_status(True)
    ingest.handle(
        f"application/a/device/{DEV}/event/up",
        json.dumps(
            {
                "deviceInfo": {"devEui": DEV},
                "fCnt": 1,
                "fPort": port,
                "data": base64.b64encode(data).decode(),
                "time": "2026-11-28T07:59:59.5Z",
            }
        ).encode(),
    )
    assert ingest.book.berth(SENSOR.berth).state.value == "occupied"
    assert ingest.book.berth(SENSOR.berth).since == T0 - timedelta(seconds=0.5)
    # A device clock far in the future is not trusted: receive time is used instead.
    port, data = nwave.encode_status(False)
    ingest.handle(
        f"application/a/device/{DEV}/event/up",
        json.dumps(
            {
                "deviceInfo": {"devEui": DEV},
                "fCnt": 2,
                "fPort": port,
                "data": base64.b64encode(data).decode(),
                "time": "2030-01-01T00:00:00Z",
            }
        ).encode(),
    )
    assert ingest.book.berth(SENSOR.berth).since == T0
    bosch_sensor = next(s for s in TOWN.sensors if s.model == "bosch-tps110")
    port, data = bosch.encode_heartbeat(True, 21)
    ingest.handle(
        f"application/a/device/{bosch_sensor.dev_eui.lower()}/event/up",
        json.dumps(
            {
                "deviceInfo": {"devEui": bosch_sensor.dev_eui.lower()},
                "fCnt": 9,
                "fPort": port,
                "data": base64.b64encode(data).decode(),
            }
        ).encode(),
    )
    assert ingest.book.berth(bosch_sensor.berth).state.value == "occupied"
    nb = next(s for s in TOWN.sensors if s.model == "nbiot-geomag")
    for seq in (1, 2):
        ingest.handle(
            f"nbiot/{nb.dev_eui}/up",
            nbiot.encode_frame(nb.dev_eui.lower(), seq, (0, 0, 300), (0, 0, 0), 3600, -80),
        )
    assert ingest.book.berth(nb.berth).state.value == "occupied"
    assert total(metrics, "citygate_messages_rejected") == 0
    assert accounted(metrics) == 5


def test_rejections_are_reported_once_then_counted(caplog) -> None:  # type: ignore[no-untyped-def]
    ingest, metrics = make_ingest()
    for _ in range(5):
        ingest.handle(f"application/a/device/{DEV}/event/up", b"{broken")
    warnings = [r for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "bad_json" in warnings[0].getMessage()
    assert (
        metrics.registry.get_sample_value(
            "citygate_messages_rejected_total", {"source": "chirpstack", "reason": "bad_json"}
        )
        == 5
    )


def rejected(metrics: Metrics, source: str, reason: str) -> float:
    value = metrics.registry.get_sample_value(
        "citygate_messages_rejected_total", {"source": source, "reason": reason}
    )
    return value or 0.0


def test_nbiot_frame_for_another_device_is_refused() -> None:
    """A frame on device A's topic naming device B must not move B's berth."""
    ingest, metrics = make_ingest()
    a, b = [s for s in TOWN.sensors if s.model == "nbiot-geomag"][:2]
    for seq in (1, 2, 3):
        frame = nbiot.encode_frame(b.dev_eui.lower(), seq, (0, 0, 300), (0, 0, 0), 3600, -80)
        ingest.handle(f"nbiot/{a.dev_eui.lower()}/up", frame)
    assert ingest.book.berth(b.berth).state.value == "unknown"
    assert ingest.book.berth(a.berth).state.value == "unknown"
    assert rejected(metrics, "nbiot", "device_mismatch") == 3
    assert total(metrics, "citygate_uplinks") == 0
    # The same frames on B's own topic (any case) are applied.
    for seq in (4, 5):
        frame = nbiot.encode_frame(b.dev_eui.lower(), seq, (0, 0, 300), (0, 0, 0), 3600, -80)
        ingest.handle(f"nbiot/{b.dev_eui.upper()}/up", frame)
    assert ingest.book.berth(b.berth).state.value == "occupied"


def chirpstack_up(dev: str, port: int, data: bytes, fcnt: int) -> bytes:
    return json.dumps(
        {
            "deviceInfo": {"devEui": dev},
            "fCnt": fcnt,
            "fPort": port,
            "data": base64.b64encode(data).decode(),
        }
    ).encode()


def test_nwave_tag_registration_reports_occupancy() -> None:
    """Port 10 (a tag registered at the berth) is an occupancy report, not a bad port."""
    ingest, metrics = make_ingest()
    topic = f"application/a/device/{DEV}/event/up"
    port, data = nwave.encode_status(False)
    ingest.handle(topic, chirpstack_up(DEV, port, data, 1))
    assert ingest.book.berth(SENSOR.berth).state.value == "free"
    # Without the occupied bit the frame says nothing about the berth: it stays free.
    ingest.handle(topic, chirpstack_up(DEV, 10, bytes.fromhex("001f345678"), 2))
    assert ingest.book.berth(SENSOR.berth).state.value == "free"
    ingest.handle(topic, chirpstack_up(DEV, 10, bytes.fromhex("d11f345678"), 3))
    assert ingest.book.berth(SENSOR.berth).state.value == "occupied"
    assert total(metrics, "citygate_messages_rejected") == 0
    assert accounted(metrics) == 3
