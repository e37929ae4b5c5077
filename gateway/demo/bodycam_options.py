"""What the simulated body-cam fleet is asked to do and what it reports: the cams' ids
(the contract's numbering), their specs, the options, and the statistics (counts by kind and
each request's time from first send to final 2xx, the bench's figure)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import tzinfo

from drivers.gb28181.ids import is_device_id
from drivers.gb28181.manscdp import CHINA
from drivers.sip.transactions import T1, T2
from gateway.demo.sipua import Counters, Outcome

__all__ = ["DEFAULT_PLATFORM_ID", "BodyCamOptions", "CamSpec", "SimStats", "cam_id"]

DEFAULT_PLATFORM_ID = "62072500082000000001"
MAX_SAMPLES = 2_000_000


def cam_id(n: int) -> str:
    """The contract's body cam ids: area 62072500, industry 08, type 138, network 0, serial n."""
    if not 0 <= n < 10**6:
        raise ValueError(f"cam number {n} outside 0..999999")
    return "62072500" + "08" + "138" + "0" + f"{n:06d}"


@dataclass(frozen=True)
class CamSpec:
    device_id: str
    password: str
    name: str = ""

    def __post_init__(self) -> None:
        if not is_device_id(self.device_id):
            raise ValueError(f"not a 20-digit device id: {self.device_id!r}")


@dataclass(frozen=True)
class BodyCamOptions:
    platform: tuple[str, int]
    platform_id: str = DEFAULT_PLATFORM_ID
    realm: str | None = None  # default: the platform id's first 10 digits
    bind_host: str = "127.0.0.1"
    # Each cam on its own loopback address (127.100.x.y): a fleet from one address is a flood
    # to per-address flood control; real cams each have their own. Linux only, loopback only.
    own_loopback_address: bool = False
    keepalive_interval_s: float = 60.0
    position_interval_s: float = 5.0
    register_expires_s: int = 3600
    alarm_rate_per_h: float = 0.05  # per cam: with 72 cams, about 3.6 alarms an hour
    battery_drain_per_h: float = 6.0  # percent per hour (a shift is about 12 h)
    list_form_share: float = 0.25  # cams that push positions in the vendor list form
    catalog_per_part: int = 1  # Catalog items per MESSAGE (2 channels: 2 messages)
    keepalive_failures: int = 3  # unanswered requests in a row before re-registering
    start_spread_s: float = 5.0  # registrations spread over this many seconds
    seed: int = 28181
    tz: tzinfo = CHINA
    t1: float = T1
    t2: float = T2
    unregister_on_stop: bool = True
    backoff_cap_s: float = 60.0

    def host_for(self, index: int) -> str:
        """The address cam number *index* (0-based) binds to."""
        if not self.own_loopback_address:
            return self.bind_host
        if not 0 <= index < 250 * 250:
            raise ValueError("at most 62,500 cams get their own loopback address")
        return f"127.100.{index // 250}.{index % 250 + 1}"

    @property
    def realm_(self) -> str:
        return self.realm or self.platform_id[:10]

    def __post_init__(self) -> None:
        if not is_device_id(self.platform_id):
            raise ValueError("platform_id must be 20 digits")
        for name in ("keepalive_interval_s", "position_interval_s", "t1", "t2"):
            v = getattr(self, name)
            if not (math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a positive number")
        if not 1 <= self.register_expires_s <= 86400:
            raise ValueError("register_expires_s outside 1..86400")
        if self.own_loopback_address and not self.bind_host.startswith("127."):
            raise ValueError("own_loopback_address needs a loopback bind_host")
        if not 0 <= self.list_form_share <= 1 or self.alarm_rate_per_h < 0:
            raise ValueError("list_form_share outside 0..1 or a negative alarm rate")


@dataclass
class SimStats:
    """What the fleet did; ``latencies_ms`` per kind: first send to final 2xx (the figure the
    bench reports)."""

    counters: Counters = field(default_factory=Counters)
    registered: int = 0  # cams registered right now
    registrations: int = 0
    challenges: int = 0
    refused: int = 0  # REGISTER answered with an error (wrong password, unknown device)
    lost: int = 0  # registrations given up on (silence, 403/404 to a message)
    ok: dict[str, int] = field(default_factory=dict)  # 2xx by kind
    failed: dict[str, int] = field(default_factory=dict)  # error or Timer F, by kind
    skipped: int = 0  # not sent: the cam had MAX_IN_FLIGHT outstanding
    queries_answered: int = 0
    subscriptions: int = 0
    latencies_ms: dict[str, list[float]] = field(default_factory=dict)

    def done(self, kind: str, out: Outcome) -> bool:
        r = out.response
        if r is not None and 200 <= r.status < 300:
            self.ok[kind] = self.ok.get(kind, 0) + 1
            samples = self.latencies_ms.setdefault(kind, [])
            if len(samples) < MAX_SAMPLES:
                samples.append(out.elapsed_ms)
            return True
        self.failed[kind] = self.failed.get(kind, 0) + 1
        return False
