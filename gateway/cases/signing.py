"""HMAC-SHA256 signatures of case reports (outgoing) and status callbacks (incoming).

One scheme both ways, so the town's case system needs one verifier and one signer::

    X-Citygate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, b"<t>." + body)>

The timestamp is signed with the body, so a captured request cannot be replayed outside the
tolerance window, and the body is signed as the exact bytes sent (no re-serialisation on
either side). Pure: the caller supplies the secret, the bytes and the current time.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

__all__ = ["HEADER", "SignatureError", "sign", "signature", "verify"]

HEADER = "X-Citygate-Signature"

Reason = Literal["missing", "malformed", "stale", "mismatch"]

_HEX_LEN = 64  # SHA-256
_MAX_HEADER = 1024  # a real header is ~80 characters; more is hostile


class SignatureError(Exception):
    """A request whose signature does not prove it came from the peer, now.

    ``reason`` is one of ``missing``, ``malformed``, ``stale``, ``mismatch`` (a metric label).
    """

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"signature {reason}")
        self.reason: Reason = reason


def signature(secret: bytes, body: bytes, timestamp: int) -> str:
    """The hex HMAC-SHA256 of ``b"<timestamp>." + body``."""
    return hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Citygate-Signature`` header value for *body* sent at *timestamp*."""
    if not secret:
        raise ValueError("an empty secret signs nothing")
    return f"t={timestamp},v1={signature(secret, body, timestamp)}"


def _parse(header: str) -> tuple[int, list[str]]:
    """``(t, [v1, ...])``; several ``v1`` values are allowed so a secret can be rotated."""
    if len(header) > _MAX_HEADER:
        raise SignatureError("malformed")
    timestamp: int | None = None
    candidates: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise SignatureError("malformed")
        if key == "t":
            if timestamp is not None or not value.isascii() or not value.isdigit():
                raise SignatureError("malformed")
            timestamp = int(value)
        elif key == "v1":
            if len(value) != _HEX_LEN or not all(c in "0123456789abcdef" for c in value.lower()):
                raise SignatureError("malformed")
            candidates.append(value.lower())
        # other keys (a future scheme "v2=") are ignored, not refused
    if timestamp is None or not candidates:
        raise SignatureError("malformed")
    return timestamp, candidates


def verify(secret: bytes, header: str | None, body: bytes, now: int, tolerance_s: int) -> None:
    """Accept *body* only if *header* signs it with *secret* within ``tolerance_s`` of *now*.

    The signature is checked before the age, so ``stale`` always means "authentic but too old
    or too new": a clock problem on one side, or a replay; never a forgery.
    """
    if not secret:
        raise ValueError("an empty secret verifies nothing")
    if header is None or not header.strip():
        raise SignatureError("missing")
    timestamp, candidates = _parse(header)
    expected = signature(secret, body, timestamp)
    # Compare against every candidate (no early exit), in constant time each.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("mismatch")
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError("stale")
