"""One connected charger as the rest of citygate sees it: who, which protocol, since when, when
it last said anything, and how to command, probe or close it.

Commands run in the caller's task (an API request), never inside the charger's receive loop,
and give up as soon as the connection closes instead of waiting out their timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping
from typing import Any

from ocpp.charge_point import remove_nones, serialize_as_dict, snake_to_camel_case
from ocpp.exceptions import OCPPError, UnknownCallErrorCodeError
from ocpp.messages import MessageType
from websockets.asyncio.server import ServerConnection
from websockets.exceptions import ConnectionClosed

from charging.ocpp.backend import ChargerBackend
from charging.ocpp.commands import ChargerGone, CommandError, CommandResult, CommandTimeout, prepare
from charging.ocpp.ledger import TransactionLedger
from charging.ocpp.rpc import MAX_COMMAND_S, Endpoint, RpcError
from charging.ocpp.v16 import CentralSystem16
from charging.ocpp.v201 import CentralSystem21, CentralSystem201
from events import now_utc

__all__ = ["ENDPOINTS", "ChargerSession"]

log = logging.getLogger(__name__)

ENDPOINTS: dict[str, type[Endpoint]] = {
    "ocpp1.6": CentralSystem16,
    "ocpp2.0.1": CentralSystem201,
    "ocpp2.1": CentralSystem21,
}


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
    ) -> None:
        self.charger_id = charger_id
        self.protocol = protocol
        host, port, *_ = connection.remote_address or ("", 0)
        self.remote = f"{host}:{port}" if host else ""
        self.connected_at = now_utc()
        self.last_message_at = self.connected_at
        self._connection = connection
        self._endpoint = ENDPOINTS[protocol](
            charger_id, connection, backend, ledger, on_frame=self._touch
        )
        self._ended = asyncio.Event()
        self._close_reason: str | None = None
        self._closing: asyncio.Task[None] | None = None
        self.reported = False  # the server reported this session's end to the backend

    def __repr__(self) -> str:
        return f"<ChargerSession {self.charger_id} {self.protocol} {self.remote}>"

    def _touch(self) -> None:
        self.last_message_at = now_utc()

    @property
    def closed(self) -> bool:
        return self._ended.is_set() or self._closing is not None

    # -- lifecycle (driven by the server) ---------------------------------------------------------

    async def run(self) -> str:
        """Serve the charger until its connection ends; returns why it ended."""
        reason = "ended"
        try:
            await self._endpoint.start()
        except ConnectionClosed as exc:
            frame = exc.rcvd or exc.sent
            reason = str(frame) if frame is not None else "connection lost"
        except Exception:
            log.exception("%s: receive loop failed", self.charger_id)
            reason = "internal error"
            await self._connection.close(1011, "internal error")
        finally:
            self._ended.set()
            if self._closing is not None:
                # Our own close: wait for its handshake (bounded by the close timeout).
                with contextlib.suppress(Exception):
                    await self._closing
        return self._close_reason or reason

    def begin_close(self, reason: str) -> None:
        """Start closing the connection with *reason* (idempotent); :meth:`run` then ends."""
        if self._closing is None and not self._ended.is_set():
            self._close_reason = reason
            self._closing = asyncio.ensure_future(
                self._connection.close(1000, _close_reason(reason))
            )

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
            self._endpoint.check(MessageType.Call, prepared.action, request)
        except RpcError as e:
            raise CommandError(f"{name}: {e.cause}") from None
        if self.closed:
            raise ChargerGone(f"{self.charger_id} is not connected")
        sending = asyncio.ensure_future(
            self._endpoint.call(prepared.request, suppress=False, skip_schema_validation=True)
        )
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            done, _ = await asyncio.wait(
                (sending, ended),
                timeout=min(timeout, MAX_COMMAND_S),
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            sending.cancel()
            ended.cancel()
            await asyncio.gather(sending, ended, return_exceptions=True)
        if sending in done:
            return self._read(prepared.action, prepared.read, sending)
        if ended in done:
            raise ChargerGone(f"{self.charger_id} disconnected before answering {name}")
        raise CommandTimeout(f"{self.charger_id} did not answer {name} within {timeout:g} s")

    def _read(
        self,
        action: str,
        read: Callable[[dict[str, Any]], CommandResult],
        sending: asyncio.Future[Any],
    ) -> CommandResult:
        try:
            answer = sending.result()
        except OCPPError as e:
            return CommandResult(
                "CallError",
                {"error_code": e.code, "description": e.description, "details": e.details},
            )
        except UnknownCallErrorCodeError as e:
            return CommandResult("CallError", {"error_code": "unknown", "description": str(e)})
        except ConnectionClosed:
            raise ChargerGone(f"{self.charger_id} disconnected before answering") from None
        except TypeError as e:  # the answer does not fit the OCPP response at all
            return CommandResult("InvalidResponse", {"description": str(e)})
        payload = remove_nones(serialize_as_dict(answer))
        try:
            self._endpoint.check(MessageType.CallResult, action, snake_to_camel_case(payload))
        except RpcError as e:
            return CommandResult("InvalidResponse", {**payload, "description": e.cause})
        return read(payload)

    async def probe(self, timeout: float = 10) -> bool:  # noqa: ASYNC109
        """Whether the charger still answers: TriggerMessage(Heartbeat) and wait for the
        answer (any answer, even a CALLERROR, is a sign of life)."""
        try:
            await self.command("trigger_message", {"message": "Heartbeat"}, timeout)
        except (CommandTimeout, ChargerGone):
            return False
        return True
