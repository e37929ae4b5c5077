"""OCPP JSON-schema validation, the one job the ``ocpp`` library still does for us.

The library ships every message's schema and builds a jsonschema validator per (message,
version); we keep its validators (built once, cached) and turn the first failure into the
CallError code OCPP-J prescribes. Pure: no I/O after a validator is first loaded.
"""

from __future__ import annotations

import decimal
import json
from functools import lru_cache
from typing import Any

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


def has_schema(message_type: int, action: str, version: str) -> bool:
    return _validator(message_type, action, version) is not None


def check(message_type: int, action: str, version: str, payload: object) -> None:
    """Validate *payload* (camelCase, as on the wire); :class:`RpcError` if it does not fit."""
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
