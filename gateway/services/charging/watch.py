"""The watch loop: probes silent chargers before declaring them offline, sweeps for outages,
and raises maintenance reports through the case outbox."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from charging.health import (
    Change,
)
from drivers.ocpp import Link
from gateway.cases.outbox import record_case
from gateway.services.charging.recorder import Recorder

log = logging.getLogger(__name__)

WATCH_SLICE = 250  # chargers looked at between two turns of the event loop


class Watch(Recorder):
    """Probes, outages and maintenance reports (``watch``, a task)."""

    async def watch(self) -> None:
        """Probe silent chargers, declare outages, raise maintenance reports."""
        interval_s = self.config.watch_interval_s
        # Maintenance findings wait an hour (by default) before they are reported: looking for
        # them every pass cost a 20 ms stall every 5 s at 5,000 chargers, a twentieth of the
        # shortest wait is soon enough (at most a minute).
        shortest = min(self.config.faulted_report_after_s, self.config.offline_report_after_s)
        every = timedelta(seconds=max(interval_s, min(60.0, shortest / 20)))
        due_maintenance: datetime | None = None
        async with asyncio.TaskGroup() as tg:
            while True:
                now = self._clock()
                # A pass over a 5,000-charger book takes 6-20 ms: walk it in slices and let the
                # chargers' answers in between (one 30 ms stall every few seconds showed in
                # the p99).
                ids = self.book.charger_ids()
                for start in range(0, len(ids), WATCH_SLICE):
                    chunk = [i for i in ids[start : start + WATCH_SLICE] if self.acts_for(i)]
                    for charger_id in self.book.due_probes(now, chunk):
                        session = self.live.get(charger_id)
                        if session is None or charger_id in self._probing:
                            continue
                        self._probing.add(charger_id)
                        self._enqueue_changes(self.book.probe_sent(charger_id, now))
                        tg.create_task(self._probe(charger_id, session))
                    self._enqueue_changes(self.book.sweep(now, chunk))
                    await asyncio.sleep(0)
                if due_maintenance is None or now >= due_maintenance:
                    await asyncio.sleep(0)
                    await self._maintenance(now)
                    due_maintenance = now + every
                self._enqueue_lazy_flush()  # the held-back writes that are overdue
                await asyncio.sleep(interval_s)

    async def _probe(self, charger_id: str, session: Link) -> None:
        try:
            ok = await session.probe(self.config.probe_timeout_s)
        finally:
            self._probing.discard(charger_id)
        self._metrics.ocpp_probes.labels("answered" if ok else "silent").inc()
        self._enqueue_changes(self.book.probe_result(charger_id, ok, self._clock()))

    def _enqueue_changes(self, changes: tuple[Change, ...]) -> None:
        if changes:
            self._queue.put_nowait((changes, self._clock()))  # unbounded: never dropped

    async def _maintenance(self, now: datetime) -> None:
        findings = self.book.maintenance(
            now,
            timedelta(seconds=self.config.faulted_report_after_s),
            timedelta(seconds=self.config.offline_report_after_s),
        )
        # Only a charger in service is reported: one in maintenance is known to be out, a
        # provisioned or commissioned one is still being installed (not yet in service); and
        # only by the instance acting for it (the cluster's: docs/operations.md).
        findings = tuple(
            f for f in findings if self.in_service(f.charger_id) and self.acts_for(f.charger_id)
        )
        if not findings:
            return
        filed = 0
        try:
            async with self._sessions.begin() as db:
                for f in findings:
                    case = f.to_case()
                    row = await record_case(db, case, now)
                    self._metrics.cases_raised.labels(
                        case.category, "duplicate" if row is None else "recorded"
                    ).inc()
                    if row is not None:
                        filed += 1
                        self._bus.publish(case)
        except Exception as exc:
            self._warn.failed(f"maintenance reports: {type(exc).__name__}: {exc}")
            return
        if filed:
            self._on_case()
