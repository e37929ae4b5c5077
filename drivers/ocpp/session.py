"""One connected charger: the websocket transport around its sans-I/O core.

It reads frames, stamps them with the clock, hands them to :class:`OcppConnection`, sends the
answers, publishes the events and counts the problems. Commands run in the caller's task (an
API request), never inside the receive loop, and give up as soon as the connection closes
instead of waiting out their timeout. A command that gives the charger a new password tells
the backend once the charger took it, so the stored hash follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from drivers.aio import wait_for
from drivers.ocpp.backend import ChargerBackend
from drivers.ocpp.commands import (
    ChargerGone,
    CommandError,
    CommandResult,
    CommandTimeout,
    credential_accepted,
    prepare,
)
from drivers.ocpp.core import OcppConnection, Received, Response
from drivers.ocpp.ledger import TransactionLedger
from drivers.ocpp.schemas import CALL, RpcError, check

__all__ = ["FRAMES", "MAX_COMMAND_S", "ChargerSession"]

log = logging.getLogger(__name__)
# Every frame in and out at INFO: keep it at WARNING unless debugging a charger.
FRAMES = logging.getLogger("drivers.ocpp.frames")
MAX_COMMAND_S = 300.0  # the longest a command may wait for its answer
_CREDENTIALS = ("AuthorizationKey", "BasicAuthPassword")


class _RedactCredentials(logging.Filter):
    """Frames that set a charger's password (1.6 AuthorizationKey, 2.0.1 BasicAuthPassword)
    are never logged, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "[frame redacted: carries a credential]"
                if isinstance(a, str | bytes) and any(c in str(a) for c in _CREDENTIALS)
                else a
                for a in record.args
            )
        return True


FRAMES.addFilter(_RedactCredentials())


def _close_reason(reason: str) -> str:
    """A websocket close reason fits in 123 bytes of UTF-8."""
    return reason.encode()[:123].decode("utf-8", "ignore")


class ChargerSession:
    """A charger's live connection (one per charger id; a new one replaces it)."""

    def __init__(
        self,
        charger_id: str,
        protocol: str,
        connection: ServerConnection,
        backend: ChargerBackend,
        ledger: TransactionLedger,
        clock: Callable[[], datetime],
    ) -> None:
        self.charger_id = charger_id
        self.protocol = protocol
        host, port, *_ = connection.remote_address or ("", 0)
        self.remote = f"{host}:{port}" if host else ""
        self._clock = clock
        self.connected_at = clock()
        self.last_message_at = self.connected_at
        self._connection = connection
        self._backend = backend
        self.core = OcppConnection(charger_id, protocol, backend, ledger)
        self._waiting: dict[str, asyncio.Future[Response]] = {}
        self._ended = asyncio.Event()
        self._close_reason: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self.reported = False  # the server reported this session's end to the backend

    def __repr__(self) -> str:
        return f"<ChargerSession {self.charger_id} {self.protocol} {self.remote}>"

    @property
    def closed(self) -> bool:
        return self._ended.is_set() or self._closing is not None

    # -- lifecycle (driven by the server) ---------------------------------------------------------

    async def run(self) -> str:
        """Serve the charger until its connection ends; returns why it ended."""
        reason = "ended"
        try:
            async for frame in self._connection:
                await self._handle(frame)
                await self._backend.room()  # back-pressure: read on once there is room
        except ConnectionClosed:
            pass
        except Exception:
            log.exception("%s: receive loop failed", self.charger_id)
            reason = "internal error"
            await self._connection.close(1011, "internal error")
        finally:
            self._ended.set()
            for waiter in self._waiting.values():
                if not waiter.done():
                    waiter.set_exception(ChargerGone(f"{self.charger_id} disconnected"))
            if self._closing is not None:
                # Our own close: wait for its handshake (bounded by the close timeout).
                with contextlib.suppress(Exception):
                    await self._closing
        if reason == "ended":
            close = self._connection.protocol.close_rcvd or self._connection.protocol.close_sent
            reason = str(close) if close is not None else "connection lost"
        return self._close_reason or reason

    async def _handle(self, frame: str | bytes) -> None:
        now = self._clock()
        self.last_message_at = now  # any frame, even garbage, shows the charger is alive
        if FRAMES.isEnabledFor(logging.INFO):
            FRAMES.info("%s: receive %s", self.charger_id, frame)
        out = self.core.receive(frame, now)
        self._report(out)
        replies = out.replies
        if out.transaction and not await self._backend.durable():
            replies = [self.core.not_recorded(r) for r in replies]
        for reply in replies:
            if FRAMES.isEnabledFor(logging.INFO):
                FRAMES.info("%s: send %s", self.charger_id, reply)
            await self._connection.send(reply)

    def _report(self, out: Received) -> None:
        backend = self._backend
        for event in out.events:
            backend.publish(event)
        for reason, detail in out.problems:
            backend.count("message", reason)
            log.warning("%s: %s %s", self.charger_id, reason, detail[:200])
        for failure in out.failures:
            log.error("%s: %s", self.charger_id, failure)
        for response in out.responses:
            waiter = self._waiting.get(response.unique_id)
            if waiter is not None and not waiter.done():
                waiter.set_result(response)

    def begin_close(self, reason: str) -> None:
        """Start closing the connection with *reason* (idempotent); :meth:`run` then ends."""
        if self._closing is None and not self._ended.is_set():
            self._close_reason = reason
            self._closing = asyncio.ensure_future(
                self._connection.close(1000, _close_reason(reason))
            )

    def drop(self, reason: str) -> None:
        """Drop the connection at once, without a close handshake (a charger that moved to
        another gateway: its old connection may be half open and never answer one)."""
        if self._close_reason is None:
            self._close_reason = reason
        self._connection.transport.abort()

    async def close(self, reason: str) -> None:
        """Close the connection with *reason* and wait until it is closed."""
        self.begin_close(reason)
        if self._closing is not None:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._closing)
        await self._ended.wait()

    # -- commands ---------------------------------------------------------------------------------

    async def command(
        self,
        name: str,
        params: Mapping[str, Any],
        timeout: float = 30,  # noqa: ASYNC109  (the API's per-command deadline, by contract)
    ) -> CommandResult:
        """Send command *name* and return the charger's answer.

        Raises :class:`CommandError` (unknown command, not in this OCPP version, bad params:
        nothing was sent), :class:`CommandTimeout` (no answer within *timeout* seconds), or
        :class:`ChargerGone` (the connection closed first). A CALLERROR answer is a result
        with status ``CallError``.
        """
        prepared = prepare(self.protocol, name, params)
        request = snake_to_camel_case(remove_nones(serialize_as_dict(prepared.request)))
        try:
            check(CALL, prepared.action, self.core.version, request)
        except RpcError as e:
            cause = e.cause
            if prepared.secret:
                cause = cause.replace(prepared.secret, "[redacted]")
            raise CommandError(f"{name}: {cause}") from None
        if self.closed:
            raise ChargerGone(f"{self.charger_id} is not connected")
        unique_id, frame = self.core.call(prepared.action, request, validate=False)
        waiter: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self._waiting[unique_id] = waiter
        try:
            if FRAMES.isEnabledFor(logging.INFO):
                FRAMES.info("%s: send %s", self.charger_id, frame)
            try:
                await self._connection.send(frame)
            except ConnectionClosed:
                raise ChargerGone(f"{self.charger_id} disconnected before answering") from None
            try:
                response = await wait_for(
                    asyncio.shield(waiter), timeout=min(timeout, MAX_COMMAND_S)
                )
            except TimeoutError:
                raise CommandTimeout(
                    f"{self.charger_id} did not answer {name} within {timeout:g} s"
                ) from None
        finally:
            self._waiting.pop(unique_id, None)
            self.core.forget(unique_id)
        result = self._read(prepared.read, response)
        accepted = (
            prepared.secret is not None
            and response.result is not None
            and response.invalid is None
            and credential_accepted(prepared.action, response.result)
        )
        if accepted and prepared.secret is not None:
            await self._backend.password_changed(self.charger_id, prepared.secret)
            log.info("%s accepted a new password; the registry follows", self.charger_id)
        return result

    @staticmethod
    def _read(read: Callable[[dict[str, Any]], CommandResult], response: Response) -> CommandResult:
        if response.error is not None:
            e = response.error
            return CommandResult(
                "CallError",
                {"error_code": e.code, "description": e.description, "details": e.details},
            )
        payload = response.result or {}
        if response.invalid is not None:
            return CommandResult("InvalidResponse", {**payload, "description": response.invalid})
        return read(payload)

    async def probe(self, timeout: float = 10) -> bool:  # noqa: ASYNC109
        """Whether the charger still answers: TriggerMessage(Heartbeat) and wait for the
        answer (any answer, even a CALLERROR, is a sign of life)."""
        try:
            await self.command("trigger_message", {"message": "Heartbeat"}, timeout)
        except (CommandTimeout, ChargerGone):
            return False
        return True
