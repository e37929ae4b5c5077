"""The DJI Cloud API envelope ``{tid, bid, timestamp, gateway, method, data, need_reply}``,
read from bytes with bounds and written back.

Every message a dock sends passes here first, so nothing in it may raise: whatever is wrong
(too big, not JSON, not an object, a field of the wrong type) comes back as a ``Rejection``
with a short reason the link counts. The reasons are a small closed set so they can become
Prometheus label values without exploding the series count.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_BYTES", "Envelope", "Rejection", "encode", "parse", "reply"]

MAX_BYTES = 64 * 1024  # a dock's largest osd is a few kB; anything far above is not a dock
MAX_ID = 128  # tid/bid are UUIDs in practice


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: ``reason`` is a label (``too_large``, ``not_json``,
    ``not_object``, ``bad_field``, ``bad_coordinates``, ...), ``detail`` free text for logs."""

    reason: str
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Envelope:
    tid: str
    bid: str
    timestamp_ms: int
    method: str  # "" for osd/state, which carry none
    data: dict[str, Any]
    gateway: str = ""
    need_reply: bool = False


def _id(obj: dict[str, Any], name: str) -> str | Rejection:
    value = obj.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_ID:
        return Rejection("bad_field", f"{name} must be a short string")
    if not value.isascii() and any("\ud800" <= c <= "\udfff" for c in value):
        # json.loads lets UTF-8-encoded surrogates through; a reply echoing them cannot be sent
        return Rejection("bad_field", f"{name} is not valid text")
    return value


def parse(raw: bytes, *, max_bytes: int = MAX_BYTES) -> Envelope | Rejection:
    """Read one envelope; never raises. ``tid``/``bid``/``method``/``gateway`` may be absent
    (osd messages carry no method), ``data`` must be an object."""
    if len(raw) > max_bytes:
        return Rejection("too_large", f"{len(raw)} bytes > {max_bytes}")
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        return Rejection("not_json", str(exc)[:100])
    if not isinstance(obj, dict):
        return Rejection("not_object", type(obj).__name__)
    ids: list[str] = []
    for name in ("tid", "bid", "method", "gateway"):
        got = _id(obj, name)
        if isinstance(got, Rejection):
            return got
        ids.append(got)
    ts = obj.get("timestamp", 0)
    if ts is None:
        ts = 0
    if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
        return Rejection("bad_field", "timestamp must be a number of milliseconds")
    if not 0 <= ts < 1e14:
        return Rejection("bad_field", "timestamp out of range")
    data = obj.get("data", {})
    if not isinstance(data, dict):
        return Rejection("bad_field", "data must be an object")
    need = obj.get("need_reply", 0)
    if need not in (0, 1, None):  # True == 1 and False == 0 pass too
        return Rejection("bad_field", "need_reply must be 0 or 1")
    return Envelope(ids[0], ids[1], int(ts), ids[2], data, ids[3], bool(need))


def encode(
    tid: str,
    bid: str,
    timestamp_ms: int,
    method: str,
    data: dict[str, Any],
    *,
    gateway: str | None = None,
    need_reply: int | None = None,
) -> bytes:
    """The bytes of an envelope (compact JSON, UTF-8; ``gateway``/``need_reply`` only when
    given, as DJI's own server omits them on downlinks)."""
    obj: dict[str, Any] = {"tid": tid, "bid": bid, "timestamp": timestamp_ms}
    if gateway is not None:
        obj["gateway"] = gateway
    if method:
        obj["method"] = method
    if need_reply is not None:
        obj["need_reply"] = need_reply
    obj["data"] = data
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def reply(env: Envelope, timestamp_ms: int, data: dict[str, Any]) -> bytes:
    """The ``*_reply`` to *env*: same tid, bid and method, the given data."""
    return encode(env.tid, env.bid, timestamp_ms, env.method, data)
