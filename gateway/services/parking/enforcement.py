"""Enforcement at the edge: detections from cameras and drones, and a sweep over long stays,
judged by the pure rule book; what the rules raise is filed in the case outbox.

A detection and the case report it raises are committed in one transaction, so a report is
never lost nor sent for a detection that was not kept. The stay sweep files its reports the
same way; the outbox deduplicates the same situation, so sweeping every minute reports a
zombie car once per dedup window, not every minute.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import async_sessionmaker

from events import BerthState, CaseRaised
from gateway.cases.outbox import record_case
from gateway.directory.town import Berth, Site
from gateway.infra.bus import EventBus
from gateway.infra.storage.schema import DetectionRow, ParkingSessionRow
from gateway.logs import OnceLogger
from gateway.metrics import Metrics
from parking.enforcement import Detection, RuleBook, Stay
from parking.occupancy import OccupancyBook

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DetectionResult:
    id: str
    outcome: str
    case_ids: tuple[str, ...]
    duplicates: int


class Enforcement:
    def __init__(
        self,
        sessions: async_sessionmaker[Any],
        rules: RuleBook,
        sites: dict[str, Site],
        berths: dict[str, Berth],
        book: OccupancyBook,
        bus: EventBus,
        metrics: Metrics,
        clock: Callable[[], datetime],
        on_recorded: Callable[[], None] = lambda: None,
    ) -> None:
        self._sessions = sessions
        self.rules = rules
        self._sites = sites
        self._berths = berths
        self._book = book
        self._bus = bus
        self._metrics = metrics
        self._clock = clock
        self._on_recorded = on_recorded
        self._warn = OnceLogger(log, "enforcement sweep")

    async def _file(self, db: Any, cases: tuple[CaseRaised, ...], now: datetime) -> list[str]:
        """Record each case in the caller's transaction; the ids of those that are new."""
        recorded: list[str] = []
        for case in cases:
            try:
                row = await record_case(db, case, now)
            except ValueError as exc:
                # A rule produced something a report cannot carry: count it, keep the rest.
                self._metrics.cases_raised.labels(case.category, "invalid").inc()
                log.error("case report of rule %s not filed: %s", case.rule_id, exc)
                continue
            outcome = "duplicate" if row is None else "recorded"
            self._metrics.cases_raised.labels(case.category, outcome).inc()
            if row is not None:
                recorded.append(row.id)
        return recorded

    def _published(self, cases: tuple[CaseRaised, ...], recorded: list[str]) -> None:
        for case in cases:
            self._bus.publish(case)
        if recorded:
            self._on_recorded()

    async def known_detection(self, detection_id: str) -> dict[str, Any] | None:
        """A detection already kept under the device's own id (a re-send), as the API shows it."""
        async with self._sessions() as db:
            row = await db.get(DetectionRow, detection_id)
        if row is None:
            return None
        return {
            "id": row.id,
            "outcome": row.outcome,
            "case_ids": [row.case_id] if row.case_id else [],
            "duplicates": 0,
        }

    async def detection(self, d: Detection, actor: str) -> DetectionResult:
        """Keep the detection, judge it, and file what follows, in one transaction."""
        verdict = self.rules.for_detection(d)
        now = self._clock()
        det_id = d.detection_id or "det_" + secrets.token_hex(12)
        try:
            recorded, outcome = await self._keep(
                d, det_id, verdict.cases, verdict.outcome, now, actor
            )
        except IntegrityError:
            # The same detection id, sent twice at once: the first one won, nothing was filed.
            known = await self.known_detection(det_id)
            if known is None:
                raise
            return DetectionResult(det_id, known["outcome"], tuple(known["case_ids"]), 0)
        self._metrics.detections.labels(outcome).inc()
        self._published(verdict.cases, recorded)
        return DetectionResult(det_id, outcome, tuple(recorded), len(verdict.cases) - len(recorded))

    async def _keep(
        self,
        d: Detection,
        det_id: str,
        cases: tuple[CaseRaised, ...],
        verdict: str,
        now: datetime,
        actor: str,
    ) -> tuple[list[str], str]:
        async with self._sessions.begin() as db:
            recorded = await self._file(db, cases, now)
            outcome = verdict
            if cases and not recorded:
                outcome = "duplicate"
            db.add(
                DetectionRow(
                    id=det_id,
                    device_id=d.device_id,
                    kind=d.kind,
                    site_id=d.site_id,
                    berth_id=d.berth_id,
                    lat=d.lat,
                    lon=d.lon,
                    observed_at=d.observed_at,
                    confidence=d.confidence,
                    image_ref=d.image_ref,
                    plate=d.plate,
                    received_at=now,
                    outcome=outcome,
                    case_id=recorded[0] if recorded else None,
                    actor=actor,
                )
            )
        return recorded, outcome

    def _stays(self, open_sessions: list[ParkingSessionRow]) -> list[Stay]:
        stays: list[Stay] = []
        for site_id in {b.site for b in self._berths.values()}:
            site = self._sites.get(site_id)
            try:
                views = self._book.berths(site_id)
            except KeyError:
                continue
            for v in views:
                if v.state is not BerthState.OCCUPIED:
                    continue
                berth = self._berths.get(v.berth_id)
                stays.append(
                    Stay(
                        site_id=site_id,
                        berth_id=v.berth_id,
                        site_zone=site.zone if site else None,
                        since=v.since,
                        device_id=v.dev_eui or v.berth_id,
                        lon=berth.lon if berth else None,
                        lat=berth.lat if berth else None,
                    )
                )
        for row in open_sessions:
            if row.berth_id is not None:
                continue  # already seen through its berth
            site = self._sites.get(row.site_id)
            stays.append(
                Stay(
                    site_id=row.site_id,
                    berth_id=None,
                    site_zone=site.zone if site else None,
                    since=row.entry_at,
                    device_id=row.entry_source,
                    lon=site.lon if site else None,
                    lat=site.lat if site else None,
                    plate=row.plate,
                    session_id=row.id,
                )
            )
        return stays

    async def sweep(self) -> int:
        """Judge every current stay once; returns how many new reports were filed."""
        now = self._clock()
        async with self._sessions() as db:
            open_rows = list(
                (
                    await db.execute(
                        select(ParkingSessionRow).where(ParkingSessionRow.state == "open")
                    )
                ).scalars()
            )
        cases = self.rules.for_stays(self._stays(open_rows), now)
        if not cases:
            return 0
        async with self._sessions.begin() as db:
            recorded = await self._file(db, cases, now)
        self._published(cases, recorded)
        return len(recorded)

    async def run(self, interval_s: float) -> None:
        while True:
            try:
                filed = await self.sweep()
                self._warn.recovered()
                if filed:
                    log.info("enforcement sweep filed %d case report(s)", filed)
            except (SQLAlchemyError, OSError) as exc:
                self._warn.failed(str(exc))
            await asyncio.sleep(interval_s)
