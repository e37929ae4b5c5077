"""The town simulator: payloads the gateway's own parsers accept, a believable day, seeded
determinism, faults that really are faults, and a run against a real Mosquitto."""

from __future__ import annotations

import asyncio
import json
import logging
import shutil
import socket
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from drivers.lorawan.envelopes import EnvelopeError, Uplink, parse_chirpstack, parse_tts
from drivers.mqtt.transport import MqttParams, make_client
from drivers.sensors import bosch, detection, nbiot, nwave
from drivers.sensors.messages import (
    CodecError,
    Heartbeat,
    MagnetometerFrame,
    OccupancyStatus,
    SensorMessage,
    Startup,
)
from drivers.sensors.registry import decode
from gateway.demo import (
    Fault,
    MessageKind,
    Outgoing,
    Radio,
    SimClock,
    SimStats,
    SimulatorOptions,
    TokenBucket,
    TownSimulation,
    carpark_counts,
    chirpstack_uplink,
    nbiot_uplink,
    occupancy_probability,
    run_simulator,
    tts_site,
    tts_uplink,
)
from gateway.directory.town import Town, load_town

SHANGHAI = ZoneInfo("Asia/Shanghai")
MONDAY_0600 = datetime(2024, 5, 6, 6, 0, tzinfo=SHANGHAI)
RADIO = (Radio("ac1f09fffe0a1001", "gw-1", -97, 6.5), Radio("ac1f09fffe0a1002", "gw-2", -104, 1.0))
CARPARK_KEYS = {"time", "seq", "entered", "exited", "occupied"}


@pytest.fixture(scope="module")
def town() -> Town:
    return load_town(None)


@pytest.fixture(scope="module")
def models(town: Town) -> dict[str, str]:
    return {s.dev_eui.lower(): s.model for s in town.sensors}


def parse(topic: str, payload: bytes, models: dict[str, str]) -> SensorMessage | dict[str, object]:
    """What the gateway would make of one message; raises EnvelopeError/CodecError if bad."""
    if topic.startswith("application/"):
        up = parse_chirpstack(topic, payload)
        assert isinstance(up, Uplink)
        return decode(models[up.dev_eui], up.f_port, up.data)
    if topic.startswith("v3/"):
        up = parse_tts(topic, payload)
        return decode(models[up.dev_eui], up.f_port, up.data)
    if topic.startswith("nbiot/"):
        return decode(nbiot.MODEL, None, payload)
    if topic.startswith("citygate/carpark/"):
        return check_counts(payload)
    raise AssertionError(f"unexpected topic {topic}")


def check_counts(payload: bytes) -> dict[str, object]:
    """Validate against the gateway's CarParkCountMessage when ingest imports (it needs the
    parking package), and always against its documented shape."""
    doc = json.loads(payload)
    assert set(doc) <= CARPARK_KEYS and {"time", "seq", "entered", "exited"} <= set(doc)
    assert datetime.fromisoformat(doc["time"]).utcoffset() is not None
    assert all(isinstance(doc[k], int) and doc[k] >= 0 for k in set(doc) - {"time"})
    try:
        from gateway.services.parking.ingest import CarParkCountMessage
    except ImportError:
        return dict(doc)
    CarParkCountMessage.model_validate_json(payload)
    return dict(doc)


# --------------------------------------------------------------------------- payload builders


@pytest.mark.parametrize(
    ("model", "port_data", "expected"),
    [
        (nwave.MODEL, nwave.encode_status(True, 1800), OccupancyStatus(True, 1800)),
        (nwave.MODEL, nwave.encode_heartbeat(False, 3300, 4.5), Heartbeat(3300, 4.5, False)),
        (bosch.MODEL, bosch.encode_startup(occupied=True), Startup("0.29.2", "power_on", True)),
    ],
)
def test_chirpstack_round_trip(
    model: str, port_data: tuple[int, bytes], expected: SensorMessage
) -> None:
    port, data = port_data
    topic, payload = chirpstack_uplink(
        application_id="0d9a5b6e-6c1e-4a53-9a57-5c3f1d2e4b10",
        dev_eui="70b3d59ba2bc3482",
        device_name="st-1-001",
        profile_name="Nwave NPS405",
        dev_addr="00a1b2c3",
        f_cnt=41,
        f_port=port,
        data=data,
        time=MONDAY_0600.timestamp(),
        dedup_id="3ac7e3c4-4401-4b8d-9386-a5c902f9202d",
        radio=RADIO,
        frequency=470_500_000,
        spreading_factor=9,
    )
    up = parse_chirpstack(topic, payload)
    assert isinstance(up, Uplink)
    assert (up.dev_eui, up.f_port, up.f_cnt, up.data) == ("70b3d59ba2bc3482", port, 41, data)
    assert (up.rssi, up.snr, up.time) == (-97.0, 6.5, MONDAY_0600)
    assert up.dedup_id == "3ac7e3c4-4401-4b8d-9386-a5c902f9202d"
    doc = json.loads(payload)
    assert doc["deviceInfo"]["devEui"] == "70b3d59ba2bc3482" and "tenantId" in doc["deviceInfo"]
    assert doc["txInfo"]["frequency"] == 470_500_000 and doc["devAddr"] == "00a1b2c3"
    assert decode(model, up.f_port, up.data) == expected


def test_chirpstack_omits_zero_fcnt_like_protobuf() -> None:
    topic, payload = chirpstack_uplink(
        application_id="a", dev_eui="70b3d59ba2bc3482", device_name="d", profile_name="p",
        dev_addr="00000001", f_cnt=0, f_port=3, data=nwave.encode_startup()[1],
        time=MONDAY_0600.timestamp(), dedup_id="x", radio=RADIO, frequency=470_300_000,
        spreading_factor=7,
    )  # fmt: skip
    assert "fCnt" not in json.loads(payload)
    up = parse_chirpstack(topic, payload)
    assert isinstance(up, Uplink) and up.f_cnt == 0


def test_tts_round_trip() -> None:
    port, data = bosch.encode_heartbeat(True, -7)
    topic, payload = tts_uplink(
        device_id="eui-70b3d59ba2bc3482",
        dev_eui="70b3d59ba2bc3482",
        dev_addr="00a1b2c3",
        f_cnt=7,
        f_port=port,
        data=data,
        time=MONDAY_0600.timestamp(),
        correlation_ids=("as:up:01HXAMPLE", "ns:uplink:01HXNS"),
        radio=RADIO,
        frequency=470_700_000,
        spreading_factor=9,
    )
    assert topic == "v3/shandan-parking@citygate/devices/eui-70b3d59ba2bc3482/up"
    up = parse_tts(topic, payload)
    assert (up.dev_eui, up.f_port, up.f_cnt, up.rssi, up.time) == (
        "70b3d59ba2bc3482", port, 7, -97.0, MONDAY_0600,
    )  # fmt: skip
    assert up.dedup_id == "ns:uplink:01HXNS"
    assert decode(bosch.MODEL, up.f_port, up.data) == Heartbeat(temperature_c=-7.0, occupied=True)


def test_nbiot_and_carpark_builders() -> None:
    frame = nbiot.encode_frame("0868330012345678", 3, (180, -250, 530), (100, -350, 400))
    topic, payload = nbiot_uplink("0868330012345678", frame)
    assert topic == "nbiot/0868330012345678/up"
    decoded = decode(nbiot.MODEL, None, payload)
    assert isinstance(decoded, MagnetometerFrame) and decoded.device_id == "0868330012345678"

    topic, payload = carpark_counts(
        "cp-tonghe", time=MONDAY_0600, seq=5, entered=3, exited=1, occupied=17
    )
    assert topic == "citygate/carpark/cp-tonghe/counts"
    doc = check_counts(payload)
    assert doc == {"time": "2024-05-06T06:00:00+08:00", "seq": 5, "entered": 3, "exited": 1,
                   "occupied": 17}  # fmt: skip
    assert "occupied" not in json.loads(
        carpark_counts("x", time=MONDAY_0600, seq=1, entered=0, exited=0)[1]
    )


# --------------------------------------------------------------------------- rhythm


def test_rhythm_peaks_and_classes() -> None:
    for cls in ("A", "B", "C"):
        night = occupancy_probability(3.0, cls)
        assert occupancy_probability(9.0, cls) > night + 0.3
        assert occupancy_probability(18.0, cls) > night + 0.3
        assert occupancy_probability(13.0, cls) > night
        assert all(0.0 < occupancy_probability(h / 4, cls) < 1.0 for h in range(96))
    assert occupancy_probability(9.0, "A") > occupancy_probability(9.0, "C")
    assert occupancy_probability(3.0, "A") < 0.2


def test_simulated_day_follows_rhythm(town: Town) -> None:
    """Berths and counted car parks both fill for the peaks and empty at night."""
    half = town.model_copy(update={"sensors": town.sensors[::2]})  # same shape, half the work
    sim = TownSimulation(half, start=datetime(2024, 5, 6, 0, 0, tzinfo=SHANGHAI), seed=3)
    healthy = [s for s in sim.sensors if s.fault is None]
    capacity = sum(cp.site.capacity for cp in sim.carparks)
    berths: dict[int, float] = {}
    carparks: dict[int, float] = {}
    for hour in (3, 9, 13, 18):
        sim.run_until(sim.start + hour * 3600)
        berths[hour] = sum(s.occupied for s in healthy) / len(healthy)
        carparks[hour] = sum(len(cp.departures) for cp in sim.carparks) / capacity
    for share in (berths, carparks):
        assert share[9] > share[3] + 0.3 and share[18] > share[3] + 0.3
        assert share[13] > share[3]


# --------------------------------------------------------------------------- the state machine


@dataclass
class Trace:
    sim: TownSimulation
    messages: list[Outgoing]


@pytest.fixture(scope="module")
def six_hours(town: Town) -> Trace:
    """Six simulated hours from 06:00 with plenty of faulty sensors."""
    sim = TownSimulation(town, start=MONDAY_0600, seed=7, fault_fraction=0.06)
    return Trace(sim, sim.run_until(sim.start + 6 * 3600))


def test_every_message_decodes_and_garbage_is_rejected(
    six_hours: Trace, models: dict[str, str]
) -> None:
    kinds: Counter[MessageKind] = Counter()
    networks: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for m in six_hours.messages:
        kinds[m.kind] += 1
        networks[m.topic.split("/", 1)[0]] += 1
        if m.kind is MessageKind.GARBAGE:
            assert six_hours.sim.faults[m.device] is Fault.GARBAGE
            with pytest.raises((EnvelopeError, CodecError)) as err:
                parse(m.topic, m.payload, models)
            assert isinstance(err.value, EnvelopeError | CodecError)
            reasons[err.value.reason] += 1
            continue
        decoded = parse(m.topic, m.payload, models)
        if m.kind is MessageKind.STARTUP and not m.topic.startswith("nbiot/"):
            assert isinstance(decoded, Startup)
        if m.kind is MessageKind.HEARTBEAT and not m.topic.startswith("nbiot/"):
            assert isinstance(decoded, Heartbeat)
    assert set(kinds) == set(MessageKind)
    assert {"application", "v3", "nbiot", "citygate"} <= set(networks)
    assert {"short_frame", "bad_port", "bad_base64"} <= set(reasons)
    assert kinds[MessageKind.STARTUP] == len(six_hours.sim.sensors)


def test_counters_increment_per_device(six_hours: Trace, models: dict[str, str]) -> None:
    last: dict[str, int] = {}
    for m in six_hours.messages:
        if m.kind is MessageKind.GARBAGE or m.kind is MessageKind.COUNTS:
            continue
        if m.topic.startswith("nbiot/"):
            frame = decode(nbiot.MODEL, None, m.payload)
            assert isinstance(frame, MagnetometerFrame)
            counter = frame.seq
        else:
            up = (parse_tts if m.topic.startswith("v3/") else parse_chirpstack)(m.topic, m.payload)
            assert isinstance(up, Uplink) and up.f_cnt is not None
            counter = up.f_cnt
        assert counter > last.get(m.device, -1)
        last[m.device] = counter


def test_tts_carries_one_on_street_segment(town: Town, six_hours: Trace) -> None:
    site = tts_site(town)
    assert site is not None and site.startswith("st-")
    tts_devices = {m.device for m in six_hours.messages if m.topic.startswith("v3/")}
    assert tts_devices == {s.dev_eui for s in six_hours.sim.sensors if s.net == "tts"}
    assert 0 < len(tts_devices) < len(six_hours.sim.sensors) / 10


def test_magnetometer_vectors_drive_the_gateway_detector(six_hours: Trace) -> None:
    """Free: baseline + noise; parked: a large offset. The gateway's own detector agrees with
    the simulated truth once the sensor's confirmation sample has arrived."""
    states: dict[str, detection.DetectorState] = {}
    config = detection.DetectorConfig()
    for m in six_hours.messages:
        if m.topic.startswith("nbiot/") and m.kind is not MessageKind.GARBAGE:
            f = decode(nbiot.MODEL, None, m.payload)
            assert isinstance(f, MagnetometerFrame)
            dist = detection.magnitude(f.raw, tuple(float(v) for v in f.baseline))  # type: ignore[arg-type]
            assert dist < 30 if not f.sensor_occupied else 60 <= dist <= 330
            states[f.device_id] = detection.step(states.get(f.device_id), f.raw, f.baseline, config)
    end = six_hours.sim.start + 6 * 3600
    healthy = [
        s for s in six_hours.sim.sensors
        if s.net == "nbiot" and s.fault is None and end - s.changed_at > 60
    ]  # fmt: skip
    assert len(healthy) > 100
    assert all(states[s.dev_eui].occupied == s.occupied for s in healthy)


def test_deterministic_by_seed(town: Town) -> None:
    def first(seed: int, n: int = 3000) -> tuple[dict[str, Fault], list[tuple[str, bytes]]]:
        sim = TownSimulation(town, start=MONDAY_0600, seed=seed, fault_fraction=0.05)
        out: list[tuple[str, bytes]] = []
        while len(out) < n:
            out.extend((m.topic, m.payload) for m in sim.step())
        return dict(sim.faults), out[:n]

    assert first(11) == first(11)
    faults_a, msgs_a = first(11)
    faults_b, msgs_b = first(12)
    assert faults_a != faults_b and msgs_a != msgs_b


def test_fault_assignment(town: Town) -> None:
    sim = TownSimulation(town, start=MONDAY_0600, seed=1, fault_fraction=0.02)
    assert len(sim.faults) == round(0.02 * len(town.sensors))
    assert set(sim.faults.values()) == set(Fault)
    assert TownSimulation(town, start=MONDAY_0600, fault_fraction=0.0).faults == {}


def test_silent_sensors_stop_and_flappers_flap(six_hours: Trace) -> None:
    by_device: dict[str, list[Outgoing]] = defaultdict(list)
    for m in six_hours.messages:
        by_device[m.device].append(m)
    for s in six_hours.sim.sensors:
        sent = by_device[s.dev_eui]
        if s.fault is Fault.SILENT:
            assert sent and max(m.sim_time for m in sent) < s.silent_from <= sent[0].sim_time + 3600
        if s.fault is Fault.FLAP:
            statuses = sorted(m.sim_time for m in sent if m.kind is MessageKind.STATUS)
            # a burst: at least five status frames within two simulated minutes
            assert any(b - a < 120 for a, b in zip(statuses, statuses[4:], strict=False))


def test_carpark_counts_stay_within_capacity(town: Town, six_hours: Trace) -> None:
    capacity = {s.id: s.capacity for s in town.sites}
    seqs: dict[str, list[int]] = defaultdict(list)
    for m in six_hours.messages:
        if m.kind is MessageKind.COUNTS:
            site = m.topic.split("/")[2]
            doc = json.loads(m.payload)
            seqs[site].append(doc["seq"])
            if "occupied" in doc:
                assert 0 <= doc["occupied"] <= capacity[site]
    assert len(seqs) == sum(1 for s in town.sites if s.controller_id)
    for values in seqs.values():
        assert values == list(range(1, len(values) + 1)) and len(values) >= 6 * 60 - 1


def test_pure_clock_and_bucket() -> None:
    clock = SimClock(1000.0, 60.0, real_now=0.0, paused=True)
    assert clock.sim_at(5.0) == 1000.0
    clock.resume(5.0)
    assert clock.sim_at(6.0) == 1060.0 and clock.real_delay(1120.0, 6.0) == 1.0
    clock.pause(7.0)
    assert clock.sim_at(100.0) == 1120.0
    clock.resume(100.0)
    clock.hold_back(1120.0, real_now=110.0, max_lag_s=2.0)  # 10 s behind -> slowed to 2 s
    assert clock.sim_at(110.0) == 1120.0 + 2 * 60

    bucket = TokenBucket(rate=10.0, burst=2.0, now=0.0)
    assert bucket.take(0.0) == 0.0 and bucket.take(0.0) == 0.0
    assert bucket.take(0.0) == pytest.approx(0.1)
    assert bucket.take(0.1) == 0.0


def test_options_are_validated() -> None:
    with pytest.raises(ValueError, match="speed"):
        SimulatorOptions(speed=0)
    with pytest.raises(ValueError, match="fault_fraction"):
        SimulatorOptions(fault_fraction=1.5)
    with pytest.raises(ValueError, match="aware"):
        SimulatorOptions(start=datetime(2024, 5, 6, 6, 0))


# --------------------------------------------------------------------------- real MQTT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class _Broker:
    """A private Mosquitto on a free loopback port (tests/conftest.py will grow a shared one)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.port = _free_port()
        self.conf = workdir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
            # The test subscriber shares the loop with the simulator and can lag behind:
            # keep its QoS 1 backlog (the default drops beyond 1000 queued messages).
            "max_queued_messages 0\nlog_dest stderr\n"
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self, timeout: float = 5.0) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "-c", str(self.conf),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
            except OSError:
                if self.proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"mosquitto did not listen on {self.port}") from None
                await asyncio.sleep(0.01)  # poll interval, bounded by the deadline
                continue
            writer.close()
            await writer.wait_closed()
            return

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            await self.proc.wait()

    def params(self, client_id: str) -> MqttParams:
        return MqttParams("127.0.0.1", self.port, client_id, clean=True)


@pytest.fixture
async def _private_mosquitto(tmp_path: Path) -> AsyncIterator[_Broker]:
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
    if binary is None:
        pytest.fail("mosquitto is not installed: run `make test`, which installs it")
    broker = _Broker(binary, tmp_path)
    try:
        await broker.start()
        yield broker
    finally:
        await broker.kill()


async def _until(predicate: Callable[[], bool], progress: asyncio.Event, timeout: float) -> None:
    """Wait, re-checking whenever *progress* is signalled, until *predicate* holds."""
    async with asyncio.timeout(timeout):
        while not predicate():
            progress.clear()
            await progress.wait()


class _Signal(logging.Handler):
    """Signals an event on every log record (to wait for a log line without polling)."""

    def __init__(self, event: asyncio.Event) -> None:
        super().__init__()
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        self.event.set()


# The fixture's name is fixed (a shared one will replace it), hence PT019 below.
async def test_simulator_over_real_mqtt(
    _private_mosquitto: _Broker,  # noqa: PT019
    town: Town,
    models: dict[str, str],
) -> None:
    seen: Counter[str] = Counter()
    received: list[tuple[str, bytes]] = []
    wanted = {"startup", "status", "heartbeat", "nbiot", "tts", "counts", "rejected"}

    def classify(topic: str, payload: bytes) -> None:
        try:
            decoded = parse(topic, payload, models)
        except (EnvelopeError, CodecError):
            seen["rejected"] += 1
            return
        if topic.startswith("v3/"):
            seen["tts"] += 1
        if isinstance(decoded, MagnetometerFrame):
            seen["nbiot"] += 1
        elif isinstance(decoded, dict):
            seen["counts"] += 1
        else:
            kind = {Startup: "startup", Heartbeat: "heartbeat", OccupancyStatus: "status"}
            seen[kind[type(decoded)]] += 1

    done = 0
    progress = asyncio.Event()

    def all_kinds_seen() -> bool:
        nonlocal done
        for topic, payload in received[done:]:
            classify(topic, payload)
        done = len(received)
        return wanted <= set(seen)

    async with make_client(_private_mosquitto.params("test-sub")) as sub:
        await sub.subscribe("#", qos=1)

        async def listen() -> None:
            async for message in sub.messages:
                assert isinstance(message.payload, bytes)
                received.append((message.topic.value, message.payload))
                progress.set()

        listener = asyncio.create_task(listen())
        stop = asyncio.Event()
        options = SimulatorOptions(
            speed=3600, max_rate=1500, seed=5, fault_fraction=0.05, start=MONDAY_0600
        )
        started = time.monotonic()
        sim = asyncio.create_task(
            run_simulator(_private_mosquitto.params("sim"), town, options, stop=stop)
        )
        try:
            sim.add_done_callback(lambda _: progress.set())
            await _until(lambda: all_kinds_seen() or sim.done(), progress, timeout=15)
            stop.set()
            stats: SimStats = await asyncio.wait_for(sim, timeout=10)
            elapsed = time.monotonic() - started
            await _until(lambda: len(received) >= stats.published, progress, timeout=10)
            all_kinds_seen()
        finally:
            stop.set()
            listener.cancel()
            await asyncio.gather(listener, sim, return_exceptions=True)

    assert wanted <= set(seen), seen
    assert stats.errors == 0 and stats.reconnects == 0
    assert stats.startup and stats.status and stats.heartbeat and stats.garbage and stats.counts
    assert len(received) == stats.published  # QoS 1 end to end: nothing lost, nothing extra
    assert seen["rejected"] == stats.garbage
    print(f"\nsimulator: {stats.published} msgs in {elapsed:.2f} s = "
          f"{stats.published / elapsed:.0f} msg/s, {dict(seen)}")  # fmt: skip


async def test_simulator_survives_broker_restart(
    _private_mosquitto: _Broker,  # noqa: PT019
    town: Town,
) -> None:
    published = 0
    progress = asyncio.Event()

    def count(_topic: str) -> None:
        nonlocal published
        published += 1
        progress.set()

    stop = asyncio.Event()
    options = SimulatorOptions(speed=600, max_rate=2000, seed=2, start=MONDAY_0600)
    sim = asyncio.create_task(
        run_simulator(_private_mosquitto.params("sim"), town, options, stop=stop, on_publish=count)
    )
    try:
        sim.add_done_callback(lambda _: progress.set())
        await _until(lambda: published >= 300 or sim.done(), progress, timeout=10)
        await _private_mosquitto.kill()
        before = published
        await _private_mosquitto.start()
        await _until(lambda: published >= before + 300 or sim.done(), progress, timeout=15)
        stop.set()
        stats = await asyncio.wait_for(sim, timeout=10)
    finally:
        stop.set()
        await asyncio.gather(sim, return_exceptions=True)
    assert stats.reconnects >= 1
    assert stats.published == published and stats.sim_time is not None
    assert stats.sim_time > MONDAY_0600


async def test_no_broker_retries_quietly_then_stops_or_cancels(
    town: Town, caplog: pytest.LogCaptureFixture
) -> None:
    """No broker at all: it logs once, keeps retrying, and both stop paths end it cleanly."""
    options = SimulatorOptions(start=MONDAY_0600)
    params = MqttParams("127.0.0.1", _free_port(), "sim", clean=True)

    def warned() -> bool:
        return any("unavailable" in r.getMessage() for r in caplog.records)

    logged = asyncio.Event()
    signal = _Signal(logged)
    logging.getLogger("gateway.demo").addHandler(signal)
    stop = asyncio.Event()
    try:
        with caplog.at_level("WARNING", logger="gateway.demo"):
            task = asyncio.create_task(run_simulator(params, town, options, stop=stop))
            await _until(warned, logged, timeout=5)
            stop.set()
            stats = await asyncio.wait_for(task, timeout=5)
            assert stats.reconnects >= 1 and stats.published == 0

            caplog.clear()
            task = asyncio.create_task(run_simulator(params, town, options))
            await _until(warned, logged, timeout=5)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    finally:
        logging.getLogger("gateway.demo").removeHandler(signal)
