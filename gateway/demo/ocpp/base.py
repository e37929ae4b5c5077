"""What every simulated charger shares: the connection (basic auth, TLS, subprotocols), the
receive loop, the offline queue of transaction messages, and the record of commands received.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar, cast
from urllib.parse import quote

from ocpp import routing
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

DEFAULT = object()  # "the charger's own subprotocol"
F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The library's ``@on`` with a type, so handlers keep theirs."""
    return cast("Callable[[F], F]", routing.on(action))


def iso(ts: datetime | None = None) -> str:
    ts = (ts or datetime.now(UTC)).astimezone(UTC)
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class ChargerOffline(ConnectionError):
    """A message that is not queued while offline (only transaction messages are)."""


@dataclass
class Tx:
    """A transaction as the charger knows it. OCPP 1.6: ``id`` is the central system's number
    (``None`` until a StartTransaction queued offline is delivered); 2.0.1: the charger's own."""

    connector_id: int
    id: int | str | None = None
    seq: int = 0

    def next_seq(self) -> int:
        seq, self.seq = self.seq, self.seq + 1
        return seq


Build = Callable[[bool], Any]  # queued? -> the library's call payload
After = Callable[[Any], None]  # what to do with the answer


@dataclass
class _Queued:
    build: Build
    after: After | None


class SimCharger:
    """What both versions share: connection, receive loop, offline queue, command record."""

    subprotocol = ""
    charge_point_class: type[Any] = object

    def __init__(
        self,
        base_url: str,
        charger_id: str,
        password: str | None = None,
        *,
        subprotocols: Any = DEFAULT,
        ssl_context: ssl.SSLContext | None = None,
        vendor: str = "SimVendor",
        model: str = "Sim-22",
        serial: str | None = "SN-0001",
        firmware: str = "1.0.0",
        response_timeout: float = 10,
        open_timeout: float = 5,
        ping_interval: float | None = 20,
    ) -> None:
        self.url = base_url.rstrip("/") + "/" + quote(charger_id, safe="")
        self.charger_id = charger_id
        self.password = password
        self.subprotocols: list[str] | None = (
            [self.subprotocol] if subprotocols is DEFAULT else subprotocols
        )
        self.ssl_context = ssl_context
        self.vendor, self.model, self.serial, self.firmware = vendor, model, serial, firmware
        self.response_timeout = response_timeout
        # Defaults as before (5 s; websockets' 20 s pings); a bench of thousands may change them.
        self.open_timeout = open_timeout
        self.ping_interval = ping_interval
        self.ws: ClientConnection | None = None
        self.cp: Any = None
        self.queue: list[_Queued] = []
        self.received: list[tuple[str, dict[str, Any]]] = []  # commands: (action, params)
        self.answers: dict[str, str] = {}  # action -> status to answer with
        self.silent = False  # True: commands get no answer at all
        self.ignored: list[str] = []  # commands received while silent
        self.triggered: list[str] = []  # messages sent because of a TriggerMessage
        self.energy_wh = 0.0
        self._loop: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()

    # -- connection -------------------------------------------------------------------------------

    @property
    def online(self) -> bool:
        return self.ws is not None

    async def connect(self) -> None:
        """Open the websocket, start answering commands, deliver the queue in order."""
        headers = {}
        if self.password is not None:
            token = base64.b64encode(f"{self.charger_id}:{self.password}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self.ws = await connect(
            self.url,
            subprotocols=self.subprotocols,  # type: ignore[arg-type]
            additional_headers=headers,
            ssl=self.ssl_context,
            open_timeout=self.open_timeout,
            ping_interval=self.ping_interval,
        )
        self.cp = self.charge_point_class(self.charger_id, self.ws, self.response_timeout)
        self.cp.sim = self
        self._loop = asyncio.create_task(self._receive())
        queued, self.queue = self.queue, []
        for item in queued:
            await self._deliver(item, queued=True)

    async def _receive(self) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.cp.start()

    async def disconnect(self) -> None:
        """Close the websocket cleanly; the charger is offline until :meth:`connect`."""
        ws, self.ws = self.ws, None
        if ws is not None:
            await ws.close()
        await self._stop_tasks()

    async def drop(self) -> None:
        """Lose the connection without a close handshake (a cut cable)."""
        ws, self.ws = self.ws, None
        if ws is not None:
            ws.transport.abort()
        await self._stop_tasks()

    async def wait_closed(self) -> None:
        """Wait until the central system closes the connection."""
        if self._loop is not None:
            await self._loop
        self.ws = None

    async def _stop_tasks(self) -> None:
        tasks = [*self._tasks, *([self._loop] if self._loop else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        self._loop = None

    async def __aenter__(self) -> SimCharger:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.disconnect()

    # -- sending ----------------------------------------------------------------------------------

    async def send(self, build: Build, after: After | None = None, *, queue: bool = False) -> Any:
        """Send a message (built when it is sent). Offline: queue it if *queue* (transaction
        messages), else raise :class:`ChargerOffline`."""
        item = _Queued(build, after)
        if self.ws is None:
            if not queue:
                raise ChargerOffline(f"{self.charger_id} is offline")
            self.queue.append(item)
            return None
        return await self._deliver(item, queued=False)

    async def _deliver(self, item: _Queued, *, queued: bool) -> Any:
        answer = await self.cp.call(item.build(queued), suppress=False)
        if item.after is not None:
            item.after(answer)
        return answer

    def later(self, coro: Any) -> None:
        """Run *coro* after the current handler answered (never call from inside one)."""
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def answer(self, action: str, default: str) -> str:
        return self.answers.get(action, default)

    def record(self, action: str, **params: Any) -> None:
        self.received.append((action, params))

    async def send_raw(self, text: str) -> None:
        assert self.ws is not None
        await self.ws.send(text)

    async def triggered_message(self, message: str, connector_id: int | None) -> None:
        raise NotImplementedError


def _silenceable(cls: type[Any]) -> type[Any]:
    """A ChargePoint class whose charger can be told to ignore the central system's calls."""

    class Silenceable(cls):  # type: ignore[misc]
        sim: SimCharger

        async def route_message(self, raw_msg: str) -> None:
            if self.sim.silent:
                with contextlib.suppress(ValueError, IndexError, TypeError):
                    if json.loads(raw_msg)[0] == 2:
                        self.sim.ignored.append(raw_msg)
                        return
            await super().route_message(raw_msg)

    return Silenceable


@dataclass
class Fleet:
    """Many simulated chargers at once (benches, fleet tests)."""

    chargers: list[SimCharger] = field(default_factory=list)

    async def connect(self) -> None:
        await asyncio.gather(*(c.connect() for c in self.chargers))

    async def disconnect(self) -> None:
        await asyncio.gather(*(c.disconnect() for c in self.chargers), return_exceptions=True)
