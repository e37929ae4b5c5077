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
from gateway.services.bodycams.cams import CamLive, row_values
from gateway.services.bodycams.store import CHUNK, AlarmRecord, BodycamStore, OfficerInfo

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
        record = AlarmRecord(alarm, T0, 38.0, 101.0, officer, True)
        await store.flush(
            [row_values(c, T0) for c in cams], [record], lambda c, r: seen.append((c.title, r))
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
