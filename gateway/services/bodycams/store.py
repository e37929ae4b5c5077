"""The body cams in the database: loaded at boot, written behind the signalling.

``load`` reads the credentials, the officers and the stored live state (restored presence);
``flush`` writes the dirty cams' state in bulk (one INSERT for new rows, one UPDATE by key for
the rest: the full rows, and the routine ones' few columns) and the alarms that arrived, each
with the case reports the enforcement rules file for it (``officer_alarm``), in one
transaction. A failed flush keeps its work for the next one. On PostgreSQL (``instance`` set)
each row names the instance that wrote it, a row another instance inserted meanwhile is
updated instead, and ``notify`` names the written cams in the same transaction
(``gateway.services.bodycams.shared``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from drivers.gb28181.manscdp import Alarm
from events import CaseRaised
from gateway.cases.outbox import record_case
from gateway.directory.bodycams import Credential, credentials
from gateway.infra.storage.schema import BodycamAlarmRow, BodycamStateRow, OfficerRow
from gateway.services.bodycams.cams import CamLive, cam_from_row
from parking.enforcement import Detection, RuleBook

__all__ = ["AlarmRecord", "BodycamStore", "OfficerInfo", "alarm_cases", "alarm_detection"]

CHUNK = 100  # rows per UPDATE statement of a flush


@dataclass(frozen=True, slots=True)
class OfficerInfo:
    id: str
    name: str
    squad: str
    role: str


@dataclass(frozen=True, slots=True)
class AlarmRecord:
    alarm: Alarm
    received_at: datetime
    lat: float | None  # the alarm's own position, else the cam's last one
    lon: float | None
    officer: OfficerInfo | None


def _confidence(priority: int | None) -> float:
    """How sure the rule book may be that it matters: priority 1 (highest) .. 4."""
    return 0.5 if priority is None else (5 - priority) / 4


def alarm_detection(a: AlarmRecord) -> Detection:
    """The alarm as the rule book reads it: a detection of kind ``officer_alarm``."""
    ts = a.alarm.time or a.received_at
    return Detection(
        device_id=a.alarm.device_id,
        kind="officer_alarm",
        observed_at=ts,
        confidence=_confidence(a.alarm.priority),
        image_ref=f"bodycam-alarm:{a.alarm.device_id}:{a.alarm.sn}",
        lon=a.lon,
        lat=a.lat,
    )


def alarm_cases(a: AlarmRecord, rules: RuleBook | None) -> tuple[CaseRaised, ...]:
    """The case reports the rules file for an alarm (none without a rule that says so):
    the rule's category, window and zone; who, where (WGS-84) and what the cam said; one
    case per cam and alarm SN (two officers' alarms at one place are two cases)."""
    if rules is None:
        return ()
    who = f"{a.officer.name}（{a.officer.squad}）" if a.officer else a.alarm.device_id
    what = a.alarm.description or "报警"
    return tuple(
        replace(
            case,
            title=f"{case.title}：{who}：{what}"[:200],
            dedup_key=f"bodycam|{a.alarm.device_id}|{a.alarm.sn}",
            details={
                **case.details,
                "officer_id": a.officer.id if a.officer else None,
                "priority": a.alarm.priority,
                "method": a.alarm.method,
                "alarm_type": a.alarm.alarm_type,
            },
        )
        for case in rules.for_detection(alarm_detection(a)).cases
    )


def _shapes(rows: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """*rows* by the columns they set (one executemany needs one shape), in order."""
    out: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for r in rows:
        out.setdefault(tuple(r), []).append(r)
    return list(out.values())


class BodycamStore:
    def __init__(self, sessions: async_sessionmaker[Any], instance: str | None = None) -> None:
        self.sessions = sessions
        self.instance = instance  # PostgreSQL, several instances: who writes
        self.notify: Callable[[AsyncSession, list[str]], Awaitable[None]] | None = None
        self._stored: set[str] = set()  # ids with a bodycam_state row

    def stored(self, ids: list[str]) -> None:
        """Rows another instance wrote (seen by the mirror): updated, not inserted, here."""
        self._stored.update(ids)

    async def states(self, ids: list[str] | None) -> list[BodycamStateRow]:
        """The stored rows of *ids* (all with None)."""
        q = select(BodycamStateRow)
        if ids is not None:
            q = q.where(BodycamStateRow.device_id.in_(ids))
        async with self.sessions() as db:
            return list((await db.execute(q)).scalars())

    async def load(
        self, interval_s: float, count: int
    ) -> tuple[dict[str, Credential], dict[str, OfficerInfo], dict[str, CamLive]]:
        async with self.sessions() as db:
            creds = await credentials(db)
            officers = {
                o.id: OfficerInfo(o.id, o.name, o.squad, o.role)
                for o in (await db.execute(select(OfficerRow))).scalars()
            }
            rows = list((await db.execute(select(BodycamStateRow))).scalars())
        self._stored = {r.device_id for r in rows}
        cams = {r.device_id: cam_from_row(r, interval_s, count) for r in rows}
        return creds, officers, cams

    async def officer(self, officer_id: str) -> OfficerInfo | None:
        async with self.sessions() as db:
            o = await db.get(OfficerRow, officer_id)
        return None if o is None else OfficerInfo(o.id, o.name, o.squad, o.role)

    async def flush(
        self,
        states: list[dict[str, Any]],
        alarms: list[AlarmRecord],
        on_case: Callable[[CaseRaised, bool], None],
        rules: RuleBook | None = None,
    ) -> None:
        """Write *states* and *alarms* in one transaction; *on_case* hears each case raised
        (and whether it was recorded or a duplicate) after the commit."""
        if self.instance is not None:
            states = [{**s, "instance_id": self.instance} for s in states]
        new = [s for s in states if s["device_id"] not in self._stored]
        old = [{"key": s["device_id"], **s} for s in states if s["device_id"] in self._stored]
        cases: list[tuple[CaseRaised, bool]] = []
        table = cast(Table, BodycamStateRow.__table__)
        async with self.sessions.begin() as db:
            for rows in _shapes(new):  # full rows, and routine ones (fewer columns)
                if self.instance is not None:  # another instance may have inserted it
                    up = pg_insert(table)
                    cols = {k: up.excluded[k] for k in rows[0] if k != "device_id"}
                    await db.execute(
                        up.on_conflict_do_update(index_elements=["device_id"], set_=cols), rows
                    )
                else:
                    await db.execute(insert(table), rows)
            # Core executemany in slices: the loop answers cams between them (one statement
            # for 2,000 rows held it for ~50 ms)
            by_key = update(table).where(table.c.device_id == bindparam("key"))
            for rows in _shapes(old):
                for i in range(0, len(rows), CHUNK):
                    await db.execute(by_key, rows[i : i + CHUNK])
            for a in alarms:
                row = BodycamAlarmRow(
                    device_id=a.alarm.device_id,
                    at=a.alarm.time,
                    received_at=a.received_at,
                    priority=a.alarm.priority,
                    method=a.alarm.method,
                    alarm_type=a.alarm.alarm_type,
                    description=a.alarm.description,
                    lat=a.lat,
                    lon=a.lon,
                )
                for case in alarm_cases(a, rules):
                    filed = await record_case(db, case, a.received_at)
                    row.case_id = row.case_id or (filed.id if filed is not None else None)
                    cases.append((case, filed is not None))
                db.add(row)
            if self.notify is not None and states:
                await self.notify(db, [s["device_id"] for s in states])
        self._stored.update(s["device_id"] for s in new)
        for case, recorded in cases:
            on_case(case, recorded)
