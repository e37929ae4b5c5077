"""The write-behind commit and the PUBACKs it holds, on a running gateway and both databases.

An acknowledgement goes out only after the commit that holds what was handled before it; a
failed commit keeps both the work and the acknowledgements; berth changes reach parking
sessions from the book's ordered journal in the same transaction (a stay that starts and
ends between two commits is recorded, once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest_asyncio
from sqlalchemy import select, text

from events import SensorStatus
from gateway.infra.storage.schema import BerthRow, ParkingSessionRow
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for

T0 = datetime(2026, 11, 24, 1, 0, tzinfo=UTC)


@pytest_asyncio.fixture
async def gw(mosquitto: Broker, db_url: str) -> AsyncIterator[Any]:
    # A long interval: only held acknowledgements (or the test) make the persister commit.
    settings = gateway_settings(db_url, mosquitto, occupancy={"persist_interval_s": 30.0})
    async with running_gateway(settings, lambda: T0 + timedelta(hours=3)) as gateway:
        yield gateway


def street_sensor(gw: Any, skip: int = 0) -> Any:
    live = gw.services.live
    found = [
        e
        for d in sorted(live.directory.ids())
        if (e := live.directory.get(d)) is not None
        and e.berth_id is not None
        and (e.site_id or "").startswith("st-")
    ]
    return found[skip]


def report(gw: Any, sensor: Any, ts: datetime, occupied: bool, fcnt: int) -> None:
    gw.services.live.book.apply(
        SensorStatus(device_id=sensor.id, ts=ts, model=sensor.model, fcnt=fcnt, occupied=occupied)
    )


async def berth_state(gw: Any, berth_id: str) -> str | None:
    async with gw.services.sessions() as db:
        row = await db.get(BerthRow, berth_id, populate_existing=True)
        return None if row is None or row.since is None else row.state


async def stays(gw: Any, berth_id: str) -> list[ParkingSessionRow]:
    async with gw.services.sessions() as db:
        rows = await db.scalars(
            select(ParkingSessionRow)
            .where(ParkingSessionRow.berth_id == berth_id)
            .order_by(ParkingSessionRow.entry_at)
        )
        return list(rows)


async def test_an_ack_goes_out_after_the_commit_that_holds_its_state(gw: Any) -> None:
    sensor = street_sensor(gw)
    report(gw, sensor, T0, True, 1)
    seen_at_ack: list[str | None] = []
    acked = asyncio.Event()

    def ack() -> None:
        acked.set()

    gw.services.persister.hold(ack)
    await asyncio.wait_for(acked.wait(), 5)
    seen_at_ack.append(await berth_state(gw, sensor.berth_id))
    assert seen_at_ack == ["occupied"]
    assert gw.services.persister.acks_held == 0


async def test_a_failed_commit_keeps_the_work_and_its_acks(gw: Any) -> None:
    sensor = street_sensor(gw, 1)
    persister = gw.services.persister
    acked: list[int] = []
    async with gw.services.engine.begin() as conn:
        await conn.execute(text("ALTER TABLE berths RENAME TO berths_away"))
    try:
        report(gw, sensor, T0, True, 1)
        persister.hold(lambda: acked.append(1))
        report(gw, sensor, T0 + timedelta(minutes=5), False, 2)
        persister.hold(lambda: acked.append(2))
        await wait_for(
            lambda: gw.metrics_value("citygate_persist_failed_total", kind="state") >= 1,
            5,
            what="a failed commit",
        )
        assert acked == [] and persister.acks_held == 2
    finally:
        async with gw.services.engine.begin() as conn:
            await conn.execute(text("ALTER TABLE berths_away RENAME TO berths"))
    await wait_for(lambda: acked == [1, 2], 10, what="the held acks, in order")
    assert await berth_state(gw, sensor.berth_id) == "free"
    (stay,) = await stays(gw, sensor.berth_id)  # opened and closed while the commit failed
    assert stay.state == "closed" and stay.entry_at == T0
    assert stay.exit_at == T0 + timedelta(minutes=5)


async def test_a_stay_inside_one_commit_is_recorded_once(gw: Any) -> None:
    sensor = street_sensor(gw, 2)
    report(gw, sensor, T0, True, 1)
    report(gw, sensor, T0 + timedelta(minutes=20), False, 2)
    report(gw, sensor, T0 + timedelta(minutes=30), True, 3)
    report(gw, sensor, T0 + timedelta(minutes=50), False, 4)
    assert await gw.services.persister.flush()
    assert await gw.services.persister.flush()  # nothing new: nothing recorded twice
    got = [(s.state, s.entry_at, s.exit_at) for s in await stays(gw, sensor.berth_id)]
    assert got == [
        ("closed", T0, T0 + timedelta(minutes=20)),
        ("closed", T0 + timedelta(minutes=30), T0 + timedelta(minutes=50)),
    ]


async def test_a_row_the_database_refuses_costs_only_that_row(gw: Any) -> None:
    """One berth's state breaks a rule of the database (here a trigger or check standing in
    for a value out of a column's range): the other berth's state, both sessions and both
    acknowledgements still go through; the refused row is counted."""
    bad, good = street_sensor(gw, 3), street_sensor(gw, 4)
    engine = gw.services.engine
    async with engine.begin() as conn:
        if engine.dialect.name == "sqlite":
            await conn.execute(
                text(
                    "CREATE TRIGGER fcnt_cap BEFORE UPDATE ON berths WHEN NEW.last_fcnt > 1000 "
                    "BEGIN SELECT RAISE(ABORT, 'last_fcnt too big'); END"
                )
            )
        else:
            await conn.execute(
                text("ALTER TABLE berths ADD CONSTRAINT fcnt_cap CHECK (last_fcnt <= 1000)")
            )
    try:
        acked: list[str] = []
        report(gw, bad, T0, True, 5000)
        gw.services.persister.hold(lambda: acked.append("bad"))
        report(gw, good, T0, True, 7)
        gw.services.persister.hold(lambda: acked.append("good"))
        await wait_for(lambda: acked == ["bad", "good"], 10, what="both acknowledgements")
        assert gw.metrics_value("citygate_persist_failed_total", kind="row") >= 1
        assert await berth_state(gw, good.berth_id) == "occupied"
        assert await berth_state(gw, bad.berth_id) is None  # not written; the book has it
        assert gw.services.live.book.berth(bad.berth_id).state.value == "occupied"
        assert [s.state for s in await stays(gw, bad.berth_id)] == ["open"]
        assert [s.state for s in await stays(gw, good.berth_id)] == ["open"]
    finally:
        async with engine.begin() as conn:
            if engine.dialect.name == "sqlite":
                await conn.execute(text("DROP TRIGGER fcnt_cap"))
            else:
                await conn.execute(text("ALTER TABLE berths DROP CONSTRAINT fcnt_cap"))


async def test_a_32_bit_frame_counter_is_stored(gw: Any) -> None:
    """LoRaWAN frame counters are 32-bit unsigned: one above 2^31 is a berth's state like any
    other (it did not fit PostgreSQL's integer column)."""
    sensor = street_sensor(gw, 5)
    report(gw, sensor, T0, True, 3_000_000_000)
    assert await gw.services.persister.flush()
    assert gw.metrics_value("citygate_persist_failed_total", kind="row") == 0
    async with gw.services.sessions() as db:
        row = await db.get(BerthRow, sensor.berth_id)
    assert row is not None and row.last_fcnt == 3_000_000_000 and row.state == "occupied"
