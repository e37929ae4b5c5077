"""SIP messages as bytes in, frozen dataclasses out, and back (RFC 3261 §7, §18.3, §20).

Lenient on what GB/T 28181 devices send: compact header names, folded lines, bare LF line
ends, leading CRLF keepalives, comma-joined Via values, odd header case. Bounded and strict on
what would mis-frame a message: the size, the header count and Content-Length. The body stays
bytes (GB/T 28181 bodies are GB2312/GB18030; the MANSCDP layer decodes them). The header
readers of ``drivers.sip.fields`` are re-exported here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drivers.sip.errors import SipParseError
from drivers.sip.fields import (
    MAGIC_COOKIE,
    CSeq,
    NameAddr,
    Via,
    fill_received,
    format_params,
    parse_cseq,
    parse_name_addr,
    parse_params,
    parse_via,
    split_commas,
    stamped_via,
)
from drivers.sip.headers import Headers, canonical_name

__all__ = [
    "MAGIC_COOKIE",
    "MAX_HEADERS",
    "MAX_SIZE",
    "CSeq",
    "Headers",
    "NameAddr",
    "SipMessage",
    "SipParseError",
    "SipRequest",
    "SipResponse",
    "SipStreamParser",
    "Via",
    "canonical_name",
    "fill_received",
    "format_params",
    "parse_cseq",
    "parse_message",
    "parse_name_addr",
    "parse_params",
    "parse_via",
    "split_commas",
    "stamp_received",
]

MAX_SIZE = 65536
MAX_HEADERS = 128
REQUIRED = ("Via", "From", "To", "Call-ID", "CSeq")

_TOKEN_STR = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_DIGITS = re.compile(r"[0-9]+")
_VERSION = re.compile(r"SIP/[0-9]\.[0-9]", re.IGNORECASE)


def _read_cseq(h: Headers) -> CSeq:
    return parse_cseq(h.get("CSeq") or "")


def _read_top_via(h: Headers) -> Via:
    return parse_via(h.get("Via") or "")


def _read_from(h: Headers) -> NameAddr:
    return parse_name_addr(h.get("From") or "")


def _read_to(h: Headers) -> NameAddr:
    return parse_name_addr(h.get("To") or "")


class _Common:
    """What requests and responses share: header shortcuts and the wire form."""

    __slots__ = ()
    headers: Headers
    body: bytes
    version: str

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    @property
    def cseq(self) -> CSeq:
        return self.headers.parsed("CSeq", _read_cseq)

    @property
    def top_via(self) -> Via:
        return self.headers.parsed("Via", _read_top_via)

    @property
    def from_(self) -> NameAddr:
        return self.headers.parsed("From", _read_from)

    @property
    def to(self) -> NameAddr:
        return self.headers.parsed("To", _read_to)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    def _wire(self, start: str) -> bytes:
        lines = [start]
        lines.extend(f"{name}: {value}" for name, value in self.headers if name != "Content-Length")
        lines.append(f"Content-Length: {len(self.body)}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + self.body


@dataclass(frozen=True, slots=True)
class SipRequest(_Common):
    method: str
    uri: str
    version: str = "SIP/2.0"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The wire form; Content-Length is always rewritten to the body's length."""
        return self._wire(f"{self.method} {self.uri} {self.version}")


@dataclass(frozen=True, slots=True)
class SipResponse(_Common):
    status: int
    reason: str = ""
    version: str = "SIP/2.0"
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""

    def to_bytes(self) -> bytes:
        """The wire form; Content-Length is always rewritten to the body's length."""
        return self._wire(f"{self.version} {self.status} {self.reason}".rstrip(" "))


SipMessage = SipRequest | SipResponse


def _decode(raw: bytes) -> str:
    """UTF-8 as RFC 3261 says; else GB18030, which display names from Chinese firmware often
    are; bytes that are neither become U+FFFD (so every string encodes again)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("gb18030", "replace")


def _split_head(data: bytes) -> tuple[bytes, bytes] | None:
    """Head and the bytes after the empty line; ``None`` when the empty line has not come."""
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n")
    if crlf < 0 and lf < 0:
        return None
    if lf >= 0 and (crlf < 0 or lf < crlf):
        return data[:lf], data[lf + 2 :]
    return data[:crlf], data[crlf + 4 :]


@dataclass(frozen=True, slots=True)
class _Head:
    start: tuple[str, str, str]
    is_request: bool
    headers: Headers
    content_length: int | None


def _parse_start(text: str) -> tuple[tuple[str, str, str], bool]:
    text = text.strip()
    parts = text.split(" ", 2)
    if len(parts) >= 2 and _VERSION.fullmatch(parts[0]):
        code = parts[1]
        if len(code) != 3 or not _DIGITS.fullmatch(code) or not 100 <= int(code) <= 699:
            raise SipParseError("bad_status", text[:40])
        return (parts[0].upper(), code, parts[2].strip() if len(parts) > 2 else ""), False
    parts = text.split()
    if len(parts) != 3 or not _VERSION.fullmatch(parts[2]) or not _TOKEN_STR.fullmatch(parts[0]):
        raise SipParseError("bad_start_line", text[:40])
    return (parts[0].upper(), parts[1], parts[2].upper()), True


_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips


def _lines(raw: bytes) -> list[str]:
    """The head's lines as text, each decoded as ``_decode`` says: the whole head at once
    when it is UTF-8 (then every line is), else line by line."""
    try:
        return raw.decode("utf-8").replace("\r\n", "\n").split("\n")
    except UnicodeDecodeError:
        return [_decode(line) for line in raw.replace(b"\r\n", b"\n").split(b"\n")]


def _parse_head(raw: bytes, *, max_size: int, max_headers: int) -> _Head:
    lines = _lines(raw)
    start, is_request = _parse_start(lines[0])
    fields: list[list[str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if not fields:
                raise SipParseError("bad_header", "continuation before any header")
            fields[-1][1] += " " + line.strip()
            continue
        name, sep, value = line.partition(":")
        name = name.strip(_ASCII_SPACE)
        if not sep or not name.isascii() or not _TOKEN_STR.fullmatch(name):
            raise SipParseError("bad_header", line[:40])
        fields.append([name, value.strip()])
        if len(fields) > max_headers:
            raise SipParseError("too_many_headers")
    items: list[tuple[str, str]] = []
    for fname, fvalue in fields:
        full = canonical_name(fname)
        if full == "Via" and ("," in fvalue or not fvalue):
            items.extend((full, part) for part in split_commas(fvalue))
        else:
            items.append((full, fvalue))
    headers = Headers(items)
    if len(headers) > max_headers:
        raise SipParseError("too_many_headers")
    for required in REQUIRED:
        if not headers.get(required):
            raise SipParseError(f"missing_header:{required}")
    headers.parsed("CSeq", _read_cseq)  # checked here, kept for the readers
    headers.parsed("Via", _read_top_via)
    return _Head(start, is_request, headers, _content_length(headers, max_size))


def _content_length(headers: Headers, max_size: int) -> int | None:
    values = {v.strip() for v in headers.get_all("Content-Length")}
    if not values:
        return None
    if len(values) > 1:
        raise SipParseError("bad_content_length", "conflicting values")
    (value,) = values
    if not _DIGITS.fullmatch(value) or len(value) > 9:
        raise SipParseError("bad_content_length", value[:20])
    length = int(value)
    if length > max_size:
        raise SipParseError("bad_content_length", f"{length} exceeds {max_size}")
    return length


def _build(head: _Head, body: bytes) -> SipRequest | SipResponse:
    a, b, c = head.start
    if head.is_request:
        return SipRequest(headers=head.headers, body=body, version=c, method=a, uri=b)
    return SipResponse(headers=head.headers, body=body, version=a, status=int(b), reason=c)


def parse_message(
    data: bytes, *, max_size: int = MAX_SIZE, max_headers: int = MAX_HEADERS
) -> SipRequest | SipResponse:
    """One message from one datagram (UDP framing, RFC 3261 §18.3): without Content-Length the
    body is the rest of the datagram; a Content-Length beyond what arrived is an error, bytes
    beyond it are dropped."""
    if len(data) > max_size:
        raise SipParseError("too_large", f"{len(data)} bytes")
    data = data.lstrip(b"\r\n")
    if not data:
        raise SipParseError("empty")
    split = _split_head(data)
    raw_head, rest = split if split is not None else (data, b"")
    head = _parse_head(raw_head, max_size=max_size, max_headers=max_headers)
    if head.content_length is None:
        return _build(head, rest)
    if head.content_length > len(rest):
        raise SipParseError("body_truncated", f"{head.content_length} > {len(rest)}")
    return _build(head, rest[: head.content_length])


class SipStreamParser:
    """Frames messages out of a TCP byte stream (RFC 3261 §18.3): Content-Length is required,
    CRLF keepalives between messages are skipped (and counted, so the transport can answer a
    double-CRLF ping per RFC 5626), the buffer never holds more than ``max_size`` bytes of an
    unfinished message. After a :class:`SipParseError` the stream is out of step: close it."""

    def __init__(self, *, max_size: int = MAX_SIZE, max_headers: int = MAX_HEADERS) -> None:
        self.max_size = max_size
        self.max_headers = max_headers
        self.keepalives = 0
        self._buffer = bytearray()
        self._head: _Head | None = None
        self._body_at = 0
        self._failed = False

    def feed(self, data: bytes) -> list[SipRequest | SipResponse]:
        if self._failed:
            raise SipParseError("stream_failed")
        self._buffer += data
        try:
            return self._drain()
        except SipParseError:
            self._failed = True
            self._buffer.clear()
            raise

    def _drain(self) -> list[SipRequest | SipResponse]:
        out: list[SipRequest | SipResponse] = []
        while True:
            if self._head is None:
                stripped = len(self._buffer) - len(self._buffer.lstrip(b"\r\n"))
                if stripped:
                    self.keepalives += 1
                    del self._buffer[:stripped]
                split = _split_head(bytes(self._buffer[: self.max_size + 4]))
                if split is None:
                    if len(self._buffer) > self.max_size:
                        raise SipParseError("too_large", "head without end")
                    return out
                raw_head, _ = split
                head = _parse_head(raw_head, max_size=self.max_size, max_headers=self.max_headers)
                if head.content_length is None:
                    raise SipParseError("missing_header:Content-Length")
                self._body_at = len(self._buffer) - len(split[1])
                if self._body_at + head.content_length > self.max_size + 4:
                    raise SipParseError("too_large", "head and body over the bound")
                self._head = head
            end = self._body_at + (self._head.content_length or 0)
            if len(self._buffer) < end:
                return out
            out.append(_build(self._head, bytes(self._buffer[self._body_at : end])))
            del self._buffer[:end]
            self._head = None


def stamp_received(request: SipRequest, source: tuple[str, int]) -> SipRequest:
    """The request with its top Via stamped with ``received``/``rport`` for ``source`` (what a
    server does on receipt, so responses copy the stamped Via)."""
    via = stamped_via(request.top_via, source)
    stamped = via.to_str()
    items: list[tuple[str, str]] = []
    first = True
    for name, value in request.headers:
        if name == "Via" and first:
            items.append((name, stamped))
            first = False
        else:
            items.append((name, value))
    headers = Headers(items)
    headers.keep_parsed(request.headers, ("CSeq", "From", "To"))  # the same fields
    headers.parsed("Via", lambda _h: via)
    return SipRequest(request.method, request.uri, request.version, headers, request.body)
