"""Readers for the structured SIP header values: parameters, name-addr, CSeq, Via.

Lenient where devices differ in harmless ways (spacing, case, quoted parameter values, a
bare addr-spec instead of ``<...>``), strict where a wrong reading would mis-route a response
or mis-match a transaction (CSeq number, Via sent-by). Every reader is bounded and raises
:class:`SipParseError` on garbage.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from drivers.sip.errors import SipParseError

__all__ = [
    "MAGIC_COOKIE",
    "CSeq",
    "NameAddr",
    "Via",
    "fill_received",
    "format_params",
    "parse_cseq",
    "parse_name_addr",
    "parse_params",
    "parse_via",
    "split_commas",
    "stamped_via",
]

MAGIC_COOKIE = "z9hG4bK"
MAX_PARAMS = 32
MAX_CSEQ = 2**31 - 1
_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~\-]+")
_DIGITS = re.compile(r"[0-9]{1,10}")
_SPACE = re.compile(r"\s")  # what str.isspace says
_SENT_BY = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-_]+)(?::([0-9]{1,5}))?")


def split_commas(value: str) -> list[str]:
    """Split a header value on commas that are outside quotes and ``<...>``."""
    out: list[str] = []
    depth = 0
    quoted = False
    start = 0
    i = 0
    while i < len(value):
        ch = value[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "<":
            depth += 1
        elif ch == ">":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            out.append(value[start:i].strip())
            start = i + 1
        i += 1
    out.append(value[start:].strip())
    return [part for part in out if part]


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def parse_params(text: str) -> dict[str, str]:
    """``;tag=1;branch=z9hG4bKx;rport`` -> ``{"tag": "1", "branch": "z9hG4bKx", "rport": ""}``.

    Names are lower-cased (they are case-insensitive), values unquoted, a flag has ``""``.
    The first occurrence of a name wins. More than ``MAX_PARAMS`` is refused."""
    out: dict[str, str] = {}
    parts = [p for p in text.split(";") if p.strip()]
    if len(parts) > MAX_PARAMS:
        raise SipParseError("too_many_params")
    for part in parts:
        name, _, value = part.partition("=")
        name = name.strip().lower()
        if not name:
            raise SipParseError("bad_param", part[:40])
        out.setdefault(name, _unquote(value))
    return out


def format_params(params: dict[str, str]) -> str:
    return "".join(f";{k}={v}" if v != "" else f";{k}" for k, v in params.items())


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From / To / Contact: ``"display" <uri>;params``. ``uri`` is ``*`` for a wildcard Contact."""

    display: str
    uri: str
    params: dict[str, str] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def to_str(self) -> str:
        display = f'"{self.display}" ' if self.display else ""
        if self.uri == "*":
            return "*"
        return f"{display}<{self.uri}>{format_params(self.params)}"


def parse_name_addr(value: str) -> NameAddr:
    value = value.strip()
    if value == "*":
        return NameAddr("", "*")
    lt = value.find("<")
    if value.startswith('"'):
        end = 1
        while end < len(value) and value[end] != '"':
            end += 2 if value[end] == "\\" else 1
        if end >= len(value):
            raise SipParseError("bad_name_addr", "unclosed quote")
        display = _unquote(value[: end + 1])
        lt = value.find("<", end)
        if lt < 0:
            raise SipParseError("bad_name_addr", "display name without <uri>")
    else:
        display = value[:lt].strip() if lt >= 0 else ""
    if lt >= 0:
        gt = value.find(">", lt)
        if gt < 0:
            raise SipParseError("bad_name_addr", "unclosed <")
        uri = value[lt + 1 : gt].strip()
        params = parse_params(value[gt + 1 :])
    else:
        # addr-spec without brackets: parameters after the first ';' belong to the header.
        uri, _, rest = value.partition(";")
        uri = uri.strip()
        params = parse_params(rest)
    if not uri or _SPACE.search(uri):
        raise SipParseError("bad_name_addr", "empty or spaced URI")
    return NameAddr(display, uri, params)


@dataclass(frozen=True, slots=True)
class CSeq:
    number: int
    method: str

    def to_str(self) -> str:
        return f"{self.number} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2 or not _DIGITS.fullmatch(parts[0]):
        raise SipParseError("bad_cseq", value[:40])
    number = int(parts[0])
    if number > MAX_CSEQ or not _TOKEN.fullmatch(parts[1]):
        raise SipParseError("bad_cseq", value[:40])
    return CSeq(number, parts[1].upper())


@dataclass(frozen=True, slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...;rport;received=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str] = field(default_factory=dict)
    protocol: str = "SIP/2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def received(self) -> str | None:
        return self.params.get("received")

    @property
    def rport(self) -> str | None:
        """``""`` when the client asked (RFC 3581 flag), the port once filled, else None."""
        return self.params.get("rport")

    @property
    def sent_by(self) -> str:
        return f"{self.host.lower()}:{self.port or 5060}"

    def to_str(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.transport} {self.host}{port}{format_params(self.params)}"

    def response_target(self, source: tuple[str, int]) -> tuple[str, int]:
        """Where a response goes over UDP (RFC 3261 §18.2.2, RFC 3581 §4): back to the source
        when the client asked for rport, else to received/sent-by."""
        if self.rport is not None:
            return (self.received or source[0], source[1])
        return (self.received or self.host.strip("[]"), self.port or 5060)


def parse_via(value: str) -> Via:
    head, sep, rest = value.strip().partition(";")
    parts = head.split(None, 1)
    if len(parts) != 2:
        raise SipParseError("bad_via", value[:60])
    proto = [p.strip() for p in parts[0].split("/")]
    if len(proto) != 3 or proto[0].upper() != "SIP" or not all(proto):
        raise SipParseError("bad_via", value[:60])
    m = _SENT_BY.fullmatch(parts[1].strip())
    if m is None:
        raise SipParseError("bad_via", value[:60])
    port = int(m.group(2)) if m.group(2) else None
    if port is not None and not 0 < port < 65536:
        raise SipParseError("bad_via", value[:60])
    return Via(
        transport=proto[2].upper(),
        host=m.group(1),
        port=port,
        params=parse_params(rest) if sep else {},
        protocol=f"SIP/{proto[1]}",
    )


def stamped_via(via: Via, source: tuple[str, int]) -> Via:
    """*via* as the server stamps it on receipt (RFC 3261 §18.2.1, RFC 3581 §4):
    ``received`` when the sent-by host differs from the source address (or rport was asked),
    ``rport`` filled with the source port when the client sent the flag."""
    ip, port = source
    params = dict(via.params)
    if via.host.strip("[]").lower() != ip.lower() or "rport" in params:
        params["received"] = ip
    if "rport" in params and params["rport"] == "":
        params["rport"] = str(port)
    return Via(via.transport, via.host, via.port, params, via.protocol)


def fill_received(via_value: str, source: tuple[str, int]) -> str:
    """The top Via value as the server stamps it on receipt (see :func:`stamped_via`)."""
    return stamped_via(parse_via(via_value), source).to_str()
