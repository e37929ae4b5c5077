"""Simulated DJI docks with their aircraft, speaking the DJI Cloud API's JSON over a real
MQTT broker: for the tests, the bench and the demo.

Each dock, on start, announces its aircraft with ``update_topo`` (and sends an empty
``sub_devices`` when the aircraft goes offline), sends its osd as partial messages (position
and mode / the aircraft's charge / cover and sub-device: different field groups in different
messages, as real docks do) and raises events with ``need_reply: 1`` (``hms``), re-sent with
the same tid and bid until an ``events_reply`` comes. Its aircraft flies a patrol loop around
the given waypoints, osd every ``aircraft_osd_interval_s``; on ``return_home`` it flies to the
dock (mode 9), lands (10) and sits in the dock (0). Services are answered on
``services_reply`` (result 0, ``output.status``), after which the speaker's
``speaker_tts_play_start_progress`` and return home's ``return_home_info`` follow. A request
repeated with a bid already seen is answered but not run again.

Test options, per fleet (``reply_mode``, changeable while running): ``normal``, ``drop`` (no
reply), ``late`` (after ``late_s``), ``twice`` (the same reply two times), ``error`` (result
``error_code``). A whole fleet shares one MQTT connection (``MqttTransport``: reconnects, and
a bench of 200 docks does not need 200 connections); the load is in the messages, not in the
sockets.

The module is long because one dock's life (its osd groups, its aircraft's flight, its
answers and events) reads best in one place; the patrol geometry is the only pure part.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import math
import random
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import aiomqtt

from drivers.mqtt.transport import MqttParams, MqttTransport

__all__ = ["DockFleet", "DockOptions", "DockSpec", "FleetStats", "patrol_point"]

ReplyMode = Literal["normal", "drop", "late", "twice", "error"]
M_PER_DEG = 111_320.0


@dataclass(frozen=True)
class DockSpec:
    dock_sn: str
    aircraft_sn: str
    home: tuple[float, float]  # the dock's lat, lon
    waypoints: Sequence[tuple[float, float]]  # the patrol loop (lat, lon)


@dataclass(frozen=True)
class DockOptions:
    dock_osd_interval_s: float = 2.0  # one cycle of the partial messages
    dock_osd_parts: int = 3  # partial messages per cycle
    aircraft_osd_interval_s: float = 2.0  # 0.5 Hz
    speed_mps: float = 10.0
    height_m: float = 120.0  # ellipsoid height while patrolling
    event_interval_s: float = 0.0  # hms events needing a reply (0: only on demand)
    event_retry_s: float = 1.0  # re-send an unanswered event
    event_tries: int = 3
    progress_steps: int = 3  # speaker progress events (the last one says "ok")
    progress_interval_s: float = 0.1
    reply_mode: ReplyMode = "normal"
    late_s: float = 3.0
    error_code: int = 314001
    stamp_send_time: bool = False  # osd tid = the send time (the bench measures with it)
    start_online: bool = True
    spread_s: float = 0.0  # random start offset of each dock's cadence


@dataclass
class FleetStats:
    services: list[tuple[str, str, str, str]] = field(default_factory=list)  # dock,method,tid,bid
    events_replied: dict[str, int] = field(default_factory=dict)  # "tid/bid" -> replies
    status_replies: dict[str, int] = field(default_factory=dict)  # "tid/bid" -> replies
    events_sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # tid -> (bid, method)
    topo_sent: dict[str, str] = field(default_factory=dict)  # "tid/bid" -> dock sn
    requests_replied: dict[str, list[Any]] = field(default_factory=dict)  # "tid/bid" -> datas
    published: int = 0
    osd_sent: int = 0
    runs: dict[str, int] = field(default_factory=dict)  # bid/method -> times asked


def _dist_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = (b[0] - a[0]) * M_PER_DEG
    dlon = (b[1] - a[1]) * M_PER_DEG * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.hypot(dlat, dlon)


def _heading(a: tuple[float, float], b: tuple[float, float]) -> float:
    dlat = b[0] - a[0]
    dlon = (b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return math.degrees(math.atan2(dlon, dlat)) % 360


def patrol_point(
    loop: Sequence[tuple[float, float]], speed_mps: float, t: float
) -> tuple[float, float, float]:
    """(lat, lon, heading) *t* seconds into a closed patrol around *loop* at *speed_mps*."""
    if len(loop) == 1:
        return loop[0][0], loop[0][1], 0.0
    legs = [(loop[i], loop[(i + 1) % len(loop)]) for i in range(len(loop))]
    total = sum(_dist_m(a, b) for a, b in legs) or 1.0
    d = (speed_mps * t) % total
    for a, b in legs:
        leg = _dist_m(a, b)
        if d <= leg and leg > 0:
            f = d / leg
            return a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f, _heading(a, b)
        d -= leg
    return loop[0][0], loop[0][1], 0.0


@dataclass
class _Aircraft:
    spec: DockSpec
    online: bool
    started: float
    mode: int = 5  # wayline
    at: tuple[float, float] = (0.0, 0.0)
    heading: float = 0.0
    battery: float = 95.0
    home_from: tuple[float, float, float] | None = None  # (lat, lon, t0) of a return home


class DockFleet:
    """Docks with their aircraft on one MQTT connection to *host*:*port*."""

    def __init__(
        self,
        host: str,
        port: int,
        docks: Sequence[DockSpec],
        options: DockOptions | None = None,
        *,
        client_id: str | None = None,
        seed: int = 1,
    ) -> None:
        self.options = options or DockOptions()
        self.reply_mode: ReplyMode = self.options.reply_mode
        self.docks = {d.dock_sn: d for d in docks}
        self.stats = FleetStats()
        self._rng = random.Random(seed)
        now = time.monotonic()
        self._aircraft = {
            d.dock_sn: _Aircraft(d, self.options.start_online, now, at=d.waypoints[0])
            for d in docks
        }
        self._answered: dict[str, asyncio.Event] = {}  # event tid -> its reply came
        self._tasks: set[asyncio.Task[None]] = set()
        params = MqttParams(
            host, port, client_id or f"dji-sim-{uuid.uuid4().hex[:8]}", protocol="5", clean=True
        )
        topics = ["thing/product/+/services", "thing/product/+/events_reply"]
        topics += ["thing/product/+/requests_reply", "sys/product/+/status_reply"]
        self.transport = MqttTransport(params, topics, self._on_message, on_state=self._nodelay)

    def _nodelay(self, up: bool) -> None:
        """TCP_NODELAY on the fleet's socket (paho leaves Nagle on): a dock's small messages
        go at once instead of waiting for the broker's delayed ACK (~40 ms)."""
        client = self.transport._client
        sock = client._client.socket() if up and client is not None else None
        if isinstance(sock, socket.socket):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    # -- running ----------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Run every dock until *stop* is set (or until cancelled)."""
        stop = stop or asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            conn = tg.create_task(self.transport.run())
            await self.transport.connected.wait()
            docks = [tg.create_task(self._dock(sn)) for sn in self.docks]
            await stop.wait()
            for t in [*docks, conn, *self._tasks]:
                t.cancel()

    async def _pub(self, name: str, obj: dict[str, Any], qos: int = 1) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError, aiomqtt.MqttError):
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that
            # lands as the publish completes, and the dock would never stop.
            async with asyncio.timeout(5.0):
                await self.transport.publish(name, json.dumps(obj).encode(), qos=qos)
            self.stats.published += 1
        # A cancellation that landed while asyncio.timeout expired became its TimeoutError
        # (suppressed above); it stays pending on the task: honour it, or the dock sleeps on
        # and the fleet's TaskGroup never ends. (The transport honours the PUBACK case.)
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise asyncio.CancelledError

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    def _env(method: str, data: dict[str, Any], gateway: str, **kw: Any) -> dict[str, Any]:
        obj: dict[str, Any] = {
            "tid": kw.pop("tid", None) or uuid.uuid4().hex,
            "bid": kw.pop("bid", None) or uuid.uuid4().hex,
            "timestamp": int(time.time() * 1000),
            "gateway": gateway,
        }
        if method:
            obj["method"] = method
        obj.update(kw)
        obj["data"] = data
        return obj

    async def _dock(self, sn: str) -> None:
        o = self.options
        await asyncio.sleep(self._rng.uniform(0, o.spread_s))
        # A dock coming up asks for its config (NTP server, app), as real ones do.
        await self.send_request(sn, "config", {"config_type": "json", "config_scope": "product"})
        if self._aircraft[sn].online:
            await self.update_topo(sn)
        next_hms = time.monotonic() + o.event_interval_s
        part = 0
        step = o.dock_osd_interval_s / o.dock_osd_parts
        per_aircraft = max(1, round(o.aircraft_osd_interval_s / step))
        for n in itertools.count():
            t0 = time.monotonic()
            await self._pub(f"thing/product/{sn}/osd", self._dock_part(sn, part), qos=0)
            part = (part + 1) % o.dock_osd_parts
            if n % per_aircraft == 0 and self._aircraft[sn].online:
                await self._aircraft_osd(sn)
            if o.event_interval_s and t0 >= next_hms:
                next_hms = t0 + o.event_interval_s
                self._spawn(self.send_event(sn, "hms", {"list": []}))
            await asyncio.sleep(max(0.0, step - (time.monotonic() - t0)))

    def _env_osd(self, sn: str, gateway: str, data: dict[str, Any]) -> dict[str, Any]:
        tid = f"{time.time():.6f}" if self.options.stamp_send_time else None
        self.stats.osd_sent += 1
        return self._env("", data, gateway, tid=tid)

    def _dock_part(self, sn: str, part: int) -> dict[str, Any]:
        ac = self._aircraft[sn]
        spec = self.docks[sn]
        in_dock = ac.mode == 0 and ac.home_from is None
        groups: list[dict[str, Any]] = [
            {"latitude": spec.home[0], "longitude": spec.home[1], "height": 30.5, "mode_code": 0},
            {
                "drone_in_dock": 1 if in_dock else 0,
                "drone_charge_state": {
                    "state": 1 if in_dock else 0,
                    "capacity_percent": round(ac.battery),
                },
            },
            {
                "cover_state": 0 if in_dock else 1,
                "sub_device": {
                    "device_sn": spec.aircraft_sn,
                    "device_online_status": 1 if ac.online else 0,
                },
            },
        ]
        return self._env_osd(sn, sn, groups[part % len(groups)])

    def _fly(self, ac: _Aircraft, now: float) -> None:
        o = self.options
        if ac.home_from is not None:
            lat0, lon0, t0 = ac.home_from
            d = _dist_m((lat0, lon0), ac.spec.home) or 1.0
            f = min(1.0, o.speed_mps * (now - t0) / d)
            ac.at = (lat0 + (ac.spec.home[0] - lat0) * f, lon0 + (ac.spec.home[1] - lon0) * f)
            ac.heading = _heading((lat0, lon0), ac.spec.home)
            ac.mode = 9 if f < 1.0 else 10
            if f >= 1.0 and now - t0 > d / o.speed_mps + 1.0:
                ac.mode, ac.home_from = 0, None
        elif ac.mode != 0:
            lat, lon, ac.heading = patrol_point(ac.spec.waypoints, o.speed_mps, now - ac.started)
            ac.at = (lat, lon)
        ac.battery = max(5.0, ac.battery - 0.01)

    async def _aircraft_osd(self, sn: str) -> None:
        ac = self._aircraft[sn]
        self._fly(ac, time.monotonic())
        flying = ac.mode != 0
        data = {
            "latitude": round(ac.at[0], 7),
            "longitude": round(ac.at[1], 7),
            "height": self.options.height_m if flying else 30.5,
            "elevation": self.options.height_m - 30.5 if flying else 0.0,
            "horizontal_speed": self.options.speed_mps if flying else 0.0,
            "attitude_head": round(((ac.heading + 180) % 360) - 180, 1),
            "battery": {
                "capacity_percent": round(ac.battery),
                "remain_flight_time": int(ac.battery * 20),
                "return_home_power": 20,
            },
            "mode_code": ac.mode,
        }
        await self._pub(
            f"thing/product/{ac.spec.aircraft_sn}/osd", self._env_osd(sn, sn, data), qos=0
        )

    # -- what tests drive -------------------------------------------------------------------

    async def update_topo(self, sn: str) -> str:
        """Send dock *sn*'s ``update_topo`` (its aircraft, or none when offline); its
        "tid/bid" (the key of ``stats.status_replies``)."""
        spec, ac = self.docks[sn], self._aircraft[sn]
        subs = [{"sn": spec.aircraft_sn, "type": 67, "sub_type": 0, "index": "A"}]
        data = {
            "domain": 3,
            "type": 1,
            "sub_type": 0,
            "device_secret": "secret",
            "nonce": "nonce",
            "thing_version": "1.1.2",
            "sub_devices": subs if ac.online else [],
        }
        env = self._env("update_topo", data, sn)
        key = f"{env['tid']}/{env['bid']}"
        self.stats.topo_sent[key] = sn
        await self._pub(f"sys/product/{sn}/status", env)
        return key

    async def set_aircraft_online(self, sn: str, online: bool, *, announce: bool = True) -> None:
        """The aircraft of dock *sn* comes (back) or goes: its osd stops or resumes, and
        the dock says so in an ``update_topo`` (unless not *announce*: it just falls
        silent, as when its radio link drops)."""
        self._aircraft[sn].online = online
        if announce:
            await self.update_topo(sn)

    async def send_event(
        self, sn: str, method: str, data: dict[str, Any], *, need_reply: bool = True, bid: str = ""
    ) -> str:
        """Raise an event from dock *sn*; with *need_reply*, re-sent with the same tid and
        bid until answered (at most ``event_tries`` times). Returns "tid/bid" (the key of
        ``stats.events_replied``)."""
        env = self._env(method, data, sn, bid=bid or None, need_reply=1 if need_reply else 0)
        tid = str(env["tid"])
        self.stats.events_sent[tid] = (str(env["bid"]), method)
        answered = self._answered[tid] = asyncio.Event()
        for _ in range(self.options.event_tries if need_reply else 1):
            await self._pub(f"thing/product/{sn}/events", env)
            if not need_reply:
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.options.event_retry_s):
                    await answered.wait()
                break
        return f"{tid}/{env['bid']}"

    async def send_request(self, sn: str, method: str, data: dict[str, Any]) -> str:
        """Ask the platform from dock *sn* (``requests``, as ``config`` at boot); the answer
        lands in ``stats.requests_replied`` under the returned "tid/bid"."""
        env = self._env(method, data, sn)
        await self._pub(f"thing/product/{sn}/requests", env)
        return f"{env['tid']}/{env['bid']}"

    # -- answers ----------------------------------------------------------------------------

    def _on_message(self, name: str, payload: bytes) -> None:
        parts = name.split("/")
        if len(parts) != 4 or parts[2] not in self.docks:
            return
        try:
            obj = json.loads(payload)
            tid, bid, method = str(obj["tid"]), str(obj["bid"]), str(obj.get("method", ""))
            data = obj.get("data") or {}
        except (ValueError, KeyError, TypeError):
            return
        sn, kind = parts[2], parts[3]
        if kind == "events_reply":
            key = f"{tid}/{bid}"
            self.stats.events_replied[key] = self.stats.events_replied.get(key, 0) + 1
            if tid in self._answered and self.stats.events_sent.get(tid, ("",))[0] == bid:
                self._answered[tid].set()
        elif kind == "requests_reply":
            self.stats.requests_replied.setdefault(f"{tid}/{bid}", []).append(data)
        elif kind == "status_reply":
            key = f"{tid}/{bid}"
            self.stats.status_replies[key] = self.stats.status_replies.get(key, 0) + 1
        elif kind == "services":
            self.stats.services.append((sn, method, tid, bid))
            self._spawn(self._service(sn, method, tid, bid, data))

    async def _service(self, sn: str, method: str, tid: str, bid: str, data: Any) -> None:
        o = self.options
        mode = self.reply_mode
        fail = mode == "error"
        status = "ok"
        if method == "return_home" and not self._aircraft[sn].online:
            fail = True
        out = {
            "tid": tid,
            "bid": bid,
            "timestamp": int(time.time() * 1000),
            "method": method,
            "data": {"result": o.error_code if fail else 0, "output": {"status": status}},
        }
        if mode == "late":
            await asyncio.sleep(o.late_s)
        if mode != "drop":
            for _ in range(2 if mode == "twice" else 1):
                await self._pub(f"thing/product/{sn}/services_reply", out)
        if fail:
            return
        key = f"{bid}/{method}"  # one command's calls share a bid: run each call once
        if key in self.stats.runs:
            self.stats.runs[key] += 1
            return
        self.stats.runs[key] = 1
        if method == "speaker_tts_play_start":
            await self._speak(sn, bid, data)
        elif method == "return_home":
            ac = self._aircraft[sn]
            ac.home_from = (ac.at[0], ac.at[1], time.monotonic())
            info = {"home_dock_sn": sn, "last_point_type": 0, "planned_path_points": []}
            await self.send_event(sn, "return_home_info", info, need_reply=False, bid=bid)

    async def _speak(self, sn: str, bid: str, data: Any) -> None:
        o = self.options
        tts = data.get("tts", {}) if isinstance(data, dict) else {}
        for i in range(1, o.progress_steps + 1):
            await asyncio.sleep(o.progress_interval_s)
            last = i == o.progress_steps
            output = {
                "psdk_index": data.get("psdk_index", 0) if isinstance(data, dict) else 0,
                "status": "ok" if last else "in_progress",
                "md5": tts.get("md5", ""),
                "progress": {"percent": 100 * i // o.progress_steps, "step_key": "play"},
            }
            await self.send_event(
                sn,
                "speaker_tts_play_start_progress",
                {"result": 0, "output": output},
                need_reply=False,
                bid=bid,
            )
