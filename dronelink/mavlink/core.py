"""The MAVLink side of the gateway without sockets or clocks: datagrams in, reports and
datagrams to send out.

One vehicle per system id, remembered with the UDP address its autopilot's heartbeat last came
from (a vehicle behind NAT or a telemetry radio may change port; other messages do not move it)
and the component of its autopilot (where commands go). A flight controller's HEARTBEAT is the
link: the first one, and the first after a loss, asks for the configured stream rates
(SET_MESSAGE_INTERVAL); silence past the timeout reports the link LOST once. Reports flow while
the link is up: what a vehicle says before its first heartbeat or after a loss updates its view
(``vehicles``) only, so the one LOST report is not followed by positions that seem to
contradict it. Everything refused is counted by reason and handed back in the step (the
transport passes it on to the gateway's metrics), never raised.

Time comes in as arguments: ``now`` monotonic seconds for the timers, ``at`` the aware UTC
stamp of the reports.
"""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

import dronelink.mavlink.decode as decode
from drivers.sip.flood import TokenBuckets
from dronelink.mavlink.statustext import StatusTextJoiner
from dronelink.mavlink.wire import (
    MAV_AUTOPILOT_INVALID,
    MAV_CMD_SET_MESSAGE_INTERVAL,
    MAV_STATE_ACTIVE,
    MAV_TYPE_GCS,
    CommandAck,
    CommandLong,
    Encoder,
    Frame,
    GlobalPosition,
    GpsRaw,
    Heartbeat,
    StatusText,
    SysStatus,
    parse_datagram,
)
from dronelink.model import DroneFix, DroneReport, LinkState

__all__ = ["MAX_DATAGRAM", "SOURCE", "Address", "MavlinkCore", "Step", "Vehicle"]

SOURCE = "mavlink"
MAX_DATAGRAM = 8192  # a MAVLink 2 frame is at most 280 bytes; a few packed per datagram at most
Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Vehicle:
    """What is known of one vehicle, as of its last message."""

    key: str  # the system id as text (the DroneReport key)
    system_id: int
    component_id: int  # of its autopilot (commands go there)
    address: Address  # where it was last heard from
    link: LinkState = LinkState.UNKNOWN
    autopilot: int | None = None  # MAV_AUTOPILOT
    vehicle_type: int | None = None  # MAV_TYPE
    mode: str | None = None
    armed: bool | None = None
    flying: bool | None = None
    battery_percent: float | None = None
    fix: DroneFix | None = None
    gps_fix_type: int | None = None  # GPS_RAW_INT fix_type
    satellites: int | None = None
    text: str | None = None  # the last STATUSTEXT
    last_heartbeat: float | None = None  # monotonic seconds
    has_global_position: bool = False  # GLOBAL_POSITION_INT seen: GPS_RAW_INT's place unused


@dataclass(slots=True)
class Step:
    """What the transport should do after an input or a timer."""

    reports: list[DroneReport] = field(default_factory=list)
    sends: list[tuple[bytes, Address]] = field(default_factory=list)
    acks: list[CommandAck] = field(default_factory=list)
    rejects: list[str] = field(default_factory=list)


class MavlinkCore:
    """Vehicles, their links and the bounds of the input. *stream_intervals*: message id →
    seconds between messages, asked of every vehicle when its link comes up; *flood*: a token
    bucket per source address (host, port), charged per datagram."""

    def __init__(
        self,
        encoder: Encoder,
        *,
        link_timeout_s: float,
        stream_intervals: Mapping[int, float],
        allowed_system_ids: Iterable[int] | None = None,
        flood: TokenBuckets | None = None,
    ) -> None:
        if link_timeout_s <= 0:
            raise ValueError("link_timeout_s must be > 0")
        self.encoder = encoder
        self.link_timeout_s = link_timeout_s
        self.stream_intervals = dict(stream_intervals)
        self.allowed = None if allowed_system_ids is None else frozenset(allowed_system_ids)
        self.flood = flood
        self.counts: collections.Counter[str] = collections.Counter()
        self._vehicles: dict[int, Vehicle] = {}
        self.texts = StatusTextJoiner()  # STATUSTEXT lines sent in chunks

    @property
    def vehicles(self) -> Mapping[int, Vehicle]:
        return dict(self._vehicles)

    def vehicle(self, system_id: int) -> Vehicle | None:
        return self._vehicles.get(system_id)

    # -- input -----------------------------------------------------------------------------------
    def receive(self, data: bytes, addr: Address, now: float, at: datetime) -> Step:
        step = Step()
        if self.flood is not None and not self.flood.allow(addr, now):
            self._reject(step, "rate_limited")  # before parsing: a flood costs us little
            return step
        if len(data) > MAX_DATAGRAM:
            self._reject(step, "oversize")
            return step
        parsed = parse_datagram(data)
        for reason in parsed.bad:
            self._reject(step, reason)
        for frame in parsed.frames:
            self._frame(frame, addr, now, at, step)
        return step

    def _reject(self, step: Step, reason: str) -> None:
        self.counts[reason] += 1
        step.rejects.append(reason)

    def _frame(self, frame: Frame, addr: Address, now: float, at: datetime, step: Step) -> None:
        sysid = frame.sysid
        if isinstance(frame, CommandLong):
            return  # commands to us: the gateway takes none
        if isinstance(frame, Heartbeat) and not decode.is_vehicle(frame):
            return  # a GCS, gimbal or companion computer: not the vehicle's link
        if sysid == 0:
            self._reject(step, "bad_system_id")
            return
        if self.allowed is not None and sysid not in self.allowed:
            self._reject(step, "unexpected_system")
            return
        if isinstance(frame, CommandAck):
            if frame.target_system in (0, self.encoder.system_id):
                step.acks.append(frame)
            return  # an answer to another ground station: not ours to take
        known = self._vehicles.get(sysid)
        if known is None:
            known = Vehicle(
                key=str(sysid), system_id=sysid, component_id=frame.compid, address=addr
            )
        vehicle = known
        report: DroneReport | None = None
        if isinstance(frame, Heartbeat):  # the link: its address is where commands go
            vehicle = dataclasses.replace(vehicle, address=addr)
            vehicle, report = self._heartbeat(vehicle, frame, now, at, step)
        elif isinstance(frame, SysStatus):
            battery = decode.battery_percent(frame)
            if isinstance(battery, decode.Reject):
                self._reject(step, battery.reason)
            elif battery is not None:
                vehicle = dataclasses.replace(vehicle, battery_percent=battery)
                report = self._report(vehicle, at, battery_percent=battery)
        elif isinstance(frame, GlobalPosition):
            fix = decode.position_fix(frame, vehicle.gps_fix_type)
            if isinstance(fix, decode.Reject):
                self._reject(step, fix.reason)
            else:
                vehicle = dataclasses.replace(vehicle, fix=fix, has_global_position=True)
                report = self._report(vehicle, at, fix=fix)
        elif isinstance(frame, GpsRaw):
            vehicle = dataclasses.replace(
                vehicle, gps_fix_type=frame.fix_type, satellites=decode.satellites(frame)
            )
            if not vehicle.has_global_position:
                gps = decode.gps_fix(frame)
                if isinstance(gps, decode.Reject):
                    self._reject(step, gps.reason)
                elif gps is not None:
                    vehicle = dataclasses.replace(vehicle, fix=gps)
                    report = self._report(vehicle, at, fix=gps)
        elif isinstance(frame, StatusText):
            lines = self.texts.add(
                (sysid, frame.compid), frame.text_id, frame.chunk_seq, frame.text, now
            )
            for line in lines:  # the last one stands (two only when a chunk went missing)
                text = decode.clean_text(line)
                if text is not None:
                    vehicle = dataclasses.replace(vehicle, text=text)
                    report = self._report(vehicle, at, text=text)
        self._vehicles[sysid] = vehicle
        if report is not None and vehicle.link is LinkState.ONLINE:
            step.reports.append(report)

    def _heartbeat(
        self, vehicle: Vehicle, hb: Heartbeat, now: float, at: datetime, step: Step
    ) -> tuple[Vehicle, DroneReport]:
        fields = decode.heartbeat_fields(hb)
        coming_up = vehicle.link is not LinkState.ONLINE
        vehicle = dataclasses.replace(
            vehicle,
            component_id=hb.compid,
            link=LinkState.ONLINE,
            autopilot=hb.autopilot,
            vehicle_type=hb.type,
            mode=fields.mode,
            armed=fields.armed,
            flying=fields.flying,
            last_heartbeat=now,
        )
        if coming_up:
            step.sends.extend(self._stream_requests(vehicle))
        report = self._report(vehicle, at, mode=fields.mode, armed=fields.armed)
        return vehicle, dataclasses.replace(report, flying=fields.flying)

    def _report(
        self,
        vehicle: Vehicle,
        at: datetime,
        *,
        fix: DroneFix | None = None,
        battery_percent: float | None = None,
        mode: str | None = None,
        armed: bool | None = None,
        text: str | None = None,
    ) -> DroneReport:
        return DroneReport(
            source=SOURCE,
            key=vehicle.key,
            at=at,
            link=vehicle.link,
            fix=fix,
            battery_percent=battery_percent,
            mode=mode,
            armed=armed,
            text=text,
        )

    def _stream_requests(self, vehicle: Vehicle) -> list[tuple[bytes, Address]]:
        return [
            (
                self.encoder.command_long(
                    target_system=vehicle.system_id,
                    target_component=vehicle.component_id,
                    command=MAV_CMD_SET_MESSAGE_INTERVAL,
                    confirmation=0,
                    params=(float(msg_id), seconds * 1e6),
                ),
                vehicle.address,
            )
            for msg_id, seconds in sorted(self.stream_intervals.items())
        ]

    # -- timers and output -----------------------------------------------------------------------
    def check(self, now: float, at: datetime) -> Step:
        """Links silent past the timeout go LOST, reported once; STATUSTEXT lines whose end
        never came are reported as far as they got."""
        step = Step()
        for source, line in self.texts.expire(now):
            sysid = source[0] if isinstance(source, tuple) else 0
            vehicle = self._vehicles.get(sysid)
            text = decode.clean_text(line)
            if vehicle is not None and text is not None:
                vehicle = self._vehicles[sysid] = dataclasses.replace(vehicle, text=text)
                if vehicle.link is LinkState.ONLINE:
                    step.reports.append(self._report(vehicle, at, text=text))
        for sysid, vehicle in list(self._vehicles.items()):
            if vehicle.link is not LinkState.ONLINE or vehicle.last_heartbeat is None:
                continue
            if now - vehicle.last_heartbeat >= self.link_timeout_s:
                lost = dataclasses.replace(vehicle, link=LinkState.LOST)
                self._vehicles[sysid] = lost
                step.reports.append(self._report(lost, at))
        return step

    def gcs_heartbeats(self) -> list[tuple[bytes, Address]]:
        """Our own HEARTBEAT to every vehicle: autopilots run their GCS failsafe on it."""
        if not self._vehicles:
            return []
        data = self.encoder.heartbeat(
            type=MAV_TYPE_GCS,
            autopilot=MAV_AUTOPILOT_INVALID,
            base_mode=0,
            custom_mode=0,
            system_status=MAV_STATE_ACTIVE,
        )
        return [(data, v.address) for v in self._vehicles.values()]

    def command(
        self, system_id: int, command: int, confirmation: int, params: tuple[float, ...] = ()
    ) -> tuple[bytes, Address] | None:
        """A COMMAND_LONG to a known vehicle's autopilot, at its last address."""
        vehicle = self._vehicles.get(system_id)
        if vehicle is None:
            return None
        data = self.encoder.command_long(
            target_system=system_id,
            target_component=vehicle.component_id,
            command=command,
            confirmation=confirmation,
            params=params,
        )
        return data, vehicle.address
