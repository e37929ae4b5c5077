"""The drones in the database, on both backends: the town file's drones imported idempotently
(keys may move between drones), the state written behind and read back, commands written
through and final once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import select

from dronelink.model import CommandStatus, DroneFix, DroneReport
from dronelink.patrol import AlertKind, Watch
from gateway.directory.drones import Drone
from gateway.directory.town import TownFileError, load_town, parse_town
from gateway.directory.town_import import import_town
from gateway.infra.changes import head_seq
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import ChangeRow, DroneRow
from gateway.services.drones.live import DroneLive, row_values
from gateway.services.drones.store import DroneStore

T0 = datetime(2026, 12, 2, 8, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def sessions(db_url: str) -> AsyncIterator[Any]:
    engine = create_engine(db_url)
    await migrate(engine)
    yield sessionmaker_for(engine)
    await engine.dispose()


async def drones(sessions: Any) -> dict[str, DroneRow]:
    async with sessions() as db:
        return {r.id: r for r in (await db.execute(select(DroneRow))).scalars()}


async def test_the_sample_towns_drones_import_idempotently_and_live(sessions: Any) -> None:
    town = load_town(None)
    assert [d.id for d in town.drones] == ["drone-1", "drone-2"]
    async with sessions.begin() as db:
        report = await import_town(db, town, T0)
    assert report.created["drones"] == 2
    rows = await drones(sessions)
    one, two = rows["drone-1"], rows["drone-2"]
    assert (one.kind, one.dock_sn, one.aircraft_sn) == ("dji", "7CTDM1234567890",
                                                        "1581F5FHD2345678")  # fmt: skip
    assert (two.kind, two.system_id) == ("mavlink", 1)
    assert len(one.patrol_area) == 4 and 38.77 < one.home_lat < 38.79
    seq = await head_seq(sessions)
    async with sessions.begin() as db:
        again = await import_town(db, town, T0 + timedelta(hours=1))
    assert again.unchanged["drones"] == 2 and "drones" not in again.updated
    assert await head_seq(sessions) == seq  # nothing changed: nothing in the feed

    # the two swap their MAVLink ids... here: drone-2 becomes system 3, a new drone-3 takes 1
    moved = town.model_copy(
        update={
            "drones": [
                town.drones[0],
                town.drones[1].model_copy(update={"system_id": 3}),
                town.drones[1].model_copy(update={"id": "drone-3", "system_id": 1}),
            ]
        }
    )
    async with sessions.begin() as db:
        report = await import_town(db, moved, T0 + timedelta(hours=2))
    assert report.created["drones"] == 1 and report.updated["drones"] == 1
    rows = await drones(sessions)
    assert rows["drone-2"].system_id == 3 and rows["drone-3"].system_id == 1
    async with sessions() as db:
        kinds = [
            (c.kind, c.key)
            for c in (await db.execute(select(ChangeRow).where(ChangeRow.seq > seq))).scalars()
        ]
    assert ("drone", "drone-2") in kinds and ("drone", "drone-3") in kinds

    # a drone left out of the file stays, unless the file gives its key to another
    only_one = town.model_copy(
        update={"drones": [town.drones[0], town.drones[1].model_copy(update={"id": "drone-4"})]}
    )
    async with sessions.begin() as db:
        await import_town(db, only_one, T0 + timedelta(hours=3))
    rows = await drones(sessions)
    assert "drone-3" not in rows and rows["drone-4"].system_id == 1
    assert rows["drone-2"].system_id == 3  # not in the file, key not taken: left alone


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('kind = "dji"\nsystem_id = 1', "needs dock_sn and aircraft_sn"),
        ('kind = "mavlink"', "needs system_id"),
        ('kind = "mavlink"\nsystem_id = 1\ndock_sn = "ABCD1234"', "no dock_sn"),
        ('kind = "mavlink"\nsystem_id = 300', "less than or equal to 255"),
        ('kind = "rc"', "Input should be"),
    ],
)
def test_bad_drones_are_refused_with_their_reason(extra: str, message: str) -> None:
    text = (
        '[town]\nname = "t"\n[[sites]]\nid = "s"\nname = "s"\nkind = "car_park"\nlat = 38.7\n'
        'lon = 101.0\ncapacity = 0\ncounting = "entry_exit"\nsegment_class = "A"\n'
        '[[drones]]\nid = "d"\nname = "d"\n' + extra + "\n"
        "patrol_area = [[101.0, 38.7], [101.01, 38.7], [101.01, 38.71]]\n"
        "home = [101.005, 38.701]\n"
    )
    with pytest.raises(TownFileError, match=message):
        parse_town(text)


def test_duplicate_keys_and_degenerate_areas_are_refused() -> None:
    base = load_town(None)
    twin = base.drones[1].model_copy(update={"id": "drone-9"})
    with pytest.raises(ValueError, match="duplicate drone system_id"):
        type(base).model_validate({**base.model_dump(), "drones": [*base.model_dump()["drones"],
                                                                   twin.model_dump()]})  # fmt: skip
    line = [(101.0, 38.0), (101.1, 38.1), (101.2, 38.2)]
    with pytest.raises(ValueError, match="on one line"):
        Drone(id="d", name="d", kind="mavlink", system_id=5, patrol_area=line, home=(101.0, 38.0))


async def test_state_round_trips(sessions: Any) -> None:
    async with sessions.begin() as db:
        await import_town(db, load_town(None), T0)
    store = DroneStore(sessions)
    infos, live = await store.load()
    assert set(infos) == {"drone-1", "drone-2"} and live == {}
    d = DroneLive("drone-1")
    d.apply(DroneReport("dji", "x", T0, fix=DroneFix(38.776, 101.075, 1650.0), battery_percent=55,
                        mode="m" * 40, flying=True))  # fmt: skip
    d.watch = Watch(frozenset({AlertKind.LOW_BATTERY}), T0)
    await store.flush([row_values(d, T0)])
    d.battery_percent = 54.0
    await store.flush([row_values(d, T0)])  # now an update by key
    _, back = await DroneStore(sessions).load()
    got = back["drone-1"]
    assert got.battery_percent == 54.0 and got.fix == DroneFix(38.776, 101.075, 1650.0)
    assert got.mode == "m" * 32 and got.flying is True
    assert got.watch == Watch(frozenset({AlertKind.LOW_BATTERY}), T0)


async def test_a_final_command_is_never_changed_again(sessions: Any) -> None:
    store = DroneStore(sessions)
    rec = await store.insert_command("a" * 36, "drone-1", "speaker", {"text": "hi"}, "op", T0)
    assert rec.status == "pending" and not rec.final
    assert await store.open_command("drone-1", "speaker", T0 - timedelta(minutes=1)) == rec.id
    assert await store.open_command("drone-1", "return_home", T0 - timedelta(minutes=1)) is None
    assert await store.open_command("drone-1", "speaker", T0) is None  # older than since
    t1 = T0 + timedelta(seconds=1)
    assert await store.update_command(rec.id, CommandStatus.IN_PROGRESS, t1, percent=150)
    assert await store.update_command(rec.id, CommandStatus.OK, t1, attempts=1, detail="d" * 900)
    assert not await store.update_command(rec.id, CommandStatus.FAILED, t1)
    assert not await store.update_command("nope", CommandStatus.OK, t1)
    got = await store.command(rec.id)
    assert got is not None and got.status == "ok" and got.percent == 100
    assert len(got.detail) == 500 and got.finished_at == t1
    assert await store.open_command("drone-1", "speaker", T0 - timedelta(minutes=1)) is None


async def test_a_command_is_recorded_once_and_finished_in_one_step(sessions: Any) -> None:
    store = DroneStore(sessions)
    since = T0 - timedelta(minutes=1)
    assert await store.open_or_insert("b" * 36, "drone-1", "speaker", {"text": "hi"}, "op", T0,
                                      since) is None  # fmt: skip
    # a second one of the same kind while the first is open: refused, nothing recorded
    busy = await store.open_or_insert("c" * 36, "drone-1", "speaker", {}, "op", T0, since)
    assert busy == "b" * 36 and await store.command("c" * 36) is None
    t1 = T0 + timedelta(seconds=2)
    done = await store.finish_command("b" * 36, CommandStatus.OK, t1, attempts=2,
                                      result_code=0, detail="played")  # fmt: skip
    assert done is not None and done.status == "ok" and done.attempts == 2
    assert done.finished_at == t1 and done.detail == "played"
    # already final (another instance recorded it first): that record stands and is returned
    again = await store.finish_command("b" * 36, CommandStatus.TIMEOUT, t1, attempts=3,
                                       result_code=None, detail="late")  # fmt: skip
    assert again is not None and again.status == "ok" and again.detail == "played"
    assert await store.finish_command("n" * 36, CommandStatus.OK, t1, attempts=1,
                                      result_code=None, detail="") is None  # fmt: skip
