"""Structured logging: plain or one JSON object per line, with secrets redacted.

Problems are logged once per episode by the code that sees them (see ``OnceLogger``); this
module only formats and scrubs.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any

from drivers.once import OnceLogger as _DriverOnceLogger

_SECRET_PATTERNS = [
    re.compile(r"(?i)(password|passwd|secret|token|authorization)(\"?\s*[:=]\s*\"?)([^\s\",}]+)"),
    re.compile(r"(?i)((?:bearer|basic)\s+)([A-Za-z0-9._~+/=-]+)"),
    re.compile(r"(?i)(://[^:/@\s]+:)([^@\s]+)(@)"),
    # A plate camera's push URL carries its secret: /cameras/{id}/{secret}/...
    re.compile(r"(/cameras/[^/\s]+/)([^/\s?\"']+)"),
]


def redact(text: str) -> str:
    """Blank out anything that looks like a credential."""
    text = _SECRET_PATTERNS[1].sub(r"\1***", text)
    text = _SECRET_PATTERNS[0].sub(r"\1\2***", text)
    text = _SECRET_PATTERNS[2].sub(r"\1***\3", text)
    return _SECRET_PATTERNS[3].sub(r"\1***", text)


_RESERVED = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact(record.getMessage()),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                out[key] = redact(str(value)) if isinstance(value, str) else value
        if record.exc_info:
            out["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


class PlainFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        base = super().format(record)
        extras = {
            k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")
        }
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(base)


def setup_logging(level: str = "INFO", json_format: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if json_format else PlainFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in (
        "aiosqlite",
        "asyncio",
        "uvicorn.access",
        "amqtt",
        "transitions",
        "alembic",
        "ocpp",
        "drivers.ocpp.frames",
        "websockets",
        "httpx",  # the demo's simulated cameras and app: one line per request
        "httpcore",
    ):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # The Modbus hub reports a bus's problems once per episode; pymodbus itself would log
    # every timeout and every failed reconnect of a long outage.
    logging.getLogger("pymodbus").setLevel(logging.DEBUG if level == "DEBUG" else logging.CRITICAL)


class OnceLogger(_DriverOnceLogger):
    """Report a problem once when it starts and once when it clears; stay quiet in between
    (``drivers.once.OnceLogger``, with credentials redacted from the reason)."""

    def shown(self, reason: str) -> str:
        return redact(reason)
