"""Retention pruning: the worst latency of a concurrent audit writer while 100,000 old audit
entries are pruned in batches (gateway.infra.retention), against one DELETE of them all (the
baseline), on SQLite and, when reachable, PostgreSQL. One JSON line per figure.

    .venv/bin/python bench/bench_retention.py [--rows 100000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert

from bench.bench_import import Database, pg_database, pg_reachable, sqlite_db
from bench.bench_ingest import emit
from gateway.infra.retention import prune_audit
from gateway.infra.storage.db import create_engine, migrate
from gateway.infra.storage.schema import AuditRow

NOW = datetime(2026, 12, 4, tzinfo=UTC)
AUDIT: Any = AuditRow.__table__


def entry(i: int, at: datetime) -> dict[str, Any]:
    return {"at": at, "actor": "cli:li", "role": "admin", "source": "cli", "kind": "device",
            "key": f"d{i}", "action": "update"}  # fmt: skip


async def run(db: Database, rows: int, batch: int) -> tuple[float, float, float]:
    """(seconds to prune, worst writer latency in ms, writes done meanwhile)."""
    async with db() as url:
        engine = create_engine(url)
        writer_engine = create_engine(url)
        try:
            await migrate(engine)
            old = NOW - timedelta(days=1000)
            async with engine.begin() as conn:
                for start in range(0, rows, 10_000):
                    chunk = [entry(i, old) for i in range(start, min(rows, start + 10_000))]
                    await conn.execute(insert(AUDIT), chunk)
            done = asyncio.Event()
            worst, writes = 0.0, 0

            async def writer() -> None:
                nonlocal worst, writes
                while not done.is_set():
                    t0 = time.perf_counter()
                    async with writer_engine.begin() as conn:
                        await conn.execute(insert(AUDIT), [entry(writes, NOW)])
                    worst = max(worst, time.perf_counter() - t0)
                    writes += 1
                    await asyncio.sleep(0.005)

            task = asyncio.create_task(writer())
            await asyncio.sleep(0.2)
            worst = 0.0  # the writer's warm-up (its first connection) is not the prune's
            t0 = time.perf_counter()
            async with engine.connect() as conn:
                pruned = await prune_audit(conn, NOW - timedelta(days=365), batch)
            took = time.perf_counter() - t0
            done.set()
            await task
            assert pruned == rows, pruned
            return took, worst * 1000, float(writes)
        finally:
            await engine.dispose()
            await writer_engine.dispose()


async def main(rows: int, batch: int) -> None:
    backends: list[tuple[str, Database]] = [("sqlite", sqlite_db)]
    if await pg_reachable():
        backends.append(("postgresql", pg_database("postgresql+asyncpg://postgres@127.0.0.1:5432")))
    for name, db in backends:
        one_took, one_worst, _ = await run(db, rows, rows)  # one DELETE of every row
        took, worst, writes = await run(db, rows, batch)
        emit(f"retention_writer_worst_ms_{name}", worst, "ms", one_worst, rows=rows, batch=batch,
             writes=writes)  # fmt: skip
        emit(f"retention_prune_s_{name}", took, "s", one_took, rows=rows, batch=batch)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=100_000)
    p.add_argument("--batch", type=int, default=1000)
    a = p.parse_args()
    asyncio.run(main(a.rows, a.batch))
