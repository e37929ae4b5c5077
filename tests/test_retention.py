"""Retention of the audit log and the change feed, on SQLite and PostgreSQL: age, the newest
changes kept, bounded batches, one pruner at a time (PostgreSQL's advisory lock), a follower
that fell behind the pruning reports itself stale, and the gateway's own task prunes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from gateway.config import RetentionConfig
from gateway.infra.changes import TOMBSTONE, Change, ChangeFollower
from gateway.infra.retention import PRUNE_LOCK, Retention, prune_audit, prune_changes
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.schema import AuditRow, ChangeRow
from gateway.metrics import Metrics
from tests.conftest import Broker, gateway_settings, running_gateway, wait_for

NOW = datetime(2026, 12, 4, 2, 0, tzinfo=UTC)


@pytest.fixture
async def engine(db_url: str) -> AsyncIterator[AsyncEngine]:
    e = create_engine(db_url)
    await migrate(e)
    yield e
    await e.dispose()


async def add_audit(engine: AsyncEngine, ages_days: list[float]) -> None:
    rows = [
        {
            "at": NOW - timedelta(days=d),
            "actor": "cli:li",
            "role": "admin",
            "source": "cli",
            "kind": "device",
            "key": f"d{i}",
            "action": "update",
        }
        for i, d in enumerate(ages_days)
    ]
    async with engine.begin() as conn:
        await conn.execute(insert(AuditRow.__table__), rows)  # type: ignore[arg-type]


async def add_changes(engine: AsyncEngine, ages_days: list[float]) -> list[int]:
    async with engine.begin() as conn:
        for i, d in enumerate(ages_days):
            await conn.execute(
                insert(ChangeRow.__table__),  # type: ignore[arg-type]
                {"kind": "device", "key": f"d{i}", "op": "upsert", "at": NOW - timedelta(days=d)},
            )
        seqs = (await conn.execute(select(ChangeRow.seq).order_by(ChangeRow.seq))).scalars()
        return list(seqs)


async def rows(engine: AsyncEngine) -> list[tuple[int, str, str]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(ChangeRow.seq, ChangeRow.kind, ChangeRow.key).order_by(ChangeRow.seq)
        )
        return [(r.seq, r.kind, r.key) for r in result]


async def audit_keys(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set((await conn.execute(select(AuditRow.key))).scalars())


async def test_audit_older_than_the_retention_goes_in_batches(engine: AsyncEngine) -> None:
    await add_audit(engine, [400.0] * 25 + [10.0, 100.0, 364.0])
    async with engine.connect() as conn:
        assert await prune_audit(conn, NOW - timedelta(days=365), batch=7) == 25
        assert await prune_audit(conn, NOW - timedelta(days=365), batch=7) == 0
    assert await audit_keys(engine) == {"d25", "d26", "d27"}


async def test_changes_keep_the_young_and_the_newest(engine: AsyncEngine) -> None:
    seqs = await add_changes(engine, [60.0] * 12 + [1.0] * 3)
    async with engine.connect() as conn:
        # keep 5: the 3 young ones and the newest 2 old ones stay; the newest pruned is a
        # tombstone, the 9 below it are deleted (in batches of 4)
        assert await prune_changes(conn, NOW - timedelta(days=30), keep=5, batch=4) == 9
    left = await rows(engine)
    assert [s for s, _, _ in left] == seqs[9:]
    assert left[0][1] == TOMBSTONE and all(k == "device" for _, k, _ in left[1:])
    async with engine.connect() as conn:  # again: nothing more to do
        assert await prune_changes(conn, NOW - timedelta(days=30), keep=5, batch=4) == 0
    assert await rows(engine) == left


async def test_a_change_younger_than_the_retention_is_never_pruned(engine: AsyncEngine) -> None:
    """Writers' clocks differ: an old-stamped change after a young one is kept too."""
    seqs = await add_changes(engine, [60.0, 60.0, 1.0, 60.0, 60.0])
    async with engine.connect() as conn:
        assert await prune_changes(conn, NOW - timedelta(days=30), keep=1, batch=100) == 1
    assert [s for s, _, _ in await rows(engine)] == seqs[1:]


async def test_fewer_changes_than_kept_prunes_nothing(engine: AsyncEngine) -> None:
    await add_changes(engine, [90.0] * 4)
    async with engine.connect() as conn:
        assert await prune_changes(conn, NOW - timedelta(days=30), keep=4, batch=100) == 0
    assert len(await rows(engine)) == 4


def follower(engine: AsyncEngine, after: int, applied: list[Change]) -> ChangeFollower:
    async def apply(change: Change) -> None:
        applied.append(change)

    return ChangeFollower(engine, sessionmaker_for(engine), apply, Metrics(), after=after)


async def test_a_follower_behind_the_pruning_says_so_and_goes_on(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    seqs = await add_changes(engine, [60.0] * 6 + [1.0] * 2)
    behind: list[Change] = []
    stuck = follower(engine, 0, behind)  # applied nothing yet
    current: list[Change] = []
    live = follower(engine, seqs[-1], current)  # up to date
    async with engine.connect() as conn:
        assert await prune_changes(conn, NOW - timedelta(days=30), keep=2, batch=100) == 5
    with caplog.at_level(logging.ERROR, "gateway.infra.changes"):
        await stuck.catch_up()
        await live.catch_up()
    assert stuck.stale and [c.seq for c in behind] == seqs[6:]
    assert stuck.applied_seq == seqs[-1]
    assert f"changes 1..{seqs[5]} were pruned" in caplog.text and "restart" in caplog.text
    assert not live.stale and current == []
    more = await add_changes(engine, [0.0])
    await live.catch_up()
    assert [c.seq for c in current] == more[-1:] and not live.stale


async def test_one_instance_prunes_at_a_time(engine: AsyncEngine, db_url: str) -> None:
    await add_audit(engine, [800.0] * 3)
    await add_changes(engine, [60.0] * 5)
    config = RetentionConfig(audit_days=365, changes_days=30, changes_keep=1)
    retention = Retention(engine, config, Metrics(), lambda: NOW)
    if engine.dialect.name == "postgresql":
        other = create_engine(db_url)
        try:
            async with other.connect() as holder:  # another instance pruning
                assert await holder.scalar(
                    text("SELECT pg_try_advisory_lock(:k)"), {"k": PRUNE_LOCK}
                )
                assert await retention.run_once() is None
                assert len(await audit_keys(engine)) == 3
                await holder.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": PRUNE_LOCK})
        finally:
            await other.dispose()
    done = await retention.run_once()
    assert done is not None and (done.audit, done.changes) == (3, 3)
    assert await audit_keys(engine) == set()
    if engine.dialect.name == "postgresql":  # the lock was given back
        async with engine.connect() as conn:
            held = await conn.scalar(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :k"),
                {"k": PRUNE_LOCK},
            )
            assert held == 0


def test_settings_are_validated() -> None:
    assert RetentionConfig(audit_days=0).audit_days == 0  # kept for ever
    for bad in ({"audit_days": 30}, {"changes_days": 0}, {"changes_keep": 0}, {"batch": 0}):
        with pytest.raises(ValidationError):
            RetentionConfig.model_validate(bad)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
async def test_the_gateway_prunes_on_its_own(
    mosquitto: Broker, db_url: str, tmp_path: Path
) -> None:
    settings = gateway_settings(
        db_url,
        mosquitto,
        retention={"interval_s": 0.2, "changes_keep": 1, "audit_days": 180},
        api={"metrics_token_required": False},
    )
    async with running_gateway(settings) as gw:
        engine: Any = gw.services.engine
        await add_audit(engine, [200.0] * 4)
        await wait_for(
            lambda: gw.metrics_value("citygate_retention_pruned_total", table="audit") >= 4,
            10,
            what="the retention task pruned",
        )
        assert await audit_keys(engine) & {f"d{i}" for i in range(4)} == set()
        async with httpx.AsyncClient() as http:
            ready = await http.get(f"http://127.0.0.1:{gw.api_port}/readyz")
        assert ready.status_code == 200 and ready.json()["checks"]["changes"] is True
        assert not gw.services.follower.stale
