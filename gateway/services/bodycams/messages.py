"""What a cam's MANSCDP message (MESSAGE or NOTIFY body) does to its state. Pure: the cam,
the parsed message and the times go in; the state is updated and the effects come out
(positions for telemetry, an alarm to keep, an answer matched to its query, a catalog).

A position for another id than the sender's (a channel of a multi-channel device, or a
``TargetID`` the cam does not know) is taken for the sender only when it names the sender;
others are counted and dropped, never matched to a cam by guessing (the reference platform
crashed there).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from drivers.gb28181.catalog import Catalog, CatalogAssembler
from drivers.gb28181.manscdp import (
    Alarm,
    CatalogPart,
    DeviceInfo,
    DeviceStatus,
    Keepalive,
    Manscdp,
    MobilePositions,
    Position,
    QueryAnswerOther,
)
from drivers.gb28181.xmlsafe import ManscdpError
from drivers.sip.fields import parse_params
from gateway.services.bodycams.cams import CamLive

__all__ = ["Effects", "PendingQueries", "apply_message", "body_charset"]


class PendingQueries:
    """The platform's queries awaiting an answer, by (device, SN); bounded, oldest first out."""

    def __init__(self, max_pending: int = 20000) -> None:
        self.max_pending = max_pending
        self._pending: OrderedDict[tuple[str, int], tuple[str, float]] = OrderedDict()
        self.unmatched = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, device_id: str, sn: int, cmd: str, now: float) -> None:
        self._pending[(device_id, sn)] = (cmd, now)
        while len(self._pending) > self.max_pending:
            self._pending.popitem(last=False)

    def answer(self, device_id: str, sn: int, cmd: str, final: bool = True) -> bool:
        """True when (device, SN) was asked for *cmd*; a final answer closes it."""
        got = self._pending.get((device_id, sn))
        if got is None or got[0].lower() != cmd.lower():
            self.unmatched += 1
            return False
        if final:
            del self._pending[(device_id, sn)]
        return True

    def expire(self, now: float, timeout_s: float) -> int:
        gone = [k for k, (_, at) in self._pending.items() if now - at >= timeout_s]
        for k in gone:
            del self._pending[k]
        return len(gone)


@dataclass
class Effects:
    positions: list[Position] = field(default_factory=list)
    alarm: Alarm | None = None
    catalog: Catalog | None = None
    answered: str | None = None  # the query kind an answer matched
    dropped: list[str] = field(default_factory=list)  # reasons, counted by the service


def _positions(cam: CamLive, m: MobilePositions, out: Effects) -> None:
    for p in m.positions:
        if p.device_id != cam.device_id:
            out.dropped.append("position_other_id")
            continue
        if cam.moved(p):
            out.positions.append(p)


def apply_message(
    cam: CamLive,
    msg: Manscdp,
    now: datetime,
    mono: float,
    queries: PendingQueries,
    catalogs: CatalogAssembler,
) -> Effects:
    """Update *cam* for *msg* (already from the cam, checked by the service)."""
    out = Effects()
    if msg.device_id != cam.device_id and not isinstance(msg, MobilePositions):
        out.dropped.append("device_mismatch")
        return out
    if isinstance(msg, Keepalive):
        return out
    if isinstance(msg, MobilePositions):
        _positions(cam, msg, out)
    elif isinstance(msg, Alarm):
        out.alarm = msg
    elif isinstance(msg, DeviceInfo):
        if queries.answer(cam.device_id, msg.sn, "DeviceInfo"):
            out.answered = "DeviceInfo"
        cam.info(msg)
    elif isinstance(msg, DeviceStatus):
        if queries.answer(cam.device_id, msg.sn, "DeviceStatus"):
            out.answered = "DeviceStatus"
        cam.device_status(msg)
    elif isinstance(msg, CatalogPart):
        queries.answer(cam.device_id, msg.sn, "Catalog", final=False)
        try:
            catalog = catalogs.add(msg, mono)
        except ManscdpError as exc:
            out.dropped.append(exc.reason)
            return out
        if catalog is not None:
            queries.answer(cam.device_id, msg.sn, "Catalog")
            cam.catalog_items = len(catalog.items)
            cam.dirty = True
            out.catalog = catalog
            out.answered = "Catalog"
    elif isinstance(msg, QueryAnswerOther) and queries.answer(cam.device_id, msg.sn, msg.cmd_type):
        out.answered = msg.cmd_type
    return out


def body_charset(content_type: str | None) -> str | None:
    """The charset a Content-Type declares, else None."""
    if not content_type or ";" not in content_type:
        return None
    try:
        return parse_params(content_type.split(";", 1)[1]).get("charset")
    except ValueError:
        return None
