"""The pure state machine: every sensor and car-park controller of the town as a heap of
(sim time, device, action); no clock, no I/O, one seeded random source.

Over 400 lines on purpose: one state machine for every device kind of the town, driven by one
heap and one random source.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from types import MappingProxyType
from typing import Final, Literal
from zoneinfo import ZoneInfo

from drivers.sensors import bosch, nbiot, nwave
from drivers.sensors.registry import CODECS
from gateway.demo.options import Fault, MessageKind, Outgoing
from gateway.demo.payloads import (
    _CN470_BASE_HZ,
    _GATEWAYS,
    _NS,
    _PROFILE_NAMES,
    Radio,
    _ulid,
    carpark_counts,
    chirpstack_uplink,
    nbiot_uplink,
    tts_site,
    tts_uplink,
)
from gateway.demo.rhythm import (
    _CLASS_LEVELS,
    _DEFAULT_LEVELS,
    _DWELL,
    _arrival_rate,
    _mean_dwell_s,
    occupancy_probability,
)
from gateway.directory.town import Counting, Site, SiteKind, Town

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
        self.zone = ZoneInfo(town.town.timezone or "Asia/Shanghai")  # a demo: the sample town's
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
