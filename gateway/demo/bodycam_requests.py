"""The SIP requests and answers a GB/T 28181 body cam sends, built on :mod:`drivers.sip`:
REGISTER (with or without digest), out-of-dialog MESSAGE (MANSCDP), in-dialog NOTIFY, and the
200 to a SUBSCRIBE. Branches are placeholders: the client transaction stamps a fresh one.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.sip.fields import parse_name_addr
from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest, SipResponse
from drivers.sip.responses import response_to

__all__ = [
    "MANSCDP",
    "CamAddress",
    "Dialog",
    "message",
    "notify",
    "register",
    "subscribe_ok",
    "target_of",
]

MANSCDP = "Application/MANSCDP+xml"
GB_VERSION = "2.0"  # the 2016 edition


@dataclass(frozen=True)
class CamAddress:
    """Who the cam is and where it and its platform are."""

    device_id: str
    platform_id: str
    realm: str
    local: tuple[str, int]
    platform: tuple[str, int]
    user_agent: str = "citygate-sim BWC/1.0"

    @property
    def platform_uri(self) -> str:
        return f"sip:{self.platform_id}@{self.platform[0]}:{self.platform[1]}"

    @property
    def aor(self) -> str:
        return f"sip:{self.device_id}@{self.realm}"

    @property
    def contact(self) -> str:
        return f"<sip:{self.device_id}@{self.local[0]}:{self.local[1]}>"

    def via(self) -> str:
        return f"SIP/2.0/UDP {self.local[0]}:{self.local[1]};rport;branch=z9hG4bKpending"


@dataclass
class Dialog:
    """A MobilePosition subscription the platform holds with the cam (we are the notifier)."""

    call_id: str
    local_tag: str  # ours (the To tag of the SUBSCRIBE's 200)
    remote_tag: str  # the platform's From tag
    remote_uri: str  # the platform's From URI
    target: tuple[str, int]  # where NOTIFYs go (the platform's Contact)
    expires_at: float  # loop time
    interval_s: int
    local_cseq: int = 0


def register(
    cam: CamAddress,
    *,
    call_id: str,
    from_tag: str,
    cseq: int,
    expires: int,
    authorization: str | None = None,
) -> SipRequest:
    items = [
        ("Via", cam.via()),
        ("From", f"<{cam.aor}>;tag={from_tag}"),
        ("To", f"<{cam.aor}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} REGISTER"),
        ("Contact", cam.contact),
        ("Max-Forwards", "70"),
        ("User-Agent", cam.user_agent),
        ("Expires", str(expires)),
        ("X-GB-Ver", GB_VERSION),
    ]
    if authorization is not None:
        items.append(("Authorization", authorization))
    return SipRequest("REGISTER", f"sip:{cam.platform_id}@{cam.realm}", headers=Headers(items))


def message(cam: CamAddress, body: bytes, *, call_id: str, from_tag: str, cseq: int) -> SipRequest:
    """An out-of-dialog MESSAGE to the platform carrying a MANSCDP body."""
    items = [
        ("Via", cam.via()),
        ("From", f"<{cam.aor}>;tag={from_tag}"),
        ("To", f"<sip:{cam.platform_id}@{cam.realm}>"),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} MESSAGE"),
        ("Max-Forwards", "70"),
        ("User-Agent", cam.user_agent),
        ("X-GB-Ver", GB_VERSION),
        ("Content-Type", MANSCDP),
    ]
    return SipRequest("MESSAGE", cam.platform_uri, headers=Headers(items), body=body)


def notify(cam: CamAddress, d: Dialog, body: bytes, now: float) -> SipRequest:
    """A NOTIFY in the subscription's dialog (RFC 6665 §4.2.2), our own CSeq space."""
    d.local_cseq += 1
    left = max(0, int(d.expires_at - now))
    items = [
        ("Via", cam.via()),
        ("From", f"<{cam.aor}>;tag={d.local_tag}"),
        ("To", f"<{d.remote_uri}>;tag={d.remote_tag}"),
        ("Call-ID", d.call_id),
        ("CSeq", f"{d.local_cseq} NOTIFY"),
        ("Contact", cam.contact),
        ("Max-Forwards", "70"),
        ("User-Agent", cam.user_agent),
        ("Event", "presence"),
        ("Subscription-State", f"active;expires={left}"),
        ("X-GB-Ver", GB_VERSION),
        ("Content-Type", MANSCDP),
    ]
    uri = f"sip:{d.remote_uri.partition(':')[2].partition('@')[0]}@{d.target[0]}:{d.target[1]}"
    return SipRequest("NOTIFY", uri, headers=Headers(items), body=body)


def subscribe_ok(cam: CamAddress, request: SipRequest, local_tag: str, expires: int) -> SipResponse:
    return response_to(
        request,
        200,
        to_tag=local_tag,
        headers=[
            ("Contact", cam.contact),
            ("Expires", str(expires)),
            ("User-Agent", cam.user_agent),
        ],
    )


def target_of(request: SipRequest, source: tuple[str, int]) -> tuple[str, int]:
    """The platform's Contact host and port for in-dialog requests; the source without one."""
    contact = request.headers.get("Contact")
    if not contact:
        return source
    try:
        uri = parse_name_addr(contact).uri
    except ValueError:
        return source
    hostport = uri.partition("@")[2] or uri.partition(":")[2]
    hostport = hostport.partition(";")[0]
    host, sep, port = hostport.rpartition(":")
    if sep and host and port.isdigit() and 0 < int(port) < 65536:
        return (host, int(port))
    return (hostport, 5060) if hostport and not sep else source
