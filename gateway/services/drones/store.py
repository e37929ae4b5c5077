"""The drones in the database: the town's drones and their state (loaded at boot, state written
behind), and the commands (written through).

A command is inserted ``pending`` before it goes on the wire; progress and the outcome update
its row by command id (from whichever instance heard them); a final row is never changed again,
so the first final outcome recorded, here or on another instance, is the one that stands.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Select, Table, Update, bindparam, exists, insert, literal, select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from dronelink.model import CommandStatus
from gateway.infra.storage.schema import DroneCommandRow, DroneRow, DroneStateRow
from gateway.services.drones.live import DroneInfo, DroneLive, info_from_row, live_from_row

__all__ = ["FINAL", "CommandRecord", "DroneStore", "command_json", "record_of"]

FINAL = tuple(s.value for s in CommandStatus if s.final)
OPEN = tuple(s.value for s in CommandStatus if not s.final)
DETAIL_CHARS = 500


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command's row as the API shows it."""

    id: str
    drone_id: str
    kind: str
    args: dict[str, Any]
    status: str
    attempts: int
    result_code: int | None
    percent: int | None
    detail: str
    requested_by: str
    requested_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def final(self) -> bool:
        return self.status in FINAL


def record_of(r: DroneCommandRow) -> CommandRecord:
    return CommandRecord(
        r.id, r.drone_id, r.kind, dict(r.args or {}), r.status, r.attempts, r.result_code,
        r.percent, r.detail, r.requested_by, r.requested_at, r.updated_at, r.finished_at,
    )  # fmt: skip


def command_json(c: CommandRecord) -> dict[str, Any]:
    return {
        "id": c.id,
        "drone_id": c.drone_id,
        "kind": c.kind,
        "args": c.args,
        "status": c.status,
        "final": c.final,
        "attempts": c.attempts,
        "result_code": c.result_code,
        "percent": c.percent,
        "detail": c.detail,
        "requested_by": c.requested_by,
        "requested_at": c.requested_at.isoformat(),
        "updated_at": c.updated_at.isoformat(),
        "finished_at": None if c.finished_at is None else c.finished_at.isoformat(),
    }


class DroneStore:
    def __init__(self, sessions: async_sessionmaker[Any]) -> None:
        self.sessions = sessions
        self._stored: set[str] = set()  # ids with a drone_state row

    # -- the town's drones and their state ---------------------------------------------------
    async def load(self) -> tuple[dict[str, DroneInfo], dict[str, DroneLive]]:
        async with self.sessions() as db:
            drones = list((await db.execute(select(DroneRow))).scalars())
            states = list((await db.execute(select(DroneStateRow))).scalars())
        self._stored = {s.drone_id for s in states}
        infos = {r.id: info_from_row(r) for r in drones if r.lifecycle != "retired"}
        return infos, {s.drone_id: live_from_row(s) for s in states if s.drone_id in infos}

    async def drone(self, drone_id: str) -> DroneInfo | None:
        async with self.sessions() as db:
            row = await db.get(DroneRow, drone_id)
        return None if row is None or row.lifecycle == "retired" else info_from_row(row)

    async def flush(self, states: list[dict[str, Any]]) -> None:
        """One INSERT for new rows, one UPDATE by key for the rest, in one transaction."""
        new = [s for s in states if s["drone_id"] not in self._stored]
        old = [{"key": s["drone_id"], **s} for s in states if s["drone_id"] in self._stored]
        table = cast(Table, DroneStateRow.__table__)
        async with self.sessions.begin() as db:
            if new:
                await db.execute(insert(table), new)
            if old:
                by_key = update(table).where(table.c.drone_id == bindparam("key"))
                await db.execute(by_key, old)
        self._stored.update(s["drone_id"] for s in new)

    # -- commands ------------------------------------------------------------------------------
    async def insert_command(
        self,
        command_id: str,
        drone_id: str,
        kind: str,
        args: dict[str, Any],
        requested_by: str,
        now: datetime,
    ) -> CommandRecord:
        row = _pending_row(command_id, drone_id, kind, args, requested_by, now)
        async with self.sessions.begin() as db:
            db.add(row)
        return record_of(row)

    async def open_or_insert(
        self,
        command_id: str,
        drone_id: str,
        kind: str,
        args: dict[str, Any],
        requested_by: str,
        now: datetime,
        since: datetime,
    ) -> str | None:
        """Record the command ``pending``, unless one of *kind* to *drone_id*, requested after
        *since*, is still open: then its id, and nothing is recorded. One statement (insert
        where none is open) in one transaction: the command is recorded before it is sent,
        at the cost of one commit, and no other writer slips in between check and insert."""
        table = cast(Table, DroneCommandRow.__table__)
        values = _pending_values(command_id, drone_id, kind, args, requested_by, now)
        source = select(*(literal(v, table.c[k].type) for k, v in values.items())).where(
            ~exists(_open(drone_id, kind, since))
        )
        stmt = insert(table).from_select(list(values), source)
        for _ in range(3):
            async with self.sessions.begin() as db:
                result = await db.execute(stmt)
                if getattr(result, "rowcount", 0) == 1:
                    return None
                found = await db.scalar(_open(drone_id, kind, since))
            if found is not None:
                return str(found)
            # The open one ended between the two statements (PostgreSQL reads each statement
            # afresh): try again.
        raise RuntimeError(f"command {command_id} neither recorded nor refused")

    async def finish_command(
        self,
        command_id: str,
        status: CommandStatus,
        now: datetime,
        *,
        attempts: int,
        result_code: int | None,
        detail: str,
    ) -> CommandRecord | None:
        """Record a command's final outcome and return the record as it now stands (if
        another instance recorded it final first, that record). One statement, mostly."""
        table = cast(Table, DroneCommandRow.__table__)
        values = _step(status, now, attempts, result_code, None, detail)
        stmt = (
            update(table)
            .where(table.c.id == command_id, table.c.status.in_(OPEN))
            .values(**values)
            .returning(*table.c)
        )
        async with self.sessions.begin() as db:
            row = (await db.execute(stmt)).first()
            if row is None:
                row = (await db.execute(select(table).where(table.c.id == command_id))).first()
        return None if row is None else record_of(cast(DroneCommandRow, row))

    async def open_command(self, drone_id: str, kind: str, since: datetime) -> str | None:
        """The id of a command of *kind* to *drone_id* not yet final, requested after *since*."""
        async with self.sessions() as db:
            found = await db.scalar(_open(drone_id, kind, since))
        return None if found is None else str(found)

    async def update_command(
        self,
        command_id: str,
        status: CommandStatus,
        now: datetime,
        *,
        attempts: int | None = None,
        result_code: int | None = None,
        percent: int | None = None,
        detail: str | None = None,
    ) -> bool:
        """Step a command that is not final yet; False if there is no such open command."""
        values = _step(status, now, attempts, result_code, percent, detail)
        async with self.sessions.begin() as db:
            result = await db.execute(_update_open(command_id, values))
        return bool(getattr(result, "rowcount", 0))

    async def command(self, command_id: str) -> CommandRecord | None:
        async with self.sessions() as db:
            row = await db.get(DroneCommandRow, command_id)
        return None if row is None else record_of(row)

    async def expire(self, before: datetime, now: datetime) -> int:
        """Commands still open that were requested before *before* (their instance is gone):
        recorded as timeout."""
        async with self.sessions.begin() as db:
            result = await db.execute(
                update(DroneCommandRow)
                .where(DroneCommandRow.status.in_(OPEN), DroneCommandRow.requested_at < before)
                .values(
                    status=CommandStatus.TIMEOUT.value,
                    updated_at=now,
                    finished_at=now,
                    detail="no outcome was recorded (the gateway that sent it stopped)",
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)


def _pending_values(
    command_id: str,
    drone_id: str,
    kind: str,
    args: dict[str, Any],
    requested_by: str,
    now: datetime,
) -> dict[str, Any]:
    return dict(
        id=command_id, drone_id=drone_id, kind=kind, args=args,
        status=CommandStatus.PENDING.value, attempts=0, result_code=None, percent=None,
        detail="", requested_by=requested_by[:200], requested_at=now, updated_at=now,
        finished_at=None,
    )  # fmt: skip


def _pending_row(
    command_id: str,
    drone_id: str,
    kind: str,
    args: dict[str, Any],
    requested_by: str,
    now: datetime,
) -> DroneCommandRow:
    return DroneCommandRow(**_pending_values(command_id, drone_id, kind, args, requested_by, now))


def _open(drone_id: str, kind: str, since: datetime) -> Select[str]:
    """The id of an open command of *kind* to *drone_id*, requested after *since*."""
    return (
        select(DroneCommandRow.id)
        .where(DroneCommandRow.drone_id == drone_id, DroneCommandRow.kind == kind)
        .where(DroneCommandRow.status.in_(OPEN), DroneCommandRow.requested_at > since)
        .limit(1)
    )


def _step(
    status: CommandStatus,
    now: datetime,
    attempts: int | None,
    result_code: int | None,
    percent: int | None,
    detail: str | None,
) -> dict[str, Any]:
    """The columns a step of a command sets (a final one also its ``finished_at``)."""
    values: dict[str, Any] = {"status": status.value, "updated_at": now}
    if status.final:
        values["finished_at"] = now
    if attempts is not None:
        values["attempts"] = attempts
    if result_code is not None:
        values["result_code"] = result_code
    if percent is not None:
        values["percent"] = max(0, min(100, percent))
    if detail:
        values["detail"] = detail[:DETAIL_CHARS]
    return values


def _update_open(command_id: str, values: dict[str, Any]) -> Update:
    """Set *values* on the command if it is still open (a final one is never changed)."""
    return (
        update(DroneCommandRow)
        .where(DroneCommandRow.id == command_id, DroneCommandRow.status.in_(OPEN))
        .values(**values)
    )
