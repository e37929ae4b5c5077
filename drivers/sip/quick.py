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

``read_quick`` first tries one precompiled pattern over the whole datagram, the lines in the
order cams write them (``_CANONICAL``); a datagram it does not match is read line by line
(``read_lines``), which takes any order. The two read the same (tested).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from drivers.sip.fields import MAGIC_COOKIE, MAX_PARAMS, Via, stamped_via
from drivers.sip.responses import REASONS, tag_for

__all__ = ["QuickRequest", "quick_response", "read_quick"]

_METHODS = (b"MESSAGE ", b"NOTIFY ")
# The names the lane takes, spelt as the cams spell them; the general way takes the rest.
_ONCE = {"Via", "From", "To", "Call-ID", "CSeq", "Content-Type", "Content-Length"}
_OTHER = {
    "Max-Forwards", "User-Agent", "Date", "X-GB-Ver", "Event", "Subscription-State",
    "Contact", "Expires", "Allow",
}  # fmt: skip
_NAMES = _ONCE | _OTHER
_SEP, _ONE = itertools.repeat(": "), itertools.repeat(1)  # str.split(line, ": ", 1), mapped
_START = re.compile(r"(MESSAGE|NOTIFY) (sip:[!-~]+) SIP/2\.0")
# <sip:user@host> with an optional tag and nothing else: the shape the response can echo as is
_ADDR = re.compile(r"<(sip:[^<>\"\s;,]+)>(?:;tag=([A-Za-z0-9.!%*_+`'~\-]+))?")
_CSEQ = re.compile(r"([0-9]{1,10}) (MESSAGE|NOTIFY)")
# the sent-by host and port, and the parameters: no quotes, no spaces, so they read as they are
_VIA = re.compile(r"SIP/2\.0/UDP ([A-Za-z0-9.\-]+):([0-9]{1,5})((?:;[A-Za-z0-9.!%*_+`'~\-=]+)+)")
# The whole datagram in the order cams (and the simulator) write it: the seven lines of _ONCE
# in this order, any of _OTHER between them, each value without surrounding space, the Via
# ";rport;branch=" or ";branch=". Every class is a subset of what the line-by-line reading
# takes, so what this matches it reads the same (the tests compare the two); anything else
# is read line by line.
_TOKEN = rb"[A-Za-z0-9.!%*_+`'~\-]+"
_URI = rb"sip:[!#-+\--:=?-~]+"  # printable, no space, none of " , ; < >
_OTHERS = rb"(?:(?:" + b"|".join(n.encode() for n in sorted(_OTHER)) + rb"): [ -~]*\r\n)*"
_CANONICAL = re.compile(
    rb"(MESSAGE|NOTIFY) (sip:[!-~]+) SIP/2\.0\r\n" + _OTHERS
    + rb"Via: SIP/2\.0/UDP ([A-Za-z0-9.\-]+):([0-9]{1,5})(;rport)?;branch=(z9hG4bK" + _TOKEN
    + rb")\r\n" + _OTHERS
    + rb"From: (<(" + _URI + rb")>;tag=(" + _TOKEN + rb"))\r\n" + _OTHERS
    + rb"To: (<" + _URI + rb">(?:;tag=(" + _TOKEN + rb"))?)\r\n" + _OTHERS
    + rb"Call-ID: ([!-~]+)\r\n" + _OTHERS
    + rb"CSeq: ([0-9]{1,10} \1)\r\n" + _OTHERS
    + rb"Content-Type: ([!-~]+)\r\n" + _OTHERS
    + rb"Content-Length: ([0-9]{1,9})\r\n\r\n(.*)",
    re.DOTALL,
)  # fmt: skip


@dataclass(slots=True)  # not frozen: built per datagram (frozen: about 1 us more each)
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
    if len(data) > max_size:
        return None
    m = _CANONICAL.fullmatch(data)
    if m is not None:
        (method, uri, host, port, rport, branch, from_value, from_uri, from_tag, to_value,
         to_tag, call_id, cseq, content_type, length, body) = m.groups()  # fmt: skip
        if 0 < int(port) < 65536 and int(length) == len(body):
            params = (
                {"rport": "", "branch": branch.decode()} if rport else {"branch": branch.decode()}
            )
            return QuickRequest(
                method.decode(), uri.decode(), Via("UDP", host.decode(), int(port), params),
                from_value.decode(), from_uri.decode(), from_tag.decode(), to_value.decode(),
                None if to_tag is None else to_tag.decode(), call_id.decode(), cseq.decode(),
                content_type.decode(), body,
            )  # fmt: skip
    return read_lines(data, max_size)


def read_lines(data: bytes, max_size: int) -> QuickRequest | None:
    """``read_quick`` line by line: any order of the lines, spaces around the values."""
    if len(data) > max_size or not data.startswith(_METHODS):
        return None
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = data[:end]
    if not head.isascii() or b"\n\r" in head:
        return None
    text = head.decode("ascii")
    lines = text.split("\r\n")
    start = _START.fullmatch(lines[0])
    if start is None:
        return None
    fields = _fields(text, lines)
    if fields is None:
        return None
    body = data[end + 4 :]
    length = fields["Content-Length"].strip()
    if not length.isdigit() or len(length) > 9 or int(length) != len(body):
        return None
    cseq_text, from_value, to_value = (fields[n].strip() for n in ("CSeq", "From", "To"))
    cseq = _CSEQ.fullmatch(cseq_text)
    frm = _ADDR.fullmatch(from_value)
    to = _ADDR.fullmatch(to_value)
    call_id = fields["Call-ID"].strip()
    if (
        cseq is None
        or cseq.group(2) != start.group(1)
        or frm is None
        or frm.group(2) is None
        or to is None
        or not call_id
        or " " in call_id
    ):
        return None
    via = _via(fields["Via"].strip())
    if via is None:
        return None
    branch = via.branch or ""
    if not branch.startswith(MAGIC_COOKIE) or len(branch) <= len(MAGIC_COOKIE):
        return None
    return QuickRequest(
        method=start.group(1),
        uri=start.group(2),
        via=via,
        from_value=from_value,
        from_uri=frm.group(1),
        from_tag=frm.group(2),
        to_value=to_value,
        to_tag=to.group(2),
        call_id=call_id,
        cseq=cseq_text,
        content_type=fields["Content-Type"].strip(),
        body=body,
    )


def _fields(text: str, lines: list[str]) -> dict[str, str] | None:
    """The header lines (after the start line) by name, values as sent (the caller strips
    the ones it reads), or None: a line without ": ", a bare CR or LF, a name the lane does
    not take, one of ``_ONCE`` missing or repeated (the others may repeat: the last counts)."""
    crlf = len(lines) - 1
    if text.count("\r") != crlf or text.count("\n") != crlf:
        return None  # a CR or LF inside a line
    try:
        fields = dict(map(str.split, lines[1:], _SEP, _ONE))  # a line without ": ": 1 part
    except ValueError:
        return None
    if len(fields) != crlf:  # a name repeated (rare): line by line, as the rule says
        fields = {}
        for line in lines[1:]:
            name, _, value = line.partition(": ")
            if name in _ONCE and name in fields:
                return None
            fields[name] = value
    if not (_ONCE <= fields.keys() <= _NAMES):
        return None
    return fields


def _via(value: str) -> Via | None:
    """The one Via in the lane's shape, as ``parse_via`` reads it (names lower-cased, the
    first of a name kept, a flag as ``""``), or None: not that shape."""
    m = _VIA.fullmatch(value)
    if m is None:
        return None
    host, port_text, params_text = m.groups()
    port = int(port_text)
    parts = params_text.split(";")  # the first is empty: the text starts with ";"
    if not 0 < port < 65536 or len(parts) - 1 > MAX_PARAMS:
        return None
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, _, v = part.partition("=")
        if not name:
            return None  # ";=x": the general way refuses it (bad_param)
        params.setdefault(name.lower(), v)
    return Via("UDP", host, port, params)


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
