"""MQTT topic filter matching (pure), for routing messages of several subscriptions."""

from __future__ import annotations


def strip_share(topic_filter: str) -> str:
    """``$share/group/a/b`` -> ``a/b``."""
    if topic_filter.startswith("$share/"):
        parts = topic_filter.split("/", 2)
        return parts[2] if len(parts) == 3 else ""
    return topic_filter


def matches(topic_filter: str, topic: str) -> bool:
    """True if *topic* matches *topic_filter* (``+`` one level, ``#`` the rest)."""
    f = strip_share(topic_filter).split("/")
    t = topic.split("/")
    for i, part in enumerate(f):
        if part == "#":
            return True
        if i >= len(t):
            return False
        if part != "+" and part != t[i]:
            return False
    return len(f) == len(t)
