"""A simulated MAVLink vehicle (ArduCopter-flavoured) over real UDP, for the tests and the demo.

It flies a patrol loop through the given waypoints (mode AUTO), sends HEARTBEAT at 1 Hz,
SYS_STATUS with a draining battery and GLOBAL_POSITION_INT at the rates the gateway asks for
(SET_MESSAGE_INTERVAL), and answers MAV_CMD_NAV_RETURN_TO_LAUNCH with a COMMAND_ACK: then it
flies to its launch point in RTL, descends, lands and disarms, with a STATUSTEXT at each mode
change. Test knobs: ignore the first N commands, answer with another MAV_RESULT, never answer,
or go silent altogether (a lost link). Frames are built and read by ``dronelink.mavlink.wire``,
the same pymavlink the gateway uses, so both sides speak real MAVLink 2 over real sockets.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from dronelink.mavlink.wire import (
    MAV_AUTOPILOT_ARDUPILOTMEGA,
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    MAV_CMD_SET_MESSAGE_INTERVAL,
    MAV_MODE_FLAG_CUSTOM_MODE_ENABLED,
    MAV_MODE_FLAG_SAFETY_ARMED,
    MAV_RESULT_ACCEPTED,
    MAV_RESULT_IN_PROGRESS,
    MAV_RESULT_UNSUPPORTED,
    MAV_STATE_ACTIVE,
    MAV_STATE_STANDBY,
    MAV_TYPE_QUADROTOR,
    CommandLong,
    Encoder,
    message_id,
    parse_datagram,
)

__all__ = ["COPTER_AUTO", "COPTER_GUIDED", "COPTER_RTL", "Flight", "MavVehicle"]

COPTER_AUTO = 3  # ArduCopter custom modes
COPTER_GUIDED = 4
COPTER_RTL = 6
_MSG_GLOBAL_POSITION_INT = message_id("GLOBAL_POSITION_INT") or 33
_MSG_SYS_STATUS = message_id("SYS_STATUS") or 1
_M_PER_DEG = 111_320.0
_SEVERITY_NOTICE = 5
_SEVERITY_INFO = 6

Point = tuple[float, float]  # (lat, lon) WGS-84 degrees


def _toward(a: Point, b: Point, metres: float) -> tuple[Point, float, float, bool]:
    """From *a* up to *metres* toward *b*: (new point, north m, east m, arrived)."""
    north = (b[0] - a[0]) * _M_PER_DEG
    east = (b[1] - a[1]) * _M_PER_DEG * math.cos(math.radians(a[0]))
    dist = math.hypot(north, east)
    if dist <= metres or dist == 0:
        return b, north, east, True
    k = metres / dist
    return (a[0] + (b[0] - a[0]) * k, a[1] + (b[1] - a[1]) * k), north * k, east * k, False


@dataclass
class Flight:
    """The vehicle's motion, advanced by ``step(dt)``: pure (no clock, no socket)."""

    waypoints: Sequence[Point]
    speed_mps: float
    altitude_m: float
    launch: Point
    descent_mps: float = 3.0
    phase: str = "patrol"  # patrol | returning | landing | landed
    position: Point = (0.0, 0.0)
    relative_alt_m: float = 0.0
    velocity: tuple[float, float] = (0.0, 0.0)  # north, east m/s
    heading_deg: float = 0.0
    target: int = 0

    def __post_init__(self) -> None:
        if not self.waypoints or self.speed_mps <= 0:
            raise ValueError("a patrol needs waypoints and a positive speed")
        self.position = self.waypoints[0]
        self.relative_alt_m = self.altitude_m
        self.target = 1 % len(self.waypoints)

    def step(self, dt: float) -> str | None:
        """Move *dt* seconds on; returns the new phase when it changed."""
        if self.phase in ("patrol", "returning"):
            goal = self.waypoints[self.target] if self.phase == "patrol" else self.launch
            self.position, north, east, arrived = _toward(self.position, goal, self.speed_mps * dt)
            self.velocity = (north / dt, east / dt) if dt > 0 else (0.0, 0.0)
            if north or east:
                self.heading_deg = math.degrees(math.atan2(east, north)) % 360
            if arrived and self.phase == "patrol":
                self.target = (self.target + 1) % len(self.waypoints)
            elif arrived:
                self.phase = "landing"
                return self.phase
        elif self.phase == "landing":
            self.velocity = (0.0, 0.0)
            self.relative_alt_m = max(0.0, self.relative_alt_m - self.descent_mps * dt)
            if self.relative_alt_m == 0.0:
                self.phase = "landed"
                return self.phase
        return None

    def return_home(self) -> bool:
        """Start the return; False when already returning or down."""
        if self.phase != "patrol":
            return False
        self.phase = "returning"
        return True


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, vehicle: MavVehicle) -> None:
        self.vehicle = vehicle

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.vehicle._received(data)

    def error_received(self, exc: Exception) -> None:  # the gateway not (yet) listening
        pass


@dataclass
class _Schedule:
    heartbeat_s: float
    intervals: dict[int, float] = field(default_factory=dict)  # msg id → seconds
    due: dict[int, float] = field(default_factory=dict)


class MavVehicle:
    """One simulated copter sending to the gateway at *gateway* (host, port).

    *ignore_commands*: RTL commands to drop unanswered first; *command_result*: the MAV_RESULT
    to answer (it flies home only on ACCEPTED); *answer_commands* False: never answer;
    *in_progress_s*: answer IN_PROGRESS at once and twice more, the result after that long;
    ``silent`` (settable at any time): send nothing and hear nothing, as a vehicle out of range.
    """

    def __init__(
        self,
        gateway: tuple[str, int],
        waypoints: Sequence[Point],
        *,
        system_id: int = 1,
        component_id: int = 1,
        speed_mps: float = 8.0,
        altitude_m: float = 60.0,
        altitude_msl_m: float = 1500.0,
        launch: Point | None = None,
        battery_percent: float = 100.0,
        drain_per_s: float = 0.05,
        heartbeat_s: float = 1.0,
        position_interval_s: float = 1.0,
        sys_status_interval_s: float = 2.0,
        tick_s: float = 0.05,
        ignore_commands: int = 0,
        command_result: int = MAV_RESULT_ACCEPTED,
        answer_commands: bool = True,
        in_progress_s: float | None = None,
        silent: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        if not waypoints:
            raise ValueError("a patrol needs waypoints")
        self.gateway = gateway
        self.system_id = system_id
        self.host = host
        self.flight = Flight(
            waypoints, speed_mps, altitude_m, launch if launch is not None else waypoints[0]
        )
        self.altitude_msl_m = altitude_msl_m
        self.battery = battery_percent
        self.drain_per_s = drain_per_s
        self.tick_s = tick_s
        self.ignore_commands = ignore_commands
        self.command_result = command_result
        self.answer_commands = answer_commands
        self.in_progress_s = in_progress_s
        self._tasks: set[asyncio.Task[None]] = set()
        self.silent = silent
        self._text_id = 0  # the last chunked STATUSTEXT's id
        self.custom_mode = COPTER_AUTO
        self.armed = True
        self.commands: list[CommandLong] = []  # every COMMAND_LONG heard, in order
        self._encoder = Encoder(system_id, component_id)
        self._schedule = _Schedule(
            heartbeat_s,
            {_MSG_GLOBAL_POSITION_INT: position_interval_s, _MSG_SYS_STATUS: sys_status_interval_s},
        )
        self._transport: asyncio.DatagramTransport | None = None
        self._started = 0.0

    @property
    def intervals(self) -> dict[int, float]:
        """Stream intervals in seconds by message id (as SET_MESSAGE_INTERVAL left them)."""
        return dict(self._schedule.intervals)

    @property
    def port(self) -> int:
        assert self._transport is not None, "not started"
        return int(self._transport.get_extra_info("sockname")[1])

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, 0)
        )
        self._started = loop.time()

    async def run(self) -> None:
        """Fly and talk until cancelled."""
        loop = asyncio.get_running_loop()
        last = loop.time()
        while True:
            now = loop.time()
            self._advance(now - last)
            last = now
            self._emit(now)
            await asyncio.sleep(self.tick_s)

    def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    # -- behaviour -------------------------------------------------------------------------------
    def _advance(self, dt: float) -> None:
        if self.armed:
            self.battery = max(0.0, self.battery - self.drain_per_s * dt)
        changed = self.flight.step(dt)
        if changed == "landing":
            self._say(_SEVERITY_INFO, "Reached home, landing")
        elif changed == "landed":
            self.armed = False
            self._say(_SEVERITY_NOTICE, "Landed, disarmed")

    def _emit(self, now: float) -> None:
        sched = self._schedule
        for msg_id, every in [(0, sched.heartbeat_s), *sched.intervals.items()]:
            if every <= 0:
                continue
            if now >= sched.due.get(msg_id, 0.0):
                sched.due[msg_id] = now + every
                data = self._message(msg_id, now)
                if data is not None:
                    self._send(data)

    def _message(self, msg_id: int, now: float) -> bytes | None:
        enc, f = self._encoder, self.flight
        if msg_id == 0:
            base = MAV_MODE_FLAG_CUSTOM_MODE_ENABLED | (
                MAV_MODE_FLAG_SAFETY_ARMED if self.armed else 0
            )
            return enc.heartbeat(
                type=MAV_TYPE_QUADROTOR,
                autopilot=MAV_AUTOPILOT_ARDUPILOTMEGA,
                base_mode=base,
                custom_mode=self.custom_mode,
                system_status=MAV_STATE_ACTIVE if self.armed else MAV_STATE_STANDBY,
            )
        if msg_id == _MSG_SYS_STATUS:
            return enc.sys_status(
                battery_remaining=round(self.battery), voltage_mv=12600 + round(self.battery * 42)
            )
        if msg_id == _MSG_GLOBAL_POSITION_INT:
            return enc.global_position_int(
                time_boot_ms=int((now - self._started) * 1000) & 0xFFFFFFFF,
                lat=round(f.position[0] * 1e7),
                lon=round(f.position[1] * 1e7),
                alt=round((self.altitude_msl_m + f.relative_alt_m) * 1000),
                relative_alt=round(f.relative_alt_m * 1000),
                vx=round(f.velocity[0] * 100),
                vy=round(f.velocity[1] * 100),
                vz=0,
                hdg=round(f.heading_deg * 100) % 36000,
            )
        return None

    def _say(self, severity: int, text: str) -> None:
        """A STATUSTEXT; a line over 50 characters in chunks (one id, chunk_seq 0, 1, …), as
        ArduPilot and PX4 send them."""
        if len(text) <= 50:
            self._send(self._encoder.statustext(severity=severity, text=text))
            return
        self._text_id = self._text_id % 65535 + 1
        parts = [text[i : i + 50] for i in range(0, len(text), 50)]
        if len(text) % 50 == 0:
            parts.append("")  # a full last chunk: an empty one ends the line
        for seq, part in enumerate(parts):
            self._send(
                self._encoder.statustext(
                    severity=severity, text=part, text_id=self._text_id, chunk_seq=seq
                )
            )

    def _send(self, data: bytes) -> None:
        if not self.silent and self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, self.gateway)

    def _received(self, data: bytes) -> None:
        if self.silent:
            return
        for frame in parse_datagram(data).frames:
            if isinstance(frame, CommandLong) and frame.target_system in (0, self.system_id):
                self._command(frame)

    def _command(self, cmd: CommandLong) -> None:
        self.commands.append(cmd)
        if cmd.command == MAV_CMD_SET_MESSAGE_INTERVAL:
            self._set_interval(int(cmd.params[0]), cmd.params[1])
            self._ack(cmd, MAV_RESULT_ACCEPTED)
        elif cmd.command == MAV_CMD_NAV_RETURN_TO_LAUNCH:
            if self.ignore_commands > 0:
                self.ignore_commands -= 1
                return
            if not self.answer_commands:
                return
            if self.in_progress_s is None:
                self._finish(cmd)
            elif not self._tasks:  # a resend while in progress changes nothing
                task = asyncio.get_running_loop().create_task(self._progress(cmd))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        else:
            self._ack(cmd, MAV_RESULT_UNSUPPORTED)

    async def _progress(self, cmd: CommandLong) -> None:
        assert self.in_progress_s is not None
        for percent in (0, 33, 66):
            self._ack(cmd, MAV_RESULT_IN_PROGRESS, percent)
            await asyncio.sleep(self.in_progress_s / 3)
        self._finish(cmd)

    def _finish(self, cmd: CommandLong) -> None:
        self._ack(cmd, self.command_result)
        if self.command_result == MAV_RESULT_ACCEPTED and self.flight.return_home():
            self.custom_mode = COPTER_RTL
            self._say(_SEVERITY_NOTICE, "Mode RTL")
            alt = self.flight.relative_alt_m
            self._say(
                _SEVERITY_INFO,
                f"RTL: returning to launch from {alt:.0f} m above home, then landing",
            )

    def _set_interval(self, msg_id: int, interval_us: float) -> None:
        if msg_id not in (_MSG_GLOBAL_POSITION_INT, _MSG_SYS_STATUS):
            return
        if interval_us < 0:  # -1: stop the stream
            self._schedule.intervals[msg_id] = 0.0
        elif interval_us > 0:  # 0 would mean "the default rate": keep ours
            self._schedule.intervals[msg_id] = interval_us / 1e6
        self._schedule.due.pop(msg_id, None)

    def _ack(self, cmd: CommandLong, result: int, progress: int = 0) -> None:
        self._send(
            self._encoder.command_ack(
                command=cmd.command,
                result=result,
                target_system=cmd.sysid,
                target_component=cmd.compid,
                progress=progress,
            )
        )
