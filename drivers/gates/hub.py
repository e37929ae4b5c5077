"""``ModbusHub``: one per physical bus (an RS-485 line, or one Modbus TCP endpoint), shared by
every controller on it.

- One lock: a request and its answer own the bus; RS-485 is half duplex, and a serial server
  in front of one forwards one request at a time anyway.
- A silence between frames: RTU ends a frame by 3.5 character times at the bus's baud rate
  (``drivers.gates.bus.frame_gap``), and after an RTU request that got no answer the hub
  waits out the longest frame, so a late answer cannot be taken for the next request's.
- A timeout per request, no retries inside pymodbus (``retries=0``): whether to ask again is
  the caller's decision, because a write that got no answer may have been carried out.
- Reconnect with exponential backoff and jitter (``drivers.backoff``) by a task of its own
  after the connection is lost (a controller power-cycled, a serial server dropped us). pymodbus's
  own reconnect is off (``reconnect_delay=0``) so there is one policy. Problems are logged once
  per episode, and the recovery once.

Errors say whether the request may have reached the controller: ``BusDown`` (not sent),
``NoAnswer`` (sent, no valid answer: it may have been carried out), ``Refused`` (the
controller answered with a Modbus exception: not carried out).

Clients per bus kind (TCP; RTU over pyserial-asyncio-fast): ``drivers.gates.clients``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

from pymodbus.exceptions import ConnectionException, ModbusIOException
from pymodbus.pdu import ModbusPDU

from drivers.aio import honour_cancel, wait_for
from drivers.backoff import Backoff
from drivers.gates.bus import BusSpec, SerialBus, char_time, frame_gap, parse_bus_url
from drivers.gates.buslock import BusLock
from drivers.gates.clients import Client, client_for
from drivers.gates.registers import BIT_TABLES, Block, ReadRequest, Write
from drivers.once import OnceLogger

__all__ = ["BusDown", "BusError", "HubPool", "ModbusHub", "NoAnswer", "Refused"]

log = logging.getLogger(__name__)

_READERS = {
    "coil": "read_coils",
    "discrete": "read_discrete_inputs",
    "holding": "read_holding_registers",
    "input": "read_input_registers",
}
_LONGEST_FRAME = 256  # bytes of the longest RTU frame


class BusError(Exception):
    """A request that did not get a valid answer; ``sent`` says whether it may have arrived."""

    sent = True


class BusDown(BusError):
    """The bus is not connected (and did not come back in time): the request was not sent."""

    sent = False


class NoAnswer(BusError):
    """Sent, but no valid answer in time (or a malformed one): it may have been carried out."""


class Refused(BusError):
    """The controller answered with a Modbus exception code: the request was not carried out."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


class _Lost(Exception):
    """The connection dropped while a request waited for its answer."""


class ModbusHub:
    """One physical bus. ``async with ModbusHub(url) as hub:`` starts its connection task;
    ``read`` and ``write`` may be called from any number of controllers' tasks."""

    def __init__(
        self,
        bus: str | BusSpec,
        *,
        timeout: float | None = None,
        gap: float | None = None,
        backoff: Backoff | None = None,
    ) -> None:
        self.spec: BusSpec = parse_bus_url(bus) if isinstance(bus, str) else bus
        self.timeout = timeout if timeout is not None else self.spec.timeout_ms / 1000
        self.gap = gap if gap is not None else frame_gap(self.spec)
        self._quiet_after_loss = (
            _LONGEST_FRAME * char_time(self.spec) + self.gap
            if isinstance(self.spec, SerialBus)
            else 0.0
        )
        self._backoff = backoff or Backoff(base=0.25, cap=10.0)
        self._lock = BusLock()
        self._up = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._client: Client | None = None
        self._generation = 0
        self._last_end = 0.0
        self._task: asyncio.Task[None] | None = None
        self._once = OnceLogger(log, f"modbus bus {self.url}")
        self.last_error: str | None = None
        self.connects = 0
        self.requests = 0
        self.max_in_flight = 0
        self._in_flight = 0

    @property
    def url(self) -> str:
        return self.spec.url

    @property
    def online(self) -> bool:
        return self._up.is_set()

    @property
    def failing_since(self) -> int:
        """Failed connection attempts (and losses) since the bus was last connected."""
        return self._once.failures

    async def __aenter__(self) -> ModbusHub:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def start(self) -> None:
        """Start the connection task (idempotent)."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self.run(), name=f"modbus-hub {self.url}")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._drop("closed")

    async def wait_online(self, within: float) -> bool:
        """Whether the bus is connected within *within* seconds."""
        with contextlib.suppress(TimeoutError):
            await wait_for(self._up.wait(), within)
        return self._up.is_set()

    # -- connection -------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, and reconnect with backoff whenever the connection is lost. Never returns
        (cancel it); never dies of a connection error."""
        while True:
            await self._down.wait()
            self._drop(self.last_error or "not connected")
            try:
                client = self._new_client()
                ok = await client.connect() and client.connected
                honour_cancel()  # pymodbus connects with 3.11's wait_for: see drivers.aio
            except Exception as exc:  # a serial port that cannot be opened, a bad host...
                client, ok = None, False
                self.last_error = f"{type(exc).__name__}: {exc}"
            if ok and client is not None:
                self._client = client
                self.connects += 1
                self._backoff.reset()
                self._down.clear()
                self._up.set()
                self._once.recovered()
                log.debug("modbus bus %s connected", self.url)
                continue
            if client is not None:
                client.close()
                self.last_error = f"cannot connect to {self.url}"
            self._once.failed(self.last_error or "cannot connect")
            await asyncio.sleep(self._backoff.next_delay())

    def _new_client(self) -> Client:
        self._generation += 1
        traced = partial(self._traced, self._generation)
        spec = self.spec
        return client_for(spec, self.timeout, traced)

    def _traced(self, generation: int, connected: bool) -> None:
        if not connected and generation == self._generation:
            self._lost("connection lost")

    def _lost(self, reason: str) -> None:
        self.last_error = reason
        if self._up.is_set():
            self._up.clear()
            self._down.set()
            self._once.failed(reason)

    def _drop(self, reason: str) -> None:
        self._up.clear()
        client, self._client = self._client, None
        if client is not None:
            self._generation += 1  # its disconnect callback is no news any more
            client.close()

    # -- requests ---------------------------------------------------------------------

    async def read(
        self, unit: int, req: ReadRequest, *, wait: float | None = None, urgent: bool = False
    ) -> Block:
        """One read of *req* from controller *unit*. *wait*: how long to wait for the bus to
        be connected first (default: the request timeout). *urgent*: a command's read-back,
        served before the polls waiting for the bus."""
        reader = _READERS[req.table]

        def call(c: Client) -> Awaitable[ModbusPDU]:
            method: Callable[..., Awaitable[ModbusPDU]] = getattr(c, reader)
            return method(req.address, count=req.count, device_id=unit)

        what = f"read {req.table} {req.address}+{req.count}"
        rsp = await self._request(unit, what, call, wait, urgent)
        raw = list(rsp.bits) if req.table in BIT_TABLES else list(rsp.registers)
        if len(raw) < req.count or (req.table not in BIT_TABLES and len(raw) != req.count):
            raise NoAnswer(f"unit {unit}: {len(raw)} values for a read of {req.count}")
        return Block(req.table, req.address, tuple(int(v) for v in raw[: req.count]))

    async def write(
        self, unit: int, w: Write, *, wait: float | None = None, urgent: bool = True
    ) -> None:
        """One write to controller *unit*, sent at most once (no retry here); a command,
        so served before the polls waiting for the bus unless *urgent* is False."""

        def call(c: Client) -> Awaitable[ModbusPDU]:
            if w.table == "coil":
                return c.write_coil(w.address, bool(w.value), device_id=unit)
            return c.write_register(w.address, w.value, device_id=unit)

        rsp = await self._request(unit, f"write {w.table} {w.address}={w.value}", call, wait, True)
        echo = int(rsp.bits[0]) if w.table == "coil" and rsp.bits else None
        if w.table == "holding" and rsp.registers:
            echo = rsp.registers[0]
        if rsp.address != w.address or echo != w.value:
            raise NoAnswer(f"unit {unit}: the answer to {w} echoes {rsp.address}={echo}")

    async def _request(
        self,
        unit: int,
        what: str,
        call: Callable[[Client], Awaitable[ModbusPDU]],
        wait: float | None,
        urgent: bool = False,
    ) -> ModbusPDU:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (self.timeout if wait is None else wait)
        async with self._lock.hold(urgent):
            self._in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            try:
                return await self._locked(unit, what, call, deadline, loop)
            finally:
                self._in_flight -= 1

    async def _locked(
        self,
        unit: int,
        what: str,
        call: Callable[[Client], Awaitable[ModbusPDU]],
        deadline: float,
        loop: asyncio.AbstractEventLoop,
    ) -> ModbusPDU:
        if not self._up.is_set():
            with contextlib.suppress(TimeoutError):
                await wait_for(self._up.wait(), max(0.0, deadline - loop.time()))
        client = self._client
        if not self._up.is_set() or client is None:
            why = self.last_error or "not connected"
            raise BusDown(f"{self.url} down ({why}): {what} not sent")
        pause = self._last_end + self.gap - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        self.requests += 1
        answered = False
        try:
            rsp = await self._answer(call(client))
            answered = True
        except ConnectionException as exc:  # raised before anything was written
            self._lost(str(exc))
            raise BusDown(f"{self.url}: {what} not sent ({exc})") from None
        except _Lost:
            raise NoAnswer(f"unit {unit}: connection lost before the answer to {what}") from None
        except (ModbusIOException, TimeoutError):
            raise NoAnswer(f"unit {unit}: no answer to {what} in {self.timeout:g} s") from None
        except Exception as exc:  # a frame pymodbus could not make sense of
            raise NoAnswer(f"unit {unit}: bad answer to {what}: {type(exc).__name__}") from None
        finally:
            self._last_end = loop.time() + (0.0 if answered else self._quiet_after_loss)
        if rsp.isError():
            code = int(getattr(rsp, "exception_code", 0))
            raise Refused(f"unit {unit}: {what} refused with exception code {code}", code)
        return rsp

    async def _answer(self, pending: Awaitable[ModbusPDU]) -> ModbusPDU:
        """The answer, or ``_Lost`` as soon as the connection drops (pymodbus would wait out
        its timeout); pymodbus times a missing answer out itself, the bound here only guards
        against a hang."""
        request = asyncio.ensure_future(pending)
        lost = asyncio.ensure_future(self._down.wait())
        try:
            done, _ = await asyncio.wait(
                (request, lost), timeout=self.timeout * 2 + 0.5,
                return_when=asyncio.FIRST_COMPLETED,
            )  # fmt: skip
        except BaseException:  # cancelled: the request goes with us
            request.cancel()
            raise
        finally:
            lost.cancel()
        if request in done:
            return request.result()
        request.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await request
        raise _Lost if lost in done else TimeoutError


class HubPool:
    """One hub per physical bus for a service with many controllers: ``get(url)`` returns
    the same started hub for every URL naming the same bus (host and port, or serial device);
    the same device with other line settings is a configuration error."""

    def __init__(self, **hub_options: Any) -> None:
        self._options = hub_options
        self._hubs: dict[tuple[str, ...], ModbusHub] = {}

    def get(self, url: str | BusSpec) -> ModbusHub:
        spec = parse_bus_url(url) if isinstance(url, str) else url
        if isinstance(spec, SerialBus):
            key: tuple[str, ...] = ("serial", spec.device)
        else:
            key = ("tcp", spec.host.lower(), str(spec.port))
        hub = self._hubs.get(key)
        if hub is None:
            hub = self._hubs[key] = ModbusHub(spec, **self._options)
            hub.start()
        elif hub.spec != spec:
            raise ValueError(f"{spec.url}: the same bus is already configured as {hub.url}")
        return hub

    @property
    def hubs(self) -> list[ModbusHub]:
        return list(self._hubs.values())

    async def close(self) -> None:
        for hub in self._hubs.values():
            await hub.close()
        self._hubs.clear()
