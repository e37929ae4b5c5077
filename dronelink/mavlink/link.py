"""MAVLink over UDP as a ``DroneLink``: the asyncio shell around ``MavlinkCore``.

The gateway listens on one UDP port (vehicles or a telemetry router send to it, as to a GCS on
14550) and answers each vehicle at the address it was last heard from. pymavlink has no
asyncio API, so datagrams go straight from a DatagramProtocol into its parser; nothing here
blocks or waits for a heartbeat. ``run`` owns the timers (link-lost checks, our GCS heartbeat);
``return_home`` drives its own resends, so a command needs no other task to finish.

Timers use the event loop's monotonic clock; ``clock`` only stamps the reports, so a wall
clock step never fakes a lost link or a command timeout.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from drivers.sip.flood import TokenBuckets
from dronelink.mavlink.commands import Attempt, Resend
from dronelink.mavlink.core import SOURCE, Address, MavlinkCore, Step, Vehicle
from dronelink.mavlink.wire import (
    MAV_CMD_NAV_RETURN_TO_LAUNCH,
    CommandAck,
    Encoder,
    message_id,
)
from dronelink.model import CommandOutcome, CommandStatus, OnReport, Unsupported

__all__ = ["DEFAULT_STREAM_INTERVALS", "MavlinkLink"]

log = logging.getLogger(__name__)

DEFAULT_STREAM_INTERVALS: Mapping[str, float] = {"GLOBAL_POSITION_INT": 1.0, "SYS_STATUS": 5.0}
GCS_HEARTBEAT_S = 1.0


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, link: MavlinkLink) -> None:
        self.link = link

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        self.link._datagram(data, (str(addr[0]), int(addr[1])))

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable from a gone vehicle
        log.debug("MAVLink UDP: %s", exc)


@dataclass(slots=True)
class _Pending:
    command_id: str
    attempt: Attempt
    future: asyncio.Future[CommandOutcome]


def _intervals(names: Mapping[str, float]) -> dict[int, float]:
    out: dict[int, float] = {}
    for name, seconds in names.items():
        msg_id = message_id(name)
        if msg_id is None:
            raise ValueError(f"stream_intervals: unknown MAVLink message {name!r}")
        if not 0 < seconds <= 3600:
            raise ValueError(f"stream_intervals[{name!r}]: {seconds} s not in (0, 3600]")
        out[msg_id] = float(seconds)
    return out


def _system_id(value: int, what: str) -> int:
    if not 1 <= value <= 255:
        raise ValueError(f"{what} {value} not in 1..255")
    return value


class MavlinkLink:
    """Vehicles speaking MAVLink on one UDP port. ``start`` binds, ``run`` keeps the timers
    until cancelled, ``close`` unbinds and ends any waiting command as CANCELED.

    *rate_per_s* / *burst*: datagrams allowed per source address (an autopilot streaming
    everything sends a few hundred a second at most; a router relaying a fleet shares one
    address), refused past that as ``rate_limited`` before parsing."""

    source = SOURCE
    speaks = False  # no loudspeaker protocol over MAVLink here: ``speaker`` is Unsupported

    def __init__(
        self,
        on_report: OnReport,
        clock: Callable[[], datetime],
        *,
        host: str = "127.0.0.1",
        port: int = 14550,
        link_timeout_s: float = 5.0,
        ack_timeout_s: float = 1.5,
        retries: int = 3,
        stream_intervals: Mapping[str, float] | None = None,
        own_system_id: int = 255,
        own_component_id: int = 190,  # MAV_COMP_ID_MISSIONPLANNER, the usual GCS component
        allowed_system_ids: set[int] | None = None,
        on_reject: Callable[[str], None] | None = None,
        rate_per_s: float = 500.0,
        burst: int = 1000,
    ) -> None:
        if ack_timeout_s <= 0 or not 0 <= retries <= 255:
            raise ValueError("ack_timeout_s must be > 0 and retries in 0..255")
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        allowed = (
            None
            if allowed_system_ids is None
            else {_system_id(s, "allowed system id") for s in allowed_system_ids}
        )
        self.on_report = on_report
        self.clock = clock
        self.host = host
        self.port = port
        self.ack_timeout_s = ack_timeout_s
        self.retries = retries
        self.on_reject = on_reject
        encoder = Encoder(
            _system_id(own_system_id, "own system id"),
            _system_id(own_component_id, "own component id"),
        )
        self._core = MavlinkCore(
            encoder,
            link_timeout_s=link_timeout_s,
            stream_intervals=_intervals(
                DEFAULT_STREAM_INTERVALS if stream_intervals is None else stream_intervals
            ),
            allowed_system_ids=allowed,
            flood=TokenBuckets(rate_per_s, burst, max_sources=4096),
        )
        self._check_s = max(0.01, min(0.5, link_timeout_s / 5))
        self._transport: asyncio.DatagramTransport | None = None
        self._pending: dict[tuple[int, int], _Pending] = {}

    # -- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> int:
        """Bind the UDP port (0: a free one); returns the port bound."""
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self), local_addr=(self.host, self.port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    async def run(self) -> None:
        """Link-lost checks and our GCS heartbeat, until cancelled."""
        loop = asyncio.get_running_loop()
        next_beat = loop.time()
        while True:
            now = loop.time()
            self._apply(self._core.check(now, self.clock()))
            if now >= next_beat:
                next_beat = now + GCS_HEARTBEAT_S
                for data, addr in self._core.gcs_heartbeats():
                    self._send(data, addr)
            await asyncio.sleep(self._check_s)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        for pending in self._pending.values():
            if not pending.future.done():
                pending.future.set_result(
                    CommandOutcome(
                        CommandStatus.CANCELED, pending.attempt.attempts, None, "link closed"
                    )
                )

    # -- what is known ---------------------------------------------------------------------------
    @property
    def vehicles(self) -> Mapping[str, Vehicle]:
        """A snapshot of every vehicle heard since start, by key (the system id as text)."""
        return {v.key: v for v in self._core.vehicles.values()}

    @property
    def counts(self) -> Mapping[str, int]:
        """Rejections by reason since start (a copy)."""
        return dict(self._core.counts)

    # -- commands --------------------------------------------------------------------------------
    async def return_home(self, key: str, *, command_id: str) -> CommandOutcome:
        """MAV_CMD_NAV_RETURN_TO_LAUNCH to the vehicle's autopilot, resent with the next
        ``confirmation`` while unanswered. A second call with the same *command_id* while the
        first is outstanding waits for the same outcome; another id is refused as busy (an
        ACK cannot tell two RTLs apart). A vehicle whose link is lost is still asked, at its
        last address (its heartbeats may be what is lost); the retries bound the wait."""
        sysid = int(key) if key.isdecimal() and len(key) <= 3 else None
        if sysid is None or self._core.vehicle(sysid) is None:
            return CommandOutcome(CommandStatus.REJECTED, 0, None, f"unknown vehicle {key!r}")
        slot = (sysid, MAV_CMD_NAV_RETURN_TO_LAUNCH)
        busy = self._pending.get(slot)
        if busy is not None:
            if busy.command_id == command_id:
                return await asyncio.shield(busy.future)
            return CommandOutcome(
                CommandStatus.REJECTED, 0, None, f"busy with command {busy.command_id}"
            )
        if self._transport is None:
            return CommandOutcome(CommandStatus.FAILED, 0, None, "link not started")
        loop = asyncio.get_running_loop()
        attempt = Attempt(ack_timeout_s=self.ack_timeout_s, retries=self.retries, now=loop.time())
        pending = _Pending(command_id, attempt, loop.create_future())
        self._pending[slot] = pending
        try:
            self._command(sysid, MAV_CMD_NAV_RETURN_TO_LAUNCH, 0)
            while not pending.future.done():
                delay = max(0.0, attempt.deadline - loop.time())
                await asyncio.wait({pending.future}, timeout=delay)
                if pending.future.done():
                    break
                step = attempt.poll(loop.time())
                if isinstance(step, Resend):
                    self._command(sysid, MAV_CMD_NAV_RETURN_TO_LAUNCH, step.confirmation)
                elif step is not None:
                    pending.future.set_result(step)
            return pending.future.result()
        finally:
            if not pending.future.done():  # our caller was cancelled: joiners learn of it
                pending.future.set_result(
                    CommandOutcome(CommandStatus.CANCELED, attempt.attempts, None, "cancelled")
                )
            if self._pending.get(slot) is pending:
                del self._pending[slot]

    async def speaker(
        self, key: str, text: str, volume: int, loop: bool, *, command_id: str
    ) -> CommandOutcome:
        raise Unsupported("a MAVLink vehicle has no loudspeaker here")

    async def speaker_stop(self, key: str, *, command_id: str) -> CommandOutcome:
        raise Unsupported("a MAVLink vehicle has no loudspeaker here")

    # -- plumbing --------------------------------------------------------------------------------
    def _command(self, sysid: int, command: int, confirmation: int) -> None:
        out = self._core.command(sysid, command, confirmation)
        if out is not None:
            self._send(*out)

    def _send(self, data: bytes, addr: Address) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def _datagram(self, data: bytes, addr: Address) -> None:
        try:
            now = asyncio.get_running_loop().time()
            self._apply(self._core.receive(data, addr, now, self.clock()))
        except Exception:  # a bug of ours must not take the endpoint down: log, keep serving
            log.exception("MAVLink datagram from %s:%s", *addr)

    def _apply(self, step: Step) -> None:
        for data, addr in step.sends:
            self._send(data, addr)
        for ack in step.acks:
            self._ack(ack)
        for reason in step.rejects:
            if self.on_reject is not None:
                try:
                    self.on_reject(reason)
                except Exception:
                    log.exception("MAVLink on_reject")
        for report in step.reports:
            try:
                self.on_report(report)
            except Exception:
                log.exception("MAVLink on_report for vehicle %s", report.key)

    def _ack(self, ack: CommandAck) -> None:
        pending = self._pending.get((ack.sysid, ack.command))
        if pending is None or pending.future.done():
            return  # a late or duplicate answer, or one to SET_MESSAGE_INTERVAL
        outcome = pending.attempt.on_ack(ack.result, asyncio.get_running_loop().time())
        if outcome is not None:
            pending.future.set_result(outcome)
