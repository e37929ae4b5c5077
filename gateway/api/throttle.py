"""Per-client token buckets in a bounded table: pure, the caller passes the time.

A bucket holds up to ``burst`` tokens and gains ``rate`` a second; a request takes one. The
table remembers at most ``capacity`` clients, least recently seen forgotten first, so a spray
of source addresses costs a bounded amount of memory. A forgotten client comes back with a
full bucket: a spray can buy its sender no more than a fresh burst per address it owns, and
others at most a fresh burst (the table's size is what makes that rare).

Clients are addresses, an IPv6 one by its /64 (one host usually holds a whole /64, so a
per-address limit would not limit it).
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass


@dataclass(slots=True)
class Bucket:
    tokens: float
    at: float  # when ``tokens`` was last brought up to date


class RateTable:
    """Token buckets by client key. ``take`` answers 0.0 (go) or the seconds until a token."""

    def __init__(self, rate: float, burst: int, capacity: int) -> None:
        if rate <= 0 or burst < 1 or capacity < 1:
            raise ValueError("rate > 0, burst >= 1 and capacity >= 1")
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self._buckets: OrderedDict[str, Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: str, now: float) -> float:
        """Take a token for *key* at time *now* (seconds, any monotonic origin)."""
        b = self._buckets.get(key)
        if b is None:
            if len(self._buckets) >= self.capacity:
                self._buckets.popitem(last=False)
            b = self._buckets[key] = Bucket(float(self.burst), now)
        else:
            self._buckets.move_to_end(key)
            if now > b.at:  # a clock that steps back refills nothing and takes nothing
                b.tokens = min(float(self.burst), b.tokens + (now - b.at) * self.rate)
                b.at = now
        if b.tokens >= 1.0:
            b.tokens -= 1.0
            return 0.0
        return (1.0 - b.tokens) / self.rate


def client_key(address: str) -> str:
    """The rate limit's client: an IPv4 address, an IPv6 /64; anything else as given."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def forwarded_client(
    peer: str,
    forwarded_for: list[str],
    trusted: list[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> str:
    """The client behind trusted proxies: the rightmost X-Forwarded-For address that is not a
    trusted proxy (what a proxy appends can be trusted, what the client wrote cannot). The
    peer itself when it is not a trusted proxy or the header names no one else."""

    def is_trusted(address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in trusted)

    if not is_trusted(peer):
        return peer
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()]
    for hop in reversed(hops):
        if not is_trusted(hop):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage where an address belongs: the proxy is the client
    return peer
