"""Answering a request: the response copies what RFC 3261 §8.2.6 says it must.

All Via values (in order), From, To, Call-ID and CSeq are copied; the To gets a tag when it
has none and the status is above 100. Without an explicit ``to_tag`` the tag is derived from
the request (Call-ID, From tag, CSeq), so a retransmitted request answered again gets the same
tag without any state or randomness here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from drivers.sip.fields import format_params, parse_name_addr
from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest, SipResponse

__all__ = ["REASONS", "derived_tag", "response_to", "tag_for"]

REASONS = {
    100: "Trying",
    180: "Ringing",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    423: "Interval Too Brief",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    489: "Bad Event",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    504: "Server Time-out",
}


def derived_tag(request: SipRequest) -> str:
    """A stable To tag for this request: same request, same tag."""
    return tag_for(request.call_id, request.from_.tag or "", request.headers.get("CSeq"))


def tag_for(call_id: str, from_tag: str, cseq: str | None) -> str:
    """The derived To tag from the three values it depends on (the quick lane has them
    without a parsed request)."""
    seed = f"{call_id}\x00{from_tag}\x00{cseq}".encode()
    return hashlib.sha256(seed).hexdigest()[:12]


def _with_tag(to_value: str, tag: str) -> str:
    addr = parse_name_addr(to_value)
    if addr.tag:
        return to_value
    display = f'"{addr.display}" ' if addr.display else ""
    return f"{display}<{addr.uri}>{format_params({**addr.params, 'tag': tag})}"


def response_to(
    request: SipRequest,
    status: int,
    reason: str | None = None,
    *,
    to_tag: str | None = None,
    headers: Iterable[tuple[str, str]] = (),
    body: bytes = b"",
    content_type: str | None = None,
) -> SipResponse:
    """The response to ``request``. ``headers`` are appended after the copied ones; a body
    without ``content_type`` is sent without Content-Type (the caller's choice)."""
    if not 100 <= status <= 699:
        raise ValueError(f"status {status} outside 100..699")
    items: list[tuple[str, str]] = [("Via", via) for via in request.headers.get_all("Via")]
    items.append(("From", request.headers.get("From") or ""))
    to_value = request.headers.get("To") or ""
    if status > 100:
        to_value = _with_tag(to_value, to_tag or derived_tag(request))
    items.append(("To", to_value))
    items.append(("Call-ID", request.call_id))
    items.append(("CSeq", request.headers.get("CSeq") or ""))
    items.extend(headers)
    if content_type is not None:
        items.append(("Content-Type", content_type))
    return SipResponse(
        status=status,
        reason=REASONS.get(status, "Unknown") if reason is None else reason,
        headers=Headers(items),
        body=body,
    )
