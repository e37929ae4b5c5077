"""A connector's status history: the current status and its ``since`` read from it, pruning
to the window the book keeps, seeding it from a persisted snapshot, and the fault episodes in
it."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from charging.health.records import (
    FAULTED,
    MAX_HISTORY,
    UNKNOWN_STATUS,
    ConnectorState,
    FaultRecord,
    StatusReport,
)


def fault_history(connector_id: int, reports: Sequence[StatusReport]) -> tuple[FaultRecord, ...]:
    """Fault and warning episodes in a connector's reports (sorted by ``ts``), newest first. Works
    on the book's history or on a longer one read back from storage."""
    out: list[FaultRecord] = []
    open_: FaultRecord | None = None
    for r in reports:
        key = (r.status, r.error_code, r.vendor_error_code)
        if open_ is not None:
            if key == (open_.status, open_.error_code, open_.vendor_error_code):
                continue
            out.append(replace(open_, end=r.ts))
            open_ = None
        if r.status == FAULTED or r.error_code is not None or r.vendor_error_code is not None:
            open_ = FaultRecord(
                connector_id, r.ts, None, r.status, r.error_code, r.vendor_error_code, r.info
            )
    if open_ is not None:
        out.append(open_)
    return tuple(reversed(out))


def _run_start(history: Sequence[StatusReport]) -> int:
    """Index of the first report of the last run of equal statuses."""
    i = len(history) - 1
    while i > 0 and history[i - 1].status == history[-1].status:
        i -= 1
    return i


def from_history(conn: ConnectorState, history: Sequence[StatusReport]) -> ConnectorState:
    last = history[-1]
    return replace(
        conn,
        status=last.status,
        since=history[_run_start(history)].ts,
        reported_at=last.ts,
        error_code=last.error_code,
        vendor_error_code=last.vendor_error_code,
        info=last.info,
    )


def prune(history: list[StatusReport], keep: timedelta) -> None:
    """Drop reports older than ``keep`` before the newest, but keep the first report of the run
    that spans the cutoff: it holds the status at the cutoff and a long run's true ``since``."""
    cutoff = history[-1].ts - keep
    if len(history) >= 2 and history[1].ts < cutoff:
        i = bisect.bisect_left(history, cutoff, key=lambda r: r.ts)
        j = i - 1
        while j > 0 and history[j - 1].status == history[j].status:
            j -= 1
        history[:] = [history[j], *history[i:]]
    if len(history) > MAX_HISTORY:
        del history[: len(history) - MAX_HISTORY]


def seed(conn: ConnectorState, since: datetime) -> list[StatusReport]:
    """A history that reproduces a persisted connector snapshot: the run's first report and,
    if later, its newest."""
    first = StatusReport(
        since, conn.status or UNKNOWN_STATUS, conn.error_code, conn.vendor_error_code, conn.info
    )
    if conn.reported_at is None or conn.reported_at <= since:
        return [first]
    return [first, replace(first, ts=conn.reported_at)]


def record(history: list[StatusReport], report: StatusReport, keep: timedelta) -> bool | None:
    """Insert ``report`` in its place in ``history`` (sorted by ``ts``; at the same instant after
    the ones already there: a charger sends in order) and prune it to ``keep``. Returns whether
    it became the newest (the connector's status), or None for the same report again."""
    lo = bisect.bisect_left(history, report.ts, key=lambda r: r.ts)
    hi = bisect.bisect_right(history, report.ts, key=lambda r: r.ts)
    if report in history[lo:hi]:
        return None
    history.insert(hi, report)
    current = hi == len(history) - 1
    prune(history, keep)
    return current
