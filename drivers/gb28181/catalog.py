"""Catalog answers reassembled: a device splits its Catalog over several MESSAGEs (a few
items each, to fit UDP), all carrying the query's SN and the total ``SumNum``.

Parts are gathered by (device_id, sn) until SumNum items arrived, deduplicated by item
DeviceID (a retransmitted part adds nothing); the complete ``Catalog`` is returned once, and
a late duplicate of an already completed catalog is ignored. Bounded: SumNum, catalogs in
flight (per device and in all), and an incomplete catalog expires after *timeout_s*. Time is
passed in (``now``, monotonic seconds). Items without a usable DeviceID count as arrived
(else one bad item would keep the catalog from ever completing); a retransmitted part with
such items may so complete it early: missing items are then absent, never invented.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from drivers.gb28181.manscdp import CatalogItem, CatalogPart
from drivers.gb28181.xmlsafe import ManscdpError

__all__ = ["Catalog", "CatalogAssembler"]

Key = tuple[str, int]


@dataclass(frozen=True)
class Catalog:
    device_id: str
    sn: int
    sum_num: int
    items: tuple[CatalogItem, ...]  # in arrival order, one per DeviceID
    skipped: int = 0  # items that arrived without a usable DeviceID


@dataclass
class _Pending:
    sum_num: int
    started: float
    items: dict[str, CatalogItem] = field(default_factory=dict)
    skipped: int = 0


class CatalogAssembler:
    """Reassembles Catalog parts; ``add`` returns the Catalog when its last item arrives."""

    def __init__(
        self,
        *,
        max_sum_num: int = 10_000,
        max_in_flight: int = 256,
        max_per_device: int = 4,
        timeout_s: float = 30.0,
        remember_done: int = 1024,
    ) -> None:
        self.max_sum_num = max_sum_num
        self.max_in_flight = max_in_flight
        self.max_per_device = max_per_device
        self.timeout_s = timeout_s
        self._pending: OrderedDict[Key, _Pending] = OrderedDict()
        self._done: OrderedDict[Key, float] = OrderedDict()
        self._remember = remember_done
        self.expired = 0  # incomplete catalogs dropped after the timeout or evicted
        self.duplicates = 0  # parts that arrived after their catalog was complete

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    def expire(self, now: float) -> list[Key]:
        """Drop incomplete catalogs older than the timeout; their keys."""
        gone = [k for k, p in self._pending.items() if now - p.started >= self.timeout_s]
        for k in gone:
            del self._pending[k]
        self.expired += len(gone)
        while self._done and now - next(iter(self._done.values())) >= self.timeout_s:
            self._done.popitem(last=False)
        return gone

    def _make_room(self, device_id: str) -> None:
        mine = [k for k in self._pending if k[0] == device_id]
        while len(mine) >= self.max_per_device:  # a device re-querying: its oldest goes
            del self._pending[mine.pop(0)]
            self.expired += 1
        if len(self._pending) >= self.max_in_flight:
            raise ManscdpError("catalog_busy", f"{self.max_in_flight} catalogs in flight")

    def add(self, part: CatalogPart, now: float) -> Catalog | None:
        """Take one part; the complete Catalog once, else None. ``ManscdpError`` for a
        SumNum over the bound, a SumNum that changed between parts, or no room."""
        self.expire(now)
        key = (part.device_id, part.sn)
        if key in self._done:
            self.duplicates += 1
            return None
        if part.sum_num > self.max_sum_num:
            raise ManscdpError("too_many_items", f"SumNum {part.sum_num} > {self.max_sum_num}")
        p = self._pending.get(key)
        if p is None:
            self._make_room(part.device_id)
            p = self._pending[key] = _Pending(part.sum_num, now)
        elif p.sum_num != part.sum_num:
            raise ManscdpError("sum_num_mismatch", f"{part.sum_num} after {p.sum_num}")
        for item in part.items:
            if item.device_id not in p.items and len(p.items) < p.sum_num:
                p.items[item.device_id] = item
        p.skipped = min(p.skipped + part.skipped, p.sum_num)
        if len(p.items) + p.skipped < p.sum_num:
            return None
        del self._pending[key]
        self._done[key] = now
        while len(self._done) > self._remember:
            self._done.popitem(last=False)
        return Catalog(part.device_id, part.sn, p.sum_num, tuple(p.items.values()), p.skipped)
