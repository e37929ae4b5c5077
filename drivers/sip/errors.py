"""The one error of the SIP core: a short machine reason the transport counts by."""

from __future__ import annotations

__all__ = ["SipParseError"]


class SipParseError(ValueError):
    """Input that cannot be read as SIP. ``reason`` is a short machine label for counters,
    such as ``bad_start_line``, ``too_large``, ``bad_content_length``, ``body_truncated``,
    ``missing_header:Call-ID``, ``too_many_headers``."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
