"""Refused requests: a 422 that can always be encoded, and one log line per reason a minute.

Answered as a Problem (gateway.api.problems) whose ``errors`` list the fields. FastAPI's own
handler echoes the offending input; a lone surrogate, NaN or Infinity cannot be
encoded as JSON, so a hostile body turned into a 500 and two tracebacks. Here every value the
error carries is made JSON-safe (or dropped), and a flood of bad requests is a metric, not a
flood of log lines.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from gateway.api.problems import problem
from gateway.metrics import FastCounter

log = logging.getLogger(__name__)

MAX_ECHO_CHARS = 200  # longer strings are cut: an error body never grows with the input
MAX_ECHO_ITEMS = 20
MAX_ECHO_DEPTH = 4
MAX_ERRORS = 20  # a body with a thousand bad fields answers the first twenty


def safe_text(value: str) -> str:
    """*value* as text JSON can carry: lone surrogates escaped, cut at MAX_ECHO_CHARS."""
    cut = value[:MAX_ECHO_CHARS] + ("…" if len(value) > MAX_ECHO_CHARS else "")
    return cut.encode("utf-8", "backslashreplace").decode("utf-8")


def json_safe(value: Any, depth: int = 0) -> Any:
    """A JSON-encodable (strict: no NaN) stand-in for *value*, bounded in size and depth."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value if abs(value) < 2**63 else f"an integer of {value.bit_length()} bits"
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return safe_text(value)
    if depth >= MAX_ECHO_DEPTH:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:MAX_ECHO_ITEMS]
        return {safe_text(str(k)): json_safe(v, depth + 1) for k, v in items}
    if isinstance(value, list | tuple):
        return [json_safe(v, depth + 1) for v in value[:MAX_ECHO_ITEMS]]
    return safe_text(str(value))


def error_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """The Problem's ``errors`` (pydantic's loc/msg/type/input/ctx), every value JSON-safe."""
    out: list[dict[str, Any]] = []
    for err in list(errors)[:MAX_ERRORS]:
        item: dict[str, Any] = {
            "loc": [json_safe(p) for p in err.get("loc", ())][:MAX_ECHO_ITEMS],
            "msg": safe_text(str(err.get("msg", ""))),
            "type": safe_text(str(err.get("type", ""))),
        }
        if "input" in err:
            item["input"] = json_safe(err["input"])
        if isinstance(err.get("ctx"), dict):
            item["ctx"] = json_safe(err["ctx"])
        out.append(item)
    return out


class RejectionLog:
    """At most one log line per reason per ``interval_s``; every rejection is counted."""

    def __init__(
        self,
        counter: FastCounter,
        interval_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.counter = counter
        self.interval_s = interval_s
        self.clock = clock
        self._last: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def rejected(self, reason: str, line: str) -> bool:
        """Count it; log *line* unless this reason was logged within the interval (True if
        logged)."""
        self.counter.labels(reason).inc()
        now = self.clock()
        last = self._last.get(reason)
        if last is not None and now - last < self.interval_s:
            self._quiet[reason] = self._quiet.get(reason, 0) + 1
            return False
        if len(self._last) > 1000:  # reasons come from a bounded set; stay bounded anyway
            self._last.clear()
        self._last[reason] = now
        quiet = self._quiet.pop(reason, 0)
        more = f" ({quiet} more like it not logged)" if quiet else ""
        log.warning("%s%s", line, more)
        return True


def validation_handler(rejections: RejectionLog) -> Any:
    async def handle(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        detail = error_details(errors)
        first = detail[0] if detail else {"type": "invalid", "loc": []}
        reason = str(first["type"])[:40]
        where = ".".join(str(p) for p in first["loc"])[:100]
        rejections.rejected(
            reason,
            f"rejected {request.method} {safe_text(request.url.path)}: {reason} at {where}",
        )
        summary = f"{where or 'request'}: {first.get('msg', 'invalid')}"
        more = f" (and {len(detail) - 1} more)" if len(detail) > 1 else ""
        return problem(422, safe_text(summary) + more, "invalid", errors=detail)

    return handle
