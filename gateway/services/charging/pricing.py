"""Pricing charging sessions from their recorded meter samples: the itemised bill and the
parking the site waives."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from charging.billing import Bill, ChargingSessionData, bill, parking_waiver
from gateway.infra.storage.schema import (
    ChargingSampleRow,
    ChargingSessionRow,
)
from gateway.services.charging.fleet import ChargerFleet

log = logging.getLogger(__name__)


def bill_json(b: Bill) -> dict[str, Any]:
    return {
        "site_id": b.site_id,
        "tariff_version": b.tariff_version,
        "start": b.start.isoformat(),
        "charging_end": b.charging_end.isoformat() if b.charging_end else None,
        "idle_end": b.idle_end.isoformat() if b.idle_end else None,
        "energy_wh": b.energy_wh,
        "energy_fen": b.energy_fen,
        "service_fen": b.service_fen,
        "idle_fen": b.idle_fen,
        "total_fen": b.total_fen,
        "lines": [
            {
                "start": ln.start.isoformat(),
                "end": ln.end.isoformat(),
                "kind": ln.kind,
                "band": ln.band,
                "rule": ln.rule,
                "wh": ln.wh,
                "amount_fen": ln.amount_fen,
            }
            for ln in b.lines
        ],
    }


class Pricing(ChargerFleet):
    """Bills and waivers of charging sessions, read from the database."""

    async def _samples(
        self, db: AsyncSession, row: ChargingSessionRow
    ) -> list[tuple[datetime, float]]:
        found = await db.execute(
            select(ChargingSampleRow.ts, ChargingSampleRow.energy_wh)
            .where(ChargingSampleRow.session_id == row.id)
            .order_by(ChargingSampleRow.ts)
        )
        return [(ts, wh) for ts, wh in found.all()]

    @staticmethod
    def _data(
        row: ChargingSessionRow, samples: list[tuple[datetime, float]], now: datetime
    ) -> ChargingSessionData:
        stop = row.ended_at or max(now, row.started_at)
        return ChargingSessionData(
            start=row.started_at,
            stop=stop,
            samples=tuple((ts, round(wh)) for ts, wh in samples),
            meter_start_wh=None if row.meter_start_wh is None else round(row.meter_start_wh),
            meter_stop_wh=None if row.meter_stop_wh is None else round(row.meter_stop_wh),
            charging_end=min(row.charging_ended_at, stop) if row.charging_ended_at else None,
        )

    async def price(self, db: AsyncSession, row: ChargingSessionRow, now: datetime) -> Bill | None:
        """The itemised bill of a session (up to ``now`` while it is open)."""
        info = self.chargers.get(row.charger_id)
        if info is None:
            return None
        samples = await self._samples(db, row)
        try:  # a stored value billing cannot take (a broken meter) leaves the session unbilled
            return bill(self.tariffs, info.location, info.site_class, self._data(row, samples, now))
        except (ValueError, ArithmeticError) as exc:
            self._metrics.ocpp_rejected.labels("billing", "unpriced").inc()
            log.warning("charging session %s not billed: %s", row.id, exc)
            return None

    async def waiver(
        self, db: AsyncSession, row: ChargingSessionRow, now: datetime
    ) -> dict[str, Any] | None:
        """The stretch of parking the site waives for this charging session, if any."""
        info = self.chargers.get(row.charger_id)
        if info is None or info.site_id is None:
            return None
        samples = await self._samples(db, row)
        try:
            w = parking_waiver(self.tariffs, info.site_id, self._data(row, samples, now))
        except (ValueError, ArithmeticError):
            return None
        if w is None:
            return None
        return {
            "site_id": w.site_id,
            "start": w.start.isoformat(),
            "end": w.end.isoformat(),
            "rule": w.rule,
        }
