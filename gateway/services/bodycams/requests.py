"""The platform's own requests to a cam: MANSCDP queries (MESSAGE) and the MobilePosition
SUBSCRIBE with its in-dialog refresh. Pure builders: ids, tags and the branch are passed in
(the branch is stamped by ``ClientTransaction.start``)."""

from __future__ import annotations

from dataclasses import dataclass

from drivers.gb28181.manscdp import QueryCmd, query_body, subscribe_position_body
from drivers.sip.headers import Headers
from drivers.sip.message import SipRequest
from drivers.sip.transport import Peer
from gateway.services.bodycams.cams import Dialog

__all__ = ["CONTENT_TYPE", "Local", "query_request", "subscribe_request"]

CONTENT_TYPE = "Application/MANSCDP+xml"


@dataclass(frozen=True, slots=True)
class Local:
    """Who the platform is and where it listens (for Via, From and Contact)."""

    platform_id: str
    realm: str
    host: str
    port: int


def _target(device_id: str, peer: Peer, contact_uri: str | None) -> str:
    if contact_uri and contact_uri.startswith("sip:"):
        return contact_uri
    return f"sip:{device_id}@{peer.host}:{peer.port}"


def _base(
    method: str,
    local: Local,
    device_id: str,
    peer: Peer,
    contact_uri: str | None,
    call_id: str,
    from_tag: str,
    to_tag: str | None,
    cseq: int,
) -> list[tuple[str, str]]:
    to = f"<sip:{device_id}@{local.realm}>" + (f";tag={to_tag}" if to_tag else "")
    return [
        ("Via", f"SIP/2.0/{peer.transport} {local.host}:{local.port};rport;branch=z9hG4bK0"),
        ("From", f"<sip:{local.platform_id}@{local.realm}>;tag={from_tag}"),
        ("To", to),
        ("Call-ID", call_id),
        ("CSeq", f"{cseq} {method}"),
        ("Max-Forwards", "70"),
    ]


def query_request(
    cmd: QueryCmd,
    sn: int,
    local: Local,
    device_id: str,
    peer: Peer,
    contact_uri: str | None,
    call_id: str,
    from_tag: str,
) -> SipRequest:
    """A DeviceInfo, DeviceStatus or Catalog query (a MESSAGE outside any dialog)."""
    items = _base("MESSAGE", local, device_id, peer, contact_uri, call_id, from_tag, None, 1)
    items.append(("Content-Type", CONTENT_TYPE))
    return SipRequest(
        method="MESSAGE",
        uri=_target(device_id, peer, contact_uri),
        headers=Headers(items),
        body=query_body(cmd, sn, device_id),
    )


def subscribe_request(
    sn: int,
    local: Local,
    device_id: str,
    peer: Peer,
    contact_uri: str | None,
    dialog: Dialog,
    expires_s: int,
    interval_s: int,
) -> SipRequest:
    """The MobilePosition SUBSCRIBE (``Event: presence``): the first of a dialog when
    ``dialog.remote_tag`` is None, else its refresh (same Call-ID and tags, next CSeq).
    ``expires_s`` 0 ends the subscription."""
    items = _base(
        "SUBSCRIBE",
        local,
        device_id,
        peer,
        contact_uri,
        dialog.call_id,
        dialog.local_tag,
        dialog.remote_tag,
        dialog.cseq,
    )
    items += [
        ("Contact", f"<sip:{local.platform_id}@{local.host}:{local.port}>"),
        ("Event", "presence"),
        ("Expires", str(expires_s)),
        ("Content-Type", CONTENT_TYPE),
    ]
    return SipRequest(
        method="SUBSCRIBE",
        uri=_target(device_id, peer, contact_uri),
        headers=Headers(items),
        body=subscribe_position_body(sn, device_id, interval_s),
    )
