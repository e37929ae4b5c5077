"""Flood control without I/O or a clock (time is passed in): token buckets, and who pays.

A registered device pays for its own messages (a bucket per device id), so cams behind one
NAT (one public address, a port each) never share one. A device's bucket is charged only for
messages from the host the device is registered from (the platform takes its messages from
nowhere else), so a From naming it sent from elsewhere costs it nothing. Everything else (not
registered yet, unknown, another host) pays per source host, with a higher cap: the
unregistered cams behind a NAT share it. So a flood from one address or one device costs that
address or device, never another device's data. (A sender behind the cam's own NAT that forges
its From is charged to it: per-message identity is not in GB/T 28181 MESSAGE.)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

__all__ = ["FloodControl", "FloodLimits", "TokenBuckets"]


class TokenBuckets:
    """One token bucket per key (``rate`` per second, ``burst`` deep); the table is bounded
    (the least recently seen key is forgotten, which only ever refills it)."""

    def __init__(self, rate: float, burst: int, *, max_sources: int = 65536) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.max_sources = max_sources
        self._buckets: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, source: Hashable, now: float) -> bool:
        tokens, at = self._buckets.pop(source, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        ok = tokens >= 1.0
        self._buckets[source] = (tokens - 1.0 if ok else tokens, now)
        if len(self._buckets) > self.max_sources:
            self._buckets.popitem(last=False)
        return ok


@dataclass(frozen=True, slots=True)
class FloodLimits:
    device_rate_per_s: float = 20.0
    device_burst: int = 100
    host_rate_per_s: float = 200.0  # higher: every unregistered cam behind a NAT shares it
    host_burst: int = 1000


class FloodControl:
    """``allow(device, host, now)``: *device* is the registered device id the message is
    from (its From, at its registered address), else None; *host* the source host. Counts
    what it refused by who paid (``refused_device``, ``refused_host``)."""

    def __init__(self, limits: FloodLimits = FloodLimits(), *, max_tracked: int = 65536) -> None:
        self.limits = limits
        self.devices = TokenBuckets(
            limits.device_rate_per_s, limits.device_burst, max_sources=max_tracked
        )
        self.hosts = TokenBuckets(
            limits.host_rate_per_s, limits.host_burst, max_sources=max_tracked
        )
        self.refused_device = 0
        self.refused_host = 0

    def allow(self, device: str | None, host: str, now: float) -> bool:
        if device is not None:
            if self.devices.allow(device, now):
                return True
            self.refused_device += 1
            return False
        if self.hosts.allow(host, now):
            return True
        self.refused_host += 1
        return False
