"""``commission``: the one function the CLI and the API call; it resolves the device, gathers
its facts (database, live probe), judges them and returns the report (``rules.report``).

The API runs inside the gateway, which may know fresher facts than the database (a sensor's
uplink not yet flushed, a charger's or cam's state written behind): ``prepare`` flushes what is
written behind before the facts are read, ``overlay`` puts the live directory's facts over
the row. The shape of the result is the same either way.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from drivers.gates.controller import GateController
from gateway.config import BodycamsConfig, CommissioningConfig
from gateway.directory.audit import SYSTEM, Actor
from gateway.directory.devices import DeviceDirectory
from gateway.directory.lifecycle import LifeKind
from gateway.services import lifecycle
from gateway.services.commissioning.gather import (
    FreshGates,
    GateSource,
    Kind,
    db_facts,
    gate_facts,
    lane_config,
    resolve,
)
from gateway.services.commissioning.rules import Facts, SensorFacts, checks_for, report
from gateway.services.lanes.config import LaneConfig

__all__ = ["Commissioner", "LiveGates", "directory_overlay", "keepalive_timeout"]


async def _nothing(kind: Kind) -> None:
    return None


def keepalive_timeout(bodycams: BodycamsConfig) -> float:
    """A cam is online while its keepalives come this often: the field view's own rule."""
    return bodycams.keepalive_interval_s * bodycams.keepalive_count


@dataclass
class Commissioner:
    sessions: async_sessionmaker[Any]
    config: CommissioningConfig
    keepalive_timeout_s: float
    clock: Callable[[], datetime]
    gates: GateSource
    prepare: Callable[[Kind], Awaitable[None]] = _nothing
    overlay: Callable[[Facts], Facts] = lambda f: f

    async def commission(
        self,
        device_id: str,
        *,
        kind: Kind | None = None,
        cycle: bool = False,
        actor: Actor = SYSTEM,
    ) -> dict[str, object]:
        """The report of *device_id*; raises ``NoSuchDevice`` or ``CannotCommission``."""
        async with self.sessions() as db:
            found = await resolve(db, device_id, kind)
        await self.prepare(found.kind)
        lane: LaneConfig | None = None
        async with self.sessions() as db:
            if found.kind == "gate":
                lane = await lane_config(db, found.device_id)
            else:
                facts = await db_facts(db, found, self.keepalive_timeout_s)
        if lane is not None:  # probed with no database session open
            facts = await gate_facts(lane, self.gates, cycle, self.config.gate_timeout_s)
        facts = self.overlay(facts)
        now = self.clock()
        out = report(found.device_id, found.kind, checks_for(facts, now, self.config), now)
        # Passing moves a provisioned device to commissioned (its next good message makes it
        # active); a failing one, or one already further, stays as it is.
        life, moved = None, False
        if out["passed"]:
            life, moved = await lifecycle.commissioned(
                self.sessions, LifeKind(found.kind), found.device_id, now, actor
            )
        else:
            async with self.sessions() as db:
                life = await lifecycle.state_of(db, LifeKind(found.kind), found.device_id)
        out["lifecycle"] = life
        out["commissioned_now"] = moved
        return out


def directory_overlay(directory: DeviceDirectory) -> Callable[[Facts], Facts]:
    """A sensor's health facts the write-behind persister has not flushed win over the row
    (as the registry's views do)."""

    def overlay(facts: Facts) -> Facts:
        if not isinstance(facts, SensorFacts):
            return facts
        live = directory.get(facts.device_id)
        if live is None:
            return facts
        return replace(
            facts, last_seen=live.last_seen, rssi=live.rssi, snr=live.snr,
            battery_pct=live.battery_pct, battery_mv=live.battery_mv,
            lifecycle=live.lifecycle.value,
        )  # fmt: skip

    return overlay


class LiveGates:
    """The running gateway's own controller of the lane's gate, where it drives that gate
    (one connection per bus: a serial line cannot be opened twice); else a fresh one."""

    def __init__(self, live: Callable[[str], GateController | None], fresh: FreshGates) -> None:
        self._live = live
        self._fresh = fresh

    @contextlib.asynccontextmanager
    async def controller(self, lane: LaneConfig) -> AsyncIterator[GateController]:
        c = self._live(lane.id)
        if c is not None and c.unit == lane.gate_unit and c.gate_map.model == lane.gate_model:
            yield c
            return
        async with self._fresh.controller(lane) as fresh:
            yield fresh
