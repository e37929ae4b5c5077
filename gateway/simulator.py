"""``citygate simulate``: drive the town's berth sensors and car-park counters over real MQTT.

The simulator exists so that anyone can watch vacancies change without a street full of
sensors: every sensor of the town file publishes what its network would deliver (ChirpStack v4
or The Things Stack v3 JSON for LoRaWAN, binary frames for NB-IoT, JSON counts for entry/exit
controllers), built with the project's own encoders so the gateway's parsers must accept them.

Layout, for testability:

* pure functions: the daily rhythm (:func:`occupancy_probability`) and one payload builder per
  envelope (:func:`chirpstack_uplink`, :func:`tts_uplink`, :func:`nbiot_uplink`,
  :func:`carpark_counts`);
* a pure state machine, :class:`TownSimulation`: a heap of (sim time, device, action); each
  :meth:`~TownSimulation.step` pops one action and returns what to publish at that sim time.
  No clock and no I/O; one seeded random source, so a seed replays the same traffic;
* small clock helpers (:class:`SimClock`, :class:`TokenBucket`) that take "now" as an argument;
* a thin asyncio loop, :func:`run_simulator`, that maps sim time to real time, rate-limits,
  publishes with QoS 1 and reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import heapq
import itertools
import json
import logging
import math
import random
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import IntEnum, StrEnum
from types import MappingProxyType
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import aiomqtt

from drivers.backoff import Backoff
from drivers.mqtt.transport import MqttParams, make_client
from drivers.sensors import bosch, nbiot, nwave
from drivers.sensors.registry import CODECS
from gateway.town import Counting, Site, SiteKind, Town

__all__ = [
    "Fault",
    "MessageKind",
    "Outgoing",
    "Radio",
    "SimClock",
    "SimStats",
    "SimulatorOptions",
    "TokenBucket",
    "TownSimulation",
    "carpark_counts",
    "chirpstack_uplink",
    "nbiot_uplink",
    "occupancy_probability",
    "run_simulator",
    "tts_site",
    "tts_uplink",
]

log = logging.getLogger(__name__)

IN_FLIGHT: Final = 50  # concurrent QoS 1 publishes (each awaits its PUBACK)
PUBLISH_TIMEOUT_S: Final = 5.0  # a PUBACK later than this means the connection is dead
DRAIN_TIMEOUT_S: Final = 5.0  # on stop, wait this long for outstanding PUBACKs
MAX_LAG_S: Final = 2.0  # real seconds the simulation may fall behind before it slows down

BOOT_SPREAD_S: Final = 60.0  # sensors boot within the first simulated minute
BOOT_STATUS_DELAY_S: Final = (5.0, 30.0)  # first status report after calibration
NBIOT_CONFIRM_S: Final = 30.0  # NB-IoT re-sample that confirms a change (gateway debounces 2)
CARPARK_TICK_S: Final = 60.0  # controllers report deltas every simulated minute
CARPARK_ABSOLUTE_EVERY: Final = 10  # ... and the absolute count every 10th report
CARPARK_MISS_P: Final = 0.01  # a loop detector misses a passage: drift the absolute fixes
ZOMBIE_P: Final = 0.0005  # share of arrivals that stay for days (废弃车辆)
ZOMBIE_DAYS: Final = (3.0, 10.0)
GARBAGE_P: Final = 0.5  # share of a garbage sensor's uplinks that are garbage
SILENT_AFTER_S: Final = (300.0, 3600.0)  # a silent sensor dies this long after start

# ChirpStack / TTS identities: stable infrastructure, not seeded traffic.
_NS = uuid.UUID("6f1c2e4a-9b57-4d0e-8c3a-2a7f5e1d9b40")
TENANT_ID: Final = str(uuid.uuid5(_NS, "chirpstack/tenant/citygate"))
TTS_APP: Final = "shandan-parking"
TTS_TENANT: Final = "citygate"
_PROFILE_NAMES: Final = {nwave.MODEL: "Nwave NPS405", bosch.MODEL: "Bosch PLS TPS110"}
_GATEWAYS: Final = (
    ("ac1f09fffe0a1001", "shandan-gw-gulou"),
    ("ac1f09fffe0a1002", "shandan-gw-xicheng"),
    ("ac1f09fffe0a1003", "shandan-gw-dongcheng"),
    ("ac1f09fffe0a1004", "shandan-gw-nancheng"),
)
_CN470_BASE_HZ: Final = 470_300_000  # CN470-510 uplink channel 0; 200 kHz spacing
_CROCKFORD: Final = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


# --------------------------------------------------------------------------- options, stats


@dataclass(frozen=True)
class SimulatorOptions:
    """What ``citygate simulate`` lets the user choose."""

    speed: float = 60.0  # simulated seconds per real second (1.0 = real time)
    max_rate: float = 200.0  # cap on messages per real second (token bucket)
    seed: int = 1
    fault_fraction: float = 0.02  # share of sensors that misbehave
    start: datetime | None = None  # simulated start time (aware); default now

    def __post_init__(self) -> None:
        if not (self.speed > 0 and math.isfinite(self.speed)):
            raise ValueError("speed must be a positive number")
        if not (self.max_rate > 0 and math.isfinite(self.max_rate)):
            raise ValueError("max_rate must be a positive number")
        if not 0.0 <= self.fault_fraction <= 1.0:
            raise ValueError("fault_fraction must be within 0..1")
        if self.start is not None and self.start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")


class MessageKind(StrEnum):
    STATUS = "status"
    HEARTBEAT = "heartbeat"
    STARTUP = "startup"
    GARBAGE = "garbage"
    COUNTS = "counts"


class Fault(StrEnum):
    SILENT = "silent"  # stops talking: the gateway must raise comms_lost
    FLAP = "flap"  # bursts of rapid occupied/free toggling: the gateway must debounce
    GARBAGE = "garbage"  # truncated frames, bad base64, wrong port: counted rejections


@dataclass
class SimStats:
    """Counts of what reached the broker (PUBACKed), by kind, plus trouble."""

    status: int = 0
    heartbeat: int = 0
    startup: int = 0
    garbage: int = 0
    counts: int = 0
    errors: int = 0  # publishes that failed (they are retried after a reconnect)
    reconnects: int = 0  # connections lost or refused
    sim_time: datetime | None = None  # simulated time of the last processed action

    @property
    def published(self) -> int:
        return self.status + self.heartbeat + self.startup + self.garbage + self.counts

    def add(self, kind: MessageKind) -> None:
        setattr(self, kind.value, getattr(self, kind.value) + 1)


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One MQTT message the simulation wants published at ``sim_time`` (POSIX seconds)."""

    topic: str
    payload: bytes
    kind: MessageKind
    device: str  # dev_eui (lowercase hex) or car-park controller id
    sim_time: float
    garbage: str = ""  # for garbage: which flaw (truncated, bad_base64, wrong_port, ...)


# --------------------------------------------------------------------------- daily rhythm

# (night floor, peak) occupancy by tariff class: the centre (A) is busier than the edge (C).
_CLASS_LEVELS: Final = MappingProxyType({"A": (0.12, 0.92), "B": (0.10, 0.75), "C": (0.06, 0.55)})
_DEFAULT_LEVELS: Final = (0.10, 0.75)
# Dwell time, log-normal: (median seconds, sigma). Kerbside stays are short; car parks longer.
_DWELL: Final = MappingProxyType(
    {SiteKind.ON_STREET: (35 * 60.0, 0.9), SiteKind.CAR_PARK: (80 * 60.0, 1.0)}
)


def _bump(hour: float, centre: float, width: float) -> float:
    d = abs(hour - centre) % 24.0
    d = min(d, 24.0 - d)
    return math.exp(-(d * d) / (2 * width * width))


def occupancy_probability(local_hour: float, segment_class: str) -> float:
    """Share of berths occupied at *local_hour* (0..24, site time) for a tariff class.

    Low at night, a morning peak around 09:00, a midday plateau, an evening peak around
    18:30; the class sets the floor and the height. Steady-state target, not a sample."""
    night, peak = _CLASS_LEVELS.get(segment_class.upper(), _DEFAULT_LEVELS)
    shape = (
        _bump(local_hour, 9.0, 1.4)
        + 0.95 * _bump(local_hour, 18.5, 1.8)
        + 0.70 * _bump(local_hour, 13.5, 2.6)
    )
    return night + (peak - night) * min(1.0, shape)


def _mean_dwell_s(kind: SiteKind) -> float:
    median, sigma = _DWELL[kind]
    return median * math.exp(sigma * sigma / 2)


def _arrival_rate(p: float, mean_dwell_s: float) -> float:
    """Arrivals per second at a free berth that keep occupancy at *p* (birth-death balance:
    free * rate = occupied / mean dwell)."""
    return p / ((1.0 - p) * mean_dwell_s)


# --------------------------------------------------------------------------- payload builders


@dataclass(frozen=True, slots=True)
class Radio:
    """One receiving gateway's view of an uplink."""

    gateway_id: str  # EUI, 16 hex
    gateway_name: str  # TTS gateway id
    rssi: int
    snr: float


def _json(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def chirpstack_uplink(
    *,
    application_id: str,
    dev_eui: str,
    device_name: str,
    profile_name: str,
    dev_addr: str,
    f_cnt: int,
    f_port: int,
    data: bytes,
    time: float,
    dedup_id: str,
    radio: Sequence[Radio],
    frequency: int,
    spreading_factor: int,
    data_b64: str | None = None,
) -> tuple[str, bytes]:
    """A ChirpStack v4 ``event/up`` as its MQTT integration publishes it (protobuf-JSON,
    camelCase; ``fCnt`` 0 is omitted like protobuf does). *data_b64* overrides the encoded
    payload, to send broken base64."""
    doc: dict[str, Any] = {
        "deduplicationId": dedup_id,
        "time": _utc(time).isoformat(timespec="microseconds"),
        "deviceInfo": {
            "tenantId": TENANT_ID,
            "tenantName": "citygate",
            "applicationId": application_id,
            "applicationName": "shandan-parking",
            "deviceProfileId": str(uuid.uuid5(_NS, f"chirpstack/profile/{profile_name}")),
            "deviceProfileName": profile_name,
            "deviceName": device_name,
            "devEui": dev_eui,
            "deviceClassEnabled": "CLASS_A",
        },
        "devAddr": dev_addr,
        "adr": True,
        "dr": 12 - spreading_factor,  # CN470: DR0 = SF12 .. DR5 = SF7
        "fPort": f_port,
        "data": base64.b64encode(data).decode() if data_b64 is None else data_b64,
        "rxInfo": [
            {"gatewayId": r.gateway_id, "rssi": r.rssi, "snr": r.snr, "crcStatus": "CRC_OK"}
            for r in radio
        ],
        "txInfo": {
            "frequency": frequency,
            "modulation": {
                "lora": {
                    "bandwidth": 125000,
                    "spreadingFactor": spreading_factor,
                    "codeRate": "CR_4_5",
                }
            },
        },
    }
    if f_cnt:
        doc["fCnt"] = f_cnt
    topic = f"application/{application_id}/device/{dev_eui}/event/up"
    return topic, _json(doc)


def tts_uplink(
    *,
    device_id: str,
    dev_eui: str,
    dev_addr: str,
    f_cnt: int,
    f_port: int,
    data: bytes,
    time: float,
    correlation_ids: Sequence[str],
    radio: Sequence[Radio],
    frequency: int,
    spreading_factor: int,
    app: str = TTS_APP,
    tenant: str = TTS_TENANT,
    data_b64: str | None = None,
) -> tuple[str, bytes]:
    """A The Things Stack v3 ``up`` message (snake_case, DevEUI upper-case, 64-bit numbers as
    strings, ``f_cnt`` 0 omitted)."""
    stamp = _utc(time).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    up: dict[str, Any] = {
        "f_port": f_port,
        "frm_payload": base64.b64encode(data).decode() if data_b64 is None else data_b64,
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": r.gateway_name, "eui": r.gateway_id.upper()},
                "time": stamp,
                "rssi": r.rssi,
                "channel_rssi": r.rssi,
                "snr": r.snr,
            }
            for r in radio
        ],
        "settings": {
            "data_rate": {
                "lora": {
                    "bandwidth": 125000,
                    "spreading_factor": spreading_factor,
                    "coding_rate": "4/5",
                }
            },
            "frequency": str(frequency),
        },
        "received_at": stamp,
    }
    if f_cnt:
        up["f_cnt"] = f_cnt
    doc = {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": app},
            "dev_eui": dev_eui.upper(),
            "dev_addr": dev_addr.upper(),
        },
        "correlation_ids": list(correlation_ids),
        "received_at": stamp,
        "uplink_message": up,
    }
    return f"v3/{app}@{tenant}/devices/{device_id}/up", _json(doc)


def nbiot_uplink(device_id: str, frame: bytes) -> tuple[str, bytes]:
    """NB-IoT sensors publish their raw binary frame on ``nbiot/{device_id}/up``."""
    return f"nbiot/{device_id}/up", frame


def carpark_counts(
    site_id: str,
    *,
    time: datetime,
    seq: int,
    entered: int,
    exited: int,
    occupied: int | None = None,
) -> tuple[str, bytes]:
    """A car-park controller's report (``CarParkCountMessage`` in gateway/ingest.py); the time
    keeps the controller's local offset, as such controllers send it."""
    doc: dict[str, Any] = {
        "time": time.isoformat(timespec="seconds"),
        "seq": seq,
        "entered": entered,
        "exited": exited,
    }
    if occupied is not None:
        doc["occupied"] = occupied
    return f"citygate/carpark/{site_id}/counts", _json(doc)


def _ulid(t: float, rng: random.Random) -> str:
    """A ULID (TTS correlation ids use them): 48-bit ms time + 80 random bits, Crockford."""
    value = (int(t * 1000) & (2**48 - 1)) << 80 | rng.getrandbits(80)
    return "".join(_CROCKFORD[(value >> (5 * i)) & 31] for i in range(25, -1, -1))


def tts_site(town: Town) -> str | None:
    """The on-street segment whose sensors go through The Things Stack instead of ChirpStack:
    the last (by id) whose sensors are all LoRaWAN, so both network servers carry traffic."""
    berth_site = {b.id: b.site for b in town.berths}
    transports: dict[str, set[str]] = {}
    for s in town.sensors:
        codec = CODECS.get(s.model)
        site = berth_site.get(s.berth)
        if codec is not None and site is not None:
            transports.setdefault(site, set()).add(codec.transport)
    candidates = [
        site.id
        for site in town.sites
        if site.kind is SiteKind.ON_STREET and transports.get(site.id) == {"lorawan"}
    ]
    return max(candidates) if candidates else None


# --------------------------------------------------------------------------- the state machine


class _Act(IntEnum):
    BOOT = 0
    REPORT = 1  # status after calibration / NB-IoT confirmation sample
    ARRIVE = 2  # candidate arrival (thinning of a non-homogeneous Poisson process)
    DEPART = 3
    HEARTBEAT = 4
    FLAP = 5
    TICK = 6  # car-park controller report


@dataclass(slots=True)
class _Sensor:
    dev_eui: str
    model: str
    net: Literal["chirpstack", "tts", "nbiot"]
    berth: str
    site_kind: SiteKind
    segment_class: str
    heartbeat_s: float
    fault: Fault | None
    occupied: bool
    changed_at: float  # sim time of the last state change
    previous_s: float = 0.0  # how long the state before the last change lasted
    f_cnt: int = 0  # LoRaWAN frame counter / NB-IoT seq
    battery_mv: float = 3600.0
    radio: tuple[tuple[int, float], ...] = ()  # (gateway index, mean RSSI) / NB-IoT: one entry
    spreading_factor: int = 9
    dev_addr: str = ""
    baseline: tuple[int, int, int] = (0, 0, 0)
    car: tuple[int, int, int] = (0, 0, 0)  # field offset of the parked car
    silent_from: float = math.inf
    flaps_left: int = 0


@dataclass(slots=True)
class _CarPark:
    site: Site
    departures: list[float]  # heap of departure times of the cars inside
    seq: int = 0
    last_tick: float = 0.0


class TownSimulation:
    """Pure event-driven model of the town's sensors: no clock, no I/O, seeded.

    :meth:`step` executes the earliest scheduled action and returns the messages it produces;
    the caller decides when (in real time) that sim time has come."""

    def __init__(
        self,
        town: Town,
        *,
        start: datetime,
        seed: int = 1,
        fault_fraction: float = 0.02,
    ) -> None:
        if start.utcoffset() is None:
            raise ValueError("start must be timezone-aware")
        self.zone = ZoneInfo(town.town.timezone)
        self.start = start.timestamp()
        self._rng = random.Random(seed)
        self._heap: list[tuple[float, int, int, int]] = []
        self._order = itertools.count()
        self.sensors: list[_Sensor] = []
        self.carparks: list[_CarPark] = []
        self._apps = {m: str(uuid.uuid5(_NS, f"chirpstack/app/{m}")) for m in CODECS}

        sites = {s.id: s for s in town.sites}
        berth_site = {b.id: sites[b.site] for b in town.berths if b.site in sites}
        via_tts = tts_site(town)
        known = [s for s in town.sensors if s.model in CODECS and s.berth in berth_site]
        self.skipped: list[str] = [  # no codec for the model, or a berth of no site
            s.dev_eui for s in town.sensors if s.model not in CODECS or s.berth not in berth_site
        ]

        # Faults come from their own stream so they do not shift when traffic code changes.
        fault_rng = random.Random(f"citygate-sim/{seed}/faults")
        n_faulty = round(fault_fraction * len(known))
        if fault_fraction > 0 and known:
            n_faulty = max(1, n_faulty)
        chosen = fault_rng.sample(sorted(s.dev_eui.lower() for s in known), n_faulty)
        kinds = (Fault.SILENT, Fault.FLAP, Fault.GARBAGE)
        self.faults: Mapping[str, Fault] = MappingProxyType(
            {eui: kinds[i % 3] for i, eui in enumerate(chosen)}
        )

        rng = self._rng
        for spec in known:
            site = berth_site[spec.berth]
            codec = CODECS[spec.model]
            eui = spec.dev_eui.lower()
            net: Literal["chirpstack", "tts", "nbiot"]
            if codec.transport == "nbiot":
                net = "nbiot"
            else:
                net = "tts" if site.id == via_tts else "chirpstack"
            sensor = _Sensor(
                dev_eui=eui,
                model=spec.model,
                net=net,
                berth=spec.berth,
                site_kind=site.kind,
                segment_class=site.segment_class,
                heartbeat_s=float(spec.heartbeat_s or codec.default_heartbeat_s),
                fault=self.faults.get(eui),
                occupied=False,
                changed_at=self.start,
                battery_mv=rng.uniform(3450, 3650),
            )
            self._init_radio(sensor)
            self._init_occupancy(sensor)
            if sensor.fault is Fault.SILENT:
                sensor.silent_from = self.start + rng.uniform(*SILENT_AFTER_S)
            self.sensors.append(sensor)
            self._push(self.start + rng.uniform(0, BOOT_SPREAD_S), _Act.BOOT, len(self.sensors) - 1)

        for site in town.sites:
            if site.counting is not Counting.ENTRY_EXIT or site.capacity <= 0:
                continue
            p = self._p(self.start, site.segment_class)
            inside = [
                self.start + rng.random() * self._dwell(site.kind)
                for _ in range(round(p * site.capacity))
            ]
            heapq.heapify(inside)
            cp = _CarPark(site=site, departures=inside, last_tick=self.start)
            self.carparks.append(cp)
            self._push(
                self.start + rng.uniform(0, CARPARK_TICK_S), _Act.TICK, len(self.carparks) - 1
            )

    # -- scheduling ------------------------------------------------------------------------
    def _push(self, t: float, act: _Act, idx: int) -> None:
        heapq.heappush(self._heap, (t, next(self._order), int(act), idx))

    def next_time(self) -> float:
        """Sim time (POSIX seconds) of the next action; ``inf`` when nothing is left."""
        return self._heap[0][0] if self._heap else math.inf

    def step(self) -> list[Outgoing]:
        """Execute the earliest action; returns the messages it produces (often none)."""
        if not self._heap:
            return []
        t, _, act, idx = heapq.heappop(self._heap)
        if act == _Act.TICK:
            return [self._tick(idx, t)]
        s = self.sensors[idx]
        if t >= s.silent_from:
            return []  # dead: its chains end here
        return self._sensor_action(s, idx, _Act(act), t)

    def run_until(self, t: float) -> list[Outgoing]:
        """Every message due up to sim time *t* (for tests and batch use)."""
        out: list[Outgoing] = []
        while self.next_time() <= t:
            out.extend(self.step())
        return out

    # -- model helpers ---------------------------------------------------------------------
    def local_hour(self, t: float) -> float:
        local = datetime.fromtimestamp(t, self.zone)
        return local.hour + local.minute / 60 + local.second / 3600

    def _p(self, t: float, segment_class: str) -> float:
        return occupancy_probability(self.local_hour(t), segment_class)

    def _dwell(self, kind: SiteKind) -> float:
        rng = self._rng
        if rng.random() < ZOMBIE_P:
            return rng.uniform(*ZOMBIE_DAYS) * 86400
        median, sigma = _DWELL[kind]
        return min(max(60.0, rng.lognormvariate(math.log(median), sigma)), 86400.0)

    def _max_rate(self, s: _Sensor) -> float:
        _, peak = _CLASS_LEVELS.get(s.segment_class.upper(), _DEFAULT_LEVELS)
        return _arrival_rate(peak, _mean_dwell_s(s.site_kind))

    def _init_radio(self, s: _Sensor) -> None:
        rng = self._rng
        if s.net == "nbiot":
            s.radio = ((0, rng.uniform(-105, -70)),)
            base = (rng.randint(-200, 200), rng.randint(-400, 0), rng.randint(300, 600))
            s.baseline = base
            return
        gws = rng.sample(range(len(_GATEWAYS)), rng.randint(1, 3))
        s.radio = tuple((g, rng.uniform(-118, -75)) for g in gws)
        best = max(r for _, r in s.radio)
        s.spreading_factor = 7 if best > -95 else 9 if best > -108 else 11
        digest = uuid.uuid5(_NS, s.dev_eui).int
        s.dev_addr = f"{digest & 0x01FFFFFF:08x}"  # NetID 000000 (type 0, NwkID 0)

    def _init_occupancy(self, s: _Sensor) -> None:
        rng = self._rng
        s.occupied = rng.random() < self._p(self.start, s.segment_class)
        s.changed_at = self.start - rng.uniform(0, 3600)
        if s.occupied:
            s.car = self._new_car()

    def _new_car(self) -> tuple[int, int, int]:
        """Field offset of a parked car: mostly vertical, 80..300 units."""
        rng = self._rng
        vx, vy, vz = rng.gauss(0, 0.5), rng.gauss(0, 0.5), rng.choice((-1.0, 1.0))
        norm = math.sqrt(vx * vx + vy * vy + vz * vz)
        mag = rng.uniform(80, 300)
        return (round(vx / norm * mag), round(vy / norm * mag), round(vz / norm * mag))

    def _set_state(self, s: _Sensor, occupied: bool, t: float) -> None:
        s.previous_s = t - s.changed_at
        s.changed_at = t
        s.occupied = occupied
        if occupied and s.net == "nbiot":
            s.car = self._new_car()

    def _schedule_next_change(self, s: _Sensor, idx: int, t: float) -> None:
        if s.fault is Fault.FLAP:
            return  # flappers run their own chain
        if s.occupied:
            remaining = self._dwell(s.site_kind)
            self._push(t + remaining, _Act.DEPART, idx)
        else:
            self._push(t + self._rng.expovariate(self._max_rate(s)), _Act.ARRIVE, idx)

    # -- sensor actions ----------------------------------------------------------------------
    def _sensor_action(self, s: _Sensor, idx: int, act: _Act, t: float) -> list[Outgoing]:
        rng = self._rng
        if act == _Act.BOOT:
            self._push(t + rng.uniform(*BOOT_STATUS_DELAY_S), _Act.REPORT, idx)
            self._push(t + rng.uniform(0, s.heartbeat_s), _Act.HEARTBEAT, idx)
            if s.fault is Fault.FLAP:
                self._push(t + rng.uniform(60, 600), _Act.FLAP, idx)
            elif s.occupied:  # a car already there: it leaves after the rest of its stay
                self._push(t + rng.random() * self._dwell(s.site_kind), _Act.DEPART, idx)
            else:
                self._schedule_next_change(s, idx, t)
            return [self._startup(s, t)]
        if act == _Act.REPORT:
            return [self._status(s, t, event=True)]
        if act == _Act.HEARTBEAT:
            self._push(t + s.heartbeat_s, _Act.HEARTBEAT, idx)
            return [self._heartbeat(s, t)]
        if act == _Act.ARRIVE:
            rate = _arrival_rate(self._p(t, s.segment_class), _mean_dwell_s(s.site_kind))
            if rng.random() * self._max_rate(s) >= rate:  # thinning: reject this candidate
                self._push(t + rng.expovariate(self._max_rate(s)), _Act.ARRIVE, idx)
                return []
            self._set_state(s, True, t)
        elif act == _Act.DEPART:
            self._set_state(s, False, t)
        elif act == _Act.FLAP:
            if s.flaps_left <= 0:
                s.flaps_left = rng.randint(6, 30)
            s.flaps_left -= 1
            gap = rng.uniform(2, 20) if s.flaps_left > 0 else rng.uniform(600, 5400)
            self._push(t + gap, _Act.FLAP, idx)
            self._set_state(s, not s.occupied, t)
            return [self._status(s, t, event=True)]
        self._schedule_next_change(s, idx, t)
        if s.net == "nbiot":  # the gateway debounces two samples: the sensor confirms
            self._push(t + NBIOT_CONFIRM_S, _Act.REPORT, idx)
        return [self._status(s, t, event=True)]

    # -- message construction ------------------------------------------------------------------
    def _radio(self, s: _Sensor) -> list[Radio]:
        rng = self._rng
        out = []
        for g, mean in s.radio:
            rssi = round(mean + rng.gauss(0, 2))
            snr = round(max(-20.0, min(12.0, (rssi + 120) / 4 + rng.gauss(0, 1.5))), 1)
            out.append(Radio(_GATEWAYS[g][0], _GATEWAYS[g][1], rssi, snr))
        return out

    def _lora(
        self,
        s: _Sensor,
        t: float,
        kind: MessageKind,
        port_data: tuple[int, bytes],
        *,
        data_b64: str | None = None,
        flaw: str = "",
    ) -> Outgoing:
        rng = self._rng
        f_port, data = port_data
        f_cnt = s.f_cnt
        s.f_cnt = (s.f_cnt + 1) & 0xFFFFFFFF
        frequency = _CN470_BASE_HZ + 200_000 * rng.randrange(8)
        radio = self._radio(s)
        if s.net == "tts":
            topic, payload = tts_uplink(
                device_id=f"eui-{s.dev_eui}",
                dev_eui=s.dev_eui,
                dev_addr=s.dev_addr,
                f_cnt=f_cnt,
                f_port=f_port,
                data=data,
                time=t,
                correlation_ids=(f"as:up:{_ulid(t, rng)}", f"ns:uplink:{_ulid(t, rng)}"),
                radio=radio,
                frequency=frequency,
                spreading_factor=s.spreading_factor,
                data_b64=data_b64,
            )
        else:
            topic, payload = chirpstack_uplink(
                application_id=self._apps[s.model],
                dev_eui=s.dev_eui,
                device_name=s.berth,
                profile_name=_PROFILE_NAMES.get(s.model, s.model),
                dev_addr=s.dev_addr,
                f_cnt=f_cnt,
                f_port=f_port,
                data=data,
                time=t,
                dedup_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                radio=radio,
                frequency=frequency,
                spreading_factor=s.spreading_factor,
                data_b64=data_b64,
            )
        return Outgoing(topic, payload, kind, s.dev_eui, t, flaw)

    def _nbiot_frame(self, s: _Sensor, t: float, *, event: bool) -> bytes:
        rng = self._rng
        drift = round(3 * math.sin(2 * math.pi * self.local_hour(t) / 24))  # temperature
        raw = []
        for axis in range(3):
            noise = max(-6, min(6, round(rng.gauss(0, 2.5))))
            value = s.baseline[axis] + noise + (drift if axis == 2 else 0)
            if s.occupied:
                value += s.car[axis]
            raw.append(max(-32768, min(32767, value)))
        seq = s.f_cnt
        s.f_cnt = (s.f_cnt + 1) & 0xFFFF
        s.battery_mv = max(2900.0, s.battery_mv - 0.01)
        return nbiot.encode_frame(
            s.dev_eui,
            seq,
            (raw[0], raw[1], raw[2]),
            s.baseline,
            battery_mv=round(s.battery_mv),
            rssi_dbm=max(-128, min(-40, round(s.radio[0][1] + rng.gauss(0, 2)))),
            sensor_occupied=s.occupied,
            event=event,
        )

    def _temperature(self, t: float) -> float:
        """Road-surface temperature in a dry continental town: cold nights, warm afternoons."""
        return 6 + 9 * math.cos(2 * math.pi * (self.local_hour(t) - 15) / 24)

    def _startup(self, s: _Sensor, t: float) -> Outgoing:
        if s.net == "nbiot":
            # NB-IoT frames have no boot type: the first periodic frame after power-on is it.
            frame = self._nbiot_frame(s, t, event=False)
            topic, payload = nbiot_uplink(s.dev_eui, frame)
            return Outgoing(topic, payload, MessageKind.STARTUP, s.dev_eui, t)
        if s.model == nwave.MODEL:
            port_data = nwave.encode_startup(occupied=s.occupied)
        else:
            port_data = bosch.encode_startup(occupied=s.occupied)
        return self._lora(s, t, MessageKind.STARTUP, port_data)

    def _status(self, s: _Sensor, t: float, *, event: bool) -> Outgoing:
        if s.fault is Fault.GARBAGE and self._rng.random() < GARBAGE_P:
            return self._garbage(s, t)
        if s.net == "nbiot":
            topic, payload = nbiot_uplink(s.dev_eui, self._nbiot_frame(s, t, event=event))
            return Outgoing(topic, payload, MessageKind.STATUS, s.dev_eui, t)
        if s.model == nwave.MODEL:
            port_data = nwave.encode_status(s.occupied, round(s.previous_s))
        else:
            port_data = bosch.encode_status(s.occupied)
        return self._lora(s, t, MessageKind.STATUS, port_data)

    def _heartbeat(self, s: _Sensor, t: float) -> Outgoing:
        rng = self._rng
        if s.fault is Fault.GARBAGE and rng.random() < GARBAGE_P:
            return self._garbage(s, t)
        if s.net == "nbiot":
            topic, payload = nbiot_uplink(s.dev_eui, self._nbiot_frame(s, t, event=False))
            return Outgoing(topic, payload, MessageKind.HEARTBEAT, s.dev_eui, t)
        temperature = self._temperature(t) + rng.gauss(0, 1)
        s.battery_mv = max(2600.0, s.battery_mv - rng.uniform(0, 2))
        if s.model == nwave.MODEL:
            port_data = nwave.encode_heartbeat(s.occupied, round(s.battery_mv), temperature)
        else:
            port_data = bosch.encode_heartbeat(s.occupied, temperature)
        return self._lora(s, t, MessageKind.HEARTBEAT, port_data)

    def _garbage(self, s: _Sensor, t: float) -> Outgoing:
        """A frame the gateway must reject (and count), never crash on."""
        rng = self._rng
        if s.net == "nbiot":
            frame = bytearray(self._nbiot_frame(s, t, event=True))
            flaw = rng.choice(("truncated", "bad_checksum", "bad_header"))
            if flaw == "truncated":
                frame = frame[: rng.randrange(4, nbiot.FRAME_LEN)]
            elif flaw == "bad_checksum":
                frame[-1] ^= 0x5A
            else:
                frame[0] = 0x00
            topic, payload = nbiot_uplink(s.dev_eui, bytes(frame))
            return Outgoing(topic, payload, MessageKind.GARBAGE, s.dev_eui, t, flaw)
        flaw = rng.choice(("truncated", "bad_base64", "wrong_port"))
        if s.model == nwave.MODEL:
            startup = nwave.encode_startup(occupied=s.occupied)
        else:
            startup = bosch.encode_startup(occupied=s.occupied)
        if flaw == "truncated":  # a startup frame cut short by the radio
            port, data = startup
            return self._lora(
                s, t, MessageKind.GARBAGE, (port, data[: rng.randrange(1, len(data))]), flaw=flaw
            )
        if flaw == "bad_base64":
            return self._lora(
                s, t, MessageKind.GARBAGE, (1, b""), data_b64="A*=#" + "Q" * 3, flaw=flaw
            )
        port = rng.choice((0, 7, 9, 100, 224))  # no decodable uplink there
        return self._lora(s, t, MessageKind.GARBAGE, (port, bytes([int(s.occupied)])), flaw=flaw)

    # -- car parks ---------------------------------------------------------------------------
    def _tick(self, idx: int, t: float) -> Outgoing:
        rng = self._rng
        cp = self.carparks[idx]
        self._push(t + CARPARK_TICK_S, _Act.TICK, idx)
        exited = 0
        while cp.departures and cp.departures[0] <= t:
            heapq.heappop(cp.departures)
            exited += 1
        free = cp.site.capacity - len(cp.departures)
        rate = _arrival_rate(self._p(t, cp.site.segment_class), _mean_dwell_s(cp.site.kind))
        entered = min(free, _poisson(rng, free * rate * (t - cp.last_tick)))
        for _ in range(entered):
            heapq.heappush(cp.departures, t + self._dwell(cp.site.kind))
        cp.last_tick = t
        seen_in = sum(1 for _ in range(entered) if rng.random() >= CARPARK_MISS_P)
        seen_out = sum(1 for _ in range(exited) if rng.random() >= CARPARK_MISS_P)
        cp.seq += 1
        absolute = len(cp.departures) if cp.seq % CARPARK_ABSOLUTE_EVERY == 1 else None
        topic, payload = carpark_counts(
            cp.site.id,
            time=datetime.fromtimestamp(t, self.zone),
            seq=cp.seq,
            entered=seen_in,
            exited=seen_out,
            occupied=absolute,
        )
        device = cp.site.controller_id or cp.site.id
        return Outgoing(topic, payload, MessageKind.COUNTS, device, t)


def _poisson(rng: random.Random, mean: float) -> int:
    """Poisson sample: Knuth's product method for small means, normal approximation above."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, prod = math.exp(-mean), 0, rng.random()
    while prod > limit:
        k += 1
        prod *= rng.random()
    return k


# --------------------------------------------------------------------------- clocks


class SimClock:
    """Maps real (monotonic) time to simulated time at *speed*; pausable, so the simulated
    town stands still while the broker is away instead of bursting afterwards."""

    def __init__(
        self, sim_start: float, speed: float, real_now: float, *, paused: bool = False
    ) -> None:
        self.speed = speed
        self._sim0 = sim_start
        self._real0 = real_now
        self._paused_at: float | None = real_now if paused else None

    def sim_at(self, real: float) -> float:
        if self._paused_at is not None:
            real = self._paused_at
        return self._sim0 + (real - self._real0) * self.speed

    def real_delay(self, sim_t: float, real_now: float) -> float:
        """Real seconds until the sim reaches *sim_t* (0 if already there)."""
        return max(0.0, (sim_t - self.sim_at(real_now)) / self.speed)

    def pause(self, real_now: float) -> None:
        if self._paused_at is None:
            self._paused_at = real_now

    def resume(self, real_now: float) -> None:
        if self._paused_at is not None:
            self._real0 += real_now - self._paused_at
            self._paused_at = None

    def hold_back(self, sim_t: float, real_now: float, max_lag_s: float) -> None:
        """If processing *sim_t* now means lagging more than *max_lag_s* real seconds, slow
        the simulated clock: a rate-limited run gets slower, never an ever-growing backlog."""
        lag = (self.sim_at(real_now) - sim_t) / self.speed
        if lag > max_lag_s:
            self._real0 += lag - max_lag_s


class TokenBucket:
    """At most *rate* messages per second on average, bursts up to *burst*."""

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self._tokens = self.burst
        self._last = now

    def take(self, now: float) -> float:
        """Take a token: returns 0.0 on success, else the seconds to wait before retrying."""
        self._tokens = min(self.burst, self._tokens + (now - self._last) * self.rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate


# --------------------------------------------------------------------------- the I/O loop


class _Pump:
    """Moves messages from the simulation to one live connection, at most IN_FLIGHT at once."""

    def __init__(
        self,
        sim: TownSimulation,
        clock: SimClock,
        bucket: TokenBucket,
        stats: SimStats,
        stop: asyncio.Event,
        on_publish: Callable[[str], None] | None,
    ) -> None:
        self.sim = sim
        self.clock = clock
        self.bucket = bucket
        self.stats = stats
        self.stop = stop
        self.on_publish = on_publish
        self.backlog: deque[Outgoing] = (
            deque()
        )  # produced, not yet published (kept across reconnects)

    async def run(self, client: aiomqtt.Client) -> None:
        """Publish until ``stop`` is set; raises ``MqttError`` when the connection breaks."""
        loop = asyncio.get_running_loop()
        sem = asyncio.Semaphore(IN_FLIGHT)
        broken = asyncio.Event()
        tasks: set[asyncio.Task[None]] = set()
        failed: list[Outgoing] = []
        waiters = {asyncio.ensure_future(self.stop.wait()), asyncio.ensure_future(broken.wait())}
        clean = False
        try:
            while not self.stop.is_set() and not broken.is_set():
                if not self.backlog:
                    now = loop.time()
                    t = self.sim.next_time()
                    if t > self.clock.sim_at(now):
                        timeout = min(self.clock.real_delay(t, now), 3600.0)
                        await asyncio.wait(waiters, timeout=timeout)
                        continue
                    self.clock.hold_back(t, now, MAX_LAG_S)
                    self.stats.sim_time = _utc(t)
                    self.backlog.extend(self.sim.step())
                    continue
                delay = self.bucket.take(loop.time())
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                await sem.acquire()
                if broken.is_set():
                    sem.release()
                    break
                msg = self.backlog.popleft()
                task = asyncio.create_task(self._publish(client, msg, sem, broken, failed))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            clean = not broken.is_set()
        finally:
            for w in waiters:
                w.cancel()
            if tasks and clean:
                await asyncio.wait(set(tasks), timeout=DRAIN_TIMEOUT_S)  # let PUBACKs land
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            # Whatever did not get its PUBACK goes first after the reconnect.
            failed.sort(key=lambda m: m.sim_time)
            self.backlog.extendleft(reversed(failed))
        if broken.is_set():
            raise aiomqtt.MqttError("publish failed: connection lost")

    async def _publish(
        self,
        client: aiomqtt.Client,
        msg: Outgoing,
        sem: asyncio.Semaphore,
        broken: asyncio.Event,
        failed: list[Outgoing],
    ) -> None:
        try:
            await client.publish(msg.topic, msg.payload, qos=1, timeout=PUBLISH_TIMEOUT_S)
        except aiomqtt.MqttError as exc:
            self.stats.errors += 1
            failed.append(msg)
            if not broken.is_set():
                log.debug("publish to %s failed: %s", msg.topic, exc)
            broken.set()
            return
        except asyncio.CancelledError:
            failed.append(msg)
            raise
        finally:
            sem.release()
        self.stats.add(msg.kind)
        if self.on_publish is not None:
            try:
                self.on_publish(msg.topic)
            except Exception:
                log.exception("on_publish callback failed")


async def _sleep_unless(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def run_simulator(
    params: MqttParams,
    town: Town,
    options: SimulatorOptions,
    *,
    stop: asyncio.Event | None = None,
    on_publish: Callable[[str], None] | None = None,
) -> SimStats:
    """Publish the simulated town to the broker until *stop* is set (or the task is
    cancelled, which propagates after in-flight publishes are cancelled).

    Uses a clean session (a simulator's backlog is worthless after a restart). While the
    broker is away the simulated clock stands still; messages that lost their PUBACK are
    re-sent first after the reconnect. *on_publish* gets the topic of each PUBACKed message.
    """
    loop = asyncio.get_running_loop()
    stop = stop if stop is not None else asyncio.Event()
    start = options.start if options.start is not None else datetime.now(UTC)
    sim = TownSimulation(
        town, start=start, seed=options.seed, fault_fraction=options.fault_fraction
    )
    if sim.skipped:
        log.warning("simulator: %d sensor(s) of unknown models skipped", len(sim.skipped))
    stats = SimStats()
    clock = SimClock(sim.start, options.speed, loop.time(), paused=True)
    bucket = TokenBucket(options.max_rate, burst=min(options.max_rate, IN_FLIGHT), now=loop.time())
    backoff = Backoff(base=0.2, cap=10.0, rng=random.Random(options.seed))
    pump = _Pump(sim, clock, bucket, stats, stop, on_publish)
    params = replace(params, clean=True)
    log.info(
        "simulating %d sensors and %d car-park controllers (%d faulty) at %gx from %s",
        len(sim.sensors),
        len(sim.carparks),
        len(sim.faults),
        options.speed,
        _utc(sim.start).isoformat(timespec="seconds"),
    )
    failing = False
    while not stop.is_set():
        client = make_client(params)
        client.pending_calls_threshold = IN_FLIGHT + 1  # our bound, not a leak: no warning
        try:
            async with client:
                if failing:
                    log.info("simulator reconnected to %s:%s", params.host, params.port)
                failing = False
                backoff.reset()
                clock.resume(loop.time())
                await pump.run(client)
        except aiomqtt.MqttError as exc:
            stats.reconnects += 1
            if not failing:
                log.warning(
                    "simulator: MQTT %s:%s unavailable: %s (retrying)",
                    params.host,
                    params.port,
                    exc,
                )
            failing = True
        finally:
            clock.pause(loop.time())
        if not stop.is_set():
            await _sleep_unless(stop, backoff.next_delay())
    log.info(
        "simulator stopped: %d published (%d errors, %d reconnects), sim time %s",
        stats.published,
        stats.errors,
        stats.reconnects,
        stats.sim_time.isoformat(timespec="seconds") if stats.sim_time else "-",
    )
    return stats
