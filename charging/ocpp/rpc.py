"""OCPP-J framing for one charger, on top of the ``ocpp`` library's ChargePoint.

We keep the library's routing (``@on``), its payload helpers and its ``call()`` for commands,
but receive frames ourselves, because its receive path (ocpp 2.1.0) logs and drops
unparseable frames and unknown message types without an answer, answers nothing at all to an
unknown action on OCPP 2.1, lets a non-string action crash the receive loop, swaps
NotImplemented and NotSupported, answers 1.6 chargers with 2.0.1's ``FormatViolation``, echoes
the whole offending message back in error details, and validates in a thread pool.

Every frame is a sign of life; every CALL gets a CALLRESULT or the right CALLERROR; what
cannot be answered (no message id) is counted and logged. Handlers never ``await`` a call to
the charger: the receive loop is sequential, so that would wait for itself.
"""

from __future__ import annotations

import inspect
import json
import logging
import re
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, TypeVar, cast

from ocpp import routing
from ocpp.charge_point import (
    ChargePoint,
    camel_to_snake_case,
    remove_nones,
    serialize_as_dict,
    snake_to_camel_case,
)
from ocpp.messages import Call, CallError, CallResult, MessageType, get_validator
from websockets.exceptions import ConnectionClosed

from charging.ocpp.backend import ChargerBackend
from charging.ocpp.ledger import TransactionLedger
from charging.ocpp.values import meter_samples, parse_timestamp
from events import ChargerNotice, Event, now_utc

__all__ = ["FRAMES", "MAX_COMMAND_S", "Endpoint", "RpcError", "iso", "on"]

log = logging.getLogger(__name__)
# The library logs every frame here at INFO: keep it at WARNING unless debugging a charger.
FRAMES = logging.getLogger("charging.ocpp.frames")

MAX_COMMAND_S = 300.0  # the longest a command may wait for its answer

F = TypeVar("F", bound=Callable[..., Any])


def on(action: str) -> Callable[[F], F]:
    """The library's ``@on`` with a type, so handlers keep theirs."""
    return cast("Callable[[F], F]", routing.on(action))


def iso(ts: datetime) -> str:
    """OCPP's time format: UTC with a Z, milliseconds."""
    return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}Z"


class RpcError(Exception):
    """A CALLERROR to answer with: a version-neutral code, a cause, and the counter reason."""

    def __init__(self, code: str, cause: str, reason: str) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause
        self.reason = reason


# OCPP 1.6 spells two codes differently and lacks the 2.0.1 framework codes.
_V16_CODES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "MessageTypeNotSupported": "FormationViolation",
    "RpcFrameworkError": "FormationViolation",
}
# JSON-schema keyword that failed -> CallError code (OCPP-J 4.2.3 definitions).
_SCHEMA_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",  # CiString20Type etc.: the length is the type
    "required": "ProtocolError",  # "payload for action is incomplete"
    "additionalProperties": "FormatViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
}
# Recover the id of a CALL whose JSON is broken, to answer it rather than drop it.
_CALL_ID = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')
_CREDENTIALS = ("AuthorizationKey", "BasicAuthPassword")


class _RedactCredentials(logging.Filter):
    """Frames that set a charger's password (1.6 AuthorizationKey, 2.0.1 BasicAuthPassword)
    are never logged, whatever the log level."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                "[frame redacted: carries a credential]"
                if isinstance(a, str) and any(c in a for c in _CREDENTIALS)
                else a
                for a in record.args
            )
        return True


FRAMES.addFilter(_RedactCredentials())


class Endpoint(ChargePoint):  # type: ignore[misc]  # ocpp ships no type information
    """The central system's end of one charger's connection (version-specific subclasses add
    the handlers and set ``_ocpp_version``, ``_call``, ``_call_result`` and ``_actions``)."""

    _ocpp_version: ClassVar[str]
    _actions: ClassVar[frozenset[str]]  # every action the version defines

    def __init__(
        self,
        charger_id: str,
        connection: Any,
        backend: ChargerBackend,
        ledger: TransactionLedger,
        on_frame: Callable[[], None],
    ) -> None:
        super().__init__(charger_id, connection, response_timeout=MAX_COMMAND_S, logger=FRAMES)
        self.charger_id = charger_id
        self.backend = backend
        self.ledger = ledger
        self._on_frame = on_frame
        self._waiting = 0  # calls of ours awaiting the charger's answer

    # -- helpers for handlers -------------------------------------------------------------------

    def publish(self, event: Event) -> None:
        self.backend.publish(event)

    def problem(self, reason: str, detail: str = "") -> None:
        """A counted, logged rejection of (part of) a message."""
        self.backend.count("message", reason)
        log.warning("%s: %s %s", self.charger_id, reason, detail[:200])

    def notice(
        self,
        notice: str,
        status: str,
        detail: str = "",
        *,
        ts: datetime | None = None,
        severity: int | None = None,
    ) -> None:
        """A :class:`ChargerNotice` (stamped now unless the message carried a time)."""
        self.publish(
            ChargerNotice(
                device_id=self.charger_id,
                ts=ts or now_utc(),
                notice=notice,
                status=status,
                detail=detail,
                severity=severity,
            )
        )

    def stamp(self, value: object, received: datetime) -> datetime:
        """The charger's timestamp, or *received* if it sent none we can read (counted)."""
        if value is None:
            return received
        ts = parse_timestamp(value)
        if ts is None:
            self.problem("bad_timestamp", repr(value))
            return received
        return ts

    def publish_meter(
        self,
        connector_id: int,
        transaction_id: str | None,
        meter_values: object,
        received: datetime,
    ) -> None:
        samples, problems = meter_samples(
            self.charger_id, connector_id, transaction_id, meter_values, received
        )
        for reason in problems:
            self.problem(reason)
        for sample in samples:
            self.publish(sample)

    # -- outgoing calls (commands) --------------------------------------------------------------

    async def call(
        self,
        payload: Any,
        suppress: bool = True,
        unique_id: str | None = None,
        skip_schema_validation: bool = False,
    ) -> Any:
        self._waiting += 1
        try:
            return await super().call(
                payload,
                suppress=suppress,
                unique_id=unique_id or str(uuid.uuid4()),
                skip_schema_validation=skip_schema_validation,
            )
        finally:
            self._waiting -= 1

    def check(self, message_type: int, action: str, payload: object) -> None:
        """Validate *payload* against the version's JSON schema; :class:`RpcError` if not."""
        try:
            validator = get_validator(message_type, action, self._ocpp_version)
        except (OSError, ValueError):
            raise RpcError("NotSupported", f"no schema for {action}", "not_supported") from None
        error = next(iter(validator.iter_errors(payload)), None)
        if error is None:
            return
        where = "/".join(str(p) for p in error.absolute_path)
        cause = f"{where}: {error.message}" if where else str(error.message)
        code = _SCHEMA_CODES.get(error.validator, "PropertyConstraintViolation")
        raise RpcError(code, cause[:200], "validation")

    # -- receiving ------------------------------------------------------------------------------

    async def route_message(self, raw_msg: str | bytes) -> None:
        self._on_frame()  # any frame, even garbage, shows the charger is alive
        try:
            await self._route(raw_msg)
        except ConnectionClosed:
            raise  # the end of the connection, handled by the session
        except Exception:
            # A bug of ours must cost one frame, not the charger's connection.
            log.exception("%s: routing a frame failed", self.charger_id)
            self.backend.count("message", "internal_error")

    async def _route(self, raw_msg: str | bytes) -> None:
        try:
            frame = json.loads(raw_msg)
        except ValueError:  # JSONDecodeError, UnicodeDecodeError
            await self._unanswerable(raw_msg, "not valid JSON")
            return
        if not isinstance(frame, list) or not frame:
            await self._unanswerable(raw_msg, "not an OCPP-J array")
            return
        kind = frame[0] if type(frame[0]) is int else None
        uid = frame[1] if len(frame) > 1 and isinstance(frame[1], str) and frame[1] else None
        if kind == MessageType.Call:
            await self._on_call(frame, uid, raw_msg)
        elif kind is not None and kind in (MessageType.CallResult, MessageType.CallError):
            self._on_response(frame, uid, kind)
        elif kind in (5, 6) and self._ocpp_version == "2.1":
            # 2.1 CALLRESULTERROR / SEND: never answered; we send no SEND subscriptions.
            self.problem("unsupported_message_type", f"type {kind}")
        else:
            self.problem("bad_message_type", repr(frame[0])[:40])
            if uid is not None:
                await self._answer_error(uid, "MessageTypeNotSupported", "unknown message type")
            elif self._ocpp_version != "1.6":
                await self._answer_error("-1", "RpcFrameworkError", "unknown message type")

    async def _unanswerable(self, raw: str | bytes, cause: str) -> None:
        """A frame we cannot parse: answer if its CALL id can be recovered from the text
        (2.0.1+: with message id "-1" otherwise); 1.6 has no way to answer it."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        self.problem("malformed", f"{cause}: {text[:120]!r}")
        found = _CALL_ID.match(text)
        if found:
            await self._answer_error(found.group(1), "FormatViolation", cause)
        elif self._ocpp_version != "1.6":
            await self._answer_error("-1", "RpcFrameworkError", cause)

    async def _on_call(self, frame: list[Any], uid: str | None, raw: str | bytes) -> None:
        if uid is None:
            await self._unanswerable(raw, "a CALL needs a string message id")
            return
        if len(frame) != 4 or not isinstance(frame[2], str):
            self.problem("malformed", f"CALL {uid}: not [2, id, action, payload]")
            await self._answer_error(uid, "RpcFrameworkError", "a CALL is [2, id, action, payload]")
            return
        if not isinstance(frame[3], dict):
            self.problem("malformed", f"CALL {uid}: payload is not an object")
            await self._answer_error(uid, "FormatViolation", "the payload must be a JSON object")
            return
        await self._dispatch(Call(uid, frame[2], frame[3]))

    def _on_response(self, frame: list[Any], uid: str | None, kind: int) -> None:
        """Hand a CALLRESULT/CALLERROR to the waiting ``call()``. Responses are never
        answered, so a bad or unexpected one is only counted."""
        if uid is None or len(frame) != (3 if kind == MessageType.CallResult else 5):
            self.problem("malformed", "response frame of the wrong shape")
            return
        if not self._waiting:
            self.problem("unexpected_response", f"id {uid!r}")
            return
        message = (
            CallResult(uid, frame[2]) if kind == MessageType.CallResult else CallError(*frame[1:5])
        )
        self._response_queue.put_nowait(message)

    async def _dispatch(self, call: Any) -> None:
        handler = self.route_map.get(call.action, {}).get("_on_action")
        if handler is None:
            if call.action in self._actions:
                self.problem("not_supported", call.action)
                await self._answer_error(
                    call.unique_id, "NotSupported", f"{call.action} is not supported"
                )
            else:
                self.problem("not_implemented", call.action[:60])
                await self._answer_error(call.unique_id, "NotImplemented", "unknown action")
            return
        try:
            self.check(MessageType.Call, call.action, call.payload)
        except RpcError as e:
            self.problem(e.reason, f"{call.action}: {e.cause}")
            await self._answer_error(call.unique_id, e.code, e.cause)
            return
        try:
            result = handler(**camel_to_snake_case(call.payload))
            if inspect.isawaitable(result):
                result = await result
            payload = snake_to_camel_case(remove_nones(serialize_as_dict(result)))
            self.check(MessageType.CallResult, call.action, payload)  # our own bugs
        except Exception:
            log.exception("%s: handling %s failed", self.charger_id, call.action)
            self.backend.count("message", "internal_error")
            await self._answer_error(call.unique_id, "InternalError", "the central system failed")
            return
        await self._send(CallResult(call.unique_id, payload).to_json())

    async def _answer_error(self, uid: str, code: str, description: str) -> None:
        if self._ocpp_version == "1.6":
            code = _V16_CODES.get(code, code)
        await self._send(CallError(uid, code, description[:255], {}).to_json())
