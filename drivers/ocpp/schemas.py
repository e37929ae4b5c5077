"""OCPP JSON-schema validation, the one job the ``ocpp`` library still does for us.

The library ships every message's schema and builds a jsonschema validator per (message,
version). jsonschema walks the schema for every payload (85 µs for a 1.6 MeterValues, a tenth
of the gateway's whole cost per message), so each schema is also compiled once into Python
code (fastjsonschema: 3 µs) that decides valid / not valid; only a payload it refuses goes
through the library's validator, which names the first failure and so the CallError code
OCPP-J prescribes. Formats are not checked (neither does the library: a charger's odd
timestamp is read leniently and counted, not refused). Pure: no I/O after a schema is loaded.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import fastjsonschema
from ocpp.messages import MessageType, get_validator

__all__ = ["CALL", "CALL_RESULT", "RpcError", "check", "has_schema"]

CALL = int(MessageType.Call)
CALL_RESULT = int(MessageType.CallResult)

# JSON-schema keyword that failed -> CallError code (OCPP-J 4.2.3 definitions).
_SCHEMA_CODES = {
    "type": "TypeConstraintViolation",
    "maxLength": "TypeConstraintViolation",  # CiString20Type etc.: the length is the type
    "required": "ProtocolError",  # "payload for action is incomplete"
    "additionalProperties": "FormatViolation",
    "minItems": "OccurrenceConstraintViolation",
    "maxItems": "OccurrenceConstraintViolation",
}
# 1.6 schemas whose decimals carry a precision (multipleOf 0.1): validated with Decimals, as
# the library does, or 21.4 would fail as 21.399999999999995.
_DECIMAL = {
    (CALL, "SetChargingProfile", "1.6"),
    (CALL, "RemoteStartTransaction", "1.6"),
    (CALL_RESULT, "GetCompositeSchedule", "1.6"),
}


class RpcError(Exception):
    """A CALLERROR to answer with: a version-neutral code, a cause, and the counter reason."""

    def __init__(self, code: str, cause: str, reason: str) -> None:
        super().__init__(cause)
        self.code = code
        self.cause = cause
        self.reason = reason


@lru_cache(maxsize=512)
def _validator(message_type: int, action: str, version: str) -> Any:
    """The library's validator, or ``None`` if the version has no such message."""
    parse_float = decimal.Decimal if (message_type, action, version) in _DECIMAL else float
    try:
        return get_validator(message_type, action, version, parse_float=parse_float)
    except (OSError, ValueError):
        return None


def _any_text(value: str) -> bool:
    return True


_NO_FORMATS = {"date-time": _any_text, "uri": _any_text}


@lru_cache(maxsize=512)
def _compiled(message_type: int, action: str, version: str) -> Callable[[Any], Any] | None:
    """The schema compiled to code, or ``None`` (no schema; decimal precision schemas)."""
    validator = _validator(message_type, action, version)
    if validator is None or (message_type, action, version) in _DECIMAL:
        return None
    try:
        compiled: Callable[[Any], Any] = fastjsonschema.compile(
            validator.schema, formats=_NO_FORMATS
        )
    except fastjsonschema.JsonSchemaDefinitionException:
        return None
    return compiled


def has_schema(message_type: int, action: str, version: str) -> bool:
    return _validator(message_type, action, version) is not None


def check(message_type: int, action: str, version: str, payload: object) -> None:
    """Validate *payload* (camelCase, as on the wire); :class:`RpcError` if it does not fit."""
    fast = _compiled(message_type, action, version)
    if fast is not None:
        try:
            fast(payload)
            return
        except fastjsonschema.JsonSchemaValueException:
            pass  # the library's validator says exactly what is wrong
    validator = _validator(message_type, action, version)
    if validator is None:
        raise RpcError("NotSupported", f"no schema for {action}", "not_supported")
    if (message_type, action, version) in _DECIMAL:
        payload = json.loads(json.dumps(payload), parse_float=decimal.Decimal)
    error = next(iter(validator.iter_errors(payload)), None)
    if error is None:
        return
    where = "/".join(str(p) for p in error.absolute_path)
    cause = f"{where}: {error.message}" if where else str(error.message)
    code = _SCHEMA_CODES.get(error.validator, "PropertyConstraintViolation")
    raise RpcError(code, cause[:200], "validation")
