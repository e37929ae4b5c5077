"""The sans-I/O OCPP-J core of one charger connection, in the style of h11/wsproto.

Frame text and the time in; answers (frames to send), events, counted problems and the
charger's answers to our calls out. No sockets, no asyncio, no clock: the transport
(:mod:`drivers.ocpp.session`) owns the connection, reads the clock and hands both in.

Rules kept from the hardened RPC layer: every frame is a sign of life; every CALL gets a
CALLRESULT or the right CALLERROR (1.6 spellings for 1.6 chargers); a frame that cannot be
answered (no message id) is counted; a broken frame costs that frame only, the connection stays
usable; an oversized frame is refused the same way; a bug in a handler is an InternalError
answer, never a crash. Our calls carry fresh ids and a response is matched to its call by id.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import orjson
from ocpp.charge_point import camel_to_snake_case

from drivers.ocpp.handlers import Context, CoreBackend, Handler, Rejected
from drivers.ocpp.handlers16 import ACTIONS16, HANDLERS16
from drivers.ocpp.handlers201 import ACTIONS21, ACTIONS201, HANDLERS201
from drivers.ocpp.ledger import TransactionLedger
from drivers.ocpp.schemas import CALL, CALL_RESULT, RpcError, check
from events import Event

__all__ = [
    "MAX_FRAME",
    "SUBPROTOCOLS",
    "CallFailed",
    "NoCommonSubprotocol",
    "OcppConnection",
    "Received",
    "Response",
    "select_subprotocol",
    "snake",
    "version_of",
]

# In order of preference; ocpp1.6 is also what a charger offering no subprotocol speaks.
SUBPROTOCOLS = ("ocpp2.0.1", "ocpp2.1", "ocpp1.6")
MAX_FRAME = 512 * 1024  # characters: larger frames are refused (answered, not handled)
CALL_ERROR = 4

_VERSIONS = {"ocpp1.6": "1.6", "ocpp2.0.1": "2.0.1", "ocpp2.1": "2.1"}
_TABLES: dict[str, tuple[Mapping[str, Handler], frozenset[str]]] = {
    "1.6": (HANDLERS16, ACTIONS16),
    "2.0.1": (HANDLERS201, ACTIONS201),
    "2.1": (HANDLERS201, ACTIONS21),
}
# OCPP 1.6 spells two codes differently and lacks the 2.0.1 framework codes.
_V16_CODES = {
    "FormatViolation": "FormationViolation",
    "OccurrenceConstraintViolation": "OccurenceConstraintViolation",
    "MessageTypeNotSupported": "FormationViolation",
    "RpcFrameworkError": "FormationViolation",
}
# Recover the id of a CALL whose JSON is broken, to answer it rather than drop it.
_CALL_ID = re.compile(r'^\s*\[\s*2\s*,\s*"([^"\\]{1,64})"')


class NoCommonSubprotocol(ValueError):
    """The charger offers only subprotocols we do not speak."""


def select_subprotocol(offered: Sequence[str]) -> str | None:
    """The subprotocol to answer with: ``None`` if the charger offered none (OCPP-J: it then
    speaks 1.6 and the answer carries no header); :class:`NoCommonSubprotocol` if none fits."""
    if not offered:
        return None
    for protocol in SUBPROTOCOLS:
        if protocol in offered:
            return protocol
    raise NoCommonSubprotocol(
        f"no supported subprotocol; expected one of {', '.join(SUBPROTOCOLS)}"
    )


def version_of(subprotocol: str | None) -> str:
    """``ocpp1.6``, ``ocpp2.0.1`` or ``ocpp2.1`` for a negotiated subprotocol (or none)."""
    return subprotocol or "ocpp1.6"


@lru_cache(maxsize=4096)
def _snake_key(key: str) -> str:
    converted: dict[str, None] = camel_to_snake_case({key: None})
    return next(iter(converted))


def snake(data: Any) -> Any:
    """The library's camelCase -> snake_case conversion, with the key conversion cached."""
    if isinstance(data, dict):
        return {_snake_key(k): snake(v) for k, v in data.items()}
    if isinstance(data, list):
        return [snake(v) for v in data]
    return data


def _dumps(frame: list[Any]) -> str:
    return orjson.dumps(frame).decode()


@dataclass(frozen=True, slots=True)
class CallFailed:
    """A CALLERROR answer to one of our calls."""

    code: str
    description: str
    details: Any


@dataclass(frozen=True, slots=True)
class Response:
    """The charger's answer to our call *unique_id*: a ``result`` (snake_case payload) or an
    ``error``; ``invalid`` says why a result does not fit the action's schema."""

    unique_id: str
    action: str
    result: dict[str, Any] | None = None
    error: CallFailed | None = None
    invalid: str | None = None


_TRANSACTION_ACTIONS = frozenset({"StartTransaction", "StopTransaction", "TransactionEvent"})


@dataclass(slots=True)
class Received:
    """What one frame produced, in order of occurrence."""

    replies: list[str] = field(default_factory=list)  # frames to send, in order
    events: list[Event] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (counter reason, detail)
    responses: list[Response] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # handler exceptions (for the log)
    # Answers to transaction-related messages (OCPP 1.6 §4.10: the charger retries them until
    # answered, so the answer must wait until what they said is durable).
    transaction: bool = False


class OcppConnection:
    """The protocol state of one charger's connection (a new one per connection; the
    transaction ledger outlives it)."""

    def __init__(
        self,
        charger_id: str,
        protocol: str,
        backend: CoreBackend,
        ledger: TransactionLedger | None = None,
        *,
        max_frame: int = MAX_FRAME,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        if protocol not in _VERSIONS:
            raise ValueError(f"unknown OCPP protocol {protocol!r}")
        self.charger_id = charger_id
        self.protocol = protocol
        self.version = _VERSIONS[protocol]
        self.backend = backend
        self.ledger = ledger if ledger is not None else TransactionLedger()
        self.max_frame = max_frame
        self._new_id = new_id
        self._handlers, self._actions = _TABLES[self.version]
        self.pending: dict[str, str] = {}  # our calls awaiting an answer: id -> action

    # -- our calls ------------------------------------------------------------------------------

    def call(
        self, action: str, payload: dict[str, Any], *, validate: bool = True
    ) -> tuple[str, str]:
        """A CALL frame for *action* (camelCase payload) and its id; :class:`RpcError` if the
        payload does not fit the action's schema (nothing is then pending)."""
        if validate:
            check(CALL, action, self.version, payload)
        unique_id = self._new_id()
        self.pending[unique_id] = action
        return unique_id, _dumps([CALL, unique_id, action, payload])

    def forget(self, unique_id: str) -> None:
        """The caller no longer waits for *unique_id* (a late answer is then unexpected)."""
        self.pending.pop(unique_id, None)

    # -- receiving ------------------------------------------------------------------------------

    def receive(self, text: str | bytes, now: datetime) -> Received:
        """Everything one frame from the charger produces; never raises."""
        out = Received()
        try:
            self._receive(text, now, out)
        except Exception as exc:  # a bug of ours must cost one frame, not the connection
            out.problems.append(("internal_error", f"routing a frame failed: {exc!r}"[:200]))
            out.failures.append(f"{type(exc).__name__}: {exc}")
        return out

    def _receive(self, raw: str | bytes, now: datetime, out: Received) -> None:
        if len(raw) > self.max_frame:
            self._unanswerable(
                raw[:200], f"frame too large ({len(raw)} > {self.max_frame})", out, "oversized"
            )
            return
        try:
            frame = orjson.loads(raw)
        except ValueError:  # JSONDecodeError, invalid UTF-8
            self._unanswerable(raw, "not valid JSON", out)
            return
        if not isinstance(frame, list) or not frame:
            self._unanswerable(raw, "not an OCPP-J array", out)
            return
        kind = frame[0] if type(frame[0]) is int else None
        uid = frame[1] if len(frame) > 1 and isinstance(frame[1], str) and frame[1] else None
        if kind == CALL:
            self._on_call(frame, uid, raw, now, out)
        elif kind in (CALL_RESULT, CALL_ERROR):
            self._on_response(frame, uid, kind, out)
        elif kind in (5, 6) and self.version == "2.1":
            # 2.1 CALLRESULTERROR / SEND: never answered; we send no SEND subscriptions.
            out.problems.append(("unsupported_message_type", f"type {kind}"))
        else:
            out.problems.append(("bad_message_type", repr(frame[0])[:40]))
            if uid is not None:
                self._error(out, uid, "MessageTypeNotSupported", "unknown message type")
            elif self.version != "1.6":
                self._error(out, "-1", "RpcFrameworkError", "unknown message type")

    def _unanswerable(
        self, raw: str | bytes, cause: str, out: Received, reason: str = "malformed"
    ) -> None:
        """A frame we cannot parse: answer if its CALL id can be recovered from the text
        (2.0.1+: with message id "-1" otherwise); 1.6 has no way to answer it."""
        text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
        out.problems.append((reason, f"{cause}: {text[:120]!r}"))
        found = _CALL_ID.match(text)
        if found:
            self._error(out, found.group(1), "FormatViolation", cause)
        elif self.version != "1.6":
            self._error(out, "-1", "RpcFrameworkError", cause)

    def _on_call(
        self, frame: list[Any], uid: str | None, raw: str | bytes, now: datetime, out: Received
    ) -> None:
        if uid is None:
            self._unanswerable(raw, "a CALL needs a string message id", out)
            return
        if len(frame) != 4 or not isinstance(frame[2], str):
            out.problems.append(("malformed", f"CALL {uid}: not [2, id, action, payload]"))
            self._error(out, uid, "RpcFrameworkError", "a CALL is [2, id, action, payload]")
            return
        action, payload = frame[2], frame[3]
        if not isinstance(payload, dict):
            out.problems.append(("malformed", f"CALL {uid}: payload is not an object"))
            self._error(out, uid, "FormatViolation", "the payload must be a JSON object")
            return
        handler = self._handlers.get(action)
        if handler is None or action not in self._actions:
            if action in self._actions:
                out.problems.append(("not_supported", action))
                self._error(out, uid, "NotSupported", f"{action} is not supported")
            else:
                out.problems.append(("not_implemented", action[:60]))
                self._error(out, uid, "NotImplemented", "unknown action")
            return
        try:
            check(CALL, action, self.version, payload)
        except RpcError as e:
            out.problems.append((e.reason, f"{action}: {e.cause}"))
            self._error(out, uid, e.code, e.cause)
            return
        ctx = Context(self.charger_id, self.version, now, self.backend, self.ledger)
        try:
            answer = handler(ctx, **snake(payload))
            check(CALL_RESULT, action, self.version, answer)  # our own bugs
        except Rejected as e:  # a value out of bounds: the whole CALL is refused
            out.problems.extend(ctx.problems)
            out.problems.append((e.reason, f"{action}: {e.cause}"[:200]))
            self._error(out, uid, e.code, e.cause)
            return
        except Exception as exc:
            out.problems.extend(ctx.problems)
            out.problems.append(("internal_error", f"handling {action} failed"))
            out.failures.append(f"handling {action}: {type(exc).__name__}: {exc}")
            self._error(out, uid, "InternalError", "the central system failed")
            return
        out.events.extend(ctx.events)
        out.problems.extend(ctx.problems)
        out.replies.append(_dumps([CALL_RESULT, uid, answer]))
        if action in _TRANSACTION_ACTIONS or (
            action == "MeterValues" and payload.get("transactionId") is not None
        ):
            out.transaction = True

    def _on_response(self, frame: list[Any], uid: str | None, kind: int, out: Received) -> None:
        """Match a CALLRESULT/CALLERROR to our call. Responses are never answered, so a bad
        or unexpected one is only counted."""
        if uid is None or len(frame) != (3 if kind == CALL_RESULT else 5):
            out.problems.append(("malformed", "response frame of the wrong shape"))
            return
        action = self.pending.pop(uid, None)
        if action is None:
            out.problems.append(("unexpected_response", f"id {uid!r}"[:80]))
            return
        if kind == CALL_ERROR:
            code, description, details = frame[2:5]
            out.responses.append(
                Response(uid, action, error=CallFailed(str(code), str(description), details))
            )
            return
        payload = frame[2]
        try:
            check(CALL_RESULT, action, self.version, payload)
        except RpcError as e:
            shown = snake(payload) if isinstance(payload, dict) else {}
            out.responses.append(Response(uid, action, result=shown, invalid=e.cause))
            return
        out.responses.append(Response(uid, action, result=snake(payload)))

    def not_recorded(self, reply: str) -> str:
        """The CALLERROR that replaces *reply* (an answer to a transaction message) when what
        it acknowledges could not be made durable in time. The charger sends the message
        again, and the ledger recognises the repeat."""
        uid = orjson.loads(reply)[1]
        out = Received()
        self._error(out, str(uid), "InternalError", "not recorded yet: send it again")
        return out.replies[0]

    def _error(self, out: Received, uid: str, code: str, description: str) -> None:
        if self.version == "1.6":
            code = _V16_CODES.get(code, code)
        out.replies.append(_dumps([CALL_ERROR, uid, code, description[:255], {}]))
