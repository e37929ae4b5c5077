"""Sensor ingest: MQTT message -> envelope -> codec -> event -> occupancy -> bus.

Runs synchronously inside the MQTT receive loop (everything here is pure and O(1)), so the
vacancy state the API serves is current the moment a message has been handled. Every message
ends in exactly one of: decoded (and its verdict counted), or rejected with a reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from drivers.lorawan.envelopes import (
    EnvelopeError,
    JoinNotice,
    StatusReport,
    Uplink,
    parse_chirpstack,
    parse_tts,
)
from drivers.mqtt.topics import matches, strip_share
from drivers.sensors import detection
from drivers.sensors.messages import (
    CodecError,
    Heartbeat,
    MagnetometerFrame,
    OccupancyStatus,
    SensorMessage,
    Startup,
    TagRegistration,
)
from drivers.sensors.registry import get_codec
from events import (
    CarParkCount,
    Event,
    InputRejected,
    MagnetometerSample,
    SensorHeartbeat,
    SensorStartup,
    SensorStatus,
)
from gateway.directory.devices import DeviceDirectory, DeviceEntry, Lifecycle
from gateway.infra.bus import EventBus
from gateway.metrics import Metrics
from parking.occupancy import OccupancyBook, Outcome, SensorReport

if TYPE_CHECKING:
    from gateway.services.parking.shared_berths import SharedBerths

log = logging.getLogger(__name__)

Source = Literal["chirpstack", "tts", "nbiot", "carpark"]
# Device clocks drift; a timestamp further in the future than this is replaced by receive time.
MAX_CLOCK_AHEAD = timedelta(seconds=60)


class CarParkCountMessage(BaseModel):
    """JSON a car-park controller publishes on ``citygate/carpark/{site_id}/counts``."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    time: datetime | None = None
    seq: Annotated[int, Field(ge=0, le=2**63)] | None = None
    entered: Annotated[int, Field(ge=0, le=10_000)] = 0
    exited: Annotated[int, Field(ge=0, le=10_000)] = 0
    occupied: Annotated[int, Field(ge=0, le=100_000)] | None = None


@dataclass
class Rejection(Exception):
    reason: str
    device_id: str = ""
    detail: str = ""


class SensorIngest:
    def __init__(
        self,
        *,
        book: OccupancyBook,
        directory: DeviceDirectory,
        bus: EventBus,
        metrics: Metrics,
        topics: dict[Source, str],
        clock: Callable[[], datetime],
        max_payload: int = 65536,
        detector: detection.DetectorConfig | None = None,
        controllers: dict[str, str] | None = None,
        shared: SharedBerths | None = None,
    ) -> None:
        self.book = book
        self.directory = directory
        self.bus = bus
        self.metrics = metrics
        self.topics = topics
        self.clock = clock
        self.max_payload = max_payload
        self.detector = detector or detection.DetectorConfig()
        self._detectors: dict[str, detection.DetectorState] = {}
        self._controllers = controllers or {}  # site id -> controller id
        # Several instances: uplinks are decided at the flush, under their rows' locks.
        self._shared = shared
        self._in = {s: metrics.messages_in.labels(s) for s in topics}
        self._verdicts = {
            v: metrics.uplink_verdicts.labels(v)
            for v in ("applied", "duplicate", "stale", "unbound")
        }
        self._decoded: dict[tuple[str, str], Any] = {}
        self._reported: set[tuple[str, str]] = set()
        self._routes: dict[str, Source | None] = {}
        self.handled = 0

    # -- entry point ---------------------------------------------------------------------
    def handle(self, topic: str, payload: bytes) -> None:
        """Handle one MQTT message. Never raises for bad input: rejections are counted."""
        self.handled += 1
        source = self._classify(topic)
        if source is None:
            self._reject("unrouted", "unknown_topic", "", topic)
            return
        self._in[source].inc()
        if len(payload) > self.max_payload:
            self._reject(source, "oversized", "", f"{len(payload)} bytes on {topic}")
            return
        now = self.clock()
        try:
            if source == "chirpstack":
                self._lorawan(parse_chirpstack(topic, payload), now)
            elif source == "tts":
                self._lorawan(parse_tts(topic, payload), now)
            elif source == "nbiot":
                self._nbiot(topic, payload, now)
            else:
                self._carpark(topic, payload, now)
        except EnvelopeError as exc:
            self._reject(source, exc.reason, "", exc.detail or topic)
        except CodecError as exc:
            self._reject(source, exc.reason, "", exc.detail)
        except Rejection as exc:
            self._reject(source, exc.reason, exc.device_id, exc.detail)

    def _classify(self, topic: str) -> Source | None:
        if topic in self._routes:
            return self._routes[topic]
        found: Source | None = None
        for source, pattern in self.topics.items():
            if matches(pattern, topic):
                found = source
                break
        if len(self._routes) >= 100_000:  # bounded: a flood of junk topics cannot grow it
            self._routes.clear()
        self._routes[topic] = found
        return found

    def _reject(self, source: str, reason: str, device_id: str, detail: str) -> None:
        self.metrics.rejected.labels(source, reason).inc()
        if (source, reason) not in self._reported:
            # First of its kind: one line for the operator; the rest are counted in metrics.
            self._reported.add((source, reason))
            log.warning(
                "rejected %s message (%s): %s; further ones are only counted in "
                "citygate_messages_rejected_total",
                source,
                reason,
                detail[:200],
            )
        else:
            log.debug("rejected %s message: %s %s", source, reason, detail[:200])
        self.bus.publish(
            InputRejected(
                device_id=device_id,
                ts=self.clock(),
                source=source,
                reason=reason,
                detail=detail[:200],
            )
        )

    # -- helpers ---------------------------------------------------------------------------
    def _device(self, device_id: str) -> DeviceEntry:
        entry = self.directory.get(device_id)
        if entry is None:
            raise Rejection("unknown_device", device_id, device_id)
        if entry.lifecycle is Lifecycle.RETIRED:
            raise Rejection("retired_device", device_id, device_id)
        return entry

    def _count_decoded(self, source: str, model: str) -> None:
        counter = self._decoded.get((source, model))
        if counter is None:
            counter = self._decoded[(source, model)] = self.metrics.decoded.labels(source, model)
        counter.inc()

    def _when(self, ts: datetime | None, now: datetime) -> datetime:
        if ts is None or ts > now + MAX_CLOCK_AHEAD:
            return now
        return ts

    def _emit(self, events: tuple[Event, ...]) -> None:
        for ev in events:
            self.bus.publish(ev)

    def _apply(self, event: SensorReport, occupied: bool | None = None) -> None:
        if self._shared is not None:
            self._shared.submit(event, occupied)
            return
        self.settle(event, self.book.apply(event, occupied))

    def settle(self, event: SensorReport | CarParkCount, outcome: Outcome) -> None:
        """Count an uplink's verdict and publish what it did (at once, or once the shared
        flush that decided it has committed)."""
        self._verdicts[outcome.verdict].inc()
        if isinstance(event, CarParkCount):
            if outcome.verdict == "applied":
                self.bus.publish(event)
                self._emit(outcome.events)
            return
        if outcome.verdict in ("duplicate", "unbound"):
            return
        self.bus.publish(event)
        self._emit(outcome.events)

    # -- LoRaWAN -----------------------------------------------------------------------------
    def _lorawan(self, msg: Uplink | StatusReport | JoinNotice, now: datetime) -> None:
        entry = self._device(msg.dev_eui)
        ts = self._when(msg.time, now)
        if isinstance(msg, StatusReport):
            # None (external power, level unavailable) leaves the last known level alone.
            self.directory.seen(entry, ts, battery_pct=msg.battery_level)
            self._apply(SensorHeartbeat(device_id=entry.id, ts=ts, model=entry.model))
            return
        if isinstance(msg, JoinNotice):
            self.directory.seen(entry, ts)
            self._apply(SensorStartup(device_id=entry.id, ts=ts, model=entry.model))
            return
        decoded = get_codec(entry.model).decode(msg.f_port, msg.data)
        self._count_decoded(msg.network, entry.model)
        event = self._to_event(decoded, entry, ts, msg.f_cnt, msg.rssi, msg.snr)
        battery = decoded.battery_mv if isinstance(decoded, Heartbeat) else None
        self.directory.seen(entry, ts, rssi=msg.rssi, snr=msg.snr, battery_mv=battery)
        self._apply(event)

    @staticmethod
    def _to_event(
        m: SensorMessage,
        entry: DeviceEntry,
        ts: datetime,
        fcnt: int | None,
        rssi: float | None,
        snr: float | None,
    ) -> SensorReport:
        dev, model = entry.id, entry.model
        # A tag registered at the berth (Nwave port 10) reports it occupied, as a status does.
        if isinstance(m, OccupancyStatus | TagRegistration) and (
            isinstance(m, OccupancyStatus) or m.occupied
        ):
            return SensorStatus(
                device_id=dev,
                ts=ts,
                model=model,
                fcnt=fcnt,
                rssi=rssi,
                snr=snr,
                occupied=bool(m.occupied),
            )
        if isinstance(m, Heartbeat):
            return SensorHeartbeat(
                device_id=dev,
                ts=ts,
                model=model,
                fcnt=fcnt,
                rssi=rssi,
                snr=snr,
                battery_mv=m.battery_mv,
                temperature_c=m.temperature_c,
                occupied=m.occupied,
            )
        if isinstance(m, TagRegistration):
            # No occupancy in the frame: a sign of life only, the berth keeps its state.
            return SensorHeartbeat(device_id=dev, ts=ts, model=model, fcnt=fcnt, rssi=rssi, snr=snr)
        if isinstance(m, Startup):
            return SensorStartup(
                device_id=dev,
                ts=ts,
                model=model,
                fcnt=fcnt,
                rssi=rssi,
                snr=snr,
                firmware=m.firmware,
                reset_cause=m.reset_cause,
                occupied=m.occupied,
            )
        raise Rejection("bad_model", entry.id, f"{entry.model} sent a magnetometer frame")

    # -- NB-IoT ------------------------------------------------------------------------------
    def _topic_device(self, source: Source, topic: str) -> str | None:
        """The device a topic names: the level under the filter's first ``+``, lower-cased.

        A per-device broker ACL only means something if the gateway refuses a frame that names
        another device than its topic, so this identity is checked, never ignored.
        """
        levels = strip_share(self.topics[source]).split("/")
        if "+" not in levels:
            return None
        parts = topic.split("/")
        at = levels.index("+")
        return parts[at].lower() if at < len(parts) else None

    def _nbiot(self, topic: str, payload: bytes, now: datetime) -> None:
        frame = get_codec("nbiot-geomag").decode(None, payload)
        if not isinstance(frame, MagnetometerFrame):
            raise Rejection("bad_frame", "", "not a magnetometer frame")
        named = self._topic_device("nbiot", topic)
        if named is not None and named != frame.device_id:
            raise Rejection(
                "device_mismatch",
                frame.device_id,
                f"frame of {frame.device_id} on the topic of {named}: {topic}",
            )
        entry = self._device(frame.device_id)
        self._count_decoded("nbiot", entry.model)
        state = detection.step(
            self._detectors.get(entry.id), frame.raw, frame.baseline, self.detector
        )
        self._detectors[entry.id] = state
        self.directory.seen(entry, now, rssi=float(frame.rssi_dbm), battery_mv=frame.battery_mv)
        sample = MagnetometerSample(
            device_id=entry.id,
            ts=now,
            model=entry.model,
            fcnt=frame.seq,
            rssi=float(frame.rssi_dbm),
            raw=frame.raw,
            baseline=frame.baseline,
            battery_mv=frame.battery_mv,
        )
        self._apply(sample, state.occupied)

    # -- car-park controllers ----------------------------------------------------------------
    def _carpark(self, topic: str, payload: bytes, now: datetime) -> None:
        parts = topic.split("/")
        site_id = parts[2] if len(parts) >= 3 else ""
        controller = self._controllers.get(site_id)
        if controller is None:
            raise Rejection("unknown_site", site_id, topic)
        try:
            msg = CarParkCountMessage.model_validate_json(payload)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise Rejection("bad_json", controller, f"{where}: {first['msg']}") from None
        if msg.time is not None and msg.time.tzinfo is None:
            raise Rejection("naive_time", controller, "time must carry a UTC offset")
        entry = self._device(controller)
        ts = self._when(msg.time, now)
        self.directory.seen(entry, ts)
        event = CarParkCount(
            device_id=controller,
            ts=ts,
            site_id=site_id,
            entered=msg.entered,
            exited=msg.exited,
            occupied=msg.occupied,
            seq=msg.seq,
        )
        if self._shared is not None:
            self._shared.submit(event)
            return
        self.settle(event, self.book.apply_count(event))
