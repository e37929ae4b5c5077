"""The body cams' store on both backends: live state written in bulk (insert, then updates in
slices) and read back as restored presence; alarms kept, with their case when asked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from drivers.gb28181.manscdp import Alarm, Position
from drivers.gb28181.presence import PresenceState
from drivers.sip.transport import Peer
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import BodycamAlarmRow
from gateway.services.bodycams.cams import CamLive, routine_values, row_values
from gateway.services.bodycams.store import (
    CHUNK,
    AlarmRecord,
    BodycamStore,
    OfficerInfo,
    alarm_cases,
)
from parking.enforcement_file import load_sample_rules

T0 = datetime(2026, 12, 2, 6, 0, tzinfo=UTC)


def cam(n: int) -> CamLive:
    c = CamLive(f"62072500081380{n:06d}", PresenceState(T0, T0 + timedelta(hours=1), 60, 3))
    c.peer = Peer("UDP", "10.0.0.9", 5000 + n)
    return c


async def test_flush_then_load_round_trips(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        store = BodycamStore(sessionmaker_for(engine))
        cams = [cam(n) for n in range(1, 2 * CHUNK + 7)]
        seen: list[tuple[str, bool]] = []
        await store.flush([row_values(c, T0) for c in cams], [], lambda c, r: None)
        for i, c in enumerate(cams):  # every one moved: all updates, over three slices
            c.moved(Position(c.device_id, T0 + timedelta(seconds=i), 101.0, 38.0 + i / 1e4))
            c.presence = c.presence.seen(T0 + timedelta(seconds=30))
        officer = OfficerInfo("of-001", "范欣娜", "督查中队", "officer")
        alarm = Alarm(cams[0].device_id, 5, 1, 2, T0, "SOS", 101.0, 38.0, 1)
        record = AlarmRecord(alarm, T0, 38.0, 101.0, officer)
        await store.flush(
            [row_values(c, T0) for c in cams],
            [record],
            lambda c, r: seen.append((c.title, r)),
            load_sample_rules(()),
        )
        assert seen and seen[0][1] is True and "范欣娜" in seen[0][0]
        _, _, back = await BodycamStore(sessionmaker_for(engine)).load(60, 3)
        assert len(back) == len(cams)
        last = back[cams[-1].device_id]
        assert last.position == cams[-1].position and last.peer == cams[-1].peer
        assert last.presence.last_keepalive == T0 + timedelta(seconds=30)
        assert not last.presence.confirmed
        async with sessionmaker_for(engine)() as db:
            (row,) = (await db.execute(select(BodycamAlarmRow))).scalars()
        assert row.case_id is not None and row.description == "SOS"
    finally:
        await engine.dispose()


async def test_routine_rows_write_their_columns_and_keep_the_rest(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        await migrate(engine)
        store = BodycamStore(sessionmaker_for(engine))
        cams = [cam(n) for n in range(1, CHUNK + 5)]
        for c in cams:
            c.battery_percent, c.contact = 80.0, f"sip:{c.device_id}@10.0.0.9"
        await store.flush([row_values(c, T0) for c in cams], [], lambda c, r: None)
        for i, c in enumerate(cams):  # positions and keepalives (routine), one power change
            c.moved(Position(c.device_id, T0 + timedelta(seconds=i), 101.0, 38.0 + i / 1e4))
            c.presence = c.presence.seen(T0 + timedelta(seconds=40))
        cams[0].battery_percent = 55.0
        rows = [row_values(cams[0], T0)] + [routine_values(c, T0) for c in cams[1:]]
        await store.flush(rows, [], lambda c, r: None)  # one statement of each shape
        _, _, back = await BodycamStore(sessionmaker_for(engine)).load(60, 3)
        for c in cams:
            b = back[c.device_id]
            assert b.position == c.position and b.peer == c.peer and b.contact == c.contact
            assert b.presence.last_keepalive == T0 + timedelta(seconds=40)
            assert b.presence.registered_until == c.presence.registered_until
        assert back[cams[0].device_id].battery_percent == 55.0
        assert back[cams[1].device_id].battery_percent == 80.0  # kept: not a routine column
    finally:
        await engine.dispose()


def test_the_rule_book_decides_which_alarms_file_a_case() -> None:
    rules = load_sample_rules(())
    officer = OfficerInfo("of-001", "范欣娜", "督查中队", "officer")

    def alarm(device: str, sn: int, priority: int | None) -> AlarmRecord:
        a = Alarm(device, sn, priority, 2, T0, "SOS", 101.08, 38.78, 1)
        return AlarmRecord(a, T0, 38.78, 101.08, officer)

    (case,) = alarm_cases(alarm(cam(1).device_id, 5, 1), rules)  # the officer's SOS
    assert case.rule_id == "officer-alarm" and case.category == "bodycam"
    assert "范欣娜（督查中队）" in case.title and (case.lat, case.lon) == (38.78, 101.08)
    assert case.details["officer_id"] == "of-001" and case.details["priority"] == 1
    assert len(alarm_cases(alarm(cam(1).device_id, 6, 2), rules)) == 1
    assert alarm_cases(alarm(cam(1).device_id, 7, 3), rules) == ()  # below the rule's bar
    assert alarm_cases(alarm(cam(1).device_id, 8, None), rules) == ()
    assert alarm_cases(alarm(cam(1).device_id, 5, 1), None) == ()  # no rules: no case
    # two officers' alarms at one place are two cases (keyed per cam and SN, not per place)
    keys = {alarm_cases(alarm(cam(n).device_id, 5, 1), rules)[0].dedup_key for n in (1, 2)}
    assert len(keys) == 2
