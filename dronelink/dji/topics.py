"""DJI Cloud API topics: ``thing/product/{sn}/{osd|state|events|requests|services|...}`` and
``sys/product/{sn}/{status|status_reply}``, to (kind, sn) and back.

A serial number becomes part of topics we publish on, so one with MQTT wildcards, a slash or
an absurd length is refused here (a dock cannot make us publish to ``thing/product/#``).
"""

from __future__ import annotations

import enum

__all__ = ["TopicKind", "parse_topic", "reply_kind", "subscriptions", "topic", "valid_sn"]

MAX_SN = 64


class TopicKind(enum.StrEnum):
    OSD = "osd"
    STATE = "state"
    EVENTS = "events"
    EVENTS_REPLY = "events_reply"
    REQUESTS = "requests"
    REQUESTS_REPLY = "requests_reply"
    SERVICES = "services"
    SERVICES_REPLY = "services_reply"
    STATUS = "status"
    STATUS_REPLY = "status_reply"


_SYS = {TopicKind.STATUS, TopicKind.STATUS_REPLY}
_REPLY = {
    TopicKind.EVENTS: TopicKind.EVENTS_REPLY,
    TopicKind.REQUESTS: TopicKind.REQUESTS_REPLY,
    TopicKind.SERVICES: TopicKind.SERVICES_REPLY,
    TopicKind.STATUS: TopicKind.STATUS_REPLY,
}
# What the link listens to from docks; services_reply is apart (never shared, see link.py).
UPLINKS = (
    TopicKind.OSD,
    TopicKind.STATE,
    TopicKind.EVENTS,
    TopicKind.REQUESTS,
    TopicKind.STATUS,
)


def valid_sn(sn: str) -> bool:
    return 0 < len(sn) <= MAX_SN and sn.isprintable() and not any(c in sn for c in "/+#$ ")


def topic(kind: TopicKind, sn: str) -> str:
    """The topic of *kind* for device *sn*; ValueError for an sn unfit for a topic."""
    if not valid_sn(sn):
        raise ValueError(f"not a usable serial number: {sn!r}")
    root = "sys" if kind in _SYS else "thing"
    return f"{root}/product/{sn}/{kind.value}"


def parse_topic(name: str) -> tuple[TopicKind, str] | None:
    """(kind, sn) of a DJI topic, or None for anything else."""
    parts = name.split("/")
    if len(parts) != 4 or parts[1] != "product" or not valid_sn(parts[2]):
        return None
    try:
        kind = TopicKind(parts[3])
    except ValueError:
        return None
    if (parts[0] == "sys") != (kind in _SYS) or parts[0] not in ("sys", "thing"):
        return None
    return kind, parts[2]


def reply_kind(kind: TopicKind) -> TopicKind | None:
    """The topic kind a reply to a message of *kind* goes on (None: not answered)."""
    return _REPLY.get(kind)


def subscriptions(share_group: str | None) -> list[str]:
    """The filters the link subscribes to: uplinks, shared by *share_group* when given (each
    message to one gateway instance), and services_reply unshared (every instance sees every
    reply, so the one that waits always gets its own)."""
    out = []
    for kind in UPLINKS:
        root = "sys" if kind in _SYS else "thing"
        filt = f"{root}/product/+/{kind.value}"
        out.append(f"$share/{share_group}/{filt}" if share_group else filt)
    out.append(f"thing/product/+/{TopicKind.SERVICES_REPLY.value}")
    return out
