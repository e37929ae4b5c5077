"""A bulk import reaches a running gateway as one change of the feed (``device``, op
``import``, every key in its payload), and the gateway's directory then equals the database:
new sensors, changed ones and retired ones, on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select

from gateway.directory.bulk.parse import Limits
from gateway.directory.bulk.service import import_file
from gateway.directory.registry import entry_from_row
from gateway.infra.changes import head_seq
from gateway.infra.storage.db import create_engine, sessionmaker_for
from gateway.infra.storage.schema import ChangeRow, DeviceRow
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for

pytestmark = [pytest.mark.asyncio]

N = 2000
NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
LIMITS = Limits(max_bytes=1 << 20, max_rows=N)


def sensors(n: int, heartbeat: int = 600, start: int = 0) -> bytes:
    rows = [f"a84041009{i:07x},nwave-nps405,{heartbeat},泊位 {i}" for i in range(start, n)]
    return ("dev_eui,model,heartbeat_s,notes\n" + "\n".join(rows) + "\n").encode()


async def directory_equals_database(gw: Any, sessions: Any) -> bool:
    async with sessions() as db:
        rows = list((await db.execute(select(DeviceRow))).scalars())
    directory = gw.services.live.directory
    if set(directory.ids()) != {r.id for r in rows}:
        return False
    return all(directory.get(r.id) == entry_from_row(r) for r in rows)


def applied(follower: Any, seq: int) -> Callable[[], bool]:
    return lambda: bool(follower.applied_seq >= seq)


async def changes_after(sessions: Any, seq: int) -> list[ChangeRow]:
    async with sessions() as db:
        return list((await db.execute(select(ChangeRow).where(ChangeRow.seq > seq))).scalars())


async def test_an_import_of_2000_sensors_is_one_change_and_the_follower_mirrors_it(
    db_url: str, mosquitto: Broker
) -> None:
    async with running_gateway(gateway_settings(db_url, mosquitto)) as gw:
        engine = create_engine(db_url)  # another process's view (the CLI's import)
        sessions = sessionmaker_for(engine)
        try:
            follower = gw.services.follower
            for data, retire in (
                (sensors(N), False),  # 2,000 new sensors
                (sensors(N, heartbeat=900, start=300), True),  # 1,700 changed, 300 retired
            ):
                seq = await head_seq(sessions)
                outcome = await import_file(sessions, data, "csv", NOW, limits=LIMITS,
                                            realm="test", kind="sensor",
                                            retire_missing=retire)  # fmt: skip
                assert outcome.imported, outcome.errors[:3]
                [change] = await changes_after(sessions, seq)  # one change for them all
                assert (change.kind, change.op) == ("device", "import")
                assert change.payload is not None and len(change.payload["keys"]) >= N - 300
                follower.kick()
                await wait_for(applied(follower, change.seq), 10, what="the import applied")
                assert follower.skipped == 0
                assert await directory_equals_database(gw, sessions)
            entry = gw.services.live.directory.get(f"a84041009{0:07x}")
            assert entry is not None and entry.lifecycle.value == "retired"
            entry = gw.services.live.directory.get(f"a84041009{N - 1:07x}")
            assert entry is not None and entry.heartbeat_s == 900
        finally:
            await engine.dispose()
