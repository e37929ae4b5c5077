"""The quick lane: a routine request in the one shape cams send it, read and answered without
the general header map.

Nearly every datagram a GB/T 28181 platform gets is a cam's MESSAGE (keepalive, position) or
a NOTIFY in its position subscription: the same handful of headers, spelt canonically, one
per line. ``read_quick`` reads exactly that shape and nothing else: any other name, a compact
form, a folded line, a repeated field, a second Via, a Content-Length that is not the body's,
an RFC 2543 branch or non-ASCII head gives ``None``, and the caller takes the general way
(``parse_message``), which is lenient and says why it refuses. ``quick_response`` answers it
byte for byte as ``response_to(stamp_received(request), status)`` would (the tests hold the
two ways to the same result over generated messages), so the lane changes cost, not meaning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from drivers.sip.errors import SipParseError
from drivers.sip.fields import MAGIC_COOKIE, Via, parse_via, stamped_via
from drivers.sip.responses import REASONS, tag_for

__all__ = ["QuickRequest", "quick_response", "read_quick"]

_METHODS = (b"MESSAGE ", b"NOTIFY ")
# The names the lane takes, spelt as the cams spell them; the general way takes the rest.
_ONCE = {"Via", "From", "To", "Call-ID", "CSeq", "Content-Type", "Content-Length"}
_OTHER = {
    "Max-Forwards", "User-Agent", "Date", "X-GB-Ver", "Event", "Subscription-State",
    "Contact", "Expires", "Allow",
}  # fmt: skip
_START = re.compile(r"(MESSAGE|NOTIFY) (sip:[!-~]+) SIP/2\.0")
# <sip:user@host> with an optional tag and nothing else: the shape the response can echo as is
_ADDR = re.compile(r"<(sip:[^<>\"\s;,]+)>(?:;tag=([A-Za-z0-9.!%*_+`'~\-]+))?")
_CSEQ = re.compile(r"([0-9]{1,10}) (MESSAGE|NOTIFY)")
_VIA = re.compile(r"SIP/2\.0/UDP [A-Za-z0-9.\-]+:[0-9]{1,5}(?:;[A-Za-z0-9.!%*_+`'~\-=]+)+")


@dataclass(frozen=True, slots=True)
class QuickRequest:
    method: str
    uri: str
    via: Via  # the top (and only) Via, as sent
    from_value: str
    from_uri: str
    from_tag: str
    to_value: str
    to_tag: str | None
    call_id: str
    cseq: str  # as sent ("12 MESSAGE"): echoed, and part of the derived To tag
    content_type: str
    body: bytes

    @property
    def key(self) -> tuple[str, ...]:
        """The server transaction key, as ``transactions.server_key`` makes it."""
        return ("3261", self.via.branch or "", self.via.sent_by, self.method)


def read_quick(data: bytes, max_size: int) -> QuickRequest | None:
    """*data* as a routine request, or None: not this shape (take the general way)."""
    if len(data) > max_size or not data.startswith(_METHODS):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    if not head.isascii() or b"\n\r" in head:
        return None
    lines = head.decode("ascii").split("\r\n")
    start = _START.fullmatch(lines[0])
    if start is None:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(": ")
        if not sep or "\n" in line or "\r" in line:
            return None
        if name in _ONCE:
            if name in fields:
                return None
        elif name not in _OTHER:
            return None
        fields[name] = value.strip()
    if len(fields.keys() & _ONCE) != len(_ONCE):
        return None
    body = data[end + 4 :]
    length = fields["Content-Length"]
    if not length.isdigit() or len(length) > 9 or int(length) != len(body):
        return None
    cseq = _CSEQ.fullmatch(fields["CSeq"])
    frm = _ADDR.fullmatch(fields["From"])
    to = _ADDR.fullmatch(fields["To"])
    call_id = fields["Call-ID"]
    if (
        cseq is None
        or cseq.group(2) != start.group(1)
        or frm is None
        or frm.group(2) is None
        or to is None
        or not call_id
        or " " in call_id
        or _VIA.fullmatch(fields["Via"]) is None
    ):
        return None
    try:
        via = parse_via(fields["Via"])
    except SipParseError:  # too many parameters, say: the general way refuses it and counts why
        return None
    branch = via.branch or ""
    if not branch.startswith(MAGIC_COOKIE) or len(branch) <= len(MAGIC_COOKIE) or via.port is None:
        return None
    return QuickRequest(
        method=start.group(1),
        uri=start.group(2),
        via=via,
        from_value=fields["From"],
        from_uri=frm.group(1),
        from_tag=frm.group(2),
        to_value=fields["To"],
        to_tag=to.group(2),
        call_id=call_id,
        cseq=fields["CSeq"],
        content_type=fields["Content-Type"],
        body=body,
    )


def quick_response(q: QuickRequest, source: tuple[str, int], status: int = 200) -> bytes:
    """The response to *q* from *source* (Via stamped on receipt, To tagged as
    ``response_to`` derives it), as bytes."""
    via = stamped_via(q.via, source).to_str()
    to = q.to_value
    if q.to_tag is None:
        to = f"{to};tag={tag_for(q.call_id, q.from_tag, q.cseq)}"
    return (
        f"SIP/2.0 {status} {REASONS[status]}\r\nVia: {via}\r\nFrom: {q.from_value}\r\n"
        f"To: {to}\r\nCall-ID: {q.call_id}\r\nCSeq: {q.cseq}\r\nContent-Length: 0\r\n\r\n"
    ).encode("ascii")
