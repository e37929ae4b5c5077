"""Bulk import of 10,000 berth sensors from a CSV (``citygate import``'s function: parse,
validate with the API's model, diff, one transaction with the change feed) into a fresh
database, next to a bare ``executemany`` of the same rows into the same table in the same
run. SQLite always; PostgreSQL too when a trust server answers on 127.0.0.1:5432 (a
throwaway database, dropped at the end).

Prints one JSON line per figure (name, value, unit, baseline), as the other benches: wall
time (median of --runs, each on a fresh database), peak Python memory (tracemalloc, in a
separate run: tracing slows Python down, so it is never in a timed run) and the ratio of
import to bare insert. Target: the import within 3x the bare insert's time.

Breakdown figures beside them: the parse and validation of the file alone (no database), and
the same device rows written as the import writes them (``insert_plain``: the driver's
executemany on SQLite, one ``INSERT ... SELECT unnest`` on PostgreSQL) next to the bare
executemany, so the import's own rows and the rest of its work can be told apart.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import text

from bench.bench_ingest import emit
from gateway.directory.bulk.engine import DEVICES
from gateway.directory.bulk.parse import Limits, parse
from gateway.directory.bulk.service import import_file
from gateway.infra.gcpause import gc_paused
from gateway.infra.storage.db import create_engine, migrate, sessionmaker_for
from gateway.infra.storage.plain import insert_plain, rows_of

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
MODELS = ("nwave-nps405", "bosch-tps110", "nbiot-geomag")
TRANSPORT = {"nwave-nps405": "lorawan", "bosch-tps110": "lorawan", "nbiot-geomag": "nbiot"}
COLUMNS = ("id", "kind", "protocol", "model", "address", "berth_id", "site_id", "lifecycle",
           "heartbeat_s", "notes", "created_at", "updated_at")  # fmt: skip


def make_csv(n: int) -> bytes:
    lines = ["dev_eui,model,heartbeat_s,notes"]
    lines += [f"A8404100{i:08X},{MODELS[i % 3]},{600 + i % 7},东大街 {i} 号泊位" for i in range(n)]
    return ("\n".join(lines) + "\n").encode()


def bare_rows(n: int) -> list[dict[str, Any]]:
    """The rows the import writes, built up front: the floor any import of them meets."""
    from drivers.sensors.registry import get_codec

    transport = {m: get_codec(m).transport for m in MODELS}
    return [
        {"id": f"a8404100{i:08x}", "kind": "berth_sensor", "protocol": transport[MODELS[i % 3]],
         "model": MODELS[i % 3], "address": f"a8404100{i:08x}", "berth_id": None,
         "site_id": None, "lifecycle": "provisioned", "heartbeat_s": 600 + i % 7,
         "notes": f"东大街 {i} 号泊位", "created_at": NOW, "updated_at": NOW}
        for i in range(n)
    ]  # fmt: skip


Database = Callable[[], contextlib.AbstractAsyncContextManager[str]]


@contextlib.asynccontextmanager
async def sqlite_db() -> AsyncIterator[str]:
    with tempfile.TemporaryDirectory(prefix="cg-bench-import-") as tmp:
        yield f"sqlite+aiosqlite:///{tmp}/cg.db"


def pg_database(base: str) -> Database:
    @contextlib.asynccontextmanager
    async def make() -> AsyncIterator[str]:
        import asyncpg

        name = f"cg_bench_{uuid.uuid4().hex[:10]}"
        admin = await asyncpg.connect(host="127.0.0.1", port=5432, user="postgres")
        try:
            await admin.execute(f'CREATE DATABASE "{name}"')
            try:
                yield f"{base}/{name}"
            finally:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    return make


async def pg_reachable() -> bool:
    try:
        import asyncpg

        conn = await asyncio.wait_for(
            asyncpg.connect(host="127.0.0.1", port=5432, user="postgres"), 3
        )
    except Exception:
        return False
    await conn.close()
    return True


async def timed(db: Database, work: Callable[[Any], Awaitable[None]], memory: bool) -> float:
    """Seconds (or, with *memory*, peak traced MiB) of *work* on a fresh migrated database."""
    async with db() as url:
        engine = create_engine(url)
        try:
            await migrate(engine)
            sessions = sessionmaker_for(engine)
            async with engine.connect() as conn:  # the pool's connection, opened before
                await conn.execute(text("SELECT 1"))
            if memory:
                tracemalloc.start()
            t0 = time.perf_counter()
            await work(sessions)
            took = time.perf_counter() - t0
            if memory:
                _, peak = tracemalloc.get_traced_memory()
                tracemalloc.stop()
                return peak / 2**20
            return took
        finally:
            await engine.dispose()


async def bench(backend: str, db: Database, n: int, runs: int) -> None:
    data = make_csv(n)
    limits = Limits(max_bytes=len(data) + 1, max_rows=n)

    async def do_import(sessions: Any) -> None:
        outcome = await import_file(sessions, data, "csv", NOW, limits=limits, realm="bench",
                                    kind="sensor")  # fmt: skip
        assert outcome.imported and len(outcome.added["sensor"]) == n, outcome.errors[:3]

    rows = bare_rows(n)
    names, binds = ", ".join(COLUMNS), ", ".join(":" + c for c in COLUMNS)
    sql = f"INSERT INTO devices ({names}) VALUES ({binds})"  # noqa: S608 (constant names)
    insert = text(sql)

    async def do_bare(sessions: Any) -> None:
        async with sessions.begin() as s:
            await s.execute(insert, rows)

    plain_columns = [c for c in COLUMNS if c not in ("created_at", "updated_at")]

    async def do_plain(sessions: Any) -> None:  # its tuples made here: nothing more kept alive
        async with sessions.begin() as s:
            await insert_plain(s, DEVICES, plain_columns, rows_of(rows, plain_columns),
                               {"created_at": NOW, "updated_at": NOW})  # fmt: skip

    times = {"import": [], "bare": [], "plain": [], "parse": []}  # type: dict[str, list[float]]
    for _ in range(runs):  # interleaved, so a noisy moment hits both
        times["import"].append(await timed(db, do_import, False))
        times["bare"].append(await timed(db, do_bare, False))
        times["plain"].append(await timed(db, do_plain, False))
        t0 = time.perf_counter()
        with gc_paused():  # as import_file parses
            parse(data, "csv", limits, "sensor")
        times["parse"].append(time.perf_counter() - t0)
    imp, bare = statistics.median(times["import"]), statistics.median(times["bare"])
    emit(f"import_{backend}_{n}_sensors_wall", imp * 1000, "ms", bare * 1000,
         baseline_name="bare executemany, same rows, same table", runs=runs)  # fmt: skip
    emit(f"import_{backend}_{n}_sensors_ratio", imp / bare, "x", 3.0,
         baseline_name="target: at most this")  # fmt: skip
    emit(f"import_{backend}_{n}_sensors_breakdown_device_rows_plain",
         statistics.median(times["plain"]) * 1000, "ms", bare * 1000,
         baseline_name="bare executemany, same rows, same table", runs=runs)  # fmt: skip
    plain = statistics.median(times["plain"])
    emit(f"import_{backend}_{n}_sensors_ratio_to_driver_floor", imp / plain, "x", None,
         baseline_name="the device rows alone as the import writes them (the driver's own "
         "executemany / unnest): no target, the floor below the bare executemany")  # fmt: skip
    emit(f"import_{backend}_{n}_sensors_breakdown_parse_validate",
         statistics.median(times["parse"]) * 1000, "ms", imp * 1000,
         baseline_name="the whole import", runs=runs)  # fmt: skip
    mem_imp = await timed(db, do_import, True)
    mem_bare = await timed(db, do_bare, True)
    emit(f"import_{backend}_{n}_sensors_peak_memory", mem_imp, "MiB", mem_bare,
         baseline_name="bare executemany (rows built beforehand, not counted)",
         how="tracemalloc peak")  # fmt: skip


async def amain(n: int, runs: int) -> None:
    await bench("sqlite", sqlite_db, n, runs)
    if await pg_reachable():
        await bench("postgresql", pg_database("postgresql+asyncpg://postgres@127.0.0.1:5432"), n,
                    runs)  # fmt: skip
    else:
        print('{"note": "no trust PostgreSQL on 127.0.0.1:5432: SQLite only"}', flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sensors", type=int, default=10_000)
    p.add_argument("--runs", type=int, default=3)
    args = p.parse_args()
    asyncio.run(amain(args.sensors, args.runs))


if __name__ == "__main__":
    main()
