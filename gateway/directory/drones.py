"""The town's patrol drones as the town file gives them, and their import.

A drone is flown over one of two links: ``dji`` (a DJI dock with its aircraft, named by their
serial numbers: the aircraft's sn is the key its reports carry) or ``mavlink`` (a vehicle named
by its MAVLink system id). Each has a patrol area (one WGS-84 ``[lon, lat]`` ring, checked by
``dronelink.patrol``) and a home (``[lon, lat]``: where it returns to, its dock for DJI).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from dronelink.patrol import PatrolArea
from gateway.directory.audit import Edit
from gateway.infra.storage.schema import DroneRow

__all__ = ["Drone", "drone_problems", "drone_values", "import_drones"]

Lat = Annotated[float, Field(ge=-90, le=90, strict=True)]
Lon = Annotated[float, Field(ge=-180, le=180, strict=True)]
DroneId = Annotated[
    str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")
]
Sn = Annotated[str, Field(min_length=4, max_length=64, pattern=r"^[A-Za-z0-9]+$")]


class Drone(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: DroneId
    name: str = Field(min_length=1, max_length=64)
    kind: Literal["dji", "mavlink"]
    dock_sn: Sn | None = Field(None, description="the DJI dock's sn (kind dji)")
    aircraft_sn: Sn | None = Field(None, description="the DJI aircraft's sn (kind dji)")
    system_id: int | None = Field(None, ge=1, le=255, description="MAVLink system id")
    patrol_area: list[tuple[Lon, Lat]] = Field(min_length=3, description="[lon, lat] ring")
    home: tuple[Lon, Lat] = Field(description="[lon, lat] it returns to (its dock)")

    @model_validator(mode="after")
    def _kind(self) -> Self:
        if self.kind == "dji":
            if self.dock_sn is None or self.aircraft_sn is None:
                raise ValueError("a dji drone needs dock_sn and aircraft_sn")
            if self.system_id is not None:
                raise ValueError("a dji drone has no system_id")
        else:
            if self.system_id is None:
                raise ValueError("a mavlink drone needs system_id")
            if self.dock_sn is not None or self.aircraft_sn is not None:
                raise ValueError("a mavlink drone has no dock_sn/aircraft_sn")
        PatrolArea(tuple(self.patrol_area))  # raises ValueError with what is wrong
        return self

    @property
    def key(self) -> str:
        """The key its link reports it by (DJI aircraft sn, MAVLink system id as text)."""
        return self.aircraft_sn if self.kind == "dji" else str(self.system_id)  # type: ignore[return-value]


def drone_problems(drones: list[Drone]) -> list[str]:
    """Ids, sns and system ids are unique across the town's drones."""
    problems: list[str] = []
    for label, ids in (
        ("drone", [d.id for d in drones]),
        ("drone sn", [sn for d in drones for sn in (d.dock_sn, d.aircraft_sn) if sn]),
        ("drone system_id", [str(d.system_id) for d in drones if d.system_id is not None]),
    ):
        dupes = [i for i, n in Counter(ids).items() if n > 1]
        if dupes:
            problems.append(f"duplicate {label} id(s): {', '.join(sorted(dupes)[:5])}")
    return problems


DRONE_FIELDS = ("name", "kind", "dock_sn", "aircraft_sn", "system_id", "patrol_area",
                "home_lon", "home_lat")  # fmt: skip


def drone_values(d: Drone) -> dict[str, Any]:
    return {
        "name": d.name,
        "kind": d.kind,
        "dock_sn": d.dock_sn,
        "aircraft_sn": d.aircraft_sn,
        "system_id": d.system_id,
        "patrol_area": [[lon, lat] for lon, lat in d.patrol_area],
        "home_lon": d.home[0],
        "home_lat": d.home[1],
    }


async def import_drones(
    session: AsyncSession,
    drones: list[Drone],
    now: datetime,
    edits: dict[str, Edit] | None = None,
) -> list[tuple[str, str, str]]:
    """Upsert the file's drones; ``(outcome, kind, key)`` for each (created, updated,
    unchanged, deleted). A drone no longer in the file is left alone, unless the file gives one
    of its keys to another drone: then it goes (keys are unique). *edits* receives, by drone
    id, what each drone created, updated or deleted was before and is after (the audit log)."""
    edits = {} if edits is None else edits
    fields = list(DRONE_FIELDS)
    existing = {r.id: r for r in (await session.execute(select(DroneRow))).scalars()}
    out: list[tuple[str, str, str]] = []
    in_file = {d.id for d in drones}
    sns = {sn for d in drones for sn in (d.dock_sn, d.aircraft_sn) if sn is not None}
    system_ids = {d.system_id for d in drones if d.system_id is not None}
    for old in list(existing.values()):
        if old.id in in_file:
            continue
        if {old.dock_sn, old.aircraft_sn} & sns or old.system_id in system_ids:
            edits[old.id] = Edit(
                "drone", old.id, "delete", {k: getattr(old, k) for k in fields}, None
            )
            await session.delete(old)
            del existing[old.id]
            out.append(("deleted", "drone", old.id))
    wanted = {d.id: drone_values(d) for d in drones}
    before = {
        key: {k: getattr(row, k) for k in wanted[key]}
        for key, row in existing.items()
        if key in wanted
    }
    for key in before:  # keys may move between drones of the file: free them first
        freed = existing[key]
        freed.dock_sn = freed.aircraft_sn = None
        freed.system_id = None
    await session.flush()
    for d in drones:
        values = wanted[d.id]
        row = existing.get(d.id)
        if row is None:
            session.add(DroneRow(id=d.id, created_at=now, updated_at=now, **values))
            out.append(("created", "drone", d.id))
            edits[d.id] = Edit("drone", d.id, "import", None, values)
            continue
        for k, v in values.items():
            setattr(row, k, v)
        if before[d.id] != values:
            row.updated_at = now
            out.append(("updated", "drone", d.id))
            was = before[d.id]
            edits[d.id] = Edit(
                "drone",
                d.id,
                "import",
                {k: v for k, v in was.items() if values[k] != v},
                {k: v for k, v in values.items() if was[k] != v},
            )
        else:
            out.append(("unchanged", "drone", d.id))
    await session.flush()
    return out
